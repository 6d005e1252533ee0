//! Provisioning: make the sandbox directory, start runnerd, wait until it
//! answers, record the state file. A failure on the way kills what was
//! started and removes the directory before the error is returned.

use crate::provider::detached::InFlight;
use std::io;

use tokio::time::Instant;

use super::layout::{SandboxDir, new_sandbox_id, remove_tree};
use super::state::{
    STATE_FORMAT, SandboxState, new_token, token_digest, unix_ms, write_new_private,
};
use super::{Inner, LOG_TAIL_BYTES, launch, sandbox_of};
use crate::provider::{ProviderError, Sandbox, SandboxSpec};

impl Inner {
    /// Provisions a sandbox for `spec`. Not cancellation-safe on its own
    /// (a runnerd started and then abandoned mid-way would be left
    /// behind): the provider runs it in a task of its own.
    pub(super) async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        // One budget for everything from here to a healthy runnerd.
        let deadline = Instant::now() + self.start_timeout;
        let created_at_ms = unix_ms();
        let session = spec.session_id.as_str();
        self.warn_network(spec.network);

        let id = new_sandbox_id().map_err(io_error(session, "making a sandbox id"))?;
        let token = new_token().map_err(io_error(session, "making a runnerd token"))?;
        let env = serde_json::to_vec(&spec.env)
            .map_err(|e| io_error(session, "encoding the env seed")(io::Error::other(e)))?;
        let _provisioning = InFlight::enter(&self.provisioning, &id);
        let dir = SandboxDir::new(&self.root, &id);

        let started = {
            let (dir, token) = (dir.clone(), token.clone());
            let (runnerd, bwrap) = (self.runnerd.clone(), self.bwrap.clone());
            let stall_ms = spec.runnerd_stall_ms;
            tokio::task::spawn_blocking(move || {
                prepare(&dir, &token, &env).map_err(StartError::Files)?;
                launch::spawn(&runnerd, bwrap.as_ref(), &dir, stall_ms).map_err(StartError::Spawn)
            })
            .await
            .unwrap_or_else(|e| Err(StartError::Files(io::Error::other(e))))
        };
        let mut launched = match started {
            Ok(launched) => launched,
            Err(err) => {
                if let Err(rm) = remove_tree(dir.path().to_owned()).await {
                    tracing::warn!(dir = %dir.path().display(), error = %rm, "cannot remove a half-made sandbox directory");
                }
                return Err(match err {
                    StartError::Files(source) => {
                        io_error(session, "making the sandbox directory")(source)
                    }
                    StartError::Spawn(err) => ProviderError::Provision {
                        session_id: spec.session_id.clone(),
                        message: format!("cannot start {}: {err}", self.runnerd.display()),
                    },
                });
            }
        };

        let ready = match launch::wait_ready(&mut launched, &dir, &token, deadline).await {
            Ok(ready) => ready,
            Err(message) => {
                let tail = dir.log_tail(LOG_TAIL_BYTES);
                self.abandon(launched.child, &dir).await;
                return Err(ProviderError::Provision {
                    session_id: spec.session_id.clone(),
                    message: format!(
                        "{message} (start timeout {:?}); runnerd.log ends with:\n{tail}",
                        self.start_timeout
                    ),
                });
            }
        };

        let state = SandboxState {
            format: STATE_FORMAT,
            provider_version: env!("CARGO_PKG_VERSION").to_owned(),
            id: id.clone(),
            pid: ready.pid,
            endpoint: ready.endpoint,
            token_sha256: token_digest(&token),
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            created_at_ms,
            expires_at_ms: spec.expires_at_ms,
            labels: spec.labels.clone(),
            network: spec.network,
            confined: self.bwrap.is_some(),
        };
        if let Err(source) = state.write(&dir.state()) {
            self.abandon(launched.child, &dir).await;
            return Err(io_error(session, "writing the sandbox state file")(source));
        }
        self.reaper.reap(launched.child);
        tracing::info!(
            sandbox = %id,
            session,
            pid = state.pid,
            endpoint = %state.endpoint,
            confined = state.confined,
            "sandbox provisioned"
        );
        Ok(sandbox_of(state, token))
    }
}

/// An [`ProviderError::Io`] maker for a step of provisioning `session`.
fn io_error(session: &str, doing: &str) -> impl FnOnce(io::Error) -> ProviderError {
    let context = format!("{doing} for session {session}");
    move |source| ProviderError::Io { context, source }
}

/// Why a sandbox could not be started: its files, or runnerd's spawn.
enum StartError {
    Files(io::Error),
    Spawn(io::Error),
}

/// Makes the sandbox directory and the files runnerd is started with.
fn prepare(dir: &SandboxDir, token: &str, env: &[u8]) -> io::Result<()> {
    dir.create()?;
    write_new_private(&dir.token(), token.as_bytes())?;
    write_new_private(&dir.env(), env)
}
