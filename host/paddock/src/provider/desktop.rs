//! `user-desktop`: sandboxes on the session owner's own machine, made by
//! its `paddock link` daemon (with the same local-process provider the host
//! uses) and reached through the link's control connection.
//!
//! The host keeps no runnerd token of a desktop sandbox: its runnerd client
//! talks to a loopback tunnel ([`Tunnel`]) with a token of the tunnel's, and
//! the link adds runnerd's own token on the desktop.
//!
//! Re-adoption: after a host restart the links have not reconnected yet
//! when sessions are re-adopted, so desktop sessions with a sandbox end as
//! `provider_lost` (their sandboxes end with their TTL on the desktop).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{NetworkPolicy, ProviderError, Resources, Sandbox, SandboxProvider, SandboxSpec};
use crate::clock::unix_ms;
use crate::link::connections::{Connections, LinkResponse};
use crate::link::tunnel::Tunnel;
use crate::link::{Link, LinkRegistry, USER_DESKTOP};

/// What the host asks a link to make (`POST /sandboxes` on the link).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesktopSandboxRequest {
    pub session_id: String,
    pub owner: String,
    pub expires_at_ms: u64,
    pub env: std::collections::BTreeMap<String, String>,
    pub network: NetworkPolicy,
    pub labels: std::collections::BTreeMap<String, String>,
    pub resources: Resources,
    #[serde(default = "default_stall")]
    pub runnerd_stall_ms: u64,
}

fn default_stall() -> u64 {
    super::DEFAULT_RUNNERD_STALL_MS
}

/// The link's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DesktopSandbox {
    pub id: String,
}

pub struct UserDesktopProvider {
    links: Arc<dyn LinkRegistry>,
    connections: Arc<Connections>,
    tunnel: Arc<Tunnel>,
}

impl UserDesktopProvider {
    pub fn new(
        links: Arc<dyn LinkRegistry>,
        connections: Arc<Connections>,
        tunnel: Arc<Tunnel>,
    ) -> Self {
        Self {
            links,
            connections,
            tunnel,
        }
    }

    fn failed(spec: &SandboxSpec, message: impl std::fmt::Display) -> ProviderError {
        ProviderError::Provision {
            session_id: spec.session_id.clone(),
            message: message.to_string(),
        }
    }

    /// The owner's link, if it is online and connected.
    async fn link(&self, owner: &str) -> Result<Link, String> {
        let link = self
            .links
            .for_owner(owner)
            .await
            .filter(|l| self.links.is_online(l, unix_ms()))
            .ok_or("the owner's desktop link is offline")?;
        if !self.connections.reachable(&link) {
            return Err(format!(
                "link {} is registered but its control connection is down",
                link.id
            ));
        }
        Ok(link)
    }
}

/// The body of a small response, and an error naming its status unless it
/// is a success.
async fn answer(response: LinkResponse) -> Result<Bytes, String> {
    let status = response.status;
    let mut body = Vec::new();
    let mut stream = response.body;
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    if (200..300).contains(&status) {
        Ok(body.into())
    } else {
        Err(format!(
            "the link answered {status}: {}",
            String::from_utf8_lossy(&body)
        ))
    }
}

/// `<link>:<sandbox>`: a desktop sandbox's id in the host.
fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
}

#[async_trait]
impl SandboxProvider for UserDesktopProvider {
    fn kind(&self) -> &str {
        USER_DESKTOP
    }

    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        if spec.image.is_some() || spec.runtime_class.is_some() {
            return Err(Self::failed(
                spec,
                "a desktop runs no images or runtime classes",
            ));
        }
        let link = self
            .link(&spec.owner)
            .await
            .map_err(|e| Self::failed(spec, e))?;
        let request = DesktopSandboxRequest {
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            expires_at_ms: spec.expires_at_ms,
            env: spec.env.clone(),
            network: spec.network,
            labels: spec.labels.clone(),
            resources: spec.resources,
            runnerd_stall_ms: spec.runnerd_stall_ms,
        };
        let body = serde_json::to_vec(&request).map_err(|e| Self::failed(spec, e))?;
        let response = self
            .connections
            .request(
                &link,
                "POST",
                "/sandboxes",
                vec![("content-type".into(), "application/json".into())],
                body.into(),
            )
            .await
            .map_err(|e| Self::failed(spec, e))?;
        let made: DesktopSandbox = answer(response)
            .await
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .map_err(|e| Self::failed(spec, e))?;
        let (endpoint, token) = self
            .tunnel
            .open(&link.id, &made.id)
            .map_err(|e| Self::failed(spec, format!("cannot mint a tunnel token: {e}")))?;
        tracing::info!(link = %link.id, sandbox = %made.id, session = %spec.session_id, "desktop sandbox provisioned");
        Ok(Sandbox {
            id: format!("{}:{}", link.id, made.id),
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            provider: USER_DESKTOP.to_owned(),
            endpoint,
            token,
            created_at_ms: unix_ms(),
            expires_at_ms: spec.expires_at_ms,
            labels: spec.labels.clone(),
        })
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        let unavailable = |message: String| ProviderError::Unavailable {
            provider: USER_DESKTOP,
            message,
        };
        let (link_id, id) = split_id(&sandbox.id)
            .ok_or_else(|| unavailable(format!("{:?} is not a desktop sandbox id", sandbox.id)))?;
        self.tunnel.close(link_id, id);
        let Some(link) = self.links.get(link_id).await else {
            // Deregistered: the daemon destroyed its sandboxes on the way out.
            return Ok(());
        };
        let response = self
            .connections
            .request(
                &link,
                "DELETE",
                &format!("/sandboxes/{id}"),
                Vec::new(),
                Bytes::new(),
            )
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        answer(response).await.map_err(unavailable)?;
        Ok(())
    }

    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        Ok(Vec::new())
    }
}
