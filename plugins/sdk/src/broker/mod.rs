//! Credential brokers: the `broker` world.
//!
//! A broker issues the secrets a session was granted (an LLM-gateway virtual
//! key, a short-lived git token, a database password) and revokes them when
//! the session ends. It implements [`CredentialBroker`], calls
//! [`export_broker!`](crate::export_broker) once, and talks to the host
//! through [`crate::secrets`] (only the secret names the operator granted
//! it), [`crate::http`] (allowlisted outgoing HTTP), [`crate::config`] and
//! [`crate::log`]. Nothing else: no filesystem, environment or sockets
//! unless the operator grants them.
//!
//! Every call gets a fresh plugin instance, so a broker keeps no state in
//! memory between calls: what `revoke` needs travels in the credential's
//! [`Credential::revocation_handle`], which the host keeps privately and
//! hands back.
//!
//! ```ignore
//! use paddock_sdk::broker::*;
//! use paddock_sdk::secrets;
//!
//! struct Static;
//! impl CredentialBroker for Static {
//!     fn info() -> BrokerInfo { /* … */ }
//!     fn issue(grant: Grant) -> Result<Credential, PluginError> {
//!         Ok(Credential::default().env(&grant.name, &secrets::get(&grant.name)?))
//!     }
//! }
//! paddock_sdk::export_broker!(Static);
//! ```
//!
//! Natively (unit tests), the host imports call the mock host of
//! [`crate::testing::broker`].

mod types;

pub use crate::error::PluginError;
pub use types::*;

/// A credential broker. The functions are static: the host makes a fresh
/// instance for each call, so there is no `self` to keep state in.
pub trait CredentialBroker: 'static {
    /// Name (the one operators grant and configure), version and
    /// description. Called at load, for `paddock plugin inspect` and
    /// listings; must not call the host.
    fn info() -> BrokerInfo;

    /// The credential for one grant of one session. The host calls it when
    /// the session is given the grant; the grant was already checked
    /// against the operator's policy.
    fn issue(grant: Grant) -> Result<Credential, PluginError>;

    /// Ends a credential this broker issued, given the handle it returned.
    /// The host calls it when the session ends (or the grant is withdrawn),
    /// and may call it again after a failure: revoking what is already gone
    /// should succeed.
    ///
    /// The default refuses: it suits a broker that never returns a handle
    /// (static secrets), which the host then never asks to revoke.
    fn revoke(handle: &str) -> Result<(), PluginError> {
        let _ = handle;
        Err(PluginError::InvalidInput(
            "this broker issues no revocable credentials".into(),
        ))
    }
}
