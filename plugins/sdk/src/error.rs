//! [`PluginError`]: the WIT `plugin-error`, shared by every plugin kind.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a plugin refused or failed a call. The host maps each case to its own
/// error (and HTTP status) and logs it with the plugin's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum PluginError {
    /// The input cannot be used (a missing field, an unknown option).
    InvalidInput(String),
    /// The input is well-formed but not allowed (policy, permissions).
    Denied(String),
    /// Something the plugin depends on is not there or not answering; trying
    /// again later may work.
    Unavailable(String),
    /// A bug or an unexpected state inside the plugin.
    Internal(String),
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            PluginError::Denied(m) => write!(f, "denied: {m}"),
            PluginError::Unavailable(m) => write!(f, "unavailable: {m}"),
            PluginError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for PluginError {}
