//! What every provider that makes sandboxes itself needs around a
//! provision: running it to the end even when its caller stops waiting,
//! and telling `adopt` which sandboxes are still being made.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{ProviderError, Sandbox, SandboxSpec};

/// The part of a provider that makes and unmakes one sandbox.
pub(crate) trait MakesSandboxes: Send + Sync + 'static {
    fn make(
        &self,
        spec: &SandboxSpec,
    ) -> impl Future<Output = Result<Sandbox, ProviderError>> + Send;

    fn unmake(&self, sandbox: &Sandbox) -> impl Future<Output = Result<(), ProviderError>> + Send;
}

/// Provisions in a task of its own: when the caller stops waiting (its
/// request was cancelled), the provision still finishes and the sandbox is
/// destroyed again, instead of one being left behind half made.
pub(crate) async fn provision_detached<P: MakesSandboxes>(
    maker: Arc<P>,
    spec: &SandboxSpec,
) -> Result<Sandbox, ProviderError> {
    let owned = spec.clone();
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let result = maker.make(&owned).await;
        if let Err(Ok(sandbox)) = tx.send(result) {
            tracing::warn!(sandbox = %sandbox.id, session = %sandbox.session_id, "provisioning finished after its caller stopped waiting; destroying the sandbox");
            if let Err(err) = maker.unmake(&sandbox).await {
                tracing::warn!(sandbox = %sandbox.id, error = %err, "cannot destroy an unwanted sandbox");
            }
        }
    });
    rx.await.unwrap_or_else(|_| {
        Err(ProviderError::Provision {
            session_id: spec.session_id.clone(),
            message: "the provisioning task failed".to_owned(),
        })
    })
}

/// Membership in a provider's set of sandboxes being provisioned, for as
/// long as the value lives (`adopt` leaves those alone).
pub(crate) struct InFlight<'a> {
    set: &'a Mutex<HashSet<String>>,
    id: String,
}

impl<'a> InFlight<'a> {
    pub(crate) fn enter(set: &'a Mutex<HashSet<String>>, id: &str) -> Self {
        set.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned());
        Self {
            set,
            id: id.to_owned(),
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}
