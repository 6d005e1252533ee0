//! What one plugin may use: memory, time per call. Defaults are named
//! constants so the docs, the config and the code cannot drift.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default memory cap per plugin instance: 128 MiB. An adapter parsing the
/// longest line it accepts (8 MiB, see `paddock_sdk::agent::lines`) peaks at
/// a few times that; brokers and providers need far less.
pub const DEFAULT_MEMORY_MIB: u32 = 128;

/// Default deadline of one call into a plugin: 5 s. A parser call handles at
/// most one chunk (64 KiB in the host) and takes microseconds; `build-exec`
/// and `info` are pure. Brokers that do network calls get their own override.
pub const DEFAULT_CALL_TIMEOUT_MS: u64 = 5_000;

/// Limits for one plugin (`[plugins.limits]` for all, `[plugins.overrides.<name>]`
/// per plugin; a field left out of an override keeps the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Linear memory cap per instance, in MiB. Growing past it traps that
    /// instance: the call fails, the host and other plugins go on.
    pub memory_mib: u32,
    /// Deadline of each call, in milliseconds. A call past it is interrupted
    /// (epoch interruption) and fails with a deadline error.
    pub call_timeout_ms: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_mib: DEFAULT_MEMORY_MIB,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT_MS,
        }
    }
}

impl PluginLimits {
    pub fn memory_bytes(&self) -> usize {
        (self.memory_mib as usize) << 20
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }
}

/// A per-plugin override: only the fields given replace the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    pub memory_mib: Option<u32>,
    pub call_timeout_ms: Option<u64>,
}

impl LimitsOverride {
    pub fn apply(&self, base: PluginLimits) -> PluginLimits {
        PluginLimits {
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            call_timeout_ms: self.call_timeout_ms.unwrap_or(base.call_timeout_ms),
        }
    }
}
