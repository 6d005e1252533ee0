//! The Kubernetes objects of one sandbox, built by pure functions (golden
//! tested in `tests/provider_cluster.rs`): its Pod, the Secret holding its
//! runnerd token and env seed, and with `network: none` its NetworkPolicy.
//!
//! All three share the sandbox id as their name and carry the same
//! labels, so that a restarted host finds them with one label selector.
//! Annotations on the Pod are the truth re-adoption reads: session, owner,
//! creation and expiry times, provider version, network policy.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, Pod, PodSecurityContext,
    PodSpec, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config::ClusterConfig;
use crate::provider::{NetworkPolicy as SandboxNetwork, SandboxSpec};

/// `app.kubernetes.io/managed-by` value: marks what the provider owns.
pub(super) const MANAGED_BY: &str = "paddock";
const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The sandbox id (also the objects' name); selects the pod in its policy.
pub(super) const LABEL_SANDBOX: &str = "paddock.dev/sandbox";
/// The session id, where it is a valid label value (for `kubectl -l`).
const LABEL_SESSION: &str = "paddock.dev/session";

pub(super) const ANN_SESSION: &str = "paddock.dev/session-id";
pub(super) const ANN_OWNER: &str = "paddock.dev/owner";
pub(super) const ANN_CREATED: &str = "paddock.dev/created-at-ms";
pub(super) const ANN_EXPIRES: &str = "paddock.dev/expires-at-ms";
pub(super) const ANN_VERSION: &str = "paddock.dev/provider-version";
const ANN_NETWORK: &str = "paddock.dev/network";
/// The session's own labels, as a JSON object (their keys need not be
/// valid Kubernetes label keys).
pub(super) const ANN_LABELS: &str = "paddock.dev/labels";

/// Keys of the sandbox's Secret.
pub(super) const SECRET_TOKEN: &str = "token";
const SECRET_ENV: &str = "env.json";

/// The uid and gid runnerd and every exec run as; the workspace's group.
pub const SANDBOX_UID: i64 = 10001;
/// The one container of a sandbox pod.
pub(super) const CONTAINER: &str = "runnerd";

const WORKSPACE: &str = "/workspace";
const HOME: &str = "/home/paddock";
const SECRET_DIR: &str = "/var/run/paddock";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Size cap of `$HOME` (agent CLIs keep their state and caches there).
const HOME_MIB: u32 = 1024;
/// `/tmp` is tmpfs, so it counts against the pod's memory limit; it is
/// capped at this fraction of it so a full `/tmp` cannot take it all.
const TMP_MEMORY_DIVISOR: u32 = 4;
/// runnerd's grace for its execs on SIGTERM; below the pod's termination
/// grace so runnerd, not the kubelet's SIGKILL, ends them.
const RUNNERD_SHUTDOWN_GRACE_MS: u32 = 2000;
const TERMINATION_GRACE_SECS: i64 = 5;

/// What one sandbox's objects are built from.
#[derive(Debug, Clone, Copy)]
pub struct SandboxParams<'a> {
    pub config: &'a ClusterConfig,
    pub namespace: &'a str,
    /// The sandbox id: the name of its Pod, Secret and NetworkPolicy.
    pub id: &'a str,
    pub spec: &'a SandboxSpec,
    pub token: &'a str,
    pub created_at_ms: u64,
}

/// The labels every object of sandbox `id` carries.
pub(super) fn labels(id: &str, session_id: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
        (LABEL_SANDBOX.to_owned(), id.to_owned()),
    ]);
    if is_label_value(session_id) {
        labels.insert(LABEL_SESSION.to_owned(), session_id.to_owned());
    }
    labels
}

/// The label selector of everything the provider manages.
pub(super) fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_SANDBOX}")
}

fn meta(p: &SandboxParams<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(p.id.to_owned()),
        namespace: Some(p.namespace.to_owned()),
        labels: Some(labels(p.id, &p.spec.session_id)),
        ..ObjectMeta::default()
    }
}

fn mib(n: u32) -> Quantity {
    Quantity(format!("{n}Mi"))
}

/// The sandbox's Pod: runnerd as PID 1, non-root, no capabilities, a
/// read-only root filesystem and writable emptyDirs for the workspace,
/// `$HOME` and `/tmp`.
///
/// CPU and memory come from the profile as requests equal to limits
/// (Guaranteed QoS: the pod is the last to be evicted, and a profile means
/// what it says). The profile's `pids` has no pod-spec field in Kubernetes:
/// the cap is the kubelet's `podPidsLimit`, a node setting the operator
/// makes. The workspace's `sizeLimit` is enforced by kubelet eviction, not
/// as a quota: a pod that overshoots is evicted (and the watch reports the
/// sandbox lost).
pub fn pod(p: &SandboxParams<'_>) -> Pod {
    let c = p.config;
    let r = &p.spec.resources;
    let mut metadata = meta(p);
    metadata.annotations = Some(annotations(p));
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity(format!("{}m", r.cpu_millis))),
        ("memory".to_owned(), mib(r.memory_mib)),
    ]);
    let args = [
        "--workspace",
        WORKSPACE,
        "--listen",
        &format!("0.0.0.0:{}", c.runnerd_port),
        "--token-file",
        &format!("{SECRET_DIR}/{SECRET_TOKEN}"),
        "--env-file",
        &format!("{SECRET_DIR}/{SECRET_ENV}"),
        "--home",
        HOME,
        "--shutdown-grace-ms",
        &RUNNERD_SHUTDOWN_GRACE_MS.to_string(),
        "--stall-ms",
        &p.spec.runnerd_stall_ms.to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let env = [("PATH", PATH), ("HOME", HOME), ("LANG", "C.UTF-8")]
        .map(|(name, value)| EnvVar {
            name: name.to_owned(),
            value: Some(value.to_owned()),
            ..EnvVar::default()
        })
        .to_vec();
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    };
    let empty_dir = |name: &str, medium: Option<&str>, size: u32| Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_owned),
            size_limit: Some(mib(size)),
        }),
        ..Volume::default()
    };
    let container = Container {
        name: CONTAINER.to_owned(),
        // A provider plugin may choose the image and the runtime class.
        image: Some(p.spec.image.clone().unwrap_or_else(|| c.image.clone())),
        image_pull_policy: Some(c.image_pull_policy.clone()),
        command: Some(vec![c.runnerd_path.clone()]),
        args: Some(args),
        env: Some(env),
        working_dir: Some(WORKSPACE.to_owned()),
        ports: Some(vec![ContainerPort {
            name: Some("runnerd".to_owned()),
            container_port: i32::from(c.runnerd_port),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(resources.clone()),
            limits: Some(resources),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(SANDBOX_UID),
            run_as_group: Some(SANDBOX_UID),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            seccomp_profile: Some(runtime_default()),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("workspace", WORKSPACE, false),
            mount("home", HOME, false),
            mount("tmp", "/tmp", false),
            mount("runnerd-secret", SECRET_DIR, true),
        ]),
        ..Container::default()
    };
    let tolerations = c
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: t.operator.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            toleration_seconds: t.toleration_seconds,
        })
        .collect::<Vec<_>>();
    Pod {
        metadata,
        spec: Some(PodSpec {
            containers: vec![container],
            restart_policy: Some("Never".to_owned()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECS),
            service_account_name: c.service_account.clone(),
            runtime_class_name: p
                .spec
                .runtime_class
                .clone()
                .or_else(|| c.runtime_class.clone()),
            node_selector: (!c.node_selector.is_empty()).then(|| c.node_selector.clone()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(SANDBOX_UID),
                run_as_group: Some(SANDBOX_UID),
                fs_group: Some(SANDBOX_UID),
                seccomp_profile: Some(runtime_default()),
                ..PodSecurityContext::default()
            }),
            volumes: Some(vec![
                empty_dir("workspace", None, r.workspace_mib),
                empty_dir("home", None, HOME_MIB),
                empty_dir(
                    "tmp",
                    Some("Memory"),
                    (r.memory_mib / TMP_MEMORY_DIVISOR).max(1),
                ),
                Volume {
                    name: "runnerd-secret".to_owned(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(p.id.to_owned()),
                        // Readable by the group fsGroup gives it (runnerd's),
                        // by nobody else.
                        default_mode: Some(0o440),
                        optional: Some(false),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
            ]),
            ..PodSpec::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

fn annotations(p: &SandboxParams<'_>) -> BTreeMap<String, String> {
    let network = match p.spec.network {
        SandboxNetwork::None => "none",
        SandboxNetwork::Egress => "egress",
    };
    let labels = serde_json::to_string(&p.spec.labels).unwrap_or_else(|_| "{}".to_owned());
    BTreeMap::from([
        (ANN_SESSION.to_owned(), p.spec.session_id.clone()),
        (ANN_OWNER.to_owned(), p.spec.owner.clone()),
        (ANN_CREATED.to_owned(), p.created_at_ms.to_string()),
        (ANN_EXPIRES.to_owned(), p.spec.expires_at_ms.to_string()),
        (ANN_VERSION.to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        (ANN_NETWORK.to_owned(), network.to_owned()),
        (ANN_LABELS.to_owned(), labels),
    ])
}

/// The Secret runnerd reads its token and env seed from (mounted as files,
/// so the token is in no env var and no pod spec: reading pods does not
/// reveal it). Immutable: it never changes after creation.
pub fn secret(p: &SandboxParams<'_>) -> Secret {
    // Serializing a map of strings cannot fail; an empty seed is the safe
    // fallback all the same.
    let env = serde_json::to_vec(&p.spec.env).unwrap_or_else(|_| b"{}".to_vec());
    Secret {
        metadata: meta(p),
        type_: Some("Opaque".to_owned()),
        immutable: Some(true),
        data: Some(BTreeMap::from([
            (
                SECRET_TOKEN.to_owned(),
                ByteString(p.token.as_bytes().to_vec()),
            ),
            (SECRET_ENV.to_owned(), ByteString(env)),
        ])),
        ..Secret::default()
    }
}

/// The NetworkPolicy of a sandbox with `network: none`, if the config asks
/// for one: no egress at all, ingress only to runnerd's port (from the
/// configured peers, else from anywhere: runnerd still wants its token).
///
/// Only a CNI that enforces NetworkPolicy makes this effective; on one
/// that does not (e.g. plain flannel) the object is accepted and ignored.
pub fn network_policy(p: &SandboxParams<'_>) -> Option<NetworkPolicy> {
    let c = p.config;
    if p.spec.network != SandboxNetwork::None || !c.network_policy {
        return None;
    }
    let selector = |labels: &BTreeMap<String, String>| {
        (!labels.is_empty()).then(|| LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: None,
        })
    };
    let peer = NetworkPolicyPeer {
        pod_selector: selector(&c.ingress_from_pod_labels),
        namespace_selector: selector(&c.ingress_from_namespace_labels),
        ip_block: None,
    };
    let from =
        (peer.pod_selector.is_some() || peer.namespace_selector.is_some()).then(|| vec![peer]);
    Some(NetworkPolicy {
        metadata: meta(p),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    LABEL_SANDBOX.to_owned(),
                    p.id.to_owned(),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from,
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(i32::from(c.runnerd_port))),
                    protocol: Some("TCP".to_owned()),
                    end_port: None,
                }]),
            }]),
            // No egress rule with Egress in policyTypes: all egress denied.
            egress: None,
        }),
    })
}

/// A merge patch that makes the pod the owner of a Secret or
/// NetworkPolicy, so the cluster's garbage collector deletes them with it
/// even when no host is around to.
pub fn owned_by_pod(pod_name: &str, pod_uid: &str) -> serde_json::Value {
    let owner = OwnerReference {
        api_version: "v1".to_owned(),
        kind: "Pod".to_owned(),
        name: pod_name.to_owned(),
        uid: pod_uid.to_owned(),
        controller: None,
        block_owner_deletion: None,
    };
    serde_json::json!({ "metadata": { "ownerReferences": [owner] } })
}

/// Whether `s` may be a label value: at most 63 characters of
/// `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn is_label_value(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(s.chars().next())
        && alnum(s.chars().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values() {
        assert!(is_label_value("ses_01HZX"));
        assert!(!is_label_value("alice@example.com"));
        assert!(!is_label_value("-a"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn an_unlabelable_session_id_stays_in_the_annotation_only() {
        let labels = labels("sb-1", "a session");
        assert!(!labels.contains_key(LABEL_SESSION));
        assert_eq!(labels[LABEL_SANDBOX], "sb-1");
    }
}
