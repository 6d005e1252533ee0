//! [`Sessions`]: creating, finding, provisioning, running and ending
//! sessions, and re-adopting them after a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use paddock_runnerd::client::{Client, ClientError};
use paddock_runnerd::proto;
use paddock_sdk::agent::{InputKind, ParseContext, RunSpec, features};
use serde::Deserialize;
use utoipa::ToSchema;

use super::exec::{Exec, pump};
use super::store::{Ended, ExecRecord, SessionRecord, Store};
use super::{EndReason, Session, unix_ms};
use crate::config::SessionsConfig;
use crate::exec::RingLimits;
use crate::gateway::{self, Gateway, Wire};
use crate::link::Preference;
use crate::plugin::{PluginError, PluginHost, PluginKind};
use crate::provider::{
    NetworkPolicy, ProviderError, Providers, Resources, Sandbox, SandboxProvider, SandboxSpec,
};
use crate::secrets::{AuditAction, GrantRequest, Secrets, SecretsError, logs};

/// How long ending a session waits for its execs' terminal events before
/// destroying the sandbox anyway.
/// The profile of a session that names none.
pub const DEFAULT_PROFILE: &str = "default";

const END_DRAIN: Duration = Duration::from_secs(5);

/// The audit log's name for a session's built-in gateway key.
const GATEWAY_KEY_NAME: &str = "virtual-key";

/// Where a grant's files are written, relative to the sandbox's workspace.
pub const SECRETS_DIR: &str = ".paddock/secrets";

/// Grace runnerd gives a cancelled exec between SIGTERM and SIGKILL.
const CANCEL_GRACE_MS: u64 = 2_000;

/// Why a session operation failed. The API maps each to a status and code.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No such session for this owner (another owner's session included).
    #[error("no session {0}")]
    NotFound(String),
    #[error("no exec {0} in this session")]
    ExecNotFound(String),
    #[error("the session has ended ({0:?})")]
    Ended(EndReason),
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but the exec cannot do it.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The sandbox's runnerd answered with an error or could not be reached.
    #[error("sandbox: {0}")]
    Runnerd(#[from] ClientError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("persisting session state: {0}")]
    Persist(#[from] std::io::Error),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The built-in gateway could not mint the session's key.
    #[error("gateway: {0}")]
    Gateway(String),
}

/// `POST /v1/sessions`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Hard lifetime in seconds (default and maximum from config).
    pub ttl_secs: Option<u64>,
    /// Seconds without anything running or attached before the session is
    /// reaped; 0 disables (default from config).
    pub idle_timeout_secs: Option<u64>,
    /// Variables merged into every exec of the session.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The provider kind; default from config.
    pub provider: Option<String>,
    /// Outbound network: `egress` (default) or `none`.
    pub network: Option<NetworkPolicy>,
    /// The resource profile (`[sessions.profiles.<name>]`); default
    /// `default`.
    pub profile: Option<String>,
    /// Where the session runs: `cluster-default` (the host's provider) or
    /// `user-desktop` (the owner's linked desktop; a 409 when it is offline).
    #[serde(default)]
    pub preference: Preference,
    /// Secrets for the session's sandbox, each issued by a credential broker
    /// if the owner's policy (`[secrets.policy]`) allows it; default none.
    /// All are issued or the session is not created.
    #[serde(default)]
    pub grants: Vec<GrantRequest>,
}

/// `POST /v1/sessions/{id}/execs`: a command (`argv`) or an agent run
/// (`agent` + `run`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The program and its arguments (a command exec).
    pub argv: Option<Vec<String>>,
    /// Variables for this exec, over the session's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the workspace.
    pub cwd: Option<String>,
    /// Written to stdin at start.
    pub stdin: Option<String>,
    /// Keep stdin open for `POST .../stdin`.
    #[serde(default)]
    pub keep_stdin_open: bool,
    /// Deadline from start; it slides while a client is attached.
    pub timeout_ms: Option<u64>,
    /// The adapter of an agent run (see `GET /v1/agents`).
    pub agent: Option<String>,
    /// The agent run's spec (prompt, model, resume, ...).
    #[schema(value_type = Option<Object>)]
    pub run: Option<RunSpec>,
}

/// What `POST .../stdin` writes.
#[derive(Debug)]
pub enum StdinInput {
    Raw { data: Bytes, close: bool },
    Steer { kind: InputKind, text: String },
}

/// Every session of this host.
pub struct Sessions {
    config: SessionsConfig,
    providers: Providers,
    plugins: Arc<PluginHost>,
    secrets: Arc<Secrets>,
    /// The built-in LLM gateway, when the host runs one.
    gateway: Option<Arc<Gateway>>,
    store: Store,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    /// Loads the persisted sessions and re-adopts their sandboxes: live
    /// ones come back with their running execs re-attached; sessions whose
    /// sandbox is gone end as `provider_lost`; sandboxes nobody owns any
    /// more are destroyed.
    pub async fn open(
        config: SessionsConfig,
        providers: Providers,
        plugins: Arc<PluginHost>,
        secrets: Arc<Secrets>,
        gateway: Option<Arc<Gateway>>,
        store: Store,
    ) -> Result<Arc<Self>, SessionError> {
        let records = store.load_all()?;
        let mut adopted: HashMap<String, Sandbox> = HashMap::new();
        for provider in providers.all() {
            adopted.extend(
                provider
                    .adopt()
                    .await?
                    .into_iter()
                    .map(|s| (s.id.clone(), s)),
            );
        }
        let this = Arc::new(Self {
            config,
            providers,
            plugins,
            secrets,
            gateway,
            store,
            sessions: RwLock::new(HashMap::new()),
        });
        for record in records {
            let sandbox = record.sandbox_id.as_ref().and_then(|id| adopted.remove(id));
            let lost = record.ended.is_none() && record.sandbox_id.is_some() && sandbox.is_none();
            let execs = record
                .execs
                .iter()
                .map(|r| this.revive_exec(r.clone(), sandbox.is_some()))
                .collect();
            let session = Session::new(record, sandbox, execs);
            this.insert(session.clone());
            if session.is_active() {
                this.mask(&session)?;
            } else {
                // A host that died while ending it: finish the revocation.
                this.revoke(&session).await;
            }
            if lost {
                tracing::warn!(session = %session.id, "the sandbox is gone; session ended");
                this.end(&session, EndReason::ProviderLost).await;
            } else if session.is_active() {
                tracing::info!(session = %session.id, "session re-adopted");
                this.resume_pumps(&session);
            }
        }
        for orphan in adopted.into_values() {
            tracing::warn!(sandbox = %orphan.id, session = %orphan.session_id, "sandbox without a live session destroyed");
            if let Err(err) = this.provider_of(&orphan.provider)?.destroy(&orphan).await {
                tracing::error!(sandbox = %orphan.id, error = %err, "cannot destroy an orphaned sandbox");
            }
        }
        Ok(this)
    }

    /// Why `sandbox` died behind the host's back, if its provider saw it.
    pub(super) fn lost(&self, sandbox: &Sandbox) -> Option<String> {
        self.providers.get(&sandbox.provider)?.lost(sandbox)
    }

    /// The provider of `kind`, or why this host has none.
    fn provider_of(&self, kind: &str) -> Result<&Arc<dyn SandboxProvider>, SessionError> {
        self.providers.get(kind).ok_or_else(|| {
            SessionError::Invalid(format!(
                "provider {kind:?} is not available; this host runs: {}",
                self.providers.kinds().join(", ")
            ))
        })
    }

    /// The limits of profile `name` (`default` when none is named).
    fn profile(&self, name: Option<&str>) -> Result<Resources, SessionError> {
        let name = name.unwrap_or(DEFAULT_PROFILE);
        match self.config.profiles.get(name) {
            Some(resources) => Ok(*resources),
            None if name == DEFAULT_PROFILE => Ok(Resources::default()),
            None => {
                let mut known: Vec<&str> =
                    self.config.profiles.keys().map(String::as_str).collect();
                if !known.contains(&DEFAULT_PROFILE) {
                    known.insert(0, DEFAULT_PROFILE);
                }
                Err(SessionError::Invalid(format!(
                    "profile {name:?} is not configured; known profiles: {}",
                    known.join(", ")
                )))
            }
        }
    }

    pub fn config(&self) -> &SessionsConfig {
        &self.config
    }

    fn ring(&self) -> RingLimits {
        RingLimits {
            max_events: self.config.replay_max_events,
            max_bytes: self.config.replay_max_bytes,
            stall: Duration::from_millis(self.config.attach_stall_ms),
        }
    }

    pub fn plugins(&self) -> &Arc<PluginHost> {
        &self.plugins
    }

    fn insert(&self, session: Arc<Session>) {
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session.id.clone(), session);
    }

    fn all(&self) -> Vec<Arc<Session>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// An exec as persisted, before its pump runs again.
    fn revive_exec(&self, record: ExecRecord, replay: bool) -> Arc<Exec> {
        let agent = record
            .agent
            .as_ref()
            .and_then(|name| match self.plugins.agent(name) {
                Ok(agent) => Some(agent),
                Err(err) => {
                    tracing::warn!(exec = %record.id, error = %err, "the exec's adapter is not loaded: no agent events or steering for it");
                    None
                }
            });
        if replay {
            return Exec::revived(record, agent, self.ring());
        }
        let ended = record.exit;
        let exec = Exec::new(
            ExecRecord {
                exit: None,
                ..record
            },
            agent,
            self.ring(),
        );
        match ended {
            Some(exit) => exec.end(exit),
            None => exec.end_lost(),
        };
        exec
    }

    /// Restarts the pumps of a re-adopted session's execs: each replays
    /// runnerd's retained frames (through a fresh parser), so event ids stay
    /// stable, and goes on with the live tail of a running one.
    fn resume_pumps(self: &Arc<Self>, session: &Arc<Session>) {
        let Some(client) = session.runnerd() else {
            return;
        };
        for exec in session.execs().into_iter().filter(|e| e.is_running()) {
            let this = self.clone();
            let session = session.clone();
            let client = client.clone();
            tokio::spawn(async move {
                let parser = match exec.agent() {
                    Some(agent) => match agent.parser(&ParseContext::default()).await {
                        Ok(parser) => Some(parser),
                        Err(err) => {
                            tracing::warn!(exec = %exec.id(), error = %err, "no parser for the replay: raw output only");
                            None
                        }
                    },
                    None => None,
                };
                this.run_pump(session, exec, client, parser).await;
            });
        }
    }

    async fn run_pump(
        self: Arc<Self>,
        session: Arc<Session>,
        exec: Arc<Exec>,
        client: Client,
        parser: Option<crate::plugin::AgentParser>,
    ) {
        let redactor = session.redactor();
        pump(exec, client, parser, redactor, || self.persist(&session)).await;
    }

    fn persist(&self, session: &Session) {
        if let Err(err) = self.store.save(&session.snapshot()) {
            tracing::error!(session = %session.id, error = %err, "cannot persist the session");
        }
    }

    /// Creates a session and issues its grants; nothing is provisioned yet.
    pub async fn create(
        &self,
        owner: &str,
        request: CreateSession,
    ) -> Result<Arc<Session>, SessionError> {
        let provider = request
            .provider
            .unwrap_or_else(|| self.providers.default_provider().kind().to_owned());
        self.provider_of(&provider)?;
        let ttl = request.ttl_secs.unwrap_or(self.config.default_ttl_secs);
        if ttl == 0 || ttl > self.config.max_ttl_secs {
            return Err(SessionError::Invalid(format!(
                "ttl_secs must be between 1 and {}",
                self.config.max_ttl_secs
            )));
        }
        let resources = self.profile(request.profile.as_deref())?;
        for (name, value) in &request.env {
            proto::env::check_var(name, value).map_err(|e| SessionError::Invalid(e.to_string()))?;
        }
        let now = unix_ms();
        let id = new_id("ses")?;
        let mut credentials = self
            .secrets
            .issue_all(&id, owner, &request.grants, ttl)
            .await?;
        if let Some((name, c)) = credentials.iter().find_map(|c| {
            c.env
                .keys()
                .find(|k| request.env.contains_key(*k))
                .map(|k| (k, c))
        }) {
            let err = SessionError::Invalid(format!(
                "env {name} is set both in `env` and by grant {}:{}",
                c.broker, c.name
            ));
            self.secrets.revoke_all(&id, owner, &mut credentials).await;
            return Err(err);
        }
        let record = SessionRecord {
            id,
            owner: owner.to_owned(),
            provider,
            created_at_ms: now,
            expires_at_ms: now + ttl * 1000,
            idle_timeout_secs: request
                .idle_timeout_secs
                .unwrap_or(self.config.default_idle_timeout_secs),
            env: request.env,
            labels: request.labels,
            network: request.network.unwrap_or_default(),
            resources,
            sandbox_id: None,
            ended: None,
            execs: Vec::new(),
            credentials,
            gateway_key: None,
        };
        if let Err(err) = self.store.save(&record) {
            let mut credentials = record.credentials;
            self.secrets
                .revoke_all(&record.id, owner, &mut credentials)
                .await;
            return Err(err.into());
        }
        let session = Session::new(record, None, Vec::new());
        self.insert(session.clone());
        tracing::info!(session = %session.id, owner, "session created");
        Ok(session)
    }

    /// The owner's session; another owner's is not found.
    pub fn get(&self, owner: &str, id: &str) -> Result<Arc<Session>, SessionError> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .filter(|s| s.owner == owner)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// The owner's sessions, oldest first.
    pub fn list(&self, owner: &str) -> Vec<Arc<Session>> {
        let mut sessions: Vec<_> = self
            .all()
            .into_iter()
            .filter(|s| s.owner == owner)
            .collect();
        sessions.sort_by_key(|s| s.lock().record.created_at_ms);
        sessions
    }

    /// Extends the TTL by `secs`, up to `max_ttl_secs` after creation.
    pub async fn extend(&self, session: &Session, secs: u64) -> Result<(), SessionError> {
        if let Some(ended) = session.ended() {
            return Err(SessionError::Ended(ended.reason));
        }
        let expires_at_ms = {
            let mut state = session.lock();
            let record = &mut state.record;
            let max = record.created_at_ms + self.config.max_ttl_secs * 1000;
            record.expires_at_ms = (record.expires_at_ms + secs * 1000).min(max);
            record.expires_at_ms
        };
        self.persist(session);
        // The provider's own record is what a restarted host re-adopts by.
        // The session is extended either way; a provider that cannot record
        // it would end the sandbox early only across a host restart.
        if let Some(sandbox) = session.sandbox()
            && let Err(err) = self
                .provider_of(&sandbox.provider)?
                .extend(&sandbox, expires_at_ms)
                .await
        {
            tracing::warn!(session = %session.id, sandbox = %sandbox.id, error = %err, "the provider did not record the new expiry; a host restart before it would end the sandbox at its old expiry");
        }
        Ok(())
    }

    /// The session's runnerd, provisioning the sandbox on first use.
    pub async fn client(&self, session: &Arc<Session>) -> Result<Client, SessionError> {
        if let Some(ended) = session.ended() {
            return Err(SessionError::Ended(ended.reason));
        }
        session.touch();
        if let Some(client) = session.runnerd() {
            return Ok(client);
        }
        let _guard = session.provisioning.lock().await;
        if let Some(client) = session.runnerd() {
            return Ok(client);
        }
        let spec = {
            let record = &session.lock().record;
            SandboxSpec {
                session_id: record.id.clone(),
                owner: record.owner.clone(),
                expires_at_ms: record.expires_at_ms,
                env: record
                    .env
                    .iter()
                    .chain(record.credentials.iter().flat_map(|c| &c.env))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                network: record.network,
                labels: record.labels.clone(),
                resources: record.resources,
                image: None,
                runtime_class: None,
                runnerd_stall_ms: self.config.runnerd_stall_ms(),
            }
        };
        let kind = session.lock().record.provider.clone();
        let sandbox = self.provider_of(&kind)?.provision(&spec).await?;
        let sandbox_id = sandbox.id.clone();
        let raced_end = session.set_sandbox(sandbox);
        self.persist(session);
        if let Some(ended) = raced_end {
            // Deleted while provisioning: do not leak the sandbox.
            self.destroy_sandbox(session).await;
            return Err(SessionError::Ended(ended.reason));
        }
        tracing::info!(session = %session.id, sandbox = %sandbox_id, "sandbox provisioned");
        let client = session
            .runnerd()
            .ok_or(SessionError::Ended(EndReason::Deleted))?;
        let files: Vec<_> = session
            .lock()
            .record
            .credentials
            .iter()
            .flat_map(|c| c.files.clone())
            .collect();
        for file in files {
            client
                .write_file(
                    &format!("{SECRETS_DIR}/{}", file.path),
                    Bytes::from(file.contents),
                    true,
                )
                .await?;
        }
        Ok(client)
    }

    /// Starts an exec and its pump.
    pub async fn start_exec(
        self: &Arc<Self>,
        session: &Arc<Session>,
        request: ExecRequest,
    ) -> Result<Arc<Exec>, SessionError> {
        let (runnerd_request, agent) = self.plan_exec(session, request).await?;
        let client = self.client(session).await?;
        let parser = match &agent {
            Some((plugin, run)) => {
                for file in &run.files {
                    let path = join_workdir(&run.workdir, &file.path)?;
                    client
                        .write_file(&path, Bytes::from(file.contents.clone()), true)
                        .await?;
                }
                Some(plugin.parser(&ParseContext::default()).await?)
            }
            None => None,
        };
        let created = client.create_exec(&runnerd_request).await?;
        let exec = Exec::new(
            ExecRecord {
                id: created.id,
                argv: runnerd_request.argv.clone(),
                agent: agent.as_ref().map(|(p, _)| p.name().to_owned()),
                created_at_ms: unix_ms(),
                timeout_ms: runnerd_request.timeout_ms,
                exit: None,
                ended_at_ms: None,
                run: Default::default(),
            },
            agent.map(|(p, _)| p),
            self.ring(),
        );
        session.lock().execs.push(exec.clone());
        self.persist(session);
        tokio::spawn(
            self.clone()
                .run_pump(session.clone(), exec.clone(), client, parser),
        );
        Ok(exec)
    }

    /// The runnerd request of an exec, and for an agent run its adapter and
    /// exec spec.
    async fn plan_exec(
        &self,
        session: &Session,
        request: ExecRequest,
    ) -> Result<
        (
            proto::ExecRequest,
            Option<(Arc<crate::plugin::AgentPlugin>, AgentPlan)>,
        ),
        SessionError,
    > {
        let timeout_ms = request
            .timeout_ms
            .map(|t| t + self.config.exec_attach_grace_secs * 1000);
        match (request.argv, request.agent, request.run) {
            (Some(argv), None, None) => {
                if argv.is_empty() {
                    return Err(SessionError::Invalid("argv must not be empty".into()));
                }
                Ok((
                    proto::ExecRequest {
                        argv,
                        env: request.env,
                        cwd: request.cwd,
                        stdin: request.stdin,
                        keep_stdin_open: request.keep_stdin_open,
                        timeout_ms,
                        ..Default::default()
                    },
                    None,
                ))
            }
            (None, Some(agent), Some(mut run)) => {
                if request.stdin.is_some() || request.cwd.is_some() {
                    return Err(SessionError::Invalid(
                        "an agent run takes its prompt and workdir from `run`, not `stdin`/`cwd`"
                            .into(),
                    ));
                }
                let plugin = self.plugins.agent(&agent).map_err(|_| {
                    let known: Vec<String> = self
                        .plugins
                        .list()
                        .into_iter()
                        .filter(|p| p.kind == PluginKind::Agent)
                        .map(|p| p.name)
                        .collect();
                    SessionError::Invalid(format!(
                        "no agent adapter {agent:?}; loaded: {}",
                        known.join(", ")
                    ))
                })?;
                let workdir = run.workdir.clone();
                let mut env = request.env;
                if run.gateway.is_none() {
                    run.gateway = session.lock().record.granted_gateway();
                }
                if run.gateway.is_none()
                    && let Some((wire, key)) = self.gateway_key(session, &plugin, &run).await?
                    && let Some(gateway) = &self.gateway
                {
                    run.gateway = Some(paddock_sdk::agent::Gateway {
                        base_url: gateway.base_url(wire),
                        token_env: gateway::TOKEN_ENV.to_owned(),
                    });
                    env.insert(gateway::TOKEN_ENV.to_owned(), key);
                }
                let spec = plugin.build_exec(&run).await?;
                env.extend(spec.env);
                Ok((
                    proto::ExecRequest {
                        argv: spec.argv,
                        env,
                        env_from: spec.env_from,
                        cwd: Some(workdir.clone()),
                        stdin: spec.stdin,
                        keep_stdin_open: spec.keep_stdin_open || request.keep_stdin_open,
                        timeout_ms,
                        ..Default::default()
                    },
                    Some((
                        plugin,
                        AgentPlan {
                            workdir,
                            files: spec.files,
                        },
                    )),
                ))
            }
            (None, Some(_), None) => Err(SessionError::Invalid(
                "an agent exec needs `run` (at least a prompt)".into(),
            )),
            (None, None, _) => Err(SessionError::Invalid(
                "give either `argv` (a command) or `agent` and `run` (an agent run)".into(),
            )),
            (Some(_), _, _) => Err(SessionError::Invalid(
                "`argv` and `agent`/`run` exclude each other".into(),
            )),
        }
    }

    /// The session's key for the built-in gateway and the wire format the
    /// adapter's CLI is pointed at, minting the key on the session's first
    /// agent run. None when the host runs no gateway for any wire format
    /// the adapter speaks (`gateway:*` features); the run then goes where
    /// the CLI's own configuration says.
    async fn gateway_key(
        &self,
        session: &Session,
        plugin: &crate::plugin::AgentPlugin,
        run: &paddock_sdk::agent::RunSpec,
    ) -> Result<Option<(Wire, String)>, SessionError> {
        let Some(gateway) = &self.gateway else {
            return Ok(None);
        };
        let Some(wire) = gateway_wire(&plugin.info().features, run.model.as_deref(), |w| {
            gateway.serves(w)
        }) else {
            return Ok(None);
        };
        let _guard = session.provisioning.lock().await;
        if let Some(key) = session.lock().record.gateway_key.clone() {
            return Ok(Some((wire, key)));
        }
        // The key dies with the session (it is revoked then); its own
        // expiry is the longest the session could be extended to, so an
        // extension never outlives it and a host that never revokes it
        // (it died for good) leaves it usable no longer than that.
        let expires_at_ms = session.lock().record.created_at_ms + self.config.max_ttl_secs * 1000;
        let key = gateway
            .mint(
                &session.id,
                &session.owner,
                gateway.default_limits(expires_at_ms),
            )
            .map_err(|e| SessionError::Gateway(e.to_string()))?;
        let key = key.key;
        logs::LIVE
            .add(&session.id, vec![key.as_bytes().to_vec()])
            .map_err(SecretsError::from)?;
        self.secrets
            .record_builtin(
                &session.id,
                &session.owner,
                GATEWAY_KEY_NAME,
                AuditAction::Issued,
                Some(expires_at_ms / 1000),
            )
            .await?;
        session.lock().record.gateway_key = Some(key.clone());
        self.persist(session);
        tracing::info!(session = %session.id, %wire, "gateway key issued");
        Ok(Some((wire, key)))
    }

    /// What the session's agent runs used through the built-in gateway;
    /// none before its first run through it.
    pub fn gateway_usage(&self, session: &Session) -> Option<gateway::GatewayUsage> {
        self.gateway.as_ref()?.usage(&session.id)
    }

    pub fn exec(&self, session: &Session, id: &str) -> Result<Arc<Exec>, SessionError> {
        session
            .exec(id)
            .ok_or_else(|| SessionError::ExecNotFound(id.to_owned()))
    }

    /// Writes to a running exec's stdin.
    pub async fn stdin(
        &self,
        session: &Arc<Session>,
        exec: &Exec,
        input: StdinInput,
    ) -> Result<(), SessionError> {
        let (data, close) = match input {
            StdinInput::Raw { data, close } => (data, close),
            StdinInput::Steer { kind, text } => {
                let Some(agent) = exec.agent() else {
                    return Err(SessionError::Conflict {
                        code: "not_an_agent_run",
                        message: "steering needs an agent run; send raw bytes to a command".into(),
                    });
                };
                match agent.encode_input(kind, &text).await? {
                    Some(line) => (Bytes::from(line), false),
                    None => {
                        return Err(SessionError::Conflict {
                            code: "steering_unsupported",
                            message: format!(
                                "the {} adapter cannot steer its CLI through stdin",
                                agent.name()
                            ),
                        });
                    }
                }
            }
        };
        let client = self.client(session).await?;
        client.write_stdin(exec.id(), data, close).await?;
        Ok(())
    }

    /// Cancels a running exec (SIGTERM to its tree, SIGKILL after a grace);
    /// its stream ends with a `cancelled` exit event.
    pub async fn cancel(&self, session: &Arc<Session>, exec: &Exec) -> Result<(), SessionError> {
        if !exec.is_running() {
            return Ok(());
        }
        let client = self.client(session).await?;
        match client.cancel(exec.id(), Some(CANCEL_GRACE_MS)).await {
            Ok(_) => Ok(()),
            Err(err) if err.status().is_some_and(|s| s.as_u16() == 409) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Ends a session from any state: its execs are cancelled and given
    /// their terminal events, its sandbox is destroyed. Idempotent.
    pub async fn end(&self, session: &Arc<Session>, reason: EndReason) {
        {
            let mut state = session.lock();
            if state.record.ended.is_some() {
                return;
            }
            state.record.ended = Some(Ended {
                reason,
                at_ms: unix_ms(),
            });
        }
        tracing::info!(session = %session.id, ?reason, "session ending");
        let client = session.runnerd();
        let running: Vec<_> = session
            .execs()
            .into_iter()
            .filter(|e| e.is_running())
            .collect();
        if let (Some(client), false) = (client, running.is_empty()) {
            for exec in &running {
                if let Err(err) = client.cancel(exec.id(), Some(CANCEL_GRACE_MS)).await {
                    tracing::debug!(exec = %exec.id(), error = %err, "cancel at session end");
                }
            }
            let drained = tokio::time::timeout(
                END_DRAIN + Duration::from_millis(CANCEL_GRACE_MS),
                futures_util::future::join_all(running.iter().map(|e| e.wait_ended())),
            )
            .await;
            if drained.is_err() {
                tracing::warn!(session = %session.id, "execs did not end in time; marked lost");
            }
        }
        for exec in running {
            exec.end_lost();
        }
        self.destroy_sandbox(session).await;
        self.revoke(session).await;
        self.persist(session);
    }

    /// Revokes what the session was issued (its grants' credentials and its
    /// gateway key); idempotent.
    async fn revoke(&self, session: &Session) {
        let mut credentials = std::mem::take(&mut session.lock().record.credentials);
        if credentials.iter().any(|c| !c.revoked) {
            self.secrets
                .revoke_all(&session.id, &session.owner, &mut credentials)
                .await;
        }
        session.lock().record.credentials = credentials;
        let had_key = session.lock().record.gateway_key.take().is_some();
        if had_key && let Some(gateway) = &self.gateway {
            let action = match gateway.revoke(&session.id) {
                Ok(()) => AuditAction::Revoked,
                Err(err) => {
                    tracing::error!(session = %session.id, error = %err, "cannot revoke the gateway key");
                    AuditAction::RevokeFailed
                }
            };
            if let Err(err) = self
                .secrets
                .record_builtin(&session.id, &session.owner, GATEWAY_KEY_NAME, action, None)
                .await
            {
                tracing::error!(session = %session.id, error = %err, "cannot audit the gateway key's revocation");
            }
        }
        logs::LIVE.remove(&session.id);
    }

    /// Masks the session's secrets in the host's logs.
    fn mask(&self, session: &Session) -> Result<(), SessionError> {
        let values = session.lock().record.secret_values();
        if !values.is_empty() {
            logs::LIVE
                .add(&session.id, values)
                .map_err(SecretsError::from)?;
        }
        Ok(())
    }

    async fn destroy_sandbox(&self, session: &Session) {
        let sandbox = session.take_sandbox();
        if let Some(sandbox) = sandbox
            && let Err(err) = match self.provider_of(&sandbox.provider) {
                Ok(provider) => provider.destroy(&sandbox).await.map_err(SessionError::from),
                Err(err) => Err(err),
            }
        {
            tracing::error!(session = %session.id, sandbox = %sandbox.id, error = %err, "cannot destroy the sandbox");
        }
    }

    /// Drops an ended session from memory and disk.
    pub(super) fn forget(&self, session: &Session) {
        // The file first: once the API says 404, nothing of it is left.
        if let Err(err) = self.store.remove(&session.id) {
            tracing::error!(session = %session.id, error = %err, "cannot remove the session file");
        }
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&session.id);
        tracing::debug!(session = %session.id, "ended session forgotten");
    }

    /// Ends expired and idle sessions; see [`super::sweep`].
    pub async fn sweep(&self) {
        super::sweep::run_once(self, &self.all()).await;
    }
}

/// What an agent run needs besides its runnerd request.
pub(super) struct AgentPlan {
    workdir: String,
    files: Vec<paddock_sdk::agent::ExecFile>,
}

/// The wire format to point an adapter's CLI at: of those it speaks (its
/// `gateway:*` features, in its order of preference) that the gateway
/// serves, the one a `provider/model` model names, else the first.
fn gateway_wire(
    features: &[String],
    model: Option<&str>,
    serves: impl Fn(Wire) -> bool,
) -> Option<Wire> {
    let spoken: Vec<Wire> = features
        .iter()
        .filter_map(|f| match f.as_str() {
            features::GATEWAY_ANTHROPIC => Some(Wire::Anthropic),
            features::GATEWAY_OPENAI => Some(Wire::OpenAi),
            _ => None,
        })
        .filter(|w| serves(*w))
        .collect();
    let named = model
        .and_then(|m| m.split_once('/'))
        .and_then(|(provider, _)| spoken.iter().find(|w| w.to_string() == provider));
    named.or_else(|| spoken.first()).copied()
}

/// A workspace path for a file an adapter asked for, relative to the run's
/// workdir; runnerd refuses anything escaping the workspace in any case.
fn join_workdir(workdir: &str, path: &str) -> Result<String, SessionError> {
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        return Err(SessionError::Invalid(format!(
            "the adapter asked for a file outside the workdir: {path}"
        )));
    }
    Ok(match workdir.trim_end_matches('/') {
        "" | "." => path.to_owned(),
        dir => format!("{dir}/{path}"),
    })
}

/// A fresh random id with a prefix.
pub(crate) fn new_id(prefix: &str) -> Result<String, SessionError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)
        .map_err(|e| SessionError::Persist(std::io::Error::other(e.to_string())))?;
    Ok(format!("{prefix}-{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(list: &[&str]) -> Vec<String> {
        list.iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn the_gateway_wire_follows_the_adapter_the_model_and_what_is_served() {
        let both = features(&["resume", "gateway:anthropic", "gateway:openai"]);
        let all = |_: Wire| true;
        assert_eq!(gateway_wire(&both, None, all), Some(Wire::Anthropic));
        assert_eq!(
            gateway_wire(&both, Some("openai/gpt-5"), all),
            Some(Wire::OpenAi)
        );
        assert_eq!(
            gateway_wire(&both, Some("claude-sonnet-4-5"), all),
            Some(Wire::Anthropic)
        );
        let only_openai = |w: Wire| w == Wire::OpenAi;
        assert_eq!(gateway_wire(&both, None, only_openai), Some(Wire::OpenAi));
        assert_eq!(gateway_wire(&features(&["resume"]), None, all), None);
        assert_eq!(
            gateway_wire(&features(&["gateway:anthropic"]), None, only_openai),
            None
        );
    }
}
