//! `[sandbox.cluster]`: the cluster provider's settings, plain serde data
//! that rejects unknown keys and depends on no client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the cluster provider (`[sandbox.cluster]`).
///
/// Every key is optional; the defaults suit a cluster where the operator
/// made a namespace for sandboxes and loaded the sandbox image on its nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Namespace of the sandboxes' pods, secrets and network policies.
    /// Default: the namespace of the kubeconfig context, or in a pod the
    /// host's own namespace.
    pub namespace: Option<String>,
    /// The sandbox image: anything that has runnerd at
    /// [`runnerd_path`](Self::runnerd_path). Default
    /// [`ClusterConfig::DEFAULT_IMAGE`].
    pub image: String,
    /// `imagePullPolicy` of the sandbox container. Default `IfNotPresent`.
    pub image_pull_policy: String,
    /// runnerd inside the image; it runs as the container's PID 1.
    pub runnerd_path: String,
    /// The port runnerd listens on in every pod (the host connects to the
    /// pod IP on it). Default [`ClusterConfig::DEFAULT_RUNNERD_PORT`].
    pub runnerd_port: u16,
    /// `serviceAccountName` of the pods. Its token is never mounted
    /// (`automountServiceAccountToken: false`); the account matters only
    /// for policies bound to it (PSA, image pull secrets). Default: the
    /// namespace's `default`.
    pub service_account: Option<String>,
    /// `runtimeClassName`, e.g. `gvisor` or `kata` for a sandbox kernel
    /// of its own. Default: the cluster's default runtime.
    pub runtime_class: Option<String>,
    /// `nodeSelector` of the pods.
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations` of the pods (e.g. to land on tainted sandbox nodes).
    pub tolerations: Vec<TolerationConfig>,
    /// A kubeconfig file to use. Default: in a pod the in-cluster config,
    /// else the default kubeconfig (`KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use. Default: its current context.
    pub context: Option<String>,
    /// One budget, in seconds, for a pod to be scheduled, pull its image,
    /// start and answer `health`. Default
    /// [`ClusterConfig::DEFAULT_START_TIMEOUT`]: an image pull on a cold
    /// node takes most of it.
    pub start_timeout_secs: u64,
    /// Whether a sandbox whose network is `none` gets a NetworkPolicy of
    /// its own that denies all egress. Default true. Only a CNI that
    /// enforces NetworkPolicy (Calico, Cilium, ...) makes it effective.
    pub network_policy: bool,
    /// Pods allowed to reach runnerd through such a policy, by labels
    /// (the host's own pods). Empty: any pod of
    /// `ingress_from_namespace_labels`, or any source at all when both are
    /// empty (runnerd still wants its token).
    pub ingress_from_pod_labels: BTreeMap<String, String>,
    /// Namespaces whose pods may reach runnerd through such a policy, by
    /// labels. Empty: the sandbox's own namespace when
    /// `ingress_from_pod_labels` is set.
    pub ingress_from_namespace_labels: BTreeMap<String, String>,
}

/// One toleration, in the config's snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TolerationConfig {
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    pub operator: Option<String>,
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; none matches all.
    pub effect: Option<String>,
    pub toleration_seconds: Option<i64>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            namespace: None,
            image: Self::DEFAULT_IMAGE.to_owned(),
            image_pull_policy: Self::DEFAULT_IMAGE_PULL_POLICY.to_owned(),
            runnerd_path: Self::DEFAULT_RUNNERD_PATH.to_owned(),
            runnerd_port: Self::DEFAULT_RUNNERD_PORT,
            service_account: None,
            runtime_class: None,
            node_selector: BTreeMap::new(),
            tolerations: Vec::new(),
            kubeconfig: None,
            context: None,
            start_timeout_secs: Self::DEFAULT_START_TIMEOUT.as_secs(),
            network_policy: true,
            ingress_from_pod_labels: BTreeMap::new(),
            ingress_from_namespace_labels: BTreeMap::new(),
        }
    }
}

impl ClusterConfig {
    /// The image the project's sandbox recipe (`host/sandbox-image`)
    /// builds, under the name podman gives it; loaded onto nodes, not
    /// pulled (hence `IfNotPresent`).
    pub const DEFAULT_IMAGE: &str = "localhost/paddock-sandbox:latest";
    /// Pull only what a node lacks: sandbox images are often loaded onto
    /// nodes, not pulled from a registry.
    pub const DEFAULT_IMAGE_PULL_POLICY: &str = "IfNotPresent";
    /// Where the sandbox image installs runnerd.
    pub const DEFAULT_RUNNERD_PATH: &str = "/usr/local/bin/runnerd";
    /// A fixed port: every pod has its own IP, so all may use the same one.
    pub const DEFAULT_RUNNERD_PORT: u16 = 7420;
    /// Two minutes: scheduling plus an image pull on a node that never ran
    /// a sandbox.
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

    /// The start budget as a duration.
    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    /// Checks what serde cannot; the error names the key (under
    /// `sandbox.cluster.`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: String| Err((format!("sandbox.cluster.{key}"), message));
        if let Some(ns) = &self.namespace
            && !is_dns_label(ns)
        {
            return bad(
                "namespace",
                format!("{ns:?} is not a namespace name (lowercase letters, digits, '-')"),
            );
        }
        if self.image.trim().is_empty() {
            return bad("image", "must not be empty".into());
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            return bad(
                "image_pull_policy",
                format!(
                    "{:?} is not one of Always, IfNotPresent, Never",
                    self.image_pull_policy
                ),
            );
        }
        if !self.runnerd_path.starts_with('/') {
            return bad(
                "runnerd_path",
                "must be an absolute path in the image".into(),
            );
        }
        if self.runnerd_port == 0 {
            return bad("runnerd_port", "must be a port number, not 0".into());
        }
        if self.start_timeout_secs == 0 {
            return bad("start_timeout_secs", "must be at least 1".into());
        }
        for (i, t) in self.tolerations.iter().enumerate() {
            if let Some(op) = &t.operator
                && op != "Equal"
                && op != "Exists"
            {
                return bad(
                    &format!("tolerations[{i}].operator"),
                    format!("{op:?} is not Equal or Exists"),
                );
            }
            if let Some(effect) = &t.effect
                && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect.as_str())
            {
                return bad(
                    &format!("tolerations[{i}].effect"),
                    format!("{effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
                );
            }
        }
        Ok(())
    }
}

/// An RFC 1123 label: what Kubernetes accepts as a namespace name.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ClusterConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let config = ClusterConfig {
            namespace: Some("Not_A_Name".into()),
            ..ClusterConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().0,
            "sandbox.cluster.namespace"
        );
        let config = ClusterConfig {
            tolerations: vec![TolerationConfig {
                key: Some("k".into()),
                operator: Some("Maybe".into()),
                value: None,
                effect: None,
                toleration_seconds: None,
            }],
            ..ClusterConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().0,
            "sandbox.cluster.tolerations[0].operator"
        );
        let config = ClusterConfig {
            start_timeout_secs: 0,
            ..ClusterConfig::default()
        };
        assert_eq!(
            config.validate().unwrap_err().0,
            "sandbox.cluster.start_timeout_secs"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ClusterConfig>("namespace = \"a\"\nimagee = \"x\"").unwrap_err();
        assert!(err.to_string().contains("imagee"), "{err}");
    }
}
