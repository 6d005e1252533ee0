//! Provision, destroy and adopt. Every step that fails after something was
//! created removes it again before the error is returned.

use crate::provider::detached::InFlight;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::models::{ContainerInspectResponse, NetworkCreateRequest, VolumeCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, ListVolumesOptions, LogsOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::{EnvPatch, TOKEN_ENV};
use tokio::time::Instant;

use super::container::{
    self, LABEL_INSTANCE, LABEL_MANAGED, LABEL_OWNER, LABEL_VOLUME, Plan, RUNNERD_PORT,
    STOP_TIMEOUT_SECS, cache_volume, is_sandbox_id, workspace_volume,
};
use super::engine::{conflict, not_found};
use super::{Inner, KIND};
use crate::clock::unix_ms;
use crate::provider::{NetworkPolicy, ProviderError, Sandbox, SandboxSpec};

/// How much of the container's log a provisioning error quotes.
const LOG_TAIL_LINES: &str = "20";

/// How long `adopt` waits for one sandbox's runnerd to answer.
const ADOPT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

impl Inner {
    /// Provisions a sandbox for `spec` within one start budget. Not
    /// cancellation-safe on its own: the provider runs it in a task.
    pub(super) async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        let deadline = Instant::now() + self.config.start_timeout();
        let created_at_ms = unix_ms();
        let fail = |message: String| ProviderError::Provision {
            session_id: spec.session_id.clone(),
            message,
        };
        let id = new_id().map_err(|e| fail(format!("no randomness for an id: {e}")))?;
        let token = new_token().map_err(|e| fail(format!("no randomness for a token: {e}")))?;
        let _provisioning = InFlight::enter(&self.provisioning, &id);

        // The network and volumes come out of the same budget.
        let prepared = tokio::time::timeout_at(deadline, self.prepare(spec, &id)).await;
        let (network, cache) = match prepared {
            Ok(Ok(prepared)) => prepared,
            Ok(Err(message)) => return Err(fail(self.abandon(&id, message).await)),
            Err(_) => {
                let message = format!(
                    "the engine did not make the network and volumes within {:?}",
                    self.config.start_timeout()
                );
                return Err(fail(self.abandon(&id, message).await));
            }
        };

        let plan = Plan {
            spec,
            id: &id,
            image: spec.image.as_deref().unwrap_or(&self.config.image),
            token: &token,
            created_at_ms,
            instance: &self.config.instance,
            network,
            publish_ip: self.config.publish_ip,
            cache_volume: cache.clone(),
        };
        let started = tokio::time::timeout_at(deadline, self.start(&plan)).await;
        let endpoint = match started {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(message)) => return Err(fail(self.abandon(&id, message).await)),
            Err(_) => {
                let message = format!(
                    "the container did not start within {:?}",
                    self.config.start_timeout()
                );
                return Err(fail(self.abandon(&id, message).await));
            }
        };
        let client = Client::new(endpoint.clone(), token.clone());
        if let Err(message) = wait_healthy(&client, deadline).await {
            let message = format!(
                "{message} (start timeout {:?})",
                self.config.start_timeout()
            );
            return Err(fail(self.abandon(&id, message).await));
        }
        let mut set = if cache.is_some() {
            container::cache_env()
        } else {
            Default::default()
        };
        set.extend(spec.env.clone());
        if !set.is_empty()
            && let Err(err) = client
                .patch_env(&EnvPatch {
                    set,
                    unset: Vec::new(),
                })
                .await
        {
            let message = format!("runnerd refused the env seed: {err}");
            return Err(fail(self.abandon(&id, message).await));
        }
        tracing::info!(sandbox = %id, session = %spec.session_id, %endpoint, network, "sandbox provisioned");
        Ok(Sandbox {
            id,
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            provider: KIND.to_owned(),
            endpoint,
            token,
            created_at_ms,
            expires_at_ms: spec.expires_at_ms,
            labels: spec.labels.clone(),
        })
    }

    /// Makes sure the sandbox's network exists and creates its volumes;
    /// returns the network's name and the cache volume's, if any.
    async fn prepare(
        &self,
        spec: &SandboxSpec,
        id: &str,
    ) -> Result<(&str, Option<String>), String> {
        let network = match spec.network {
            NetworkPolicy::None => {
                self.ensure_none_network().await?;
                self.config.none_network.as_str()
            }
            NetworkPolicy::Egress => self.config.egress_network.as_str(),
        };
        let cache = if self.config.cache_volumes {
            let name = cache_volume(&spec.owner);
            self.create_volume(&name, "cache", &spec.owner, None)
                .await?;
            Some(name)
        } else {
            None
        };
        self.create_volume(&workspace_volume(id), "workspace", &spec.owner, Some(id))
            .await?;
        Ok((network, cache))
    }

    /// Creates and starts the container; returns runnerd's endpoint.
    async fn start(&self, plan: &Plan<'_>) -> Result<String, String> {
        let options = CreateContainerOptions {
            name: Some(plan.id.to_owned()),
            ..Default::default()
        };
        self.docker
            .create_container(Some(options), container::create_body(plan))
            .await
            .map_err(|e| format!("creating the container from {}: {e}", plan.image))?;
        self.docker
            .start_container(plan.id, None)
            .await
            .map_err(|e| format!("starting the container: {e}"))?;
        let inspected = self
            .docker
            .inspect_container(plan.id, None)
            .await
            .map_err(|e| format!("inspecting the container: {e}"))?;
        let published = plan
            .publish_ip
            .filter(|_| plan.spec.network == NetworkPolicy::Egress);
        endpoint(&inspected, plan.network, published)
    }

    /// Removes what a failed provision made and returns `message` with the
    /// container's log tail.
    async fn abandon(&self, id: &str, message: String) -> String {
        let tail = self.log_tail(id).await;
        if let Err(err) = self.destroy(id).await {
            tracing::warn!(sandbox = %id, error = %err, "cannot remove a half-made sandbox");
        }
        if tail.is_empty() {
            message
        } else {
            format!("{message}; the container's log ends with:\n{tail}")
        }
    }

    async fn log_tail(&self, id: &str) -> String {
        let options = LogsOptions {
            stdout: true,
            stderr: true,
            tail: LOG_TAIL_LINES.to_owned(),
            ..Default::default()
        };
        let mut logs = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Ok(Some(Ok(line))) =
            tokio::time::timeout(Duration::from_secs(2), logs.next()).await
        {
            text.push_str(&line.to_string());
        }
        text
    }

    /// Stops and removes the container and its workspace volume. A
    /// sandbox already gone is not an error.
    pub(super) async fn destroy(&self, id: &str) -> Result<(), ProviderError> {
        let engine = |doing: &str, err: bollard::errors::Error| ProviderError::Io {
            context: format!("{doing} sandbox {id}"),
            source: std::io::Error::other(err),
        };
        if !is_sandbox_id(id) {
            return Err(ProviderError::Io {
                context: format!("destroying sandbox {id:?}"),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a local-docker sandbox id",
                ),
            });
        }
        // A stop first, so runnerd ends its execs with terminal frames.
        let stop = StopContainerOptions {
            t: Some(STOP_TIMEOUT_SECS),
            ..Default::default()
        };
        match self.docker.stop_container(id, Some(stop)).await {
            Ok(()) => {}
            Err(err) if not_found(&err) => {}
            // 304 (already stopped) and others: the forced removal decides.
            Err(err) => tracing::debug!(sandbox = %id, error = %err, "stop did not succeed"),
        }
        let remove = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(remove)).await {
            Ok(()) => {}
            Err(err) if not_found(&err) => {}
            Err(err) => return Err(engine("removing the container of", err)),
        }
        match self
            .docker
            .remove_volume(
                &workspace_volume(id),
                None::<bollard::query_parameters::RemoveVolumeOptions>,
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(err) if not_found(&err) => Ok(()),
            Err(err) => Err(engine("removing the workspace volume of", err)),
        }
    }

    /// The live sandboxes this provider made, by their labels; dead,
    /// expired or unreachable ones (and workspace volumes whose container
    /// is gone) are removed and logged.
    pub(super) async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        let unavailable = |err: bollard::errors::Error| ProviderError::Unavailable {
            provider: KIND,
            message: format!("listing containers at {}: {err}", self.address),
        };
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_INSTANCE}={}", self.config.instance),
            ],
        )]);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters.clone()),
                ..Default::default()
            }))
            .await
            .map_err(unavailable)?;
        let now = unix_ms();
        let mut adopted = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for summary in containers {
            let Some(id) = summary
                .names
                .iter()
                .flatten()
                .map(|n| n.trim_start_matches('/'))
                .find(|n| is_sandbox_id(n))
                .map(str::to_owned)
            else {
                continue;
            };
            let instance = summary.labels.as_ref().and_then(|l| l.get(LABEL_INSTANCE));
            if instance != Some(&self.config.instance) {
                continue;
            }
            seen.insert(id.clone());
            if self.is_provisioning(&id) {
                continue;
            }
            match self.adopt_one(&id, now).await {
                Ok(sandbox) => {
                    tracing::info!(sandbox = %id, session = %sandbox.session_id, "sandbox re-adopted");
                    adopted.push(sandbox);
                }
                // The engine did not answer about it: no reason to think it
                // dead, so it is left for the next start.
                Err(Unadoptable::Unknown(reason)) => {
                    tracing::warn!(sandbox = %id, %reason, "cannot tell whether a sandbox is alive; leaving it");
                }
                Err(Unadoptable::Dead(reason)) => {
                    tracing::info!(sandbox = %id, %reason, "removing a sandbox that cannot be adopted");
                    if let Err(err) = self.destroy(&id).await {
                        tracing::warn!(sandbox = %id, error = %err, "cannot remove a dead sandbox");
                    }
                }
            }
        }
        self.sweep_volumes(&seen, filters).await;
        Ok(adopted)
    }

    /// The sandbox of container `id` if it is running, unexpired and its
    /// runnerd answers; else why not.
    async fn adopt_one(&self, id: &str, now: u64) -> Result<Sandbox, Unadoptable> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| Unadoptable::Unknown(format!("cannot inspect: {e}")))?;
        self.adoptable(id, &inspected, now)
            .await
            .map_err(Unadoptable::Dead)
    }

    /// The sandbox of an inspected container, or why it is dead.
    async fn adoptable(
        &self,
        id: &str,
        inspected: &ContainerInspectResponse,
        now: u64,
    ) -> Result<Sandbox, String> {
        let config = inspected.config.as_ref().ok_or("no config")?;
        let recorded = config
            .labels
            .as_ref()
            .and_then(container::recorded)
            .ok_or("missing or malformed labels")?;
        if recorded.expires_at_ms <= now {
            return Err(format!("expired at {}", recorded.expires_at_ms));
        }
        let running = inspected
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        if !running {
            return Err("not running".to_owned());
        }
        let token = config
            .env
            .iter()
            .flatten()
            .find_map(|kv| kv.strip_prefix(TOKEN_ENV)?.strip_prefix('='))
            .ok_or("no runnerd token in its config")?
            .to_owned();
        let network = labels_network(config.labels.as_ref());
        let (network_name, published) = match network {
            NetworkPolicy::None => (self.config.none_network.as_str(), None),
            NetworkPolicy::Egress => (self.config.egress_network.as_str(), self.config.publish_ip),
        };
        let endpoint = endpoint(inspected, network_name, published)?;
        let client = Client::new(endpoint.clone(), token.clone());
        match tokio::time::timeout(ADOPT_HEALTH_TIMEOUT, client.health()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(format!("runnerd at {endpoint}: {err}")),
            Err(_) => return Err(format!("runnerd at {endpoint} did not answer")),
        }
        Ok(Sandbox {
            id: id.to_owned(),
            session_id: recorded.session_id,
            owner: recorded.owner,
            provider: KIND.to_owned(),
            endpoint,
            token,
            created_at_ms: recorded.created_at_ms,
            expires_at_ms: recorded.expires_at_ms,
            labels: recorded.labels,
        })
    }

    /// Removes workspace volumes whose container is gone (a host killed
    /// between making the volume and the container).
    async fn sweep_volumes(
        &self,
        containers: &std::collections::HashSet<String>,
        filters: HashMap<String, Vec<String>>,
    ) {
        let volumes = match self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(filters),
            }))
            .await
        {
            Ok(list) => list.volumes.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(error = %err, "cannot list volumes to sweep");
                return;
            }
        };
        for volume in volumes {
            // Checked here too: podman 4 ORs repeated label filters on
            // volumes, which would list other instances' volumes.
            if volume.labels.get(LABEL_VOLUME).map(String::as_str) != Some("workspace")
                || volume.labels.get(LABEL_INSTANCE) != Some(&self.config.instance)
            {
                continue;
            }
            let Some(id) = volume.name.strip_suffix("-workspace") else {
                continue;
            };
            if containers.contains(id) || self.is_provisioning(id) {
                continue;
            }
            tracing::info!(volume = %volume.name, "removing a workspace volume without a sandbox");
            if let Err(err) = self
                .docker
                .remove_volume(
                    &volume.name,
                    None::<bollard::query_parameters::RemoveVolumeOptions>,
                )
                .await
            {
                tracing::warn!(volume = %volume.name, error = %err, "cannot remove a workspace volume");
            }
        }
    }

    /// Creates the named volume unless it exists.
    async fn create_volume(
        &self,
        name: &str,
        kind: &str,
        owner: &str,
        sandbox: Option<&str>,
    ) -> Result<(), String> {
        let mut labels = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_VOLUME.to_owned(), kind.to_owned()),
            (LABEL_OWNER.to_owned(), owner.to_owned()),
        ]);
        if let Some(id) = sandbox {
            labels.insert("dev.paddock.sandbox".to_owned(), id.to_owned());
            labels.insert(LABEL_INSTANCE.to_owned(), self.config.instance.clone());
        }
        let request = VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        };
        match self.docker.create_volume(request).await {
            Ok(_) => Ok(()),
            Err(err) if conflict(&err) => Ok(()),
            // Sandboxes of one owner may create its cache volume at the
            // same moment; podman answers the one that loses the race
            // with a 500 ("volume already exists"), so look before failing.
            Err(err) => match self.docker.inspect_volume(name).await {
                Ok(_) => Ok(()),
                Err(_) => Err(format!("creating volume {name}: {err}")),
            },
        }
    }

    /// Makes sure the internal network of `none` sandboxes exists.
    async fn ensure_none_network(&self) -> Result<(), String> {
        let name = &self.config.none_network;
        self.none_network
            .get_or_try_init(|| async {
                match self.docker.inspect_network(name, None).await {
                    Ok(network) if network.internal == Some(true) => return Ok(()),
                    Ok(_) => {
                        return Err(format!(
                            "network {name} exists but is not internal: it would give \
                             `network: none` sandboxes a way out; remove it or name another \
                             in sandbox.docker.none_network"
                        ));
                    }
                    Err(err) if not_found(&err) => {}
                    Err(err) => return Err(format!("inspecting network {name}: {err}")),
                }
                let request = NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".to_owned()),
                    internal: Some(true),
                    labels: Some(HashMap::from([(
                        LABEL_MANAGED.to_owned(),
                        "true".to_owned(),
                    )])),
                    ..Default::default()
                };
                match self.docker.create_network(request).await {
                    Ok(_) => {
                        tracing::info!(network = %name, "created the internal network of network-none sandboxes");
                        Ok(())
                    }
                    // Made by a concurrent provision or host; podman may
                    // answer the loser of that race with a 500, so look.
                    Err(err) if conflict(&err) => Ok(()),
                    Err(err) => match self.docker.inspect_network(name, None).await {
                        Ok(network) if network.internal == Some(true) => Ok(()),
                        _ => Err(format!("creating internal network {name}: {err}")),
                    },
                }
            })
            .await
            .map(drop)
    }

    fn is_provisioning(&self, id: &str) -> bool {
        self.provisioning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }
}

/// Why a container was not adopted.
enum Unadoptable {
    /// Expired, stopped, unlabelled or not answering: removed.
    Dead(String),
    /// The engine could not say: left alone.
    Unknown(String),
}

/// runnerd's endpoint: the port published on `published`, else the
/// container's address on `network` (any address it has, if the engine
/// reports the network under another name, as podman does for `bridge`).
fn endpoint(
    inspected: &ContainerInspectResponse,
    network: &str,
    published: Option<IpAddr>,
) -> Result<String, String> {
    let settings = inspected
        .network_settings
        .as_ref()
        .ok_or("the engine reported no network settings")?;
    if let Some(ip) = published {
        let port = settings
            .ports
            .as_ref()
            .and_then(|ports| ports.get(&format!("{RUNNERD_PORT}/tcp")))
            .and_then(|bindings| bindings.as_ref()?.first()?.host_port.clone())
            .filter(|port| !port.is_empty())
            .ok_or("the engine published no port for runnerd")?;
        return Ok(format!(
            "http://{}",
            std::net::SocketAddr::new(
                ip,
                port.parse()
                    .map_err(|_| format!("bad published port {port:?}"))?
            )
        ));
    }
    let networks = settings.networks.as_ref();
    let address = networks
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            networks?
                .values()
                .filter_map(|e| e.ip_address.clone())
                .find(|ip| !ip.is_empty())
        })
        .ok_or_else(|| format!("the container has no address on network {network}"))?;
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("the engine reported a bad address {address:?}"))?;
    Ok(format!(
        "http://{}",
        std::net::SocketAddr::new(ip, RUNNERD_PORT)
    ))
}

fn labels_network(labels: Option<&HashMap<String, String>>) -> NetworkPolicy {
    match labels
        .and_then(|l| l.get(container::LABEL_NETWORK))
        .map(String::as_str)
    {
        Some("egress") => NetworkPolicy::Egress,
        _ => NetworkPolicy::None,
    }
}

/// Polls runnerd's health until it answers or `deadline` passes.
async fn wait_healthy(client: &Client, deadline: Instant) -> Result<(), String> {
    let mut pause = Duration::from_millis(2);
    loop {
        let error = match tokio::time::timeout_at(deadline, client.health()).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(err)) if err.status().is_some() => {
                return Err(format!("runnerd refused health: {err}"));
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no answer".to_owned(),
        };
        if Instant::now() + pause >= deadline {
            return Err(format!("runnerd did not answer health in time: {error}"));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A new sandbox id: `pdk-` and 16 random hex digits.
fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(format!("pdk-{}", hex::encode(bytes)))
}

/// A new runnerd token: 32 random bytes, hex.
fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}
