//! Deleting a sandbox's objects: its Pod, Secret and NetworkPolicy. A 404
//! is success (already gone), so every step is idempotent.

use kube::Api;
use kube::api::{DeleteParams, PropagationPolicy};
use serde::de::DeserializeOwned;

use super::provision::describe;
use super::{CLEANUP_TIMEOUT, Inner, is_not_found, is_sandbox_id};
use crate::provider::{ProviderError, Sandbox};

impl Inner {
    /// Destroys a sandbox: the pod gets its termination grace (runnerd
    /// ends its execs), the secret and policy go at once.
    pub(super) async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        let io = |message: String| ProviderError::Io {
            context: format!("destroying sandbox {:?}", sandbox.id),
            source: std::io::Error::other(message),
        };
        if !is_sandbox_id(&sandbox.id) {
            return Err(io("not a cluster sandbox id".to_owned()));
        }
        // Its pod's end is not news to the watch from here on.
        self.registry.remove(&sandbox.id);
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let results = [
            delete(&self.pods, &sandbox.id, &params).await,
            delete(&self.secrets, &sandbox.id, &params).await,
            delete(&self.policies, &sandbox.id, &params).await,
        ];
        let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        if !errors.is_empty() {
            return Err(io(errors.join("; ")));
        }
        tracing::info!(sandbox = %sandbox.id, session = %sandbox.session_id, "sandbox destroyed");
        Ok(())
    }

    /// Deletes whatever exists of sandbox `id` at once (no grace: nothing
    /// in it is worth waiting for), logging failures. For provisioning
    /// that failed and for adoption.
    pub(super) async fn clean_up(&self, id: &str) {
        self.registry.remove(id);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let results = [
            ("pod", delete(&self.pods, id, &params).await),
            ("secret", delete(&self.secrets, id, &params).await),
            ("network policy", delete(&self.policies, id, &params).await),
        ];
        for (what, result) in results {
            if let Err(err) = result {
                tracing::warn!(sandbox = %id, error = %err, "cannot delete the sandbox's {what}");
            }
        }
    }
}

/// Deletes object `name`; gone already is fine.
async fn delete<K>(api: &Api<K>, name: &str, params: &DeleteParams) -> Result<(), String>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(CLEANUP_TIMEOUT, api.delete(name, params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) if is_not_found(&err) => Ok(()),
        Ok(Err(err)) => Err(format!("deleting {name}: {}", describe(&err))),
        Err(_) => Err(format!(
            "deleting {name}: no answer within {CLEANUP_TIMEOUT:?}"
        )),
    }
}
