//! Provisioning: create the Secret (and NetworkPolicy) then the Pod, wait
//! until the pod runs and runnerd answers `health`, all within ONE budget
//! (a slow schedule or image pull leaves less time for health, never a
//! fresh timeout). A failure on the way deletes everything created before
//! the error is returned.

use crate::provider::detached::InFlight;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use paddock_runnerd::client::Client;
use tokio::time::Instant;

use super::manifest::{self, SandboxParams};
use super::watch::{PodState, classify, scheduled};
use super::{Inner, KIND, new_sandbox_id, new_token};
use crate::clock::unix_ms;
use crate::provider::{NetworkPolicy, ProviderError, Sandbox, SandboxSpec};

/// Longest pause between two looks at a starting pod.
const MAX_POLL: Duration = Duration::from_millis(250);
/// Longest pause between two `health` tries.
const MAX_HEALTH_PAUSE: Duration = Duration::from_millis(200);

impl Inner {
    /// Provisions a sandbox for `spec`. Not cancellation-safe on its own
    /// (an abandoned pod would be left behind): the provider runs it in a
    /// task of its own.
    pub(super) async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        let started = Instant::now();
        let budget = self.config.start_timeout();
        let deadline = started + budget;
        let session = spec.session_id.as_str();
        let failed = |message: String| ProviderError::Provision {
            session_id: spec.session_id.clone(),
            message,
        };
        let random = |what: &str| {
            let what = what.to_owned();
            move |e: getrandom::Error| ProviderError::Io {
                context: format!("making a {what} for session {session}"),
                source: std::io::Error::other(e.to_string()),
            }
        };
        let id = new_sandbox_id().map_err(random("sandbox id"))?;
        let token = new_token().map_err(random("runnerd token"))?;
        let created_at_ms = unix_ms();
        let params = SandboxParams {
            config: &self.config,
            namespace: &self.namespace,
            id: &id,
            spec,
            token: &token,
            created_at_ms,
        };
        let _provisioning = InFlight::enter(&self.provisioning, &id);
        if spec.network == NetworkPolicy::None
            && !self.config.network_policy
            && !self.warned_network.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "network policy `none` is not enforced: sandbox.cluster.network_policy is off, so \
                 sandbox pods keep the cluster's default network access"
            );
        }

        if let Err(message) = self.create(&params, deadline).await {
            self.clean_up(&id).await;
            return Err(failed(format!("pod {id}: {message}")));
        }
        let endpoint = match self.wait_ready(&id, &token, started, deadline).await {
            Ok(endpoint) => endpoint,
            Err(message) => {
                self.clean_up(&id).await;
                return Err(failed(format!(
                    "pod {id} in namespace {}: {message} (start timeout {budget:?}); the pod was deleted",
                    self.namespace
                )));
            }
        };
        self.registry.insert(&id);
        tracing::info!(
            sandbox = %id,
            session,
            namespace = %self.namespace,
            %endpoint,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sandbox provisioned"
        );
        Ok(Sandbox {
            id,
            session_id: spec.session_id.clone(),
            owner: spec.owner.clone(),
            provider: KIND.to_owned(),
            endpoint,
            token,
            created_at_ms,
            expires_at_ms: spec.expires_at_ms,
            labels: spec.labels.clone(),
        })
    }

    /// Creates the Secret, the NetworkPolicy (if any), then the Pod (so
    /// runnerd never runs without its policy), then makes the pod own the
    /// other two.
    async fn create(&self, params: &SandboxParams<'_>, deadline: Instant) -> Result<(), String> {
        let post = PostParams::default();
        let secret = manifest::secret(params);
        within(
            deadline,
            "creating the secret",
            self.secrets.create(&post, &secret),
        )
        .await?;
        let policy = manifest::network_policy(params);
        let with_policy = policy.is_some();
        if let Some(policy) = policy {
            within(
                deadline,
                "creating the network policy",
                self.policies.create(&post, &policy),
            )
            .await?;
        }
        let pod = manifest::pod(params);
        let pod = within(deadline, "creating the pod", self.pods.create(&post, &pod)).await?;
        // Without an owner the objects are still deleted by `destroy` and
        // by adoption's sweep of orphans: a failure here is not fatal.
        let Some(uid) = pod.metadata.uid.as_deref() else {
            tracing::warn!(sandbox = %params.id, "the created pod has no uid; its secret stays unowned");
            return Ok(());
        };
        let patch = Patch::Merge(manifest::owned_by_pod(params.id, uid));
        let patch_params = PatchParams::default();
        let secret = within(
            deadline,
            "making the pod own its secret",
            self.secrets.patch(params.id, &patch_params, &patch),
        )
        .await;
        if let Err(err) = secret {
            tracing::warn!(sandbox = %params.id, error = %err, "the secret is not owned by its pod");
        }
        if with_policy {
            let policy = within(
                deadline,
                "making the pod own its network policy",
                self.policies.patch(params.id, &patch_params, &patch),
            )
            .await;
            if let Err(err) = policy {
                tracing::warn!(sandbox = %params.id, error = %err, "the network policy is not owned by its pod");
            }
        }
        Ok(())
    }

    /// Waits until pod `id` runs, then until its runnerd answers `health`
    /// with `token`, both before `deadline`; returns runnerd's endpoint.
    ///
    /// Each phase looks one last time at the deadline, so no budget is
    /// left unused; a look the deadline cuts short adds nothing, and the
    /// error reports what the last complete one saw.
    async fn wait_ready(
        &self,
        id: &str,
        token: &str,
        started: Instant,
        deadline: Instant,
    ) -> Result<String, String> {
        let mut pause = Duration::from_millis(20);
        let mut scheduled_after = None;
        let mut pending = None;
        let ip = loop {
            match tokio::time::timeout_at(deadline, self.pods.get(id)).await {
                Ok(Ok(pod)) => {
                    if scheduled_after.is_none() && scheduled(&pod) {
                        scheduled_after = Some(started.elapsed());
                    }
                    match classify(&pod) {
                        PodState::Running(ip) => break ip,
                        PodState::Dead(why) => return Err(format!("the pod failed: {why}")),
                        PodState::Pending(why) => pending = why,
                    }
                }
                Ok(Err(err)) => return Err(format!("reading the pod: {}", describe(&err))),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                let stage = match scheduled_after {
                    Some(after) => format!("was scheduled after {after:.1?} but did not start"),
                    None => "was not scheduled".to_owned(),
                };
                let why = pending.map(|w| format!(": {w}")).unwrap_or_default();
                return Err(format!("the pod {stage} in time{why}"));
            }
            tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            pause = (pause * 2).min(MAX_POLL);
        };
        let running_after = started.elapsed();
        let endpoint = endpoint(ip, self.config.runnerd_port);
        let client = Client::new(endpoint.clone(), token);
        let mut pause = Duration::from_millis(5);
        let mut last_error = "no answer".to_owned();
        loop {
            match tokio::time::timeout_at(deadline, client.health()).await {
                Ok(Ok(_)) => return Ok(endpoint),
                // An answer that is an error (a refused token) will not change.
                Ok(Err(err)) if err.status().is_some() => {
                    return Err(format!("runnerd at {endpoint} refused health: {err}"));
                }
                Ok(Err(err)) => last_error = err.to_string(),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the pod ran after {running_after:.1?}, but runnerd at {endpoint} did not \
                     answer health in the {:.1?} left: {last_error}",
                    deadline.saturating_duration_since(started + running_after)
                ));
            }
            tokio::time::sleep_until((Instant::now() + pause).min(deadline)).await;
            pause = (pause * 2).min(MAX_HEALTH_PAUSE);
            // runnerd may have exited: its pod then says why. A look that
            // fails is no verdict; health is.
            if let Ok(Ok(pod)) = tokio::time::timeout_at(deadline, self.pods.get(id)).await
                && let PodState::Dead(why) = classify(&pod)
            {
                return Err(format!("the pod failed while runnerd started: {why}"));
            }
        }
    }
}

/// runnerd's base URL at `ip` (bracketed when IPv6).
pub(super) fn endpoint(ip: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(ip, port))
}

/// Runs an API call with what is left of the budget.
async fn within<T>(
    deadline: Instant,
    doing: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout_at(deadline, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{doing}: {}", describe(&err))),
        Err(_) => Err(format!("{doing}: the API server did not answer in time")),
    }
}

/// A kube error in a sentence: the API server's own message when it sent
/// one.
pub(super) fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!(
            "the API server refused ({} {}): {}",
            status.code, status.reason, status.message
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_endpoints_are_bracketed() {
        assert_eq!(
            endpoint("10.0.0.7".parse().unwrap(), 7420),
            "http://10.0.0.7:7420"
        );
        assert_eq!(
            endpoint("fd00::7".parse().unwrap(), 7420),
            "http://[fd00::7]:7420"
        );
    }
}
