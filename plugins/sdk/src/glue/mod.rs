//! The wit-bindgen glue between the SDK's plain Rust traits and the
//! component's exports. Only built for `wasm32`; plugin authors never touch it.
//!
//! Each world's glue is behind the SDK feature of the same name (`agent`,
//! `broker`, `provider`). Without it, the world's export macro is a
//! `compile_error!` that names the feature, rather than an unresolved path.

#[cfg(feature = "agent")]
pub mod agent;
#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "provider")]
pub mod provider;

/// Stands in for a world whose feature is off: its export macro is a
/// `compile_error!` naming the feature.
#[cfg(not(all(feature = "agent", feature = "broker", feature = "provider")))]
macro_rules! missing_world {
    // `$d` is a `$` token passed in, so the inner macro can have a matcher
    // of its own.
    ($d:tt, $module:ident, $macro:ident, $export:ident, $message:literal) => {
        pub mod $module {
            #[doc(hidden)]
            #[macro_export]
            macro_rules! $macro {
                ($d($d t:tt)*) => {
                    compile_error!($message);
                };
            }
            pub use $macro as $export;
            /// Stands in for the component type the macro names.
            pub struct Component<T>(core::marker::PhantomData<T>);
        }
    };
}

#[cfg(not(feature = "agent"))]
missing_world!(
    $,
    agent,
    __paddock_no_agent_feature,
    __export_agent,
    "export_agent! needs paddock-sdk's `agent` feature"
);
#[cfg(not(feature = "broker"))]
missing_world!(
    $,
    broker,
    __paddock_no_broker_feature,
    __export_broker,
    "export_broker! needs paddock-sdk's `broker` feature"
);
#[cfg(not(feature = "provider"))]
missing_world!(
    $,
    provider,
    __paddock_no_provider_feature,
    __export_provider,
    "export_provider! needs paddock-sdk's `provider` feature"
);

/// The conversions every world's glue needs between the SDK's plain types
/// and that world's own generated copy of `types` (each `generate!` makes
/// one). Expanded in a glue module that has `wit_types` in scope.
#[cfg(any(feature = "broker", feature = "provider"))]
macro_rules! world_conversions {
    () => {
        #[allow(dead_code)]
        fn to_kv<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<wit_types::Kv> {
            pairs
                .map(|(k, v)| wit_types::Kv {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect()
        }

        #[allow(dead_code)]
        fn from_kv(kvs: Vec<wit_types::Kv>) -> impl Iterator<Item = (String, String)> {
            kvs.into_iter().map(|kv| (kv.key, kv.value))
        }

        #[allow(dead_code)]
        fn error_to_wit(e: $crate::PluginError) -> wit_types::PluginError {
            use $crate::PluginError as E;
            match e {
                E::InvalidInput(m) => wit_types::PluginError::InvalidInput(m),
                E::Denied(m) => wit_types::PluginError::Denied(m),
                E::Unavailable(m) => wit_types::PluginError::Unavailable(m),
                E::Internal(m) => wit_types::PluginError::Internal(m),
            }
        }

        #[allow(dead_code)]
        pub(crate) fn error_from_wit(e: wit_types::PluginError) -> $crate::PluginError {
            use $crate::PluginError as E;
            match e {
                wit_types::PluginError::InvalidInput(m) => E::InvalidInput(m),
                wit_types::PluginError::Denied(m) => E::Denied(m),
                wit_types::PluginError::Unavailable(m) => E::Unavailable(m),
                wit_types::PluginError::Internal(m) => E::Internal(m),
            }
        }
    };
}
#[cfg(any(feature = "broker", feature = "provider"))]
pub(crate) use world_conversions;

pub use wit_bindgen;

use crate::log::Level;

// Every world imports the same `paddock:plugin/log@0.1.0`; any world's
// bindings reach it.
#[cfg(feature = "agent")]
use agent::bindings::paddock::plugin::log as wit_log;
#[cfg(all(feature = "broker", not(feature = "agent")))]
use broker::bindings::paddock::plugin::log as wit_log;
#[cfg(all(feature = "provider", not(any(feature = "agent", feature = "broker"))))]
use provider::bindings::paddock::plugin::log as wit_log;

#[cfg(any(feature = "agent", feature = "broker", feature = "provider"))]
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
#[cfg(not(any(feature = "agent", feature = "broker", feature = "provider")))]
pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level:?}] {message}");
}

// The `broker` and `provider` worlds import the same `outgoing-http` and
// `config`; either world's bindings reach them.
#[cfg(all(feature = "broker", not(feature = "provider")))]
use broker::bindings::paddock::plugin::{
    config as wit_config, outgoing_http as wit_http, types as wit_types,
};
#[cfg(feature = "provider")]
use provider::bindings::paddock::plugin::{
    config as wit_config, outgoing_http as wit_http, types as wit_types,
};

#[cfg(any(feature = "broker", feature = "provider"))]
pub(crate) fn http_send(
    req: &crate::http::Request,
) -> Result<crate::http::Response, crate::http::HttpError> {
    use crate::http::{HttpError, Response};
    let req = wit_http::Request {
        method: req.method.clone(),
        url: req.url.clone(),
        headers: req
            .headers
            .iter()
            .map(|(k, v)| wit_types::Kv {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        body: req.body.clone(),
        timeout_ms: req.timeout_ms,
    };
    match wit_http::send(&req) {
        Ok(resp) => Ok(Response {
            status: resp.status,
            headers: resp
                .headers
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            body: resp.body,
        }),
        Err(wit_http::HttpError::Denied(m)) => Err(HttpError::Denied(m)),
        Err(wit_http::HttpError::InvalidRequest(m)) => Err(HttpError::InvalidRequest(m)),
        Err(wit_http::HttpError::Timeout) => Err(HttpError::Timeout),
        Err(wit_http::HttpError::Transport(m)) => Err(HttpError::Transport(m)),
    }
}

#[cfg(any(feature = "broker", feature = "provider"))]
pub(crate) fn config_get(key: &str) -> Option<String> {
    wit_config::get(key)
}
