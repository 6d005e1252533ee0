//! Which links exist and which are online: the truth dispatch decides by.
//!
//! Behind a trait so that several host replicas can later share one
//! registry (a database, Redis); the embedded default lives in this process.
//! A link is online while its heartbeats arrive within the TTL; one owner
//! has at most one link (a user's desktop): registering again replaces the
//! earlier registration.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::clock::unix_ms;

/// Default link TTL: 30 s, three missed heartbeats of the daemon's 10 s.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(30);

/// What a desktop can run, as its daemon probed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Agent CLIs found on the desktop's PATH.
    #[serde(default)]
    pub agents: Vec<AgentCli>,
    /// Whether sessions there can be confined with bubblewrap.
    #[serde(default)]
    pub bubblewrap: bool,
    /// A container engine the desktop has (`docker`, `podman`), if any.
    #[serde(default)]
    pub container_engine: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub arch: String,
}

/// One agent CLI binary found on a desktop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCli {
    /// The binary name (`claude`, `codex`, ...).
    pub binary: String,
    /// What `--version` printed, if it answered.
    #[serde(default)]
    pub version: Option<String>,
}

impl Capabilities {
    pub fn has_binary(&self, binary: &str) -> bool {
        self.agents.iter().any(|a| a.binary == binary)
    }
}

/// A link and its secret, inside the host.
#[derive(Clone)]
pub struct Link {
    pub id: String,
    pub owner: String,
    /// Signs host→link requests and authenticates the link's heartbeats.
    pub secret: String,
    pub capabilities: Capabilities,
    pub registered_at_ms: u64,
    pub last_seen_ms: u64,
    /// Where the host calls the link directly (`paddock link --listen`),
    /// instead of over the link's own connection.
    pub endpoint: Option<String>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// Unknown id or wrong secret: one answer for both, so a caller cannot
    /// probe which link ids exist.
    #[error("unknown link or wrong link secret")]
    Unauthorized,
    /// The OS random source failed: no secret is minted (never a fixed
    /// fallback).
    #[error("cannot mint a link secret: {0}")]
    Entropy(String),
}

/// Where links are kept.
#[async_trait]
pub trait LinkRegistry: Send + Sync + 'static {
    /// Registers a link for `owner`, replacing the owner's earlier one.
    async fn register(
        &self,
        owner: &str,
        capabilities: Capabilities,
        endpoint: Option<String>,
    ) -> Result<Link, LinkError>;
    /// Records a heartbeat (and new capabilities, if the probe changed).
    async fn heartbeat(
        &self,
        id: &str,
        secret: &str,
        capabilities: Option<Capabilities>,
    ) -> Result<Link, LinkError>;
    async fn deregister(&self, id: &str, secret: &str) -> Result<(), LinkError>;
    /// The owner's link, online or not (None if it never registered or
    /// deregistered).
    async fn for_owner(&self, owner: &str) -> Option<Link>;
    /// A link by id, online or not.
    async fn get(&self, id: &str) -> Option<Link>;
    /// Whether a link's heartbeats are within the TTL at `now_ms`.
    fn is_online(&self, link: &Link, now_ms: u64) -> bool;
}

/// The embedded, in-process registry.
pub struct MemoryRegistry {
    ttl: Duration,
    links: Mutex<HashMap<String, Link>>,
}

impl MemoryRegistry {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            links: Mutex::new(HashMap::new()),
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn authenticated(links: &HashMap<String, Link>, id: &str, secret: &str) -> bool {
        links
            .get(id)
            .is_some_and(|l| bool::from(l.secret.as_bytes().ct_eq(secret.as_bytes())))
    }
}

#[async_trait]
impl LinkRegistry for MemoryRegistry {
    async fn register(
        &self,
        owner: &str,
        capabilities: Capabilities,
        endpoint: Option<String>,
    ) -> Result<Link, LinkError> {
        let now = unix_ms();
        let link = Link {
            id: format!("lnk-{}", random_hex(12)?),
            owner: owner.to_owned(),
            secret: random_hex(32)?,
            capabilities,
            registered_at_ms: now,
            last_seen_ms: now,
            endpoint,
        };
        let mut links = self.links();
        links.retain(|_, l| l.owner != owner);
        links.insert(link.id.clone(), link.clone());
        Ok(link)
    }

    async fn heartbeat(
        &self,
        id: &str,
        secret: &str,
        capabilities: Option<Capabilities>,
    ) -> Result<Link, LinkError> {
        let mut links = self.links();
        if !Self::authenticated(&links, id, secret) {
            return Err(LinkError::Unauthorized);
        }
        let link = links.get_mut(id).ok_or(LinkError::Unauthorized)?;
        link.last_seen_ms = unix_ms();
        if let Some(capabilities) = capabilities {
            link.capabilities = capabilities;
        }
        Ok(link.clone())
    }

    async fn deregister(&self, id: &str, secret: &str) -> Result<(), LinkError> {
        let mut links = self.links();
        if !Self::authenticated(&links, id, secret) {
            return Err(LinkError::Unauthorized);
        }
        links.remove(id);
        Ok(())
    }

    async fn for_owner(&self, owner: &str) -> Option<Link> {
        self.links().values().find(|l| l.owner == owner).cloned()
    }

    async fn get(&self, id: &str) -> Option<Link> {
        self.links().get(id).cloned()
    }

    fn is_online(&self, link: &Link, now_ms: u64) -> bool {
        now_ms.saturating_sub(link.last_seen_ms) <= self.ttl.as_millis() as u64
    }
}

fn random_hex(bytes: usize) -> Result<String, LinkError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| LinkError::Entropy(e.to_string()))?;
    Ok(hex::encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heartbeats_need_the_secret_and_keep_a_link_online() {
        let registry = MemoryRegistry::new(Duration::from_secs(30));
        let link = registry
            .register("alice", Capabilities::default(), None)
            .await
            .unwrap();
        assert_eq!(
            registry.heartbeat(&link.id, "wrong", None).await.err(),
            Some(LinkError::Unauthorized)
        );
        assert_eq!(
            registry
                .heartbeat("lnk-nope", &link.secret, None)
                .await
                .err(),
            Some(LinkError::Unauthorized)
        );
        let caps = Capabilities {
            bubblewrap: true,
            ..Capabilities::default()
        };
        let beat = registry
            .heartbeat(&link.id, &link.secret, Some(caps.clone()))
            .await
            .unwrap();
        assert_eq!(beat.capabilities, caps);
        assert!(registry.is_online(&beat, beat.last_seen_ms + 30_000));
        assert!(!registry.is_online(&beat, beat.last_seen_ms + 30_001));
    }

    #[tokio::test]
    async fn registering_again_replaces_the_owners_link() {
        let registry = MemoryRegistry::new(DEFAULT_LINK_TTL);
        let first = registry
            .register("alice", Capabilities::default(), None)
            .await
            .unwrap();
        let second = registry
            .register("alice", Capabilities::default(), None)
            .await
            .unwrap();
        assert_ne!(first.id, second.id);
        assert_ne!(first.secret, second.secret);
        assert!(registry.get(&first.id).await.is_none());
        assert_eq!(registry.for_owner("alice").await.unwrap().id, second.id);
        assert!(registry.for_owner("bob").await.is_none());
        assert_eq!(
            registry.deregister(&second.id, &first.secret).await,
            Err(LinkError::Unauthorized)
        );
        registry
            .deregister(&second.id, &second.secret)
            .await
            .unwrap();
        assert!(registry.for_owner("alice").await.is_none());
    }
}
