//! Where a run goes: the host's own provider ("cluster") or the owner's
//! desktop (through its link), or a typed reason why it cannot go where it
//! was asked. Dispatch only decides; it never provisions anything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::registry::LinkRegistry;
use crate::clock::unix_ms;
use crate::plugin::PluginHost;

/// The provider kind of sessions on a user's desktop.
pub const USER_DESKTOP: &str = "user-desktop";

/// Where a session prefers to run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Preference {
    /// The host's configured provider.
    #[default]
    ClusterDefault,
    /// The owner's desktop, through its link.
    UserDesktop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunsIn {
    Cluster,
    UserDesktop,
}

/// The answer of dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DispatchTarget {
    pub runs_in: RunsIn,
    /// The provider kind that will make the sandbox.
    pub provider: String,
    /// The desktop's link, when it runs there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_id: Option<String>,
}

/// What an earlier run fixed for a session: a sandbox cannot move between
/// providers, and a session's agent conversation belongs to one CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pins {
    pub provider: Option<String>,
    pub agent: Option<String>,
}

/// Why a run cannot go where it was asked. Each is an HTTP 409 with
/// [`DispatchError::code`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DispatchError {
    #[error("the owner's desktop link is offline (no heartbeat within the link TTL)")]
    LinkOffline,
    #[error("the owner's desktop lacks {capability}")]
    CapabilityMissing { capability: String },
    #[error("the session is pinned to {pinned:?}; it cannot run on {asked:?}")]
    Pinned { pinned: String, asked: String },
    #[error("no agent adapter named {0:?}")]
    UnknownAgent(String),
}

impl DispatchError {
    /// The stable code platforms match on.
    pub fn code(&self) -> &'static str {
        match self {
            DispatchError::LinkOffline => "user_desktop_link_offline",
            DispatchError::CapabilityMissing { .. } => "user_desktop_link_capability_missing",
            DispatchError::Pinned { .. } => "dispatch_pinned",
            DispatchError::UnknownAgent(_) => "unknown_agent",
        }
    }
}

/// Decides targets from the link registry and the loaded adapters.
pub struct Dispatcher {
    links: Arc<dyn LinkRegistry>,
    plugins: Arc<PluginHost>,
    /// The host's own provider kind (`local-process`, `cluster`, a plugin).
    cluster_provider: String,
}

impl Dispatcher {
    pub fn new(
        links: Arc<dyn LinkRegistry>,
        plugins: Arc<PluginHost>,
        cluster_provider: impl Into<String>,
    ) -> Self {
        Self {
            links,
            plugins,
            cluster_provider: cluster_provider.into(),
        }
    }

    pub fn links(&self) -> &Arc<dyn LinkRegistry> {
        &self.links
    }

    /// Where a run of `agent` (None: a plain command) for `owner` goes.
    pub async fn resolve(
        &self,
        owner: &str,
        agent: Option<&str>,
        preference: Preference,
        pins: &Pins,
    ) -> Result<DispatchTarget, DispatchError> {
        if let (Some(pinned), Some(asked)) = (&pins.agent, agent)
            && pinned != asked
        {
            return Err(DispatchError::Pinned {
                pinned: pinned.clone(),
                asked: asked.to_owned(),
            });
        }
        // A pinned provider wins over the preference (the session's
        // sandbox is there), except when the caller explicitly asks for the
        // desktop of a session whose sandbox is elsewhere.
        let wanted = match (pins.provider.as_deref(), preference) {
            (Some(pinned), Preference::UserDesktop) if pinned != USER_DESKTOP => {
                return Err(DispatchError::Pinned {
                    pinned: pinned.to_owned(),
                    asked: USER_DESKTOP.to_owned(),
                });
            }
            (Some(USER_DESKTOP), _) | (None, Preference::UserDesktop) => RunsIn::UserDesktop,
            (Some(_), _) | (None, Preference::ClusterDefault) => RunsIn::Cluster,
        };
        match wanted {
            RunsIn::Cluster => Ok(DispatchTarget {
                runs_in: RunsIn::Cluster,
                provider: pins
                    .provider
                    .clone()
                    .unwrap_or_else(|| self.cluster_provider.clone()),
                link_id: None,
            }),
            RunsIn::UserDesktop => {
                let link = self
                    .links
                    .for_owner(owner)
                    .await
                    .filter(|l| self.links.is_online(l, unix_ms()))
                    .ok_or(DispatchError::LinkOffline)?;
                if let Some(agent) = agent {
                    let adapter = self
                        .plugins
                        .agent(agent)
                        .map_err(|_| DispatchError::UnknownAgent(agent.to_owned()))?;
                    let binaries = &adapter.info().binaries;
                    if let Some(missing) =
                        binaries.iter().find(|b| !link.capabilities.has_binary(b))
                    {
                        return Err(DispatchError::CapabilityMissing {
                            capability: format!("agent {agent}: binary `{missing}` on its PATH"),
                        });
                    }
                }
                Ok(DispatchTarget {
                    runs_in: RunsIn::UserDesktop,
                    provider: USER_DESKTOP.to_owned(),
                    link_id: Some(link.id),
                })
            }
        }
    }
}
