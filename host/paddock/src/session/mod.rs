//! Sessions: a platform's unit of work, with a TTL and an idle timeout, and
//! a sandbox provisioned lazily on the first operation that needs one.
//!
//! [`Sessions`] owns them all. Every change is persisted ([`store`]) so that
//! a restarted host re-adopts live sandboxes and their running execs.

pub mod events;
mod exec;
mod manager;
pub mod store;
mod sweep;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use exec::{Attachment, Exec, ExecView};
pub use manager::{CreateSession, ExecRequest, SessionError, Sessions, StdinInput};

pub(crate) use crate::clock::unix_ms;
use crate::provider::{NetworkPolicy, Sandbox};
use crate::secrets::Redactor;
use store::{Ended, SessionRecord};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `DELETE /v1/sessions/{id}`.
    Deleted,
    /// Its TTL passed.
    Ttl,
    /// Nothing ran or attached for its idle timeout.
    Idle,
    /// The sandbox disappeared (its process, container or pod died).
    ProviderLost,
}

/// One session.
pub struct Session {
    id: String,
    owner: String,
    state: Mutex<SessionState>,
    /// Serializes provisioning so two first operations make one sandbox.
    provisioning: tokio::sync::Mutex<()>,
}

struct SessionState {
    record: SessionRecord,
    sandbox: Option<Sandbox>,
    /// runnerd's client, kept with the sandbox so its connection pool is
    /// reused (a new TCP connection per call cost ~0.5 ms).
    runnerd: Option<paddock_runnerd::client::Client>,
    execs: Vec<Arc<Exec>>,
    /// Last API operation that counts as activity (exec, files, env), for a
    /// session that has no sandbox yet to keep the clock.
    last_activity_ms: u64,
}

/// `GET /v1/sessions/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub owner: String,
    /// `active` or `ended`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<EndReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    pub provider: String,
    /// Whether a sandbox has been provisioned.
    pub provisioned: bool,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub idle_timeout_secs: u64,
    pub network: NetworkPolicy,
    pub labels: BTreeMap<String, String>,
    /// Names of the env variables set at creation (values are not shown).
    pub env: Vec<String>,
    /// What the session's grants issued (names only, never values).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantView>,
    pub execs: usize,
}

/// One issued grant of a session, as `GET /v1/sessions/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GrantView {
    pub broker: String,
    pub name: String,
    /// The variables it set in the sandbox.
    pub env: Vec<String>,
    /// Its files, under `.paddock/secrets/` in the workspace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Unix seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    pub revoked: bool,
}

impl Session {
    fn new(record: SessionRecord, sandbox: Option<Sandbox>, execs: Vec<Arc<Exec>>) -> Arc<Self> {
        Arc::new(Self {
            id: record.id.clone(),
            owner: record.owner.clone(),
            state: Mutex::new(SessionState {
                last_activity_ms: record.created_at_ms,
                record,
                runnerd: sandbox.as_ref().map(runnerd_client),
                sandbox,
                execs,
            }),
            provisioning: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The provider kind the session's sandbox comes from.
    pub fn provider(&self) -> String {
        self.lock().record.provider.clone()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn is_active(&self) -> bool {
        self.lock().record.ended.is_none()
    }

    fn ended(&self) -> Option<Ended> {
        self.lock().record.ended
    }

    pub fn view(&self) -> SessionView {
        let state = self.lock();
        let r = &state.record;
        SessionView {
            id: r.id.clone(),
            owner: r.owner.clone(),
            state: if r.ended.is_some() { "ended" } else { "active" },
            end_reason: r.ended.map(|e| e.reason),
            ended_at_ms: r.ended.map(|e| e.at_ms),
            provider: r.provider.clone(),
            provisioned: state.sandbox.is_some(),
            created_at_ms: r.created_at_ms,
            expires_at_ms: r.expires_at_ms,
            idle_timeout_secs: r.idle_timeout_secs,
            network: r.network,
            labels: r.labels.clone(),
            env: r.env.keys().cloned().collect(),
            grants: r
                .credentials
                .iter()
                .map(|c| GrantView {
                    broker: c.broker.clone(),
                    name: c.name.clone(),
                    env: c.env.keys().cloned().collect(),
                    files: c.files.iter().map(|f| f.path.clone()).collect(),
                    expires_at: c.expires_at,
                    revoked: c.revoked,
                })
                .collect(),
            execs: state.execs.len(),
        }
    }

    pub fn exec(&self, id: &str) -> Option<Arc<Exec>> {
        self.lock().execs.iter().find(|e| e.id() == id).cloned()
    }

    pub fn execs(&self) -> Vec<Arc<Exec>> {
        self.lock().execs.clone()
    }

    /// The sandbox's runnerd client, if provisioned.
    fn runnerd(&self) -> Option<paddock_runnerd::client::Client> {
        self.lock().runnerd.clone()
    }

    /// Records the provisioned sandbox; returns whether the session ended
    /// meanwhile (then the caller destroys the sandbox).
    /// The session's sandbox, if provisioned.
    fn sandbox(&self) -> Option<Sandbox> {
        self.lock().sandbox.clone()
    }

    fn set_sandbox(&self, sandbox: Sandbox) -> Option<Ended> {
        let mut state = self.lock();
        state.record.sandbox_id = Some(sandbox.id.clone());
        state.runnerd = Some(runnerd_client(&sandbox));
        state.sandbox = Some(sandbox);
        state.record.ended
    }

    fn take_sandbox(&self) -> Option<Sandbox> {
        let mut state = self.lock();
        state.runnerd = None;
        state.sandbox.take()
    }

    fn touch(&self) {
        self.lock().last_activity_ms = unix_ms();
    }

    /// Masks the session's secrets in its exec output and events. A
    /// matcher that cannot be built (only a set of absurd size) is logged
    /// and masks nothing more than the log writer does.
    pub fn redactor(&self) -> Redactor {
        let values = self.lock().record.secret_values();
        Redactor::new(values).unwrap_or_else(|err| {
            tracing::error!(session = %self.id, error = %err, "cannot mask the session's secrets in its output");
            Redactor::default()
        })
    }

    /// The record with the execs' current state, for persisting.
    fn snapshot(&self) -> SessionRecord {
        let state = self.lock();
        let mut record = state.record.clone();
        record.execs = state.execs.iter().map(|e| e.record()).collect();
        record
    }
}

fn runnerd_client(sandbox: &Sandbox) -> paddock_runnerd::client::Client {
    paddock_runnerd::client::Client::new(sandbox.endpoint.clone(), sandbox.token.clone())
}
