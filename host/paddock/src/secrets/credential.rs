//! A grant as the platform asks for it, and a credential as the session
//! holds it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::plugin::Credential;

/// One entry of `grants` on `POST /v1/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The broker plugin (`env`, `github-app`, ...).
    pub broker: String,
    /// The secret's name within the broker (`DB_PASSWORD`).
    pub name: String,
    /// Broker-specific narrowing (a repository, a model list, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// A file a credential puts in the sandbox, under the session's secrets
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// What a broker issued for one grant, as the session keeps it. Persisted
/// with the session record (a 0600 file in the host's data dir) so that a
/// restarted host can still revoke it and keep masking it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCredential {
    pub broker: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<SecretFile>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// What the broker needs to revoke it; none for a static secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default)]
    pub revoked: bool,
}

impl std::fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names, never values.
        f.debug_struct("IssuedCredential")
            .field("broker", &self.broker)
            .field("name", &self.name)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field(
                "files",
                &self.files.iter().map(|f| &f.path).collect::<Vec<_>>(),
            )
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish()
    }
}

/// The largest env value or file a credential may carry: far above any
/// token or key, small enough that a misbehaving broker cannot bloat every
/// exec.
const MAX_VALUE_BYTES: usize = 64 << 10;

impl IssuedCredential {
    pub(super) fn from_broker(grant: &super::GrantRequest, credential: Credential) -> Self {
        Self {
            broker: grant.broker.clone(),
            name: grant.name.clone(),
            scope: grant.scope.clone(),
            env: credential
                .env
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            files: credential
                .files
                .into_iter()
                .map(|f| SecretFile {
                    path: f.path,
                    contents: f.contents,
                    mode: f.mode,
                })
                .collect(),
            expires_at: credential.expires_at,
            handle: credential.revocation_handle,
            revoked: false,
        }
    }

    /// Whether it can enter a sandbox beside the credentials issued before
    /// it: valid variable names, sizes, relative file paths, and no variable
    /// or file another one already sets.
    pub(super) fn check(&self, before: &[IssuedCredential]) -> Result<(), String> {
        if self.env.is_empty() && self.files.is_empty() {
            return Err("the broker issued neither variables nor files".into());
        }
        for (name, value) in &self.env {
            paddock_runnerd::proto::env::check_var(name, value).map_err(|e| e.to_string())?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(format!("variable {name} is over {MAX_VALUE_BYTES} bytes"));
            }
            if let Some(other) = before.iter().find(|c| c.env.contains_key(name)) {
                return Err(format!(
                    "variable {name} is already set by grant {}:{}",
                    other.broker, other.name
                ));
            }
        }
        for file in &self.files {
            if file.path.is_empty()
                || file.path.starts_with('/')
                || file.path.split('/').any(|c| c == ".." || c.is_empty())
            {
                return Err(format!(
                    "file path {:?} must be relative, without `..`",
                    file.path
                ));
            }
            if file.contents.len() > MAX_VALUE_BYTES {
                return Err(format!(
                    "file {} is over {MAX_VALUE_BYTES} bytes",
                    file.path
                ));
            }
            if before
                .iter()
                .any(|c| c.files.iter().any(|f| f.path == file.path))
            {
                return Err(format!(
                    "file {} is already set by another grant",
                    file.path
                ));
            }
        }
        Ok(())
    }

    /// The secret values to mask: every variable's value and every file's
    /// contents (and each line of a file, as a file's secret is often
    /// printed one line at a time).
    pub fn values(&self) -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = self.env.values().map(|v| v.as_bytes().to_vec()).collect();
        for file in &self.files {
            values.push(file.contents.clone());
            values.extend(
                file.contents
                    .split(|&b| b == b'\n')
                    .map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec()),
            );
        }
        values
    }
}
