//! The host's configuration: one TOML file plus `PADDOCK_*` environment
//! overrides, validated at start. Unknown keys are errors, so a typo fails
//! loudly instead of being ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plugin::{LimitsOverride, PluginGrants, PluginLimits};

/// Default data directory, relative to where the host starts.
pub const DEFAULT_DATA_DIR: &str = ".paddock";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the host keeps its state (`PADDOCK_DATA_DIR`). Default: `./.paddock`.
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub plugins: PluginsConfig,
}

/// `[plugins]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// The directory watched for `.wasm` plugins (`PADDOCK_PLUGINS_DIR`).
    /// Default: `<data_dir>/plugins`.
    pub dir: Option<PathBuf>,
    /// Limits of every plugin.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Per-plugin limits, by plugin name.
    #[serde(default)]
    pub overrides: BTreeMap<String, LimitsOverride>,
    /// Per-plugin capabilities, by plugin name. None by default.
    #[serde(default)]
    pub grants: BTreeMap<String, PluginGrants>,
    /// Per-plugin settings read through the `config` import, by plugin name.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    /// Instances alive at once across all plugins (each running parser holds
    /// one). Default: [`crate::plugin::DEFAULT_MAX_INSTANCES`].
    pub max_instances: Option<u32>,
}

impl Config {
    /// Reads `path` if given, then applies `PADDOCK_*` overrides from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        if let Some(dir) = env("PADDOCK_DATA_DIR").filter(|v| !v.is_empty()) {
            config.data_dir = Some(dir.into());
        }
        if let Some(dir) = env("PADDOCK_PLUGINS_DIR").filter(|v| !v.is_empty()) {
            config.plugins.dir = Some(dir.into());
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |key: String, limits: PluginLimits| {
            if limits.memory_mib == 0 || limits.memory_mib > 4096 {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.memory_mib"),
                    message: format!("{} is out of range 1..=4096", limits.memory_mib),
                });
            }
            if limits.call_timeout_ms == 0 {
                return Err(ConfigError::Invalid {
                    key: format!("{key}.call_timeout_ms"),
                    message: "must be at least 1".into(),
                });
            }
            Ok(())
        };
        check("plugins.limits".into(), self.plugins.limits)?;
        for (name, o) in &self.plugins.overrides {
            check(
                format!("plugins.overrides.{name}"),
                o.apply(self.plugins.limits),
            )?;
        }
        if self.plugins.max_instances == Some(0) {
            return Err(ConfigError::Invalid {
                key: "plugins.max_instances".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("plugins"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paddock.toml");
        std::fs::write(&path, text).unwrap();
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(Some(&path), |k| env.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, |_| None).unwrap();
        assert_eq!(config.data_dir(), PathBuf::from(".paddock"));
        assert_eq!(config.plugins_dir(), PathBuf::from(".paddock/plugins"));
        assert_eq!(config.plugins.limits, PluginLimits::default());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = load_str("[plugins]\nmemmory_mib = 3\n", &[]).unwrap_err();
        assert!(err.to_string().contains("memmory_mib"), "{err}");
    }

    #[test]
    fn env_overrides_the_file() {
        let config = load_str("data_dir = \"/a\"\n", &[("PADDOCK_DATA_DIR", "/b")]).unwrap();
        assert_eq!(config.data_dir(), PathBuf::from("/b"));
    }

    #[test]
    fn per_plugin_overrides_keep_unset_fields() {
        let config = load_str(
            "[plugins.limits]\nmemory_mib = 64\n[plugins.overrides.claude-code]\ncall_timeout_ms = 50\n",
            &[],
        )
        .unwrap();
        let o = config.plugins.overrides["claude-code"].apply(config.plugins.limits);
        assert_eq!(
            o,
            PluginLimits {
                memory_mib: 64,
                call_timeout_ms: 50
            }
        );
    }

    #[test]
    fn the_example_config_is_valid_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/paddock.toml");
        let config = Config::load(Some(&path), |_| None).unwrap();
        assert_eq!(config.data_dir(), PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.plugins.limits, PluginLimits::default());
    }

    #[test]
    fn out_of_range_limits_name_the_key() {
        let err = load_str("[plugins.overrides.x]\nmemory_mib = 0\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("plugins.overrides.x.memory_mib"),
            "{err}"
        );
    }
}
