//! The Paddock plugin SDK.
//!
//! A Paddock plugin is a WebAssembly component built for `wasm32-wasip2`
//! against the WIT package `paddock:plugin` (the `wit/` directory of the
//! Paddock repository). This crate hides the generated bindings: an agent
//! adapter is an implementation of [`agent::AgentAdapter`] plus one
//! [`export_agent!`] call, a credential broker one of
//! [`broker::CredentialBroker`] plus one [`export_broker!`] call, a sandbox
//! provider one of [`provider::SandboxProvider`] plus one
//! [`export_provider!`] call, and the same code builds natively for tests
//! (host imports then call the mock hosts of [`testing::broker`] and
//! [`testing::provider`]).
//!
//! Features pick the world whose glue is linked: `agent` (default),
//! `broker` or `provider`. A broker depends on the SDK with
//! `default-features = false, features = ["broker"]`, so it carries no
//! agent-world bindings; likewise a provider with `["provider"]`. Brokers and
//! providers share [`http`], [`config`] and [`log`]; only brokers have
//! [`secrets`].
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//! ```
//!
//! ```sh
//! cargo build --release --target wasm32-wasip2   # → target/wasm32-wasip2/release/<name>.wasm
//! ```

// Lets generated bindings name this crate by its public path, which is what
// the export macro expands to in a plugin's crate.
extern crate self as paddock_sdk;

pub mod agent;
pub mod broker;
pub mod config;
pub mod env;
pub mod error;
pub mod http;
pub mod log;
pub mod provider;
pub mod secrets;
pub mod testing;

pub use error::PluginError;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod glue;

/// The version of the WIT package this SDK builds against.
pub const WIT_VERSION: &str = "0.1.0";

/// Exports an [`agent::AgentAdapter`] as the plugin's `agent-adapter`.
/// Call it once, at the crate root. It expands to nothing on native targets.
#[macro_export]
macro_rules! export_agent {
    ($adapter:ty) => {
        #[cfg(target_arch = "wasm32")]
        type __PaddockAgentComponent = $crate::glue::agent::Component<$adapter>;
        #[cfg(target_arch = "wasm32")]
        $crate::glue::agent::__export_agent!(__PaddockAgentComponent);
    };
}

/// Exports a [`provider::SandboxProvider`] as the plugin's
/// `sandbox-provider`. Call it once, at the crate root; the SDK must be
/// built with its `provider` feature. It expands to nothing on native
/// targets.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        type __PaddockProviderComponent = $crate::glue::provider::Component<$provider>;
        #[cfg(target_arch = "wasm32")]
        $crate::glue::provider::__export_provider!(__PaddockProviderComponent);
    };
}

/// Exports a [`broker::CredentialBroker`] as the plugin's
/// `credential-broker`. Call it once, at the crate root; the SDK must be
/// built with its `broker` feature. It expands to nothing on native targets.
#[macro_export]
macro_rules! export_broker {
    ($broker:ty) => {
        #[cfg(target_arch = "wasm32")]
        type __PaddockBrokerComponent = $crate::glue::broker::Component<$broker>;
        #[cfg(target_arch = "wasm32")]
        $crate::glue::broker::__export_broker!(__PaddockBrokerComponent);
    };
}
