//! Sandbox-provider plugins: the `provider` world.
//!
//! A provider plugin decides *how* a session's sandbox is provisioned (which
//! limits, labels, network policy and runtime class; or a remote machine
//! leased over HTTP) and leaves the launching to the host: it implements
//! [`SandboxProvider`], calls [`export_provider!`](crate::export_provider)
//! once, and talks to the host through [`runtime`] (the operator's container
//! engine), [`crate::http`] (allowlisted outgoing HTTP), [`crate::config`]
//! and [`crate::log`].
//!
//! Every call gets a fresh plugin instance, so a provider keeps no state in
//! memory between calls: whatever it must remember lives in the sandboxes
//! themselves (labels, a file on the remote machine).
//!
//! ```ignore
//! use paddock_sdk::provider::*;
//!
//! struct Plain;
//! impl SandboxProvider for Plain {
//!     fn info() -> ProviderInfo { /* … */ }
//!     fn provision(req: ProvisionRequest) -> Result<SandboxHandle, PluginError> {
//!         runtime::launch(&LaunchPlan::from_request(&req))
//!     }
//!     fn destroy(id: &str) -> Result<(), PluginError> { runtime::destroy(id) }
//!     fn list() -> Result<Vec<SandboxHandle>, PluginError> { runtime::list() }
//!     fn inspect(id: &str) -> Result<Option<SandboxHandle>, PluginError> { runtime::inspect(id) }
//! }
//! paddock_sdk::export_provider!(Plain);
//! ```
//!
//! Natively (unit tests), the host imports call the mock host of
//! [`crate::testing::provider`].

pub mod runtime;
mod types;

pub use crate::error::PluginError;
pub use types::*;

/// A sandbox-provider variant. The functions are static: the host makes a
/// fresh instance for each call, so there is no `self` to keep state in.
pub trait SandboxProvider: 'static {
    /// Name (the one operators configure), version and description. Called
    /// at load, for `paddock plugin inspect` and listings; must not call the
    /// host.
    fn info() -> ProviderInfo;

    /// A sandbox for a session. The host calls it lazily, when the session
    /// first needs one, and serializes calls per provider plugin.
    fn provision(req: ProvisionRequest) -> Result<SandboxHandle, PluginError>;

    /// Ends a sandbox this provider handed out. An unknown id is not an
    /// error (the host may retry a destroy that already happened).
    ///
    /// The default suits a provider that launches through
    /// [`runtime::launch`]: the host's runtime destroys it.
    fn destroy(id: &str) -> Result<(), PluginError> {
        runtime::destroy(id)
    }

    /// Every sandbox this provider holds, for re-adoption after a host
    /// restart. Default: what it launched through the runtime.
    fn list() -> Result<Vec<SandboxHandle>, PluginError> {
        runtime::list()
    }

    /// One sandbox, if it is still alive. Default: asks the runtime.
    fn inspect(id: &str) -> Result<Option<SandboxHandle>, PluginError> {
        runtime::inspect(id)
    }
}
