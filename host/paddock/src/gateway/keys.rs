//! Session-scoped virtual keys: minted per session, stored only as SHA-256
//! hashes, revoked when the session ends, with what each has used.
//!
//! The store is one JSON file in the data dir, written to a temp name and
//! renamed into place, so a restart keeps keys, budgets and usage and a
//! crash never leaves it torn. Minting and revoking write it at once (rare,
//! small, called off the request path); usage is written on the blocking
//! pool within [`PERSIST_DELAY`] of a response, coalesced so a burst of
//! responses costs one write. `Gateway::flush` writes at once (shutdown).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::Price;
use super::errors::GatewayError;
use super::limits::KeyLimits;
use super::usage::{GatewayUsage, TokenUsage, UsageCounts};

/// How long recorded usage may wait before it is written. Budgets are
/// checked in memory, so this only bounds what a host crash forgets; it
/// turns a burst of responses into one write (and one fsync).
pub const PERSIST_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// The prefix of every virtual key, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "pdk-gw-";

/// A session's virtual key, as handed to its execs (in their env, never
/// argv). `Debug` leaves the key out.
#[derive(Clone, PartialEq)]
pub struct VirtualKey {
    /// The secret: `pdk-gw-` and 43 base64url characters (256 random bits).
    pub key: String,
    pub session_id: String,
    pub limits: KeyLimits,
}

impl std::fmt::Debug for VirtualKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualKey")
            .field("key", &"<redacted>")
            .field("session_id", &self.session_id)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The session a presented key belongs to, as checked for one request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub session_id: String,
    pub limits: KeyLimits,
    pub used: UsageCounts,
}

/// One session's key as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    session_id: String,
    owner: String,
    /// Hex SHA-256 of each key minted for the session. More than one only
    /// when the host restarted (it cannot return a key it never stored) and
    /// minted another; all stay valid until the session is revoked.
    hashes: Vec<String>,
    limits: KeyLimits,
    usage: GatewayUsage,
    revoked: bool,
    created_at_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    keys: Vec<Record>,
}

struct Entry {
    record: Record,
    /// The key minted by this process, returned by a repeated mint.
    live_key: Option<String>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Entry>,
    /// Hash of a live key → its session.
    by_hash: HashMap<[u8; 32], String>,
}

pub(crate) struct KeyStore {
    path: PathBuf,
    state: Mutex<State>,
    /// Held while a snapshot is taken and written, so writes land in order.
    writer: Mutex<()>,
    flush_pending: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyStore {
    /// Opens (or starts) the store at `path`.
    pub fn open(path: PathBuf) -> Result<Self, GatewayError> {
        let file: StoreFile = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| GatewayError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StoreFile::default(),
            Err(source) => return Err(GatewayError::Store { path, source }),
        };
        let mut state = State::default();
        for record in file.keys {
            if !record.revoked {
                for hex_hash in &record.hashes {
                    if let Some(h) = hex::decode(hex_hash)
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    {
                        state.by_hash.insert(h, record.session_id.clone());
                    }
                }
            }
            state.sessions.insert(
                record.session_id.clone(),
                Entry {
                    record,
                    live_key: None,
                },
            );
        }
        Ok(Self {
            path,
            state: Mutex::new(state),
            writer: Mutex::new(()),
            flush_pending: AtomicBool::new(false),
        })
    }

    /// The session's live key, or a new one.
    pub fn mint(
        &self,
        session_id: &str,
        owner: &str,
        limits: KeyLimits,
    ) -> Result<VirtualKey, GatewayError> {
        let mut state = lock(&self.state);
        if let Some(entry) = state.sessions.get(session_id) {
            if entry.record.revoked {
                return Err(GatewayError::Revoked(session_id.to_owned()));
            }
            if let Some(key) = &entry.live_key {
                return Ok(VirtualKey {
                    key: key.clone(),
                    session_id: session_id.to_owned(),
                    limits: entry.record.limits.clone(),
                });
            }
        }
        // New, or known from before a restart: one more key, same usage.
        let key = new_key()?;
        let h = hash(&key);
        let entry = state
            .sessions
            .entry(session_id.to_owned())
            .or_insert_with(|| Entry {
                record: Record {
                    session_id: session_id.to_owned(),
                    owner: owner.to_owned(),
                    hashes: Vec::new(),
                    limits,
                    usage: GatewayUsage::default(),
                    revoked: false,
                    created_at_ms: crate::clock::unix_ms(),
                },
                live_key: None,
            });
        entry.record.hashes.push(hex::encode(h));
        entry.live_key = Some(key.clone());
        let limits = entry.record.limits.clone();
        state.by_hash.insert(h, session_id.to_owned());
        drop(state);
        self.persist()?;
        tracing::info!(session = session_id, "gateway key minted");
        Ok(VirtualKey {
            key,
            session_id: session_id.to_owned(),
            limits,
        })
    }

    /// Revokes every key of the session; unknown sessions are fine.
    pub fn revoke(&self, session_id: &str) -> Result<(), GatewayError> {
        {
            let mut state = lock(&self.state);
            let State { sessions, by_hash } = &mut *state;
            let Some(entry) = sessions.get_mut(session_id) else {
                return Ok(());
            };
            if entry.record.revoked {
                return Ok(());
            }
            entry.record.revoked = true;
            entry.live_key = None;
            by_hash.retain(|_, session| session != session_id);
        }
        tracing::info!(session = session_id, "gateway key revoked");
        self.persist()
    }

    /// The session of `key`, if it is live and unexpired. The map is keyed
    /// by the key's hash, so a lookup's timing says nothing about the key
    /// itself; the matched hash is then compared in constant time.
    pub fn authenticate(&self, key: &str, now_ms: u64) -> Option<Caller> {
        let presented = hash(key);
        let state = lock(&self.state);
        let (stored, session_id) = state.by_hash.get_key_value(&presented)?;
        if !bool::from(stored.ct_eq(&presented)) {
            return None;
        }
        let entry = state.sessions.get(session_id)?;
        if entry.record.revoked || entry.record.limits.expired(now_ms) {
            return None;
        }
        Some(Caller {
            session_id: session_id.clone(),
            limits: entry.record.limits.clone(),
            used: entry.record.usage.total.clone(),
        })
    }

    pub fn usage(&self, session_id: &str) -> Option<GatewayUsage> {
        let state = lock(&self.state);
        state
            .sessions
            .get(session_id)
            .map(|e| e.record.usage.clone())
    }

    /// Adds one response's usage and schedules a write.
    pub fn record(
        self: &Arc<Self>,
        session_id: &str,
        model: &str,
        usage: &TokenUsage,
        price: Option<&Price>,
    ) {
        {
            let mut state = lock(&self.state);
            let Some(entry) = state.sessions.get_mut(session_id) else {
                return;
            };
            entry.record.usage.add(model, usage, price);
        }
        self.persist_soon();
    }

    /// Writes [`PERSIST_DELAY`] from now on the blocking pool, unless a
    /// write is already scheduled (which will then include this change).
    fn persist_soon(self: &Arc<Self>) {
        if self.flush_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let store = self.clone();
        let write = move || {
            store.flush_pending.store(false, Ordering::Release);
            if let Err(err) = store.persist() {
                tracing::warn!(error = %err, "cannot store gateway usage");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                tokio::time::sleep(PERSIST_DELAY).await;
                if let Err(err) = tokio::task::spawn_blocking(write).await {
                    tracing::warn!(error = %err, "gateway usage write failed");
                }
            })),
            Err(_) => write(),
        }
    }

    /// Writes the whole store now.
    pub fn persist(&self) -> Result<(), GatewayError> {
        let _writer = lock(&self.writer);
        let bytes = {
            let state = lock(&self.state);
            let mut keys: Vec<&Record> = state.sessions.values().map(|e| &e.record).collect();
            keys.sort_by(|a, b| a.session_id.cmp(&b.session_id));
            serde_json::to_vec_pretty(&serde_json::json!({ "keys": keys }))
                .map_err(|e| self.io_error(std::io::Error::other(e)))?
        };
        write_atomic(&self.path, &bytes).map_err(|e| self.io_error(e))
    }

    fn io_error(&self, source: std::io::Error) -> GatewayError {
        GatewayError::Store {
            path: self.path.clone(),
            source,
        }
    }
}

/// A fresh key: the prefix and 32 random bytes in base64url.
fn new_key() -> Result<String, GatewayError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| GatewayError::Random(e.to_string()))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// Writes `bytes` to a private temp file beside `path` and renames it over.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> KeyStore {
        KeyStore::open(dir.join("keys.json")).unwrap()
    }

    #[test]
    fn keys_are_random_prefixed_and_only_hashed_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let keys = store(dir.path());
        let a = keys.mint("s1", "alice", KeyLimits::default()).unwrap();
        let b = keys.mint("s2", "alice", KeyLimits::default()).unwrap();
        assert_ne!(a.key, b.key);
        assert!(a.key.starts_with(KEY_PREFIX));
        assert_eq!(a.key.len(), KEY_PREFIX.len() + 43);
        assert!(!format!("{a:?}").contains(&a.key));
        let disk = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!disk.contains(&a.key[KEY_PREFIX.len()..]));
        assert!(disk.contains(&hex::encode(hash(&a.key))));
    }

    #[test]
    fn minting_twice_returns_the_live_key_and_revoking_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let keys = store(dir.path());
        let a = keys.mint("s1", "alice", KeyLimits::default()).unwrap();
        assert_eq!(keys.mint("s1", "alice", KeyLimits::default()).unwrap(), a);
        assert_eq!(
            keys.authenticate(&a.key, 0).map(|c| c.session_id),
            Some("s1".to_owned())
        );
        assert!(keys.authenticate("pdk-gw-nope", 0).is_none());
        keys.revoke("s1").unwrap();
        keys.revoke("s1").unwrap();
        keys.revoke("never-minted").unwrap();
        assert!(keys.authenticate(&a.key, 0).is_none());
        assert!(matches!(
            keys.mint("s1", "alice", KeyLimits::default()),
            Err(GatewayError::Revoked(_))
        ));
    }

    #[test]
    fn expired_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = store(dir.path());
        let limits = KeyLimits {
            expires_at_ms: 1_000,
            ..KeyLimits::default()
        };
        let a = keys.mint("s1", "alice", limits).unwrap();
        assert!(keys.authenticate(&a.key, 999).is_some());
        assert!(keys.authenticate(&a.key, 1_000).is_none());
    }

    #[test]
    fn a_restart_keeps_keys_and_a_new_mint_adds_one() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Arc::new(store(dir.path()));
        let a = keys.mint("s1", "alice", KeyLimits::default()).unwrap();
        let usage = TokenUsage {
            input: 5,
            ..TokenUsage::default()
        };
        keys.record("s1", "m", &usage, None);
        keys.persist().unwrap();
        drop(keys);
        let keys = store(dir.path());
        assert_eq!(keys.usage("s1").unwrap().total.input_tokens, 5);
        assert!(keys.authenticate(&a.key, 0).is_some());
        let b = keys.mint("s1", "alice", KeyLimits::default()).unwrap();
        assert_ne!(a.key, b.key);
        assert!(keys.authenticate(&a.key, 0).is_some());
        assert!(keys.authenticate(&b.key, 0).is_some());
    }
}
