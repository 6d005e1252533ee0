//! The state file beside a local sandbox (`state.json`) and the secrets the
//! provider mints for it.
//!
//! The state file is the truth a restarted host re-adopts from: which
//! process is the sandbox's runnerd, where it listens, which token it takes
//! (as a digest, so the file alone is no credential), and when the sandbox
//! expires.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(super) use crate::clock::unix_ms;
use crate::provider::NetworkPolicy;

/// Version of the state file's layout; a file of another version is not
/// adopted.
pub(super) const STATE_FORMAT: u32 = 1;

/// What `state.json` records about one sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SandboxState {
    pub format: u32,
    /// The host version that provisioned the sandbox.
    pub provider_version: String,
    pub id: String,
    /// runnerd's pid (in the host's pid namespace, also when confined).
    pub pid: u32,
    /// runnerd's base URL.
    pub endpoint: String,
    /// Lowercase hex SHA-256 of the token in the `token` file.
    pub token_sha256: String,
    pub session_id: String,
    pub owner: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub labels: BTreeMap<String, String>,
    pub network: NetworkPolicy,
    /// Whether runnerd runs under bubblewrap.
    pub confined: bool,
}

impl SandboxState {
    /// Reads and checks a state file.
    ///
    /// # Errors
    ///
    /// Reading fails (`NotFound` when there is none), or the content is not
    /// a state file of [`STATE_FORMAT`] (`InvalidData`).
    pub fn read(path: &Path) -> io::Result<Self> {
        let bytes = std::fs::read(path)?;
        let state: Self = serde_json::from_slice(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if state.format != STATE_FORMAT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "state format {} (this host reads {STATE_FORMAT})",
                    state.format
                ),
            ));
        }
        Ok(state)
    }

    /// Writes the state file atomically: a temp file with a random suffix
    /// in the same directory, renamed into place, so a reader never sees a
    /// torn file.
    ///
    /// Not fsynced: the file only describes live processes, and after a
    /// power loss those are gone anyway; a file lost or torn that way reads
    /// as corrupt and the directory is cleaned up.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        let dir = path
            .parent()
            .ok_or_else(|| io::Error::other("the state path has no parent"))?;
        let temp = dir.join(format!(".state.json.{}.tmp", random_hex(8)?));
        let result = write_new_private(&temp, &bytes).and_then(|()| std::fs::rename(&temp, path));
        if result.is_err()
            && let Err(err) = std::fs::remove_file(&temp)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(temp = %temp.display(), error = %err, "cannot remove a temp state file");
        }
        result
    }
}

/// Creates `path` (which must not exist) readable by the owner only, and
/// writes `contents` to it.
pub(super) fn write_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// `bytes` random bytes as lowercase hex. Used for ids, tokens and temp
/// names (never pid + time: those collided).
pub(super) fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(format!("random source: {e}")))?;
    Ok(hex::encode(buf))
}

/// A fresh runnerd token: 32 random bytes, hex.
pub(super) fn new_token() -> io::Result<String> {
    random_hex(32)
}

/// The digest recorded in the state file for `token`.
pub(super) fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` is the one whose digest was recorded, compared in
/// constant time.
pub(super) fn token_matches(token: &str, digest: &str) -> bool {
    token_digest(token)
        .as_bytes()
        .ct_eq(digest.to_ascii_lowercase().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SandboxState {
        SandboxState {
            format: STATE_FORMAT,
            provider_version: "0.1.0".into(),
            id: "sbx-0123456789abcdef".into(),
            pid: 42,
            endpoint: "http://127.0.0.1:1".into(),
            token_sha256: token_digest("t"),
            session_id: "s".into(),
            owner: "o".into(),
            created_at_ms: 1,
            expires_at_ms: 2,
            labels: BTreeMap::from([("k".into(), "v".into())]),
            network: NetworkPolicy::None,
            confined: false,
        }
    }

    #[test]
    fn state_round_trips_and_refuses_other_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let state = sample();
        state.write(&path).expect("write");
        assert_eq!(SandboxState::read(&path).expect("read"), state);
        // Rewriting replaces the file; no temp files are left behind.
        state.write(&path).expect("rewrite");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);

        let mut other = sample();
        other.format = STATE_FORMAT + 1;
        other.write(&path).expect("write");
        let err = SandboxState::read(&path).expect_err("other format");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        std::fs::write(&path, b"{not json").expect("corrupt");
        let err = SandboxState::read(&path).expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn tokens_are_random_and_checked_by_digest() {
        let a = new_token().expect("token");
        let b = new_token().expect("token");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        let digest = token_digest(&a);
        assert!(token_matches(&a, &digest));
        assert!(token_matches(&a, &digest.to_ascii_uppercase()));
        assert!(!token_matches(&b, &digest));
        assert!(!token_matches(&a, ""));
    }
}
