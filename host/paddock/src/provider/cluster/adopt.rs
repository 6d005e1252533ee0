//! Re-adoption: what a new host process finds in its namespace.
//!
//! Every pod with the provider's labels is examined on its own
//! (concurrently). It is adopted only when everything agrees: its
//! annotations name a session, an owner and an expiry still ahead, the pod
//! runs with an IP, its Secret holds a token, and runnerd answers `health`
//! with it. Anything else is logged and deleted. Secrets and network
//! policies left without a pod (a provision a crash interrupted before
//! the pod owned them) are deleted too.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use paddock_runnerd::client::Client;

use super::manifest::{
    ANN_CREATED, ANN_EXPIRES, ANN_LABELS, ANN_OWNER, ANN_SESSION, CONTAINER, SECRET_TOKEN,
    managed_selector,
};
use super::provision::{describe, endpoint};
use super::watch::{PodState, classify};
use super::{Inner, KIND, is_sandbox_id};
use crate::clock::unix_ms;
use crate::provider::{ProviderError, Sandbox};

/// The longest `health` may take to answer during adoption.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest one API call may take during adoption: the host's start
/// waits for it, and the client's own read timeout is minutes.
const API_TIMEOUT: Duration = Duration::from_secs(30);

impl Inner {
    /// Records a new expiry on the pod (its annotation is what a restarted
    /// host adopts by).
    pub(super) async fn extend(
        &self,
        sandbox: &Sandbox,
        expires_at_ms: u64,
    ) -> Result<(), ProviderError> {
        let patch = serde_json::json!({
            "metadata": { "annotations": { ANN_EXPIRES: expires_at_ms.to_string() } }
        });
        api(self
            .pods
            .patch(&sandbox.id, &PatchParams::default(), &Patch::Merge(&patch)))
        .await
        .map(|_| ())
        .map_err(|message| ProviderError::Io {
            context: format!("recording the new expiry of sandbox {}", sandbox.id),
            source: std::io::Error::other(message),
        })
    }

    pub(super) async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        let unavailable = |what: &str, err: String| ProviderError::Unavailable {
            provider: KIND,
            message: format!("listing the {what} of namespace {}: {err}", self.namespace),
        };
        let selector = ListParams::default().labels(&managed_selector());
        let pods = api(self.pods.list(&selector))
            .await
            .map_err(|e| unavailable("sandbox pods", e))?;
        let in_flight = self
            .provisioning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let pods: Vec<Pod> = pods
            .items
            .into_iter()
            .filter(|pod| {
                pod.metadata
                    .name
                    .as_deref()
                    .is_some_and(|name| is_sandbox_id(name) && !in_flight.contains(name))
            })
            .collect();
        let names: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let examined = join_all(pods.iter().map(|pod| self.examine(pod))).await;
        let adopted: Vec<Sandbox> = examined.into_iter().flatten().collect();
        for sandbox in &adopted {
            self.registry.insert(&sandbox.id);
        }

        // Secrets and policies whose pod is gone.
        let mut orphans = HashSet::new();
        match api(self.secrets.list_metadata(&selector)).await {
            Ok(list) => orphans.extend(list.items.into_iter().filter_map(|s| s.metadata.name)),
            Err(err) => tracing::warn!(error = %err, "cannot list sandbox secrets"),
        }
        match api(self.policies.list_metadata(&selector)).await {
            Ok(list) => orphans.extend(list.items.into_iter().filter_map(|p| p.metadata.name)),
            Err(err) => {
                tracing::warn!(error = %err, "cannot list sandbox network policies")
            }
        }
        let in_flight = self
            .provisioning
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for name in orphans {
            if !is_sandbox_id(&name) || names.contains(&name) || in_flight.contains(&name) {
                continue;
            }
            // A provision that finished since the pods were listed has a
            // pod by now: look again before deleting.
            match api(self.pods.get_opt(&name)).await {
                Ok(None) => {
                    tracing::info!(sandbox = %name, "deleting the secret or network policy of a pod that is gone");
                    self.clean_up(&name).await;
                }
                Ok(Some(_)) => {}
                Err(err) => {
                    tracing::warn!(sandbox = %name, error = %err, "cannot check for the pod of a secret or network policy")
                }
            }
        }
        tracing::info!(
            adopted = adopted.len(),
            examined = names.len(),
            namespace = %self.namespace,
            "cluster sandboxes re-adopted"
        );
        Ok(adopted)
    }

    /// Adopts `pod`, or deletes it (and its secret and policy) and returns
    /// `None`.
    async fn examine(&self, pod: &Pod) -> Option<Sandbox> {
        let id = pod.metadata.name.as_deref()?;
        match self.check(id, pod).await {
            Ok(sandbox) => {
                tracing::info!(sandbox = %id, session = %sandbox.session_id, endpoint = %sandbox.endpoint, "sandbox re-adopted");
                Some(sandbox)
            }
            Err(reason) => {
                tracing::warn!(sandbox = %id, %reason, "sandbox cannot be adopted; deleting it");
                self.clean_up(id).await;
                None
            }
        }
    }

    /// The sandbox `pod` is, if it can be adopted; else why not.
    async fn check(&self, id: &str, pod: &Pod) -> Result<Sandbox, String> {
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let text = |key: &str| {
            annotations
                .get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| format!("annotation {key} is missing"))
        };
        let number = |key: &str| {
            text(key)?
                .parse::<u64>()
                .map_err(|e| format!("annotation {key} is not a number: {e}"))
        };
        let session_id = text(ANN_SESSION)?;
        let owner = text(ANN_OWNER)?;
        let created_at_ms = number(ANN_CREATED)?;
        let expires_at_ms = number(ANN_EXPIRES)?;
        // The session's own labels (what provider plugins scope by); an
        // unreadable set is not a reason to lose a live sandbox.
        let labels = annotations
            .get(ANN_LABELS)
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        if unix_ms() >= expires_at_ms {
            return Err(format!(
                "session {session_id} expired (at {expires_at_ms} ms) while no host ran"
            ));
        }
        let ip = match classify(pod) {
            PodState::Running(ip) => ip,
            PodState::Dead(why) => return Err(format!("its pod died: {why}")),
            PodState::Pending(why) => {
                return Err(format!(
                    "its pod never started (a provision that did not finish){}",
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ));
            }
        };
        let secret = api(self.secrets.get(id))
            .await
            .map_err(|e| format!("cannot read its secret: {e}"))?;
        let token = secret
            .data
            .as_ref()
            .and_then(|data| data.get(SECRET_TOKEN))
            .map(|bytes| String::from_utf8_lossy(&bytes.0).trim().to_owned())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| "its secret holds no token".to_owned())?;
        // The port the pod was made with: the config may have changed since.
        let port = runnerd_port(pod).unwrap_or(self.config.runnerd_port);
        let endpoint = endpoint(ip, port);
        let client = Client::new(endpoint.clone(), token.clone());
        match tokio::time::timeout(HEALTH_TIMEOUT, client.health()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                return Err(format!(
                    "runnerd at {endpoint} does not answer health: {err}"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "runnerd at {endpoint} did not answer health within {HEALTH_TIMEOUT:?}"
                ));
            }
        }
        Ok(Sandbox {
            id: id.to_owned(),
            session_id,
            owner,
            provider: KIND.to_owned(),
            endpoint,
            token,
            created_at_ms,
            expires_at_ms,
            labels,
        })
    }
}

/// Runs an API call for adoption, bounded by [`API_TIMEOUT`].
async fn api<T>(call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, String> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(describe(&err)),
        Err(_) => Err(format!(
            "the API server did not answer within {API_TIMEOUT:?}"
        )),
    }
}

/// The port runnerd's container declares (named `runnerd`).
fn runnerd_port(pod: &Pod) -> Option<u16> {
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == CONTAINER)?;
    let port = container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("runnerd"))?;
    u16::try_from(port.container_port).ok()
}
