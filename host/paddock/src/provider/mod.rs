//! Sandbox providers: where a session's runnerd runs.
//!
//! A provider turns a [`SandboxSpec`] into a running runnerd the host can
//! reach over HTTP ([`Sandbox`]), destroys it, and at start finds the
//! sandboxes a previous host process left running ([`SandboxProvider::adopt`]),
//! so that a restarted host (even after SIGKILL) picks its sessions up again.
//! The local-process provider is the embedded default; the Docker and
//! Kubernetes providers implement the same trait.

pub mod cluster;
pub mod desktop;
mod detached;
pub mod docker;
pub mod local;
pub mod plugin;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cluster::{ClusterConfig, ClusterProvider};
pub use docker::{DockerConfig, DockerProvider};
pub use local::{BwrapMode, LocalProcessConfig, LocalProcessProvider, default_runnerd_path};

/// What a session asks of its sandbox.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub session_id: String,
    pub owner: String,
    /// Unix milliseconds after which the sandbox may be destroyed even if no
    /// host is around to do it (recorded for re-adoption and cleanup).
    pub expires_at_ms: u64,
    /// Seeds runnerd's env store: merged into every exec.
    pub env: BTreeMap<String, String>,
    pub network: NetworkPolicy,
    pub labels: BTreeMap<String, String>,
    /// Limits from the session's profile; each provider enforces what it
    /// can (containers and pods all of them).
    pub resources: Resources,
    /// An image other than the provider's default (provider plugins choose
    /// it); a provider that has no images refuses it.
    pub image: Option<String>,
    /// A container runtime class (`gvisor`, `kata`); a provider that cannot
    /// choose one refuses it.
    pub runtime_class: Option<String>,
    /// runnerd's `--stall-ms`: above the host's own attach stall.
    pub runnerd_stall_ms: u64,
}

/// runnerd's stall for a host on the default attach stall (2 s): one second
/// more.
pub const DEFAULT_RUNNERD_STALL_MS: u64 = 3_000;

/// The resource limits of one sandbox (`[sandbox.profiles.<name>]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    /// CPU in thousandths of a core (1000 = one core).
    pub cpu_millis: u32,
    /// Memory of the whole sandbox, in MiB.
    pub memory_mib: u32,
    /// Processes and threads alive at once.
    pub pids: u32,
    /// Size of the workspace volume, in MiB, where the provider can cap it.
    pub workspace_mib: u32,
}

impl Default for Resources {
    /// Two cores, 2 GiB, 1,024 pids, a 10 GiB workspace: enough for an
    /// agent CLI plus a build of a mid-sized project.
    fn default() -> Self {
        Self {
            cpu_millis: 2000,
            memory_mib: 2048,
            pids: 1024,
            workspace_mib: 10 * 1024,
        }
    }
}

/// Outbound network access of a sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkPolicy {
    /// No network beyond loopback, where the provider can enforce it.
    None,
    /// Full outbound access.
    #[default]
    Egress,
}

/// A live sandbox: how the host reaches its runnerd.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    /// The provider's own id for the sandbox.
    pub id: String,
    pub session_id: String,
    pub owner: String,
    /// The provider kind that made it (`local-process`, ...).
    pub provider: String,
    /// runnerd's base URL, e.g. `http://127.0.0.1:41234`.
    pub endpoint: String,
    /// runnerd's bearer token.
    pub token: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// The session's labels, as the provider recorded them (what provider
    /// plugins scope their sandboxes by).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .field("owner", &self.owner)
            .field("provider", &self.provider)
            .field("endpoint", &self.endpoint)
            .field("token", &"<redacted>")
            .field("created_at_ms", &self.created_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("labels", &self.labels)
            .finish()
    }
}

/// Why a provider could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider cannot work at all here (binary missing, engine down).
    #[error("provider {provider} is unavailable: {message}")]
    Unavailable {
        provider: &'static str,
        message: String,
    },
    /// Provisioning started but the sandbox did not come up.
    #[error("sandbox for session {session_id} did not start: {message}")]
    Provision { session_id: String, message: String },
    /// The provider's policy refused the sandbox (a limit, a class it does
    /// not offer): the caller's to change, not worth a retry.
    #[error("sandbox for session {session_id} refused: {message}")]
    Refused { session_id: String, message: String },
    /// A provider plugin failed a call other than provisioning.
    #[error("provider plugin `{plugin}`: {message}")]
    Plugin { plugin: String, message: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where sandboxes come from. Every method is safe to call concurrently.
#[async_trait::async_trait]
pub trait SandboxProvider: Send + Sync + 'static {
    /// The kind name used in config and the API (`local-process`, ...,
    /// or a provider plugin's name).
    fn kind(&self) -> &str;

    /// Starts a sandbox and returns once its runnerd answers `health`.
    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError>;

    /// Stops the sandbox and removes what it left behind. Idempotent: a
    /// sandbox that is already gone is not an error.
    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError>;

    /// The sandboxes still alive from an earlier host process; dead ones
    /// found on the way are cleaned up (and logged), not returned.
    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError>;

    /// Records a new expiry (the session's TTL was extended), so that a
    /// restarted host re-adopts the sandbox until then, not until the
    /// expiry it was made with. The default records nothing: a provider
    /// whose records cannot change says so in its docs.
    async fn extend(&self, sandbox: &Sandbox, expires_at_ms: u64) -> Result<(), ProviderError> {
        tracing::debug!(sandbox = %sandbox.id, provider = self.kind(), expires_at_ms, "this provider keeps a sandbox's original expiry");
        Ok(())
    }

    /// Why `sandbox` died behind the host's back, if the provider has seen
    /// it die (the cluster provider watches its pods); `None` while it
    /// lives, or when the provider cannot tell (the default). Cheap: no
    /// I/O. Meant for the session sweep, to end a session whose sandbox is
    /// gone without waiting for an exec to fail.
    fn lost(&self, _sandbox: &Sandbox) -> Option<String> {
        None
    }
}

/// The providers of one host: the default one (`sandbox.provider`) and the
/// others sessions may name (`user-desktop`), by kind.
#[derive(Clone)]
pub struct Providers {
    default: Arc<dyn SandboxProvider>,
    by_kind: BTreeMap<String, Arc<dyn SandboxProvider>>,
}

impl Providers {
    pub fn new(default: Arc<dyn SandboxProvider>) -> Self {
        let by_kind = BTreeMap::from([(default.kind().to_owned(), default.clone())]);
        Self { default, by_kind }
    }

    /// Adds a provider sessions may ask for by its kind.
    pub fn with(mut self, provider: Arc<dyn SandboxProvider>) -> Self {
        self.by_kind.insert(provider.kind().to_owned(), provider);
        self
    }

    pub fn default_provider(&self) -> &Arc<dyn SandboxProvider> {
        &self.default
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn SandboxProvider>> {
        self.by_kind.get(kind)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn SandboxProvider>> {
        self.by_kind.values()
    }

    pub fn kinds(&self) -> Vec<&str> {
        self.by_kind.keys().map(String::as_str).collect()
    }
}
