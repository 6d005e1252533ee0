//! What the operator lets a plugin touch. Deny by default: a plugin gets no
//! filesystem, no environment, no network and no secrets unless its entry
//! in `[plugins.grants.<name>]` names them. Agent adapters need none.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// The grants of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrants {
    /// Host environment variables the plugin may read, by exact name.
    #[serde(default)]
    pub env: Vec<String>,
    /// Host directories opened to the plugin.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Hosts the plugin's `outgoing-http` may reach (`api.github.com`,
    /// `*.example.com`). Empty: none.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Secrets a broker may read through its `secrets` import, by exact
    /// name (`secrets = ["DB_PASSWORD"]`); the value of `NAME` comes from
    /// the host's `PADDOCK_SECRET_NAME` or `[plugins] secrets_file`. Empty:
    /// none.
    #[serde(default)]
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    pub host: PathBuf,
    /// Where the plugin sees it.
    pub guest: String,
    #[serde(default)]
    pub writable: bool,
}

impl PluginGrants {
    /// The WASI context for one instance: stdio goes to the host's log, and
    /// only the granted variables and directories are there. Sockets are off
    /// whatever the grants say: network goes through `outgoing-http`, where
    /// the allowlist is enforced.
    pub fn wasi_ctx(&self, plugin: &str) -> WasiCtxBuilder {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdout(super::store::LogStream::new(plugin, "stdout"))
            .stderr(super::store::LogStream::new(plugin, "stderr"))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for name in &self.env {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        for dir in &self.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if let Err(e) = builder.preopened_dir(&dir.host, &dir.guest, perms) {
                tracing::warn!(plugin, dir = %dir.host.display(), error = %e, "granted directory cannot be opened; the plugin will not see it");
            }
        }
        builder
    }

    /// Whether the plugin may read secret `name`: listed exactly (no
    /// wildcards: each secret is granted on purpose).
    pub fn grants_secret(&self, name: &str) -> bool {
        self.secrets.iter().any(|s| s == name)
    }

    /// Whether `host` is on the allowlist: an exact name, or `*.suffix` for
    /// any subdomain of `suffix` (not `suffix` itself).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow_hosts.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
                None => host == pattern,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(hosts: &[&str]) -> PluginGrants {
        PluginGrants {
            allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..PluginGrants::default()
        }
    }

    #[test]
    fn secrets_are_denied_by_default_and_granted_by_exact_name() {
        assert!(!PluginGrants::default().grants_secret("DB_PASSWORD"));
        let g = PluginGrants {
            secrets: vec!["DB_PASSWORD".into()],
            ..PluginGrants::default()
        };
        assert!(g.grants_secret("DB_PASSWORD"));
        assert!(!g.grants_secret("db_password"));
        assert!(!g.grants_secret("DB_PASSWORD_2"));
    }

    #[test]
    fn no_grant_allows_no_host() {
        assert!(!PluginGrants::default().allows_host("api.github.com"));
    }

    #[test]
    fn exact_host_matches_only_itself() {
        let g = grants(&["api.github.com"]);
        assert!(g.allows_host("api.github.com"));
        assert!(g.allows_host("API.GitHub.com"));
        assert!(!g.allows_host("evil-api.github.com"));
        assert!(!g.allows_host("github.com"));
    }

    #[test]
    fn wildcard_matches_subdomains_not_the_apex_or_lookalikes() {
        let g = grants(&["*.example.com"]);
        assert!(g.allows_host("a.example.com"));
        assert!(g.allows_host("a.b.example.com"));
        assert!(!g.allows_host("example.com"));
        assert!(!g.allows_host("badexample.com"));
    }
}
