//! The registry of sandboxes the provider holds, kept current by a watch
//! on its pods (kube's `runtime::watcher`: list, then watch, re-listing
//! after the watch breaks, with backoff).
//!
//! A sandbox enters the registry when it is provisioned or adopted and
//! leaves it when destroyed. When the watch sees its pod die (failed,
//! evicted, its container ended, or deleted by someone else) it is marked
//! lost, once, with a reason: [`Registry::lost`] answers for it and a
//! [`LostSandbox`] goes to every subscriber.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::broadcast;

use super::manifest::{CONTAINER, managed_selector};

/// How many lost sandboxes a slow subscriber may fall behind by.
const LOST_CAPACITY: usize = 256;

/// A sandbox the watch saw die.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostSandbox {
    /// The sandbox id ([`crate::provider::Sandbox::id`]).
    pub id: String,
    /// What happened to its pod.
    pub reason: String,
}

/// The provider's sandboxes and which of them died.
#[derive(Debug)]
pub(super) struct Registry {
    state: Mutex<State>,
    lost_tx: broadcast::Sender<LostSandbox>,
}

#[derive(Debug, Default)]
struct State {
    /// Handed out, not destroyed, not seen dead.
    live: HashSet<String>,
    /// Handed out, not destroyed, seen dead: id → reason.
    lost: HashMap<String, String>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            lost_tx: broadcast::channel(LOST_CAPACITY).0,
        }
    }
}

impl Registry {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A sandbox was handed out.
    pub fn insert(&self, id: &str) {
        let mut state = self.state();
        state.lost.remove(id);
        state.live.insert(id.to_owned());
    }

    /// A sandbox is being destroyed: its pod's end is no news.
    pub fn remove(&self, id: &str) {
        let mut state = self.state();
        state.live.remove(id);
        state.lost.remove(id);
    }

    pub fn lost(&self, id: &str) -> Option<String> {
        self.state().lost.get(id).cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LostSandbox> {
        self.lost_tx.subscribe()
    }

    fn live(&self) -> Vec<String> {
        self.state().live.iter().cloned().collect()
    }

    /// Marks `id` lost if it is live; a pod the provider does not hold
    /// (being provisioned, or destroyed) is ignored.
    fn mark_lost(&self, id: &str, reason: String) {
        {
            let mut state = self.state();
            if !state.live.remove(id) {
                return;
            }
            state.lost.insert(id.to_owned(), reason.clone());
        }
        tracing::warn!(sandbox = %id, %reason, "sandbox lost: its pod died");
        // No receiver is fine: `lost()` still answers.
        let _ = self.lost_tx.send(LostSandbox {
            id: id.to_owned(),
            reason,
        });
    }
}

/// Runs the watch until the task is aborted (its provider was dropped).
pub(super) async fn run(pods: Api<Pod>, registry: Arc<Registry>) {
    let config = watcher::Config::default().labels(&managed_selector());
    let mut events = watcher(pods.clone(), config).default_backoff().boxed();
    // Names listed since the last (re-)list began; `None` between lists.
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
            Ok(watcher::Event::InitApply(pod)) => {
                if let (Some(listed), Some(name)) = (listed.as_mut(), pod.metadata.name.clone()) {
                    listed.insert(name);
                }
                seen(&registry, &pod);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(listed) = listed.take() {
                    vanished(&pods, &registry, &listed).await;
                }
            }
            Ok(watcher::Event::Apply(pod)) => seen(&registry, &pod),
            Ok(watcher::Event::Delete(pod)) => {
                if let Some(name) = &pod.metadata.name {
                    registry.mark_lost(name, "its pod was deleted".to_owned());
                }
            }
            Err(err) => tracing::warn!(error = %err, "the watch on sandbox pods failed; retrying"),
        }
    }
    tracing::debug!("the watch on sandbox pods ended");
}

fn seen(registry: &Registry, pod: &Pod) {
    if let (Some(name), PodState::Dead(reason)) = (&pod.metadata.name, classify(pod)) {
        registry.mark_lost(name, reason);
    }
}

/// After a (re-)list: live sandboxes whose pod was not listed died while
/// the watch was down. Each is checked once more, since a pod created
/// after the list began is rightly missing from it.
async fn vanished(pods: &Api<Pod>, registry: &Registry, listed: &HashSet<String>) {
    for id in registry.live() {
        if listed.contains(&id) {
            continue;
        }
        match pods.get_opt(&id).await {
            Ok(None) => registry.mark_lost(&id, "its pod no longer exists".to_owned()),
            Ok(Some(pod)) => seen(registry, &pod),
            Err(err) => {
                tracing::debug!(sandbox = %id, error = %err, "cannot check a sandbox's pod")
            }
        }
    }
}

/// Where a sandbox's pod is in its life, as far as the provider cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PodState {
    /// Not running yet; why, when the pod says.
    Pending(Option<String>),
    /// runnerd's container runs and the pod has an IP.
    Running(IpAddr),
    /// It will not run (again): why.
    Dead(String),
}

/// Waiting reasons of a container that will not start without someone
/// changing the pod or the image. `ErrImagePull` is not among them: the
/// kubelet retries it, and it turns into `ImagePullBackOff` if it persists.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// Reads a pod's state from its status.
pub(super) fn classify(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Dead("its pod is being deleted".to_owned());
    }
    let Some(status) = &pod.status else {
        return PodState::Pending(None);
    };
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER);
    let phase = status.phase.as_deref().unwrap_or("Pending");
    if phase == "Failed" || phase == "Succeeded" {
        let mut why = format!("pod phase {phase}");
        for part in [&status.reason, &status.message].into_iter().flatten() {
            why.push_str(": ");
            why.push_str(part);
        }
        if let Some(ended) = container.and_then(terminated) {
            why.push_str("; ");
            why.push_str(&ended);
        }
        return PodState::Dead(why);
    }
    if let Some(container) = container {
        if let Some(ended) = terminated(container) {
            return PodState::Dead(ended);
        }
        if let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let reason = waiting.reason.as_deref().unwrap_or("waiting");
            let message = waiting.message.as_deref().map(|m| format!(": {m}"));
            let why = format!(
                "container {CONTAINER} {reason}{}",
                message.unwrap_or_default()
            );
            if FATAL_WAITING.contains(&reason) {
                return PodState::Dead(why);
            }
            return PodState::Pending(Some(why));
        }
    }
    let running = container
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some());
    if phase == "Running" && running {
        if let Some(ip) = status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()) {
            return PodState::Running(ip);
        }
        return PodState::Pending(Some("running, but no pod IP yet".to_owned()));
    }
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(condition) = unschedulable {
        let reason = condition.reason.as_deref().unwrap_or("not scheduled");
        let message = condition.message.as_deref().unwrap_or("");
        return PodState::Pending(Some(format!("{reason}: {message}")));
    }
    PodState::Pending(None)
}

/// Whether the pod has been placed on a node.
pub(super) fn scheduled(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| s.node_name.is_some())
        || pod
            .status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .any(|c| c.type_ == "PodScheduled" && c.status == "True")
}

/// How runnerd's container ended, if it did.
fn terminated(container: &ContainerStatus) -> Option<String> {
    let t = container.state.as_ref()?.terminated.as_ref()?;
    let mut why = format!("container {CONTAINER} exited with code {}", t.exit_code);
    if let Some(signal) = t.signal {
        why.push_str(&format!(" (signal {signal})"));
    }
    for part in [&t.reason, &t.message].into_iter().flatten() {
        why.push_str(": ");
        why.push_str(part);
    }
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paddock-0123456789abcdef"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_running_pod_with_an_ip() {
        let p = pod(serde_json::json!({
            "phase": "Running", "podIP": "10.1.2.3",
            "containerStatuses": [{"name": "runnerd", "ready": true, "restartCount": 0,
              "image": "i", "imageID": "", "state": {"running": {}}}],
        }));
        assert_eq!(classify(&p), PodState::Running("10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn image_pull_backoff_is_fatal_err_image_pull_is_not() {
        let waiting = |reason: &str| {
            pod(serde_json::json!({
                "phase": "Pending",
                "containerStatuses": [{"name": "runnerd", "ready": false, "restartCount": 0,
                  "image": "i", "imageID": "",
                  "state": {"waiting": {"reason": reason, "message": "no such image"}}}],
            }))
        };
        assert!(
            matches!(classify(&waiting("ImagePullBackOff")), PodState::Dead(m) if m.contains("ImagePullBackOff: no such image"))
        );
        assert!(matches!(
            classify(&waiting("ErrImagePull")),
            PodState::Pending(Some(_))
        ));
    }

    #[test]
    fn unschedulable_is_pending_with_the_reason() {
        let p = pod(serde_json::json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
              "message": "0/3 nodes are available"}],
        }));
        assert_eq!(
            classify(&p),
            PodState::Pending(Some("Unschedulable: 0/3 nodes are available".into()))
        );
        assert!(!scheduled(&p));
    }

    #[test]
    fn a_failed_pod_says_how_runnerd_ended() {
        let p = pod(serde_json::json!({
            "phase": "Failed", "reason": "Evicted", "message": "ephemeral storage",
            "containerStatuses": [{"name": "runnerd", "ready": false, "restartCount": 0,
              "image": "i", "imageID": "",
              "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}],
        }));
        let PodState::Dead(why) = classify(&p) else {
            panic!("not dead")
        };
        assert!(why.contains("Evicted") && why.contains("code 137"), "{why}");
    }

    #[test]
    fn the_registry_reports_a_live_sandbox_once() {
        let registry = Registry::default();
        let mut rx = registry.subscribe();
        registry.mark_lost("a", "not held".into());
        registry.insert("a");
        registry.mark_lost("a", "died".into());
        registry.mark_lost("a", "died again".into());
        assert_eq!(registry.lost("a").as_deref(), Some("died"));
        assert_eq!(rx.try_recv().unwrap().reason, "died");
        assert!(rx.try_recv().is_err());
        registry.remove("a");
        assert_eq!(registry.lost("a"), None);
    }
}
