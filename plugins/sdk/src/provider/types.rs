//! The records of `sandbox-types`, `sandbox-provider` and
//! `container-runtime` as plain Rust data.
//!
//! Labels are maps (a key appears once); environment variables keep their
//! order, as the WIT `list<kv>` does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the provider is, as `info()` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// What operators configure as `PADDOCK_SANDBOX_PROVIDER`.
    pub name: String,
    pub display_name: String,
    pub version: String,
    pub description: String,
}

/// Resource limits. `None` leaves the engine's (or the operator's) default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_millis: Option<u32>,
    pub memory_mib: Option<u32>,
    pub pids: Option<u32>,
    pub disk_mib: Option<u32>,
}

/// Network access of a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    /// No network at all unless true.
    pub egress: bool,
    /// When egress is on and this is not empty, only these hosts.
    pub allow_hosts: Vec<String>,
}

impl NetworkPolicy {
    /// No network at all.
    pub fn none() -> Self {
        Self::default()
    }
}

/// What the host needs to reach a sandbox's runnerd.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxHandle {
    /// Stable for the sandbox's life: the host stores it and passes it back
    /// to `destroy` and `inspect`.
    pub id: String,
    /// Base URL of runnerd.
    pub url: String,
    /// runnerd's token when the provider (not the host) chose it. Always
    /// `None` from [`runtime::launch`](super::runtime::launch): the host
    /// keeps the tokens of sandboxes it launched.
    pub token: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
}

/// A session's request for a sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionRequest {
    pub session_id: String,
    pub owner: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<(String, String)>,
    pub resources: Resources,
    pub network: NetworkPolicy,
    pub ttl_secs: u64,
}

/// What [`runtime::launch`](super::runtime::launch) starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchPlan {
    pub session_id: String,
    pub owner: String,
    /// `None`: the operator's default runnerd image.
    pub image: Option<String>,
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub resources: Resources,
    pub network: NetworkPolicy,
    /// e.g. `gvisor`, `kata`; only where the engine supports it.
    pub runtime_class: Option<String>,
    pub ttl_secs: u64,
}

impl LaunchPlan {
    /// The plan that launches `req` as asked: its session, owner, env,
    /// labels, resources, network and TTL, the default image and runtime
    /// class. A policy provider starts here and changes what it decides.
    pub fn from_request(req: &ProvisionRequest) -> Self {
        Self {
            session_id: req.session_id.clone(),
            owner: req.owner.clone(),
            image: None,
            env: req.env.clone(),
            labels: req.labels.clone(),
            resources: req.resources,
            network: req.network.clone(),
            runtime_class: None,
            ttl_secs: req.ttl_secs,
        }
    }
}
