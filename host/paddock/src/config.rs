//! The host's configuration: one TOML file plus `PADDOCK_*` environment
//! overrides, validated at start. Unknown keys are errors, so a typo fails
//! loudly instead of being ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plugin::{LimitsOverride, PluginGrants, PluginLimits};
use crate::provider::local::{BwrapMode, UnknownBwrapMode};
use crate::provider::{ClusterConfig, DockerConfig, Resources};
pub use crate::secrets::SecretsConfig;

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
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub sessions: SessionsConfig,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub links: LinksConfig,
    /// `[gateway]`: the built-in LLM gateway (provider keys stay on the host).
    #[serde(default)]
    pub gateway: crate::gateway::GatewayConfig,
    #[serde(default)]
    pub secrets: SecretsConfig,
}

/// `[links]`: users' desktops running `paddock link`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// A link is offline this long after its last heartbeat
    /// (`PADDOCK_LINK_TTL_SECS`). Links heartbeat every third of it.
    pub ttl_secs: u64,
    /// Whether a link may register an address for the host to call
    /// (`paddock link --listen`, for LANs) instead of connecting. Off by
    /// default: the host would send requests to an address a user chose.
    pub allow_direct: bool,
}

impl Default for LinksConfig {
    fn default() -> Self {
        Self {
            ttl_secs: crate::link::DEFAULT_LINK_TTL.as_secs(),
            allow_direct: false,
        }
    }
}

/// Default listen address of the HTTP API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8420";

/// `[server]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API (`PADDOCK_LISTEN`). Default `127.0.0.1:8420`.
    pub listen: Option<String>,
}

/// `[auth]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// API tokens by owner (`PADDOCK_API_TOKENS="owner-a=token-a,owner-b=token-b"`
    /// replaces them). With none, `serve` generates one for owner `admin` and
    /// stores it in `<data_dir>/api-token`.
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// Owners who may read every owner's audit records (`GET /v1/audit`).
    /// With no tokens configured, the generated `admin` is one.
    #[serde(default)]
    pub operators: Vec<String>,
}

/// `[sessions]`: lifetimes, sweeps and resource profiles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// TTL of a session that asks for none.
    pub default_ttl_secs: u64,
    /// The longest TTL a session may ask for or be extended to.
    pub max_ttl_secs: u64,
    /// Idle timeout of a session that asks for none (0: never idle-reaped).
    pub default_idle_timeout_secs: u64,
    /// How often TTL and idle sweeps run.
    pub sweep_interval_ms: u64,
    /// How long an exec past its deadline may keep running with nobody
    /// attached before it is reaped; while a client is attached it slides.
    pub exec_attach_grace_secs: u64,
    /// Events of each exec kept for replay to reconnecting clients; older
    /// ones are reported as a `gap`. Both bounds apply.
    pub replay_max_events: usize,
    pub replay_max_bytes: usize,
    /// How long an attached client that reads nothing may hold a fast
    /// writer back before it gets a `gap` instead (milliseconds). A client
    /// that keeps up misses nothing; a hung one does not block the process
    /// for longer than this. runnerd gets a second more, so the host
    /// decides first.
    pub attach_stall_ms: u64,
    /// How long an ended session (and its execs' records) stays readable
    /// before it is forgotten.
    pub ended_retention_secs: u64,
    /// Resource profiles by name (`[sessions.profiles.<name>]`); a session
    /// names one with `profile`. `default` is used when it names none, and
    /// is two cores, 2 GiB, 1,024 pids and a 10 GiB workspace unless
    /// defined here.
    pub profiles: BTreeMap<String, Resources>,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            default_ttl_secs: 3600,
            max_ttl_secs: 24 * 3600,
            default_idle_timeout_secs: 900,
            sweep_interval_ms: 5_000,
            exec_attach_grace_secs: 60,
            replay_max_events: crate::exec::DEFAULT_RING.max_events,
            replay_max_bytes: crate::exec::DEFAULT_RING.max_bytes,
            attach_stall_ms: crate::exec::DEFAULT_RING.stall.as_millis() as u64,
            ended_retention_secs: 3600,
            profiles: BTreeMap::new(),
        }
    }
}

/// The provider kinds this host build knows.
pub const PROVIDER_KINDS: &[&str] = &["local-process", "local-docker", "cluster"];

/// `[sandbox]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The provider of new sessions (`PADDOCK_SANDBOX_PROVIDER`): a built-in
    /// kind ([`PROVIDER_KINDS`]) or the name of a loaded provider plugin
    /// (checked at start). Default `local-process`.
    pub provider: Option<String>,
    /// The built-in engine provider plugins launch sandboxes on (their
    /// `container-runtime`). Default `local-process`.
    pub runtime: Option<String>,
    /// The runnerd binary the local-process provider runs (`PADDOCK_RUNNERD`).
    /// Default: the one built with this host, else `runnerd` beside it.
    pub runnerd: Option<PathBuf>,
    /// Confinement of local-process sandboxes with bubblewrap: `auto` (when
    /// installed), `off`, or `required`. Default `auto`.
    pub bwrap: Option<String>,
    /// `[sandbox.docker]`: the local-docker provider.
    #[serde(default)]
    pub docker: DockerConfig,
    /// The cluster provider's settings (`[sandbox.cluster]`).
    #[serde(default)]
    pub cluster: ClusterConfig,
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
    /// Per-plugin capabilities, by plugin name. None by default. A broker
    /// reads only the secrets its grant names:
    /// `[plugins.grants.env] secrets = ["DB_PASSWORD"]`.
    #[serde(default)]
    pub grants: BTreeMap<String, PluginGrants>,
    /// The operator's secrets file for brokers
    /// (`secrets_file = "/etc/paddock/secrets.toml"`): a TOML table of
    /// `NAME = "value"`, read on every lookup. Secret `NAME` comes from the
    /// host's `PADDOCK_SECRET_NAME` first, then from this file. A file
    /// readable by group or others is refused (chmod 600). Default: none.
    pub secrets_file: Option<PathBuf>,
    /// Per-plugin settings read through the `config` import, by plugin name.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, String>>,
    /// Instances alive at once across all plugins (each running parser holds
    /// one). Default: [`crate::plugin::DEFAULT_MAX_INSTANCES`].
    pub max_instances: Option<u32>,
}

impl SessionsConfig {
    /// runnerd's own stall (`--stall-ms`): a second above the host's.
    pub fn runnerd_stall_ms(&self) -> u64 {
        self.attach_stall_ms.saturating_add(1000)
    }
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
        if let Some(listen) = env("PADDOCK_LISTEN").filter(|v| !v.is_empty()) {
            config.server.listen = Some(listen);
        }
        if let Some(tokens) = env("PADDOCK_API_TOKENS").filter(|v| !v.is_empty()) {
            config.auth.tokens = parse_tokens(&tokens)?;
        }
        if let Some(kind) = env("PADDOCK_SANDBOX_PROVIDER").filter(|v| !v.is_empty()) {
            config.sandbox.provider = Some(kind);
        }
        if let Some(ttl) = env("PADDOCK_LINK_TTL_SECS").filter(|v| !v.is_empty()) {
            config.links.ttl_secs = ttl.parse().map_err(|_| ConfigError::Invalid {
                key: "links.ttl_secs".into(),
                message: format!("PADDOCK_LINK_TTL_SECS={ttl:?} is not a number of seconds"),
            })?;
        }
        if let Some(path) = env("PADDOCK_RUNNERD").filter(|v| !v.is_empty()) {
            config.sandbox.runnerd = Some(path.into());
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
        self.validate_host()?;
        if self.plugins.max_instances == Some(0) {
            return Err(ConfigError::Invalid {
                key: "plugins.max_instances".into(),
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    fn validate_host(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        if let Some(listen) = &self.server.listen {
            listen.parse::<std::net::SocketAddr>().map_err(|e| {
                invalid(
                    "server.listen",
                    format!("{listen:?} is not an address like 127.0.0.1:8420: {e}"),
                )
            })?;
        }
        let kind = self.provider_kind();
        let plugin_name = !kind.is_empty()
            && kind
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !PROVIDER_KINDS.contains(&kind) && !plugin_name {
            return Err(invalid(
                "sandbox.provider",
                format!(
                    "{kind:?} is neither one of {} nor a plugin name",
                    PROVIDER_KINDS.join(", ")
                ),
            ));
        }
        let runtime = self.runtime_kind();
        if !PROVIDER_KINDS.contains(&runtime) {
            return Err(invalid(
                "sandbox.runtime",
                format!("{runtime:?} is not one of: {}", PROVIDER_KINDS.join(", ")),
            ));
        }
        self.bwrap_mode()
            .map_err(|e| invalid("sandbox.bwrap", e.to_string()))?;
        let docker = &self.sandbox.docker;
        if docker.image.is_empty() || docker.start_timeout_secs == 0 {
            return Err(invalid(
                "sandbox.docker",
                "image must be named and start_timeout_secs at least 1".into(),
            ));
        }
        self.sandbox
            .cluster
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        for (owner, token) in &self.auth.tokens {
            if owner.is_empty() || token.len() < 8 {
                return Err(invalid(
                    "auth.tokens",
                    format!(
                        "owner {owner:?}: owners must be named and tokens at least 8 characters"
                    ),
                ));
            }
        }
        let s = &self.sessions;
        if s.default_ttl_secs == 0 || s.default_ttl_secs > s.max_ttl_secs {
            return Err(invalid(
                "sessions.default_ttl_secs",
                format!(
                    "{} must be between 1 and sessions.max_ttl_secs ({})",
                    s.default_ttl_secs, s.max_ttl_secs
                ),
            ));
        }
        if s.replay_max_events == 0 || s.replay_max_bytes == 0 {
            return Err(invalid(
                "sessions.replay_max_events",
                "replay_max_events and replay_max_bytes must be at least 1".into(),
            ));
        }
        for (name, r) in &s.profiles {
            if r.cpu_millis == 0 || r.memory_mib == 0 || r.pids == 0 || r.workspace_mib == 0 {
                return Err(invalid(
                    &format!("sessions.profiles.{name}"),
                    "cpu_millis, memory_mib, pids and workspace_mib must be at least 1".into(),
                ));
            }
        }
        if self.links.ttl_secs == 0 {
            return Err(invalid("links.ttl_secs", "must be at least 1".into()));
        }
        if s.sweep_interval_ms == 0 {
            return Err(invalid(
                "sessions.sweep_interval_ms",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The bubblewrap mode of local-process sandboxes.
    pub fn bwrap_mode(&self) -> Result<BwrapMode, UnknownBwrapMode> {
        self.sandbox
            .bwrap
            .as_deref()
            .map_or(Ok(BwrapMode::Auto), str::parse)
    }

    /// The provider kind of new sessions.
    pub fn provider_kind(&self) -> &str {
        self.sandbox.provider.as_deref().unwrap_or("local-process")
    }

    /// The built-in engine that serves sessions: the provider itself when
    /// it is built in, else `sandbox.runtime` for the provider plugin.
    pub fn runtime_kind(&self) -> &str {
        let kind = self.provider_kind();
        if PROVIDER_KINDS.contains(&kind) {
            kind
        } else {
            self.sandbox.runtime.as_deref().unwrap_or("local-process")
        }
    }

    pub fn listen(&self) -> &str {
        self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
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

/// Parses `owner-a=token-a,owner-b=token-b`.
fn parse_tokens(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.trim()
                .split_once('=')
                .map(|(owner, token)| (owner.trim().to_owned(), token.trim().to_owned()))
                .ok_or_else(|| ConfigError::Invalid {
                    key: "PADDOCK_API_TOKENS".into(),
                    message: "expected owner=token pairs separated by commas".into(),
                })
        })
        .collect()
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
    fn api_tokens_come_from_the_environment() {
        let config = load_str(
            "[auth.tokens]\nfile = \"file-token-1\"\n",
            &[("PADDOCK_API_TOKENS", "a=token-aaaa, b=token-bbbb")],
        )
        .unwrap();
        assert_eq!(config.auth.tokens.len(), 2);
        assert_eq!(config.auth.tokens["b"], "token-bbbb");
        let err = load_str("", &[("PADDOCK_API_TOKENS", "nonsense")]).unwrap_err();
        assert!(err.to_string().contains("PADDOCK_API_TOKENS"), "{err}");
    }

    #[test]
    fn an_unknown_provider_lists_the_known_ones() {
        let err = load_str("", &[("PADDOCK_SANDBOX_PROVIDER", "a vm")]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sandbox.provider") && text.contains("local-process"),
            "{text}"
        );
        // A plugin name passes here; whether it is loaded is checked at start.
        let config = load_str("", &[("PADDOCK_SANDBOX_PROVIDER", "hardened")]).unwrap();
        assert_eq!(config.provider_kind(), "hardened");
        assert_eq!(config.runtime_kind(), "local-process");
        let err = load_str(
            "[sandbox]\nprovider = \"hardened\"\nruntime = \"vm\"\n",
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains("sandbox.runtime"), "{err}");
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
        // The example's `default` profile states the built-in default; it
        // adds a `small` one.
        let mut sessions = config.sessions.clone();
        assert_eq!(
            sessions.profiles.remove("default"),
            Some(Resources::default())
        );
        assert!(sessions.profiles.remove("small").is_some());
        assert_eq!(sessions, SessionsConfig::default());
        assert_eq!(config.listen(), DEFAULT_LISTEN);
        assert_eq!(config.provider_kind(), "local-process");
        assert_eq!(config.bwrap_mode(), Ok(BwrapMode::Auto));
    }

    #[test]
    fn the_example_config_states_the_cluster_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/paddock.toml");
        let config = Config::load(Some(&path), |_| None).unwrap();
        assert_eq!(config.sandbox.cluster, ClusterConfig::default());
        let err = load_str("[sandbox.cluster]\nrunnerd_port = 0\n", &[]).unwrap_err();
        assert!(
            err.to_string().contains("sandbox.cluster.runnerd_port"),
            "{err}"
        );
        let config = load_str("", &[("PADDOCK_SANDBOX_PROVIDER", "cluster")]).unwrap();
        assert_eq!(config.provider_kind(), "cluster");
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
