//! The wit-bindgen glue between the SDK's plain Rust traits and the
//! component's exports. Only built for `wasm32`; plugin authors never touch it.
//!
//! Each world's glue is behind the SDK feature of the same name (`agent`,
//! `provider`). Without it, the world's export macro is a `compile_error!`
//! that names the feature, rather than an unresolved path.

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "provider")]
pub mod provider;

#[cfg(not(feature = "agent"))]
pub mod agent {
    #[doc(hidden)]
    #[macro_export]
    macro_rules! __paddock_no_agent_feature {
        ($($t:tt)*) => {
            compile_error!("export_agent! needs paddock-sdk's `agent` feature");
        };
    }
    pub use __paddock_no_agent_feature as __export_agent;
    /// Stands in for the component type the macro names.
    pub struct Component<A>(core::marker::PhantomData<A>);
}

#[cfg(not(feature = "provider"))]
pub mod provider {
    #[doc(hidden)]
    #[macro_export]
    macro_rules! __paddock_no_provider_feature {
        ($($t:tt)*) => {
            compile_error!("export_provider! needs paddock-sdk's `provider` feature");
        };
    }
    pub use __paddock_no_provider_feature as __export_provider;
    /// Stands in for the component type the macro names.
    pub struct Component<P>(core::marker::PhantomData<P>);
}

pub use wit_bindgen;

use crate::log::Level;

// Every world imports the same `paddock:plugin/log@0.1.0`; either world's
// bindings reach it.
#[cfg(feature = "agent")]
use agent::bindings::paddock::plugin::log as wit_log;
#[cfg(all(feature = "provider", not(feature = "agent")))]
use provider::bindings::paddock::plugin::log as wit_log;

#[cfg(any(feature = "agent", feature = "provider"))]
pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::log(level, message);
}

/// Without a world there is no host log: stderr, which the host captures.
#[cfg(not(any(feature = "agent", feature = "provider")))]
pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}
