//! The wit-bindgen glue between the SDK's plain Rust traits and the
//! component's exports. Only built for `wasm32`; plugin authors never touch it.

pub mod agent;

pub use wit_bindgen;

use crate::log::Level;

pub(crate) fn log(level: Level, message: &str) {
    use agent::bindings::paddock::plugin::log as wit;
    let level = match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    wit::log(level, message);
}
