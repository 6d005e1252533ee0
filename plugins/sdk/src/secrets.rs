//! Secrets the operator granted to this broker (`[plugins.grants.<name>]
//! secrets = [...]`), by name: the `secrets` import of the `broker` world.
//! The host reads the value from its environment (`PADDOCK_SECRET_<NAME>`)
//! or the operator's secrets file; the plugin never sees where.
//!
//! Natively (unit tests), values come from the mock host of
//! [`crate::testing::broker`].

use crate::error::PluginError;

/// The value of secret `name`.
///
/// # Errors
///
/// [`PluginError::Denied`] when the operator did not grant `name` to this
/// plugin (whether or not it exists), [`PluginError::Unavailable`] when it
/// is granted but not set.
pub fn get(name: &str) -> Result<String, PluginError> {
    #[cfg(all(target_arch = "wasm32", feature = "broker"))]
    return crate::glue::broker::secret_get(name);
    #[cfg(all(target_arch = "wasm32", not(feature = "broker")))]
    return Err(PluginError::Internal(format!(
        "secret `{name}`: paddock-sdk was built without its `broker` feature, whose world imports secrets"
    )));
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::secret_get(name);
}
