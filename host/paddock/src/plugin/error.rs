//! Everything that can go wrong with a plugin, per plugin and per call.

use std::path::PathBuf;
use std::time::Duration;

/// A plugin failed to load or a call into it failed. Always names the plugin
/// (or file); never fatal to the host or to other plugins.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot load plugin {source_name}: {reason}")]
    Load { source_name: String, reason: String },

    #[error("plugin `{plugin}` trapped: {message}")]
    Trap { plugin: String, message: String },

    #[error("plugin `{plugin}` ran past its {timeout:?} deadline and was interrupted")]
    Deadline { plugin: String, timeout: Duration },

    #[error("plugin `{plugin}` exceeded its memory cap of {limit_mib} MiB")]
    MemoryCap { plugin: String, limit_mib: u32 },

    #[error("plugin `{plugin}` refused: {error}")]
    Refused {
        plugin: String,
        error: paddock_sdk::agent::PluginError,
    },

    #[error("plugin `{plugin}`: this parser failed earlier and cannot be used again")]
    Poisoned { plugin: String },

    #[error("no agent adapter named `{name}` (loaded: {})", available.join(", "))]
    UnknownAgent {
        name: String,
        available: Vec<String>,
    },

    #[error("no provider plugin named `{name}` (loaded: {})", available.join(", "))]
    UnknownProvider {
        name: String,
        available: Vec<String>,
    },

    #[error("no credential broker named `{name}` (loaded: {})", available.join(", "))]
    UnknownBroker {
        name: String,
        available: Vec<String>,
    },

    #[error("plugin instance pool: {0}")]
    Engine(String),

    #[error("plugin cache at {path}: {source}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PluginError {
    pub(crate) fn load(source_name: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        PluginError::Load {
            source_name: source_name.into(),
            reason: reason.to_string(),
        }
    }
}
