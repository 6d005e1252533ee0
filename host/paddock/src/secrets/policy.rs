//! `[secrets]`: which owner may request which broker and secret name.
//! Deny by default: with no policy, no session gets any grant.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[secrets]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Per owner (the names of `[auth] tokens`; `"*"` applies to every
    /// owner): the grants they may request, as `broker:name` (`env:DB_PASSWORD`)
    /// or `broker:*` (any name of that broker).
    ///
    /// ```toml
    /// [secrets.policy.alice]
    /// allow = ["env:DB_PASSWORD", "github-app:*"]
    /// ```
    pub policy: BTreeMap<String, OwnerPolicy>,
    /// The longest a credential is asked to live; a session's remaining TTL
    /// caps it too. Default 3600.
    pub max_credential_ttl_secs: u64,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            policy: BTreeMap::new(),
            max_credential_ttl_secs: 3600,
        }
    }
}

/// `[secrets.policy.<owner>]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerPolicy {
    #[serde(default)]
    pub allow: Vec<String>,
}

impl SecretsConfig {
    /// Whether `owner` may request secret `name` of `broker`, or why not.
    pub fn check(&self, owner: &str, broker: &str, name: &str) -> Result<(), String> {
        let allowed = [owner, "*"]
            .iter()
            .filter_map(|o| self.policy.get(*o))
            .flat_map(|p| &p.allow)
            .any(|pattern| matches(pattern, broker, name));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "owner {owner:?} may not request {broker}:{name} (see [secrets.policy] in the host's config)"
            ))
        }
    }
}

fn matches(pattern: &str, broker: &str, name: &str) -> bool {
    match pattern.split_once(':') {
        Some((b, "*")) => b == broker,
        Some((b, n)) => b == broker && n == name,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &[&str])]) -> SecretsConfig {
        SecretsConfig {
            policy: entries
                .iter()
                .map(|(owner, allow)| {
                    (
                        owner.to_string(),
                        OwnerPolicy {
                            allow: allow.iter().map(|a| a.to_string()).collect(),
                        },
                    )
                })
                .collect(),
            ..SecretsConfig::default()
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let err = SecretsConfig::default()
            .check("alice", "env", "DB_PASSWORD")
            .unwrap_err();
        assert!(err.contains("env:DB_PASSWORD"), "{err}");
    }

    #[test]
    fn exact_names_wildcards_and_everyone() {
        let c = config(&[
            ("alice", &["env:DB_PASSWORD", "github-app:*"]),
            ("*", &["env:PUBLIC_TOKEN"]),
        ]);
        assert!(c.check("alice", "env", "DB_PASSWORD").is_ok());
        assert!(c.check("alice", "env", "OTHER").is_err());
        assert!(c.check("alice", "github-app", "acme/repo").is_ok());
        assert!(c.check("bob", "env", "DB_PASSWORD").is_err());
        assert!(c.check("bob", "env", "PUBLIC_TOKEN").is_ok());
        assert!(c.check("bob", "env-2", "PUBLIC_TOKEN").is_err());
    }
}
