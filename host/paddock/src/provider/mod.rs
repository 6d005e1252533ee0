//! Sandbox providers: where a session's runnerd runs.
//!
//! A provider turns a [`SandboxSpec`] into a running runnerd the host can
//! reach over HTTP ([`Sandbox`]), destroys it, and at start finds the
//! sandboxes a previous host process left running ([`SandboxProvider::adopt`]),
//! so that a restarted host (even after SIGKILL) picks its sessions up again.
//! The local-process provider is the embedded default; the Docker and
//! Kubernetes providers implement the same trait.

pub mod cluster;
pub mod local;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use cluster::{ClusterConfig, ClusterProvider};
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
}

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
    /// The kind name used in config and the API (`local-process`, ...).
    fn kind(&self) -> &'static str;

    /// Starts a sandbox and returns once its runnerd answers `health`.
    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError>;

    /// Stops the sandbox and removes what it left behind. Idempotent: a
    /// sandbox that is already gone is not an error.
    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError>;

    /// The sandboxes still alive from an earlier host process; dead ones
    /// found on the way are cleaned up (and logged), not returned.
    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError>;

    /// Why `sandbox` died behind the host's back, if the provider has seen
    /// it die (the cluster provider watches its pods); `None` while it
    /// lives, or when the provider cannot tell (the default). Cheap: no
    /// I/O. Meant for the session sweep, to end a session whose sandbox is
    /// gone without waiting for an exec to fail.
    fn lost(&self, _sandbox: &Sandbox) -> Option<String> {
        None
    }
}
