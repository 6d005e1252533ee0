//! The cluster provider: one Kubernetes Pod per sandbox, with runnerd as
//! its PID 1, reached by the host over the pod IP (never `kubectl exec`).
//!
//! Each sandbox is three objects of one name, the sandbox id (built in
//! `manifest.rs`): the Pod, a Secret with runnerd's token and env seed
//! (mounted as files: reading pods does not reveal the token), and with
//! `network: none` a NetworkPolicy denying all egress. The Secret and the
//! policy are owned by the Pod, so the cluster deletes them with it.
//!
//! The Pod's labels and annotations are the truth a restarted host
//! re-adopts from (`adopt.rs`); a watch on the provider's pods (`watch.rs`)
//! tells the host when a sandbox it holds dies ([`SandboxProvider::lost`],
//! [`ClusterProvider::subscribe_lost`]).
//!
//! # Caveats
//!
//! - One host per namespace: at start the host deletes every pod of the
//!   provider that is not running, including one another host would be
//!   provisioning right then.
//! - The NetworkPolicy is only as good as the cluster's CNI: one that does
//!   not enforce NetworkPolicy accepts and ignores it.
//! - The profile's `pids` is not set per pod: Kubernetes caps pids per
//!   node (`podPidsLimit` in the kubelet's config).
//! - The host must be able to route to pod IPs (run it in the cluster or
//!   on a node). At start, a running pod whose runnerd does not answer
//!   `health` within 5 s is deleted like a dead one: a host that cannot
//!   reach pod IPs yet loses its sandboxes.
//! - The expiry annotation is enforced by the host (the session sweep,
//!   and adoption at start), not by the cluster: `activeDeadlineSeconds`
//!   cannot be raised later, and sessions can be extended.

mod adopt;
mod client;
mod config;
pub mod manifest;
mod provision;
mod teardown;
mod watch;

use crate::provider::detached::{MakesSandboxes, provision_detached};
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use self::config::{ClusterConfig, TolerationConfig};
pub use self::watch::LostSandbox;

use self::watch::Registry;
use super::{ProviderError, Sandbox, SandboxProvider, SandboxSpec};

/// The provider's kind name.
const KIND: &str = "cluster";

/// The prefix of sandbox ids (and so of pod names) this provider makes.
const ID_PREFIX: &str = "paddock-";

/// How long each clean-up call (delete a pod, a secret, a policy) may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs each sandbox as a Pod in one namespace of a Kubernetes cluster.
///
/// Cheap to share (the state is behind an `Arc`). Dropping it stops its
/// watch.
#[derive(Debug)]
pub struct ClusterProvider {
    inner: Arc<Inner>,
    watch: JoinHandle<()>,
}

#[derive(Debug)]
struct Inner {
    config: ClusterConfig,
    namespace: String,
    pods: Api<Pod>,
    secrets: Api<Secret>,
    policies: Api<NetworkPolicy>,
    registry: Arc<Registry>,
    /// Sandboxes being provisioned right now: `adopt` leaves them alone.
    provisioning: Mutex<HashSet<String>>,
    /// Whether the "network: none is not enforced" warning was logged.
    warned_network: AtomicBool,
}

impl ClusterProvider {
    /// Connects to the cluster (see `client.rs` for where the credentials
    /// come from) and starts the watch on the provider's pods.
    ///
    /// Nothing waits for the API server here: an unreachable one shows as
    /// an error of the first `adopt` or `provision` (and as the watch's
    /// logged retries).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Unavailable`] when the config is invalid or no
    /// client config can be found.
    pub async fn new(config: ClusterConfig) -> Result<Self, ProviderError> {
        config
            .validate()
            .map_err(|(key, message)| ProviderError::Unavailable {
                provider: KIND,
                message: format!("{key}: {message}"),
            })?;
        let (client, namespace) = client::connect(&config).await?;
        Ok(Self::with_client(config, client, namespace))
    }

    /// A provider on an existing client, in `namespace` (the config's
    /// namespace and kubeconfig are not consulted, and the config is taken
    /// as valid: see [`ClusterConfig::validate`]). Starts the watch, so it
    /// must be called within a Tokio runtime.
    pub fn with_client(config: ClusterConfig, client: kube::Client, namespace: String) -> Self {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let registry = Arc::new(Registry::default());
        let watch = tokio::spawn(watch::run(pods.clone(), Arc::clone(&registry)));
        Self {
            inner: Arc::new(Inner {
                config,
                secrets: Api::namespaced(client.clone(), &namespace),
                policies: Api::namespaced(client, &namespace),
                pods,
                namespace,
                registry,
                provisioning: Mutex::new(HashSet::new()),
                warned_network: AtomicBool::new(false),
            }),
            watch,
        }
    }

    /// The namespace sandboxes are made in.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Sandboxes this provider handed out (provisioned or adopted, not
    /// destroyed) that the watch saw die: the pod failed, was evicted or
    /// was deleted by someone else. Each is sent once; a receiver that
    /// lags misses some, and [`SandboxProvider::lost`] still knows them
    /// until they are destroyed.
    ///
    /// For a host that wants to end such sessions at once rather than at
    /// its next sweep; the sweep itself only needs `lost`.
    pub fn subscribe_lost(&self) -> broadcast::Receiver<LostSandbox> {
        self.inner.registry.subscribe()
    }
}

impl Drop for ClusterProvider {
    /// The watch ends with its provider.
    fn drop(&mut self) {
        self.watch.abort();
    }
}

#[async_trait::async_trait]
impl SandboxProvider for ClusterProvider {
    fn kind(&self) -> &str {
        KIND
    }

    /// Runs in a task of its own: when the caller stops waiting, the
    /// provision still finishes and the sandbox is destroyed again rather
    /// than a pod being left behind mid-way.
    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        provision_detached(Arc::clone(&self.inner), spec).await
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        self.inner.destroy(sandbox).await
    }

    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        self.inner.adopt().await
    }

    /// Patches the pod's expiry annotation.
    async fn extend(&self, sandbox: &Sandbox, expires_at_ms: u64) -> Result<(), ProviderError> {
        self.inner.extend(sandbox, expires_at_ms).await
    }

    /// Why the watch saw the sandbox's pod die; `None` while it runs, and
    /// again once the sandbox was destroyed.
    fn lost(&self, sandbox: &Sandbox) -> Option<String> {
        self.inner.registry.lost(&sandbox.id)
    }
}

/// Whether `id` is a sandbox id this provider makes.
fn is_sandbox_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|hex| {
        hex.len() == 16
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A new sandbox id: the prefix and 64 random bits in hex.
fn new_sandbox_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{ID_PREFIX}{}", hex::encode(bytes)))
}

/// A new runnerd token: 256 random bits in hex.
fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Whether a kube error is the API server's 404.
fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

impl MakesSandboxes for Inner {
    fn make(
        &self,
        spec: &SandboxSpec,
    ) -> impl Future<Output = Result<Sandbox, ProviderError>> + Send {
        self.provision(spec)
    }

    fn unmake(&self, sandbox: &Sandbox) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.destroy(sandbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_ids() {
        let id = new_sandbox_id().unwrap();
        assert!(is_sandbox_id(&id), "{id}");
        assert!(!is_sandbox_id("paddock-XYZ"));
        assert!(!is_sandbox_id("sb-0123456789abcdef"));
    }
}
