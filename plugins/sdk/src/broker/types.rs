//! The broker world's records as plain Rust types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a broker says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// The name operators use (`[plugins.grants.<name>]`): letters, digits,
    /// `-` and `_`.
    pub name: String,
    pub display_name: String,
    pub version: String,
    pub description: String,
}

/// One grant of one session, already checked against the operator's
/// per-owner policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub session_id: String,
    pub owner: String,
    /// The secret's name within this broker (`DB_PASSWORD`).
    pub name: String,
    /// Broker-specific narrowing (a repository, a model list …).
    pub scope: Option<String>,
    /// How long the credential should live at most.
    pub ttl_secs: u64,
}

/// A file a credential puts in the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialFile {
    /// Relative to the sandbox's secrets directory.
    pub path: String,
    pub contents: Vec<u8>,
    /// Unix permission bits (`0o600`).
    pub mode: u32,
}

/// What a broker issued for a grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub env: BTreeMap<String, String>,
    pub files: Vec<CredentialFile>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    /// Passed back to `revoke`; `None` when the credential cannot be revoked
    /// (a static secret).
    pub revocation_handle: Option<String>,
}

impl Credential {
    /// Adds environment variable `name`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Adds a file, readable by its owner only.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push(CredentialFile {
            path: path.to_owned(),
            contents: contents.into(),
            mode: 0o600,
        });
        self
    }

    pub fn expires_at(mut self, unix_secs: u64) -> Self {
        self.expires_at = Some(unix_secs);
        self
    }

    pub fn revocation_handle(mut self, handle: impl Into<String>) -> Self {
        self.revocation_handle = Some(handle.into());
        self
    }
}
