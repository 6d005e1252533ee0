//! Re-adoption: what a new host process finds under the provider's root.
//!
//! Every sandbox directory is examined on its own (concurrently). A sandbox
//! is adopted only when everything agrees: a state file of this format
//! naming the directory's id, not expired, its runnerd pid alive and still
//! runnerd of this workspace, the token file matching the recorded digest,
//! and runnerd answering `health` with that token. Anything else is logged
//! and cleaned up: a live process is stopped first, then the directory is
//! removed. Directories without a state file are provisions in progress (of
//! this provider: skipped) or ones a crash interrupted (removed once older
//! than [`ORPHAN_AGE`], so a provision of another process in flight is not
//! cut short).

use std::io;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;
use paddock_runnerd::client::Client;

use super::layout::{SandboxDir, is_sandbox_id};
use super::process::SandboxProcess;
use super::state::{SandboxState, token_matches, unix_ms};
use super::{Inner, sandbox_of};
use crate::provider::{ProviderError, Sandbox};

/// Age after which a directory without a state file is a crashed provision.
const ORPHAN_AGE: Duration = Duration::from_secs(60);

/// The longest `health` may take to answer during adoption.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn adopt(provider: &Inner) -> Result<Vec<Sandbox>, ProviderError> {
    let entries = match std::fs::read_dir(&provider.root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ProviderError::Io {
                context: format!("listing the sandbox root {}", provider.root.display()),
                source,
            });
        }
    };
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ProviderError::Io {
            context: format!("listing the sandbox root {}", provider.root.display()),
            source,
        })?;
        let name = entry.file_name();
        match name.to_str() {
            // Only what this provider made is touched.
            Some(id) if is_sandbox_id(id) => ids.push(id.to_owned()),
            _ => tracing::debug!(entry = ?name, "not a sandbox directory; left alone"),
        }
    }
    let in_flight = provider
        .provisioning
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    ids.retain(|id| !in_flight.contains(id));

    let examined = join_all(ids.iter().map(|id| examine(provider, id))).await;
    let adopted: Vec<Sandbox> = examined.into_iter().flatten().collect();
    tracing::info!(
        adopted = adopted.len(),
        examined = ids.len(),
        "local sandboxes re-adopted"
    );
    Ok(adopted)
}

/// Adopts sandbox `id`, or cleans it up and returns `None`.
async fn examine(provider: &Inner, id: &str) -> Option<Sandbox> {
    let dir = SandboxDir::new(&provider.root, id);
    let state = match SandboxState::read(&dir.state()) {
        Ok(state) if state.id == id => state,
        Ok(state) => {
            tracing::warn!(sandbox = %id, named = %state.id, "state file names another sandbox; cleaning up");
            clean(provider, &dir, None).await;
            return None;
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let age = age_of(&dir);
            if age.is_some_and(|age| age < ORPHAN_AGE) {
                tracing::debug!(sandbox = %id, "no state file yet; a provision may be in progress");
                return None;
            }
            tracing::warn!(sandbox = %id, "no state file: a provision that never finished; cleaning up");
            clean(provider, &dir, None).await;
            return None;
        }
        Err(err) => {
            tracing::warn!(sandbox = %id, error = %err, "unreadable state file; cleaning up");
            clean(provider, &dir, None).await;
            return None;
        }
    };
    if unix_ms() >= state.expires_at_ms {
        tracing::info!(sandbox = %id, session = %state.session_id, expires_at_ms = state.expires_at_ms, "sandbox expired while no host ran; destroying it");
        clean(provider, &dir, Some(&state)).await;
        return None;
    }
    match check(&dir, &state).await {
        Ok(token) => {
            tracing::info!(sandbox = %id, session = %state.session_id, pid = state.pid, endpoint = %state.endpoint, "sandbox re-adopted");
            Some(sandbox_of(state, token))
        }
        Err(reason) => {
            tracing::warn!(sandbox = %id, session = %state.session_id, pid = state.pid, %reason, "sandbox cannot be adopted; cleaning up");
            clean(provider, &dir, Some(&state)).await;
            None
        }
    }
}

/// The sandbox's token, if its runnerd is alive and takes it.
async fn check(dir: &SandboxDir, state: &SandboxState) -> Result<String, String> {
    if SandboxProcess::find(state.pid, &dir.workspace()).is_none() {
        return Err("runnerd is not running any more".to_owned());
    }
    let token = std::fs::read_to_string(dir.token())
        .map_err(|e| format!("cannot read the token file: {e}"))?;
    let token = token.trim().to_owned();
    if !token_matches(&token, &state.token_sha256) {
        return Err("the token file does not match the recorded digest".to_owned());
    }
    let client = Client::new(state.endpoint.clone(), token.clone());
    match tokio::time::timeout(HEALTH_TIMEOUT, client.health()).await {
        Ok(Ok(_)) => Ok(token),
        Ok(Err(err)) => Err(format!(
            "runnerd at {} does not answer health: {err}",
            state.endpoint
        )),
        Err(_) => Err(format!(
            "runnerd at {} did not answer health within {HEALTH_TIMEOUT:?}",
            state.endpoint
        )),
    }
}

/// Tears a sandbox down, logging (not returning) failures: adoption goes on
/// with the other sandboxes.
async fn clean(provider: &Inner, dir: &SandboxDir, state: Option<&SandboxState>) {
    if let Err(err) = provider.teardown(dir, state).await {
        tracing::warn!(dir = %dir.path().display(), error = %err, "cannot clean up a sandbox");
    }
}

/// How long ago the directory last changed; `None` if unknown.
fn age_of(dir: &SandboxDir) -> Option<Duration> {
    let modified = std::fs::metadata(dir.path()).ok()?.modified().ok()?;
    SystemTime::now().duration_since(modified).ok()
}
