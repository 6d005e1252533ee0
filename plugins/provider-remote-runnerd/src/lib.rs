//! `remote-runnerd`: leases sandboxes from a pool of already-running runnerd
//! endpoints (bring-your-own machines), over the host's `outgoing-http`
//! only. README.md documents the configuration, the lease and its caveats.
//!
//! Each call gets a fresh plugin instance, so nothing is remembered between
//! calls: the lease lives on the runnerd itself, as the file [`LEASE_FILE`]
//! in its workspace, written and read with runnerd's files API.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use paddock_sdk::http::{self, Request, Response};
use paddock_sdk::provider::*;
use paddock_sdk::{config, env, log};
use serde::{Deserialize, Serialize};

/// The lease file, relative to the runnerd's workspace.
pub const LEASE_FILE: &str = ".paddock-lease.json";
/// The environment variable holding the pool's runnerd token when
/// `token_env` is unset.
pub const DEFAULT_TOKEN_ENV: &str = "PADDOCK_POOL_TOKEN";
/// Lease length when the request's TTL is 0: an hour, so a lease the host
/// forgets to release frees itself.
pub const DEFAULT_LEASE_SECS: u64 = 3600;
/// Per-request HTTP timeout when `timeout_ms` is unset: a healthy runnerd
/// answers in milliseconds; a dead one should not eat the call's budget.
pub const DEFAULT_TIMEOUT_MS: u32 = 3000;
/// Label naming this provider on every handle.
pub const PROVIDER_LABEL: &str = "paddock.io/provider";
pub const OWNER_LABEL: &str = "paddock.io/owner";
pub const SESSION_LABEL: &str = "paddock.io/session";
/// Label with the endpoint a handle leases.
pub const ENDPOINT_LABEL: &str = "paddock.io/endpoint";

pub struct RemoteRunnerd;

/// What `.paddock-lease.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The handle's id: stable for this endpoint and this lease.
    pub id: String,
    pub session_id: String,
    pub owner: String,
    /// Unix seconds; from then on the endpoint is free again.
    pub expires_at: u64,
    /// Unix seconds.
    pub leased_at: u64,
}

/// What an endpoint's lease file says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LeaseState {
    Free,
    Leased(Lease),
    /// A lease file that does not parse: the endpoint is skipped (someone
    /// may be using it) until an operator removes the file.
    Corrupt(String),
}

/// The operator's pool.
#[derive(Debug, Clone)]
pub struct Pool {
    pub endpoints: Vec<String>,
    token: String,
    pub timeout_ms: u32,
}

impl Pool {
    /// Reads `endpoints`, `token_env` and `timeout_ms` from `config` and the
    /// token from the granted environment.
    ///
    /// # Errors
    ///
    /// `invalid-input` for no endpoints or a bad value; `unavailable` when
    /// the token variable is not granted or not set.
    pub fn from_config() -> Result<Self, PluginError> {
        let endpoints: Vec<String> = config::list("endpoints")
            .into_iter()
            .map(|e| e.trim_end_matches('/').to_owned())
            .collect();
        if endpoints.is_empty() {
            return Err(PluginError::InvalidInput(
                "config key `endpoints` is empty: list the pool's runnerd base URLs, comma-separated".into(),
            ));
        }
        if let Some(bad) = endpoints
            .iter()
            .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
        {
            return Err(PluginError::InvalidInput(format!(
                "config key `endpoints`: {bad:?} is not an http:// or https:// URL"
            )));
        }
        let token_env = config::get("token_env")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned());
        let token = env::var(&token_env).filter(|t| !t.is_empty()).ok_or_else(|| {
            PluginError::Unavailable(format!(
                "the pool's runnerd token is not in env var {token_env}: set it for the host and grant it with [plugins.grants.remote-runnerd] env = [\"{token_env}\"]"
            ))
        })?;
        Ok(Self {
            endpoints,
            token,
            timeout_ms: config::parse("timeout_ms")?.unwrap_or(DEFAULT_TIMEOUT_MS),
        })
    }

    fn request(&self, method: &str, endpoint: &str, path: &str) -> Request {
        Request::new(method, &format!("{endpoint}{path}"))
            .bearer(&self.token)
            .timeout_ms(self.timeout_ms)
    }

    fn send(&self, req: &Request) -> Result<Response, PluginError> {
        http::send(req).map_err(|e| {
            PluginError::from(e).map_message(|m| format!("{} {}: {m}", req.method, req.url))
        })
    }

    /// Whether `endpoint` answers `health`. An endpoint the host refuses to
    /// reach (off this plugin's `allow_hosts`) is the operator's mistake,
    /// not an unhealthy machine: that is an error naming it.
    fn healthy(&self, endpoint: &str) -> Result<bool, PluginError> {
        match self.send(&self.request("GET", endpoint, "/v1/health")) {
            Ok(resp) if resp.is_success() => Ok(true),
            Ok(resp) => {
                log::warn(&format!("{endpoint}: health answered {}", resp.status));
                Ok(false)
            }
            Err(PluginError::Denied(e)) => Err(PluginError::Denied(format!(
                "{endpoint} cannot be reached: {e} (add its host to [plugins.grants.remote-runnerd] allow_hosts)"
            ))),
            Err(e) => {
                log::warn(&format!("{endpoint}: not healthy: {e}"));
                Ok(false)
            }
        }
    }

    fn read_lease(&self, endpoint: &str) -> Result<LeaseState, PluginError> {
        let resp =
            self.send(&self.request("GET", endpoint, &format!("/v1/files/{LEASE_FILE}?op=read")))?;
        match resp.status {
            404 => Ok(LeaseState::Free),
            s if (200..300).contains(&s) => Ok(match resp.json::<Lease>() {
                Ok(lease) => LeaseState::Leased(lease),
                Err(e) => LeaseState::Corrupt(e.to_string()),
            }),
            s => Err(status_error(endpoint, "reading the lease", s, &resp)),
        }
    }

    fn write_lease(&self, endpoint: &str, lease: &Lease) -> Result<(), PluginError> {
        let req = self
            .request("PUT", endpoint, &format!("/v1/files/{LEASE_FILE}"))
            .json(lease)?;
        let resp = self.send(&req)?;
        if !resp.is_success() {
            return Err(status_error(
                endpoint,
                "writing the lease",
                resp.status,
                &resp,
            ));
        }
        Ok(())
    }

    fn delete_lease(&self, endpoint: &str) -> Result<(), PluginError> {
        let resp =
            self.send(&self.request("DELETE", endpoint, &format!("/v1/files/{LEASE_FILE}")))?;
        if resp.is_success() || resp.status == 404 {
            return Ok(());
        }
        Err(status_error(
            endpoint,
            "removing the lease",
            resp.status,
            &resp,
        ))
    }

    /// Cancels every running exec, so the next lease starts with none.
    fn cancel_execs(&self, endpoint: &str) -> Result<(), PluginError> {
        #[derive(Deserialize)]
        struct ExecList {
            execs: Vec<Exec>,
        }
        #[derive(Deserialize)]
        struct Exec {
            id: String,
            state: String,
        }
        let resp = self.send(&self.request("GET", endpoint, "/v1/execs"))?;
        if !resp.is_success() {
            return Err(status_error(endpoint, "listing execs", resp.status, &resp));
        }
        let list: ExecList = resp.json().map_err(|e| {
            PluginError::Unavailable(format!("{endpoint}: unreadable exec list: {e}"))
        })?;
        for exec in list.execs.iter().filter(|e| e.state == "running") {
            let req = self
                .request("POST", endpoint, &format!("/v1/execs/{}/cancel", exec.id))
                .json(&serde_json::json!({}))?;
            let resp = self.send(&req)?;
            // 404/409: it ended meanwhile.
            if !(resp.is_success() || resp.status == 404 || resp.status == 409) {
                return Err(status_error(
                    endpoint,
                    "cancelling an exec",
                    resp.status,
                    &resp,
                ));
            }
        }
        Ok(())
    }

    /// The endpoint a handle id names, if it is still in the pool.
    fn endpoint_of(&self, id: &str) -> Option<&str> {
        let prefix = id.strip_prefix("rr-")?.split('-').next()?;
        self.endpoints
            .iter()
            .find(|e| format!("{:016x}", fnv1a(e.as_bytes())) == prefix)
            .map(String::as_str)
    }

    fn handle(&self, endpoint: &str, lease: &Lease) -> SandboxHandle {
        SandboxHandle {
            id: lease.id.clone(),
            url: endpoint.to_owned(),
            token: Some(self.token.clone()),
            labels: BTreeMap::from([
                (PROVIDER_LABEL.to_owned(), "remote-runnerd".to_owned()),
                (OWNER_LABEL.to_owned(), lease.owner.clone()),
                (SESSION_LABEL.to_owned(), lease.session_id.clone()),
                (ENDPOINT_LABEL.to_owned(), endpoint.to_owned()),
            ]),
            expires_at: Some(lease.expires_at),
        }
    }
}

/// The handle id for a lease of `endpoint`: the endpoint's hash (so
/// `inspect` and `destroy` find it) and the lease's (so a later lease of the
/// same endpoint has another id).
pub fn lease_id(endpoint: &str, session_id: &str, leased_at: u64) -> String {
    let mut lease = session_id.as_bytes().to_vec();
    lease.extend_from_slice(&leased_at.to_be_bytes());
    format!(
        "rr-{:016x}-{:016x}",
        fnv1a(endpoint.as_bytes()),
        fnv1a(&lease)
    )
}

/// FNV-1a, 64 bit: stable across builds and platforms, unlike std's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn status_error(endpoint: &str, what: &str, status: u16, resp: &Response) -> PluginError {
    let body: String = resp.text().chars().take(200).collect();
    let message = format!("{endpoint}: {what}: HTTP {status}: {body}");
    match status {
        401 | 403 => PluginError::Denied(format!(
            "{message} (is the pool token right for this runnerd?)"
        )),
        _ => PluginError::Unavailable(message),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Adds context to a [`PluginError`]'s message, keeping its kind.
trait MapMessage {
    fn map_message(self, f: impl FnOnce(String) -> String) -> Self;
}

impl MapMessage for PluginError {
    fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            PluginError::InvalidInput(m) => PluginError::InvalidInput(f(m)),
            PluginError::Denied(m) => PluginError::Denied(f(m)),
            PluginError::Unavailable(m) => PluginError::Unavailable(f(m)),
            PluginError::Internal(m) => PluginError::Internal(f(m)),
        }
    }
}

impl SandboxProvider for RemoteRunnerd {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "remote-runnerd".into(),
            display_name: "Remote runnerd pool".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Leases sandboxes from a pool of already-running runnerd endpoints over HTTP".into(),
        }
    }

    /// Takes the first healthy endpoint, in configured order, without a
    /// live lease. Not atomic: the host serializes provision calls per
    /// provider plugin; README.md says what happens when two hosts share a
    /// pool.
    fn provision(req: ProvisionRequest) -> Result<SandboxHandle, PluginError> {
        let pool = Pool::from_config()?;
        let now = now();
        let (mut leased, mut unhealthy, mut failed) = (0, 0, 0);
        for endpoint in &pool.endpoints {
            if !pool.healthy(endpoint)? {
                unhealthy += 1;
                continue;
            }
            match pool.read_lease(endpoint) {
                Ok(LeaseState::Free) => {}
                Ok(LeaseState::Leased(l)) if l.expires_at <= now => {
                    log::info(&format!(
                        "{endpoint}: lease of session {} expired; leasing it again",
                        l.session_id
                    ));
                }
                Ok(LeaseState::Leased(_)) => {
                    leased += 1;
                    continue;
                }
                Ok(LeaseState::Corrupt(e)) => {
                    log::warn(&format!(
                        "{endpoint}: {LEASE_FILE} does not parse ({e}); skipped until an operator removes it"
                    ));
                    failed += 1;
                    continue;
                }
                Err(e) => {
                    log::warn(&format!("{endpoint}: {e}"));
                    failed += 1;
                    continue;
                }
            }
            let ttl = if req.ttl_secs == 0 {
                DEFAULT_LEASE_SECS
            } else {
                req.ttl_secs
            };
            let lease = Lease {
                id: lease_id(endpoint, &req.session_id, now),
                session_id: req.session_id.clone(),
                owner: req.owner.clone(),
                expires_at: now.saturating_add(ttl),
                leased_at: now,
            };
            if let Err(e) = pool.write_lease(endpoint, &lease) {
                log::warn(&format!("{endpoint}: {e}"));
                failed += 1;
                continue;
            }
            // Read back: of two writers racing, the one whose lease is not
            // there moves on (this narrows the race; it does not close it).
            match pool.read_lease(endpoint) {
                Ok(LeaseState::Leased(l)) if l == lease => {}
                _ => {
                    log::warn(&format!("{endpoint}: lost the lease to another writer"));
                    leased += 1;
                    continue;
                }
            }
            if req.network != NetworkPolicy::none() || req.resources != Resources::default() {
                log::info(&format!(
                    "session {}: a pool machine keeps its own network and limits; the requested ones are not applied",
                    req.session_id
                ));
            }
            log::info(&format!(
                "session {}: leased {endpoint} until {}",
                req.session_id, lease.expires_at
            ));
            return Ok(pool.handle(endpoint, &lease));
        }
        Err(PluginError::Unavailable(format!(
            "no free runnerd in the pool: {} endpoints, {leased} leased, {unhealthy} unhealthy, {failed} failing",
            pool.endpoints.len()
        )))
    }

    /// Cancels the endpoint's running execs and removes the lease, only if
    /// the lease is still this handle's (a later lease of the endpoint is
    /// someone else's session). An unknown id is not an error.
    fn destroy(id: &str) -> Result<(), PluginError> {
        let pool = Pool::from_config()?;
        let Some(endpoint) = pool.endpoint_of(id) else {
            return Ok(());
        };
        match pool.read_lease(endpoint)? {
            LeaseState::Leased(l) if l.id == id => {
                pool.cancel_execs(endpoint)?;
                pool.delete_lease(endpoint)
            }
            _ => Ok(()),
        }
    }

    /// Every endpoint with a live lease. An endpoint that does not answer is
    /// logged and left out, so one dead machine does not hide the others.
    fn list() -> Result<Vec<SandboxHandle>, PluginError> {
        let pool = Pool::from_config()?;
        let now = now();
        let mut handles = Vec::new();
        for endpoint in &pool.endpoints {
            match pool.read_lease(endpoint) {
                Ok(LeaseState::Leased(l)) if l.expires_at > now => {
                    handles.push(pool.handle(endpoint, &l));
                }
                Ok(_) => {}
                Err(e) => log::warn(&format!("{endpoint}: {e}")),
            }
        }
        Ok(handles)
    }

    fn inspect(id: &str) -> Result<Option<SandboxHandle>, PluginError> {
        let pool = Pool::from_config()?;
        let Some(endpoint) = pool.endpoint_of(id) else {
            return Ok(None);
        };
        Ok(match pool.read_lease(endpoint)? {
            LeaseState::Leased(l) if l.id == id && l.expires_at > now() => {
                Some(pool.handle(endpoint, &l))
            }
            _ => None,
        })
    }
}

paddock_sdk::export_provider!(RemoteRunnerd);

#[cfg(test)]
mod tests;
