//! What a sandbox container is made of: its labels (the truth `adopt`
//! reads), its names, and the hardened create request. Pure functions of
//! the spec and config, tested below without an engine.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, PortBinding};
use sha2::{Digest, Sha256};

use crate::provider::{NetworkPolicy, SandboxSpec};

/// Marks every container, volume and network this provider made.
pub(super) const LABEL_MANAGED: &str = "dev.paddock.managed";
/// The host instance (`sandbox.docker.instance`) that made it.
pub(super) const LABEL_INSTANCE: &str = "dev.paddock.instance";
pub(super) const LABEL_SESSION: &str = "dev.paddock.session";
pub(super) const LABEL_OWNER: &str = "dev.paddock.owner";
pub(super) const LABEL_CREATED: &str = "dev.paddock.created-at-ms";
pub(super) const LABEL_EXPIRES: &str = "dev.paddock.expires-at-ms";
pub(super) const LABEL_VERSION: &str = "dev.paddock.provider-version";
pub(super) const LABEL_NETWORK: &str = "dev.paddock.network";
/// On volumes: `workspace` or `cache`.
pub(super) const LABEL_VOLUME: &str = "dev.paddock.volume";
/// Prefix of the session's own labels.
const LABEL_USER_PREFIX: &str = "dev.paddock.label.";

/// Where runnerd sits in the image.
pub(super) const RUNNERD: &str = "/usr/local/bin/runnerd";
/// The port runnerd listens on inside the container (all interfaces of
/// the container's own network namespace).
pub(super) const RUNNERD_PORT: u16 = 7070;
/// The uid and gid everything in a sandbox runs as.
pub(super) const SANDBOX_USER: &str = "10001:10001";
pub(super) const WORKSPACE: &str = "/workspace";
pub(super) const CACHE: &str = "/cache";
/// HOME of runnerd and its execs: a tmpfs, so dotfiles do not land in the
/// workspace (and its snapshots).
pub(super) const HOME: &str = "/home/sandbox";
/// Grace runnerd gives its execs when the container is stopped; below
/// [`STOP_TIMEOUT_SECS`] so runnerd, not the engine's SIGKILL, ends them.
const RUNNERD_SHUTDOWN_GRACE_MS: &str = "2000";
/// Seconds the engine waits after SIGTERM before SIGKILL on stop.
pub(super) const STOP_TIMEOUT_SECS: i32 = 3;
/// `PATH` of runnerd itself.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Size of the `/tmp` and HOME tmpfs mounts; they count against the
/// sandbox's memory limit, so they cannot take more than it anyway.
const TMPFS_SIZE: &str = "size=512m";

/// The cache environment of execs when a cache volume is mounted: the
/// common package managers keep their downloads in it.
pub(super) fn cache_env() -> BTreeMap<String, String> {
    [
        ("XDG_CACHE_HOME", "/cache/xdg"),
        ("npm_config_cache", "/cache/npm"),
        ("PIP_CACHE_DIR", "/cache/pip"),
        ("CARGO_HOME", "/cache/cargo"),
        ("GOMODCACHE", "/cache/go/mod"),
        ("GOCACHE", "/cache/go/build"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The workspace volume of sandbox `id`.
pub(super) fn workspace_volume(id: &str) -> String {
    format!("{id}-workspace")
}

/// The cache volume of `owner`: a readable prefix plus a digest, since
/// owner names may hold characters volume names may not, and two owners
/// must never share one.
pub(super) fn cache_volume(owner: &str) -> String {
    let readable: String = owner
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let digest = hex::encode(&Sha256::digest(owner.as_bytes())[..8]);
    format!("paddock-cache-{readable}-{digest}")
}

/// Whether `name` is a sandbox id this provider makes (`pdk-` + 16 hex).
pub(super) fn is_sandbox_id(name: &str) -> bool {
    name.strip_prefix("pdk-")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The labels of a sandbox container.
pub(super) fn labels(
    spec: &SandboxSpec,
    instance: &str,
    created_at_ms: u64,
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (format!("{LABEL_USER_PREFIX}{k}"), v.clone()))
        .collect();
    labels.extend(
        [
            (LABEL_MANAGED, "true".to_owned()),
            (LABEL_INSTANCE, instance.to_owned()),
            (LABEL_SESSION, spec.session_id.clone()),
            (LABEL_OWNER, spec.owner.clone()),
            (LABEL_CREATED, created_at_ms.to_string()),
            (LABEL_EXPIRES, spec.expires_at_ms.to_string()),
            (LABEL_VERSION, env!("CARGO_PKG_VERSION").to_owned()),
            (LABEL_NETWORK, network_label(spec.network).to_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    labels
}

fn network_label(network: NetworkPolicy) -> &'static str {
    match network {
        NetworkPolicy::None => "none",
        NetworkPolicy::Egress => "egress",
    }
}

/// What a container's labels say about its sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recorded {
    pub session_id: String,
    pub owner: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// The session's own labels.
    pub labels: BTreeMap<String, String>,
}

/// Reads the labels back; `None` when one is missing or malformed (a
/// container this provider did not finish labelling is not adopted).
pub(super) fn recorded(labels: &HashMap<String, String>) -> Option<Recorded> {
    let number = |key: &str| labels.get(key)?.parse::<u64>().ok();
    (labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")).then_some(())?;
    Some(Recorded {
        session_id: labels.get(LABEL_SESSION)?.clone(),
        owner: labels.get(LABEL_OWNER)?.clone(),
        created_at_ms: number(LABEL_CREATED)?,
        expires_at_ms: number(LABEL_EXPIRES)?,
        labels: labels
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(LABEL_USER_PREFIX)?.to_owned(), v.clone())))
            .collect(),
    })
}

/// How one container is to be made.
#[derive(Debug, Clone)]
pub(super) struct Plan<'a> {
    pub spec: &'a SandboxSpec,
    pub id: &'a str,
    pub image: &'a str,
    pub token: &'a str,
    pub created_at_ms: u64,
    pub instance: &'a str,
    /// The network it joins (internal for `none`).
    pub network: &'a str,
    /// Publish runnerd's port on this host address (egress only).
    pub publish_ip: Option<IpAddr>,
    /// The owner's cache volume, when there is one.
    pub cache_volume: Option<String>,
}

/// The create request: runnerd as PID 1, hardened.
///
/// The token travels in runnerd's environment (`RUNNERD_TOKEN`), so it is
/// part of the container's config and a restarted host reads it back with
/// `inspect`. That is acceptable because reading a container's config
/// takes the engine socket, which is host-only (never mounted into a
/// sandbox) and already grants everything the token does and more; and
/// code inside the sandbox, which could read `/proc/1/environ` as the same
/// uid, gains nothing from it: the token only lets a caller run commands
/// and touch files in this same sandbox, as this same uid. runnerd does not
/// pass its own environment on to execs (they start from a clean base).
pub(super) fn create_body(plan: &Plan<'_>) -> ContainerCreateBody {
    let spec = plan.spec;
    let resources = spec.resources;
    let mut mounts = vec![Mount {
        target: Some(WORKSPACE.to_owned()),
        source: Some(workspace_volume(plan.id)),
        typ: Some(MountType::VOLUME),
        ..Default::default()
    }];
    if let Some(cache) = &plan.cache_volume {
        mounts.push(Mount {
            target: Some(CACHE.to_owned()),
            source: Some(cache.clone()),
            typ: Some(MountType::VOLUME),
            ..Default::default()
        });
    }
    let tmpfs = HashMap::from([
        (
            "/tmp".to_owned(),
            format!("rw,nosuid,nodev,mode=1777,{TMPFS_SIZE}"),
        ),
        (
            HOME.to_owned(),
            format!("rw,nosuid,nodev,mode=1777,{TMPFS_SIZE}"),
        ),
    ]);
    let port = format!("{RUNNERD_PORT}/tcp");
    let publish = plan
        .publish_ip
        .filter(|_| spec.network == NetworkPolicy::Egress);
    let port_bindings = publish.map(|ip| {
        HashMap::from([(
            port.clone(),
            Some(vec![PortBinding {
                host_ip: Some(ip.to_string()),
                // Empty: the engine picks a free port.
                host_port: Some(String::new()),
            }]),
        )])
    });
    let memory = i64::from(resources.memory_mib) * 1024 * 1024;
    let host_config = HostConfig {
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        readonly_rootfs: Some(true),
        privileged: Some(false),
        tmpfs: Some(tmpfs),
        mounts: Some(mounts),
        pids_limit: Some(i64::from(resources.pids)),
        memory: Some(memory),
        // No swap beyond the memory limit.
        memory_swap: Some(memory),
        nano_cpus: Some(i64::from(resources.cpu_millis) * 1_000_000),
        network_mode: Some(plan.network.to_owned()),
        port_bindings,
        // runnerd is PID 1 and reaps orphans itself.
        init: Some(false),
        // The engine's OCI runtime of that name (e.g. `kata`, `runsc`).
        runtime: spec.runtime_class.clone(),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(plan.image.to_owned()),
        user: Some(SANDBOX_USER.to_owned()),
        entrypoint: Some(vec![RUNNERD.to_owned()]),
        cmd: Some(
            [
                "--workspace",
                WORKSPACE,
                "--listen",
                &format!("0.0.0.0:{RUNNERD_PORT}"),
                "--home",
                HOME,
                "--shutdown-grace-ms",
                RUNNERD_SHUTDOWN_GRACE_MS,
                "--stall-ms",
                &spec.runnerd_stall_ms.to_string(),
            ]
            .map(str::to_owned)
            .to_vec(),
        ),
        env: Some(vec![
            format!("{}={}", paddock_runnerd::proto::TOKEN_ENV, plan.token),
            format!("PATH={PATH}"),
            format!("HOME={HOME}"),
            "LANG=C.UTF-8".to_owned(),
        ]),
        working_dir: Some(WORKSPACE.to_owned()),
        labels: Some(labels(spec, plan.instance, plan.created_at_ms)),
        exposed_ports: Some(vec![port]),
        stop_timeout: Some(i64::from(STOP_TIMEOUT_SECS)),
        // The network mode alone names the network: podman refuses endpoint
        // settings for `bridge`, its alias of the default network.
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Resources;

    fn spec(network: NetworkPolicy) -> SandboxSpec {
        SandboxSpec {
            session_id: "s-1".into(),
            owner: "alice@example.com".into(),
            expires_at_ms: 99,
            env: BTreeMap::new(),
            network,
            labels: BTreeMap::from([("team".into(), "red".into())]),
            resources: Resources {
                cpu_millis: 1500,
                memory_mib: 256,
                pids: 64,
                workspace_mib: 1,
            },
            image: None,
            runtime_class: None,
            runnerd_stall_ms: crate::provider::DEFAULT_RUNNERD_STALL_MS,
        }
    }

    fn plan<'a>(spec: &'a SandboxSpec, publish: Option<IpAddr>) -> Plan<'a> {
        Plan {
            spec,
            id: "pdk-0123456789abcdef",
            image: "img:1",
            token: "tok",
            created_at_ms: 7,
            instance: "test",
            network: "paddock-none",
            publish_ip: publish,
            cache_volume: Some(cache_volume(&spec.owner)),
        }
    }

    #[test]
    fn the_container_is_hardened_and_limited() {
        let spec = spec(NetworkPolicy::None);
        let body = create_body(&plan(&spec, None));
        let host = body.host_config.expect("host config");
        assert_eq!(body.user.as_deref(), Some("10001:10001"));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.pids_limit, Some(64));
        assert_eq!(host.memory, Some(256 << 20));
        assert_eq!(host.memory_swap, Some(256 << 20));
        assert_eq!(host.nano_cpus, Some(1_500_000_000));
        assert_eq!(host.network_mode.as_deref(), Some("paddock-none"));
        assert!(host.binds.is_none(), "no bind mount, so no engine socket");
        let mounts = host.mounts.expect("mounts");
        assert!(mounts.iter().all(|m| m.typ == Some(MountType::VOLUME)));
        assert_eq!(
            mounts[0].source.as_deref(),
            Some("pdk-0123456789abcdef-workspace")
        );
        assert!(host.tmpfs.expect("tmpfs").contains_key("/tmp"));
    }

    #[test]
    fn only_egress_sandboxes_publish_a_port() {
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let none = spec(NetworkPolicy::None);
        assert!(
            create_body(&plan(&none, ip))
                .host_config
                .and_then(|h| h.port_bindings)
                .is_none()
        );
        let egress = spec(NetworkPolicy::Egress);
        let bindings = create_body(&plan(&egress, ip))
            .host_config
            .and_then(|h| h.port_bindings)
            .expect("bindings");
        assert_eq!(
            bindings["7070/tcp"].as_ref().expect("binding")[0]
                .host_ip
                .as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn labels_round_trip() {
        let spec = spec(NetworkPolicy::None);
        let labels = labels(&spec, "test", 7);
        assert_eq!(labels["dev.paddock.label.team"], "red");
        assert_eq!(
            recorded(&labels),
            Some(Recorded {
                session_id: "s-1".into(),
                owner: "alice@example.com".into(),
                created_at_ms: 7,
                expires_at_ms: 99,
                labels: spec.labels.clone(),
            })
        );
        let mut unmanaged = labels.clone();
        unmanaged.remove(LABEL_MANAGED);
        assert_eq!(recorded(&unmanaged), None);
    }

    #[test]
    fn cache_volumes_are_per_owner_and_valid_names() {
        let a = cache_volume("alice@example.com");
        assert!(a.starts_with("paddock-cache-aliceexamplecom-"), "{a}");
        assert_ne!(a, cache_volume("alice@example.co"));
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert!(is_sandbox_id("pdk-0123456789abcdef"));
        assert!(!is_sandbox_id("pdk-0123"));
    }
}
