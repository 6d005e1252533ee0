//! The operator's configuration for this plugin (`[plugins.config.<name>]`
//! in the host's TOML): plain strings, never secrets. Imported by the
//! `broker` and `provider` worlds.
//!
//! Natively (unit tests), values come from the installed mock host
//! ([`crate::testing::broker`] or [`crate::testing::provider`]).

use std::str::FromStr;

use crate::error::PluginError;

/// The value of `key`, if the operator set it.
pub fn get(key: &str) -> Option<String> {
    #[cfg(all(target_arch = "wasm32", any(feature = "broker", feature = "provider")))]
    return crate::glue::config_get(key);
    #[cfg(all(
        target_arch = "wasm32",
        not(any(feature = "broker", feature = "provider"))
    ))]
    return {
        let _ = key;
        None
    };
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::config_get(key);
}

/// The value of `key`, trimmed.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] naming the key when it is unset or blank:
/// a plugin that cannot work without it says which key the operator must
/// set.
pub fn required(key: &str) -> Result<String, PluginError> {
    get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| PluginError::InvalidInput(format!("config key `{key}` is not set")))
}

/// The value of `key` parsed as `T`; `None` if unset or blank.
///
/// # Errors
///
/// [`PluginError::InvalidInput`] naming the key and the value when it does
/// not parse: a typo in the operator's config fails loudly rather than
/// falling back to a default.
pub fn parse<T>(key: &str) -> Result<Option<T>, PluginError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match get(key) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| PluginError::InvalidInput(format!("config key `{key}` = {v:?}: {e}"))),
    }
}

/// The value of `key` split on commas, each item trimmed, blanks dropped.
/// Empty if unset.
pub fn list(key: &str) -> Vec<String> {
    get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
