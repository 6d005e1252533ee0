//! Provider plugins as sandbox providers.
//!
//! [`PluginProvider`] runs a loaded `provider` plugin's exports for the
//! session manager; [`EngineRuntime`] is the `container-runtime` those
//! plugins launch through: the host's own engine (local-process,
//! local-docker or cluster), with each plugin seeing and touching only the
//! sandboxes it launched (a label records which plugin that was). runnerd
//! tokens of launched sandboxes stay in the host: a plugin never sees them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use paddock_runnerd::client::Client;

use super::{NetworkPolicy, ProviderError, Resources, Sandbox, SandboxProvider, SandboxSpec};
use crate::clock::unix_ms;
use crate::plugin::provider::{
    ContainerRuntime, Kv, LaunchPlan, NetworkPolicy as WitNetwork, ProvisionRequest,
    Resources as WitResources, SandboxHandle, WitPluginError,
};
use crate::plugin::{PluginError, PluginHost};
use paddock_sdk::PluginError as SdkError;

/// The label naming the plugin that launched a sandbox.
pub const LAUNCHED_BY: &str = "paddock.io/launched-by";

/// How long a sandbox a plugin handed back has to answer `health`.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

/// The host's engine, as the `container-runtime` of provider plugins.
pub struct EngineRuntime {
    engine: Arc<dyn SandboxProvider>,
    /// Sandboxes launched through this runtime, by id.
    launched: Mutex<HashMap<String, Sandbox>>,
    warned_allowlist: AtomicBool,
}

impl EngineRuntime {
    pub fn new(engine: Arc<dyn SandboxProvider>) -> Arc<Self> {
        Arc::new(Self {
            engine,
            launched: Mutex::new(HashMap::new()),
            warned_allowlist: AtomicBool::new(false),
        })
    }

    /// The engine's kind (`local-process`, ...).
    pub fn kind(&self) -> &str {
        self.engine.kind()
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sandbox>> {
        self.launched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sandbox `plugin` launched, with its token.
    fn get(&self, plugin: &str, id: &str) -> Option<Sandbox> {
        self.registry()
            .get(id)
            .filter(|s| launched_by(s) == Some(plugin))
            .cloned()
    }

    /// Re-adopts the engine's sandboxes (after a host restart) into the
    /// registry; returns those launched by `plugin`.
    async fn adopt(&self, plugin: &str) -> Result<Vec<Sandbox>, ProviderError> {
        let alive = self.engine.adopt().await?;
        let mut registry = self.registry();
        for sandbox in alive {
            if launched_by(&sandbox).is_some() {
                registry.insert(sandbox.id.clone(), sandbox);
            } else {
                tracing::info!(sandbox = %sandbox.id, engine = self.engine.kind(), "sandbox not launched by a provider plugin; left alone");
            }
        }
        Ok(registry
            .values()
            .filter(|s| launched_by(s) == Some(plugin))
            .cloned()
            .collect())
    }

    fn spec(&self, plugin: &str, plan: LaunchPlan) -> SandboxSpec {
        let mut labels: BTreeMap<String, String> = plan
            .labels
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        labels.insert(LAUNCHED_BY.to_owned(), plugin.to_owned());
        let network = match (plan.network.egress, plan.network.allow_hosts.is_empty()) {
            (false, _) => NetworkPolicy::None,
            (true, true) => NetworkPolicy::Egress,
            // No engine of this host filters egress by host name yet:
            // fail closed rather than open.
            (true, false) => {
                if !self.warned_allowlist.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        plugin,
                        engine = self.engine.kind(),
                        "egress limited to a host list cannot be enforced by this engine; such sandboxes get no network"
                    );
                }
                NetworkPolicy::None
            }
        };
        let defaults = Resources::default();
        let r = plan.resources;
        SandboxSpec {
            session_id: plan.session_id,
            owner: plan.owner,
            expires_at_ms: unix_ms().saturating_add(plan.ttl_secs.saturating_mul(1000)),
            env: plan.env.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            network,
            labels,
            resources: Resources {
                cpu_millis: r.cpu_millis.unwrap_or(defaults.cpu_millis),
                memory_mib: r.memory_mib.unwrap_or(defaults.memory_mib),
                pids: r.pids.unwrap_or(defaults.pids),
                workspace_mib: r.disk_mib.unwrap_or(defaults.workspace_mib),
            },
            image: plan.image,
            runtime_class: plan.runtime_class,
            runnerd_stall_ms: super::DEFAULT_RUNNERD_STALL_MS,
        }
    }
}

fn launched_by(sandbox: &Sandbox) -> Option<&str> {
    sandbox.labels.get(LAUNCHED_BY).map(String::as_str)
}

fn handle(sandbox: &Sandbox) -> SandboxHandle {
    SandboxHandle {
        id: sandbox.id.clone(),
        url: sandbox.endpoint.clone(),
        token: None,
        labels: sandbox
            .labels
            .iter()
            .map(|(key, value)| Kv {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        expires_at: Some(sandbox.expires_at_ms / 1000),
    }
}

fn engine_error(error: ProviderError) -> WitPluginError {
    match error {
        ProviderError::Unavailable { .. } => WitPluginError::Unavailable(error.to_string()),
        other => WitPluginError::Internal(other.to_string()),
    }
}

#[async_trait]
impl ContainerRuntime for EngineRuntime {
    async fn launch(
        &self,
        plugin: &str,
        plan: LaunchPlan,
    ) -> Result<SandboxHandle, WitPluginError> {
        let spec = self.spec(plugin, plan);
        let sandbox = self.engine.provision(&spec).await.map_err(engine_error)?;
        let handle = handle(&sandbox);
        tracing::info!(plugin, sandbox = %sandbox.id, session = %sandbox.session_id, engine = self.engine.kind(), "sandbox launched for a provider plugin");
        self.registry().insert(sandbox.id.clone(), sandbox);
        Ok(handle)
    }

    async fn destroy(&self, plugin: &str, id: &str) -> Result<(), WitPluginError> {
        let sandbox = match self.registry().get(id) {
            None => return Ok(()),
            Some(s) if launched_by(s) != Some(plugin) => {
                return Err(WitPluginError::Denied(format!(
                    "sandbox {id} was not launched by this plugin"
                )));
            }
            Some(s) => s.clone(),
        };
        self.engine.destroy(&sandbox).await.map_err(engine_error)?;
        self.registry().remove(id);
        Ok(())
    }

    async fn inspect(
        &self,
        plugin: &str,
        id: &str,
    ) -> Result<Option<SandboxHandle>, WitPluginError> {
        Ok(self.get(plugin, id).as_ref().map(handle))
    }

    async fn list(&self, plugin: &str) -> Result<Vec<SandboxHandle>, WitPluginError> {
        Ok(self
            .registry()
            .values()
            .filter(|s| launched_by(s) == Some(plugin))
            .map(handle)
            .collect())
    }
}

/// A provider plugin serving as the session manager's provider. Calls go to
/// the plugin's current version (a hot reload applies to the next call).
pub struct PluginProvider {
    name: String,
    plugins: Arc<PluginHost>,
    runtime: Arc<EngineRuntime>,
    /// Provisions run one at a time: a plugin keeps no state between
    /// calls, so two at once could both pick the same free resource (the
    /// same pool endpoint, the last slot of an owner's limit).
    provisioning: tokio::sync::Mutex<()>,
}

impl PluginProvider {
    pub fn new(name: &str, plugins: Arc<PluginHost>, runtime: Arc<EngineRuntime>) -> Self {
        Self {
            name: name.to_owned(),
            plugins,
            runtime,
            provisioning: tokio::sync::Mutex::new(()),
        }
    }

    fn failed(&self, session_id: &str, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Provision {
            session_id: session_id.to_owned(),
            message: format!("provider plugin `{}`: {error}", self.name),
        }
    }

    fn unavailable(&self, error: impl std::fmt::Display) -> ProviderError {
        ProviderError::Plugin {
            plugin: self.name.clone(),
            message: error.to_string(),
        }
    }

    /// The sandbox a handle stands for: one this plugin launched through
    /// the runtime (token from the host), or a runnerd the plugin found
    /// itself (token from the handle).
    fn sandbox(&self, handle: SandboxHandle, fallback: &SandboxSpec) -> Result<Sandbox, String> {
        let labels: BTreeMap<String, String> = handle
            .labels
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect();
        match handle.token {
            // The session manager finds a sandbox's provider by this kind.
            None => self
                .runtime
                .get(&self.name, &handle.id)
                .map(|sandbox| Sandbox {
                    provider: self.name.clone(),
                    ..sandbox
                })
                .ok_or_else(|| format!("it returned sandbox {} that it did not launch", handle.id)),
            Some(token) => Ok(Sandbox {
                id: handle.id,
                session_id: fallback.session_id.clone(),
                owner: fallback.owner.clone(),
                provider: self.name.clone(),
                endpoint: handle.url,
                token,
                created_at_ms: unix_ms(),
                expires_at_ms: handle
                    .expires_at
                    .map_or(fallback.expires_at_ms, |s| s.saturating_mul(1000)),
                labels,
            }),
        }
    }

    async fn healthy(sandbox: &Sandbox) -> Result<(), String> {
        let client = Client::new(sandbox.endpoint.clone(), sandbox.token.clone());
        match tokio::time::timeout(HEALTH_TIMEOUT, client.health()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "runnerd at {} does not answer: {e}",
                sandbox.endpoint
            )),
            Err(_) => Err(format!(
                "runnerd at {} did not answer within {HEALTH_TIMEOUT:?}",
                sandbox.endpoint
            )),
        }
    }
}

#[async_trait]
impl SandboxProvider for PluginProvider {
    fn kind(&self) -> &str {
        &self.name
    }

    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        let plugin = self
            .plugins
            .provider(&self.name)
            .map_err(|e| self.failed(&spec.session_id, e))?;
        let request = ProvisionRequest {
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            labels: kvs(&spec.labels),
            env: kvs(&spec.env),
            resources: WitResources {
                cpu_millis: Some(spec.resources.cpu_millis),
                memory_mib: Some(spec.resources.memory_mib),
                pids: Some(spec.resources.pids),
                disk_mib: Some(spec.resources.workspace_mib),
            },
            network: WitNetwork {
                egress: spec.network == NetworkPolicy::Egress,
                allow_hosts: Vec::new(),
            },
            ttl_secs: spec.expires_at_ms.saturating_sub(unix_ms()) / 1000,
        };
        let handle = {
            let _one_at_a_time = self.provisioning.lock().await;
            plugin.provision(&request).await.map_err(|e| match &e {
                PluginError::Refused {
                    error: SdkError::Denied(_) | SdkError::InvalidInput(_),
                    ..
                } => ProviderError::Refused {
                    session_id: spec.session_id.clone(),
                    message: format!("provider plugin `{}`: {e}", self.name),
                },
                _ => self.failed(&spec.session_id, e),
            })?
        };
        let id = handle.id.clone();
        let checked = match self.sandbox(handle, spec) {
            Ok(sandbox) => Self::healthy(&sandbox).await.map(|()| sandbox),
            Err(problem) => Err(problem),
        };
        match checked {
            Ok(sandbox) => Ok(sandbox),
            Err(problem) => {
                if let Err(e) = plugin.destroy(&id).await {
                    tracing::warn!(plugin = %self.name, sandbox = %id, error = %e, "cannot destroy a sandbox that failed its checks");
                }
                Err(self.failed(&spec.session_id, problem))
            }
        }
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        match self.plugins.provider(&self.name) {
            Ok(plugin) => plugin
                .destroy(&sandbox.id)
                .await
                .map_err(|e| self.unavailable(e)),
            // The plugin was removed: what it launched can still go.
            Err(e) => match self.runtime.get(&self.name, &sandbox.id) {
                Some(launched) => {
                    ContainerRuntime::destroy(&*self.runtime, &self.name, &launched.id)
                        .await
                        .map_err(|e| self.unavailable(format!("{e:?}")))
                }
                None => Err(self.unavailable(e)),
            },
        }
    }

    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        let mut sandboxes: HashMap<String, Sandbox> = self
            .runtime
            .adopt(&self.name)
            .await?
            .into_iter()
            .map(|s| {
                let s = Sandbox {
                    provider: self.name.clone(),
                    ..s
                };
                (s.id.clone(), s)
            })
            .collect();
        let plugin = self
            .plugins
            .provider(&self.name)
            .map_err(|e| self.unavailable(e))?;
        let listed = plugin.list().await.map_err(|e| self.unavailable(e))?;
        for handle in listed {
            if sandboxes.contains_key(&handle.id) {
                continue;
            }
            let labels: BTreeMap<String, String> = handle
                .labels
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
            let fallback = SandboxSpec {
                session_id: labels.get(SESSION_LABEL).cloned().unwrap_or_default(),
                owner: labels.get(OWNER_LABEL).cloned().unwrap_or_default(),
                expires_at_ms: 0,
                env: BTreeMap::new(),
                network: NetworkPolicy::default(),
                labels: BTreeMap::new(),
                resources: Resources::default(),
                image: None,
                runtime_class: None,
                runnerd_stall_ms: super::DEFAULT_RUNNERD_STALL_MS,
            };
            match self.sandbox(handle, &fallback) {
                Ok(sandbox) => {
                    sandboxes.insert(sandbox.id.clone(), sandbox);
                }
                Err(problem) => {
                    tracing::warn!(plugin = %self.name, %problem, "listed sandbox not adopted")
                }
            }
        }
        Ok(sandboxes.into_values().collect())
    }
}

/// Labels a provider plugin may set on a handle it made itself, so that a
/// restarted host knows whose sandbox it is.
pub const SESSION_LABEL: &str = "paddock.io/session";
pub const OWNER_LABEL: &str = "paddock.io/owner";

fn kvs(map: &BTreeMap<String, String>) -> Vec<Kv> {
    map.iter()
        .map(|(key, value)| Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}
