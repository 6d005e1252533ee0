//! The local-docker provider against a real Docker Engine API: podman's
//! compatible service (see `common/podman.rs`), with the sandbox image
//! built from this tree's static runnerd. Provision, exec through runnerd,
//! the hardening as seen from inside, `network: none` against egress, the
//! per-owner cache, re-adoption by a new provider instance, idempotent
//! destroy, the error when no engine answers, and sandboxes (of one host or
//! two) that create the same cache volume or internal network at once.

mod common;

use common::runnerd;
use std::collections::BTreeMap;
use std::time::Duration;

use common::podman::{self, Podman};
use paddock::provider::{
    DockerConfig, DockerProvider, NetworkPolicy, ProviderError, Resources, Sandbox,
    SandboxProvider, SandboxSpec,
};
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::ExitReason;

/// A provider on the test service with an instance of its own, whose
/// containers are removed when it is dropped (also when a test fails).
struct Fixture {
    podman: &'static Podman,
    config: DockerConfig,
}

impl Fixture {
    async fn new(name: &str) -> Self {
        let podman = podman::podman().await;
        let config = DockerConfig {
            image: podman.image.clone(),
            host: Some(podman.host.clone()),
            instance: format!("test-{name}-{}", std::process::id()),
            ..DockerConfig::default()
        };
        Self { podman, config }
    }

    async fn provider(&self) -> DockerProvider {
        DockerProvider::connect(self.config.clone())
            .await
            .expect("provider")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        podman::remove_instance(self.podman, &self.config.instance);
    }
}

fn now_ms() -> u64 {
    paddock::clock::unix_ms()
}

fn spec(session: &str, owner: &str, network: NetworkPolicy) -> SandboxSpec {
    SandboxSpec {
        session_id: session.to_owned(),
        owner: owner.to_owned(),
        expires_at_ms: now_ms() + 600_000,
        env: BTreeMap::from([("SEEDED".to_owned(), "yes".to_owned())]),
        network,
        labels: BTreeMap::new(),
        resources: Resources {
            cpu_millis: 500,
            memory_mib: 256,
            pids: 100,
            workspace_mib: 64,
        },
        image: None,
        runtime_class: None,
        runnerd_stall_ms: paddock::provider::DEFAULT_RUNNERD_STALL_MS,
    }
}

/// Runs `sh -c script` in the sandbox; its output and how it ended.
async fn run(sandbox: &Sandbox, script: &str) -> (String, ExitReason) {
    runnerd::run(sandbox, script, runnerd::Output::Both).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_runs_hardened_with_its_limits() {
    let fixture = Fixture::new("hardened").await;
    let provider = fixture.provider().await;
    let sandbox = provider
        .provision(&spec("s-hard", "alice", NetworkPolicy::None))
        .await
        .expect("provision");
    assert_eq!(sandbox.provider, "local-docker");
    let health = Client::new(sandbox.endpoint.clone(), sandbox.token.clone())
        .health()
        .await
        .expect("health");
    assert_eq!(health.running_execs, 0);

    let (out, reason) = run(
        &sandbox,
        "id -u; id -g; pwd; echo $SEEDED; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status; \
         touch /probe 2>/dev/null && echo root-writable || echo root-read-only; \
         touch /workspace/w /tmp/t && echo scratch-writable; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null; \
         ls /var/run/docker.sock /run/podman/podman.sock 2>/dev/null; echo RUNNERD_TOKEN=$RUNNERD_TOKEN",
    )
    .await;
    assert!(matches!(reason, ExitReason::Exited { .. }), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..4],
        ["10001", "10001", "/workspace", "yes"],
        "{out}"
    );
    for cap in ["CapEff", "CapPrm", "CapBnd"] {
        assert!(
            out.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} is empty: {out}"
        );
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("root-read-only"), "{out}");
    assert!(out.contains("scratch-writable"), "{out}");
    assert!(lines.contains(&"100"), "pids limit: {out}");
    assert!(
        lines.contains(&"268435456") || lines.contains(&"268435456\n"),
        "memory limit 256 MiB: {out}"
    );
    assert!(
        lines.contains(&"50000") || lines.iter().any(|l| l.starts_with("50000 ")),
        "half a core: {out}"
    );
    assert!(!out.contains(".sock"), "no engine socket inside: {out}");
    assert!(
        out.contains("RUNNERD_TOKEN=\n") || out.trim_end().ends_with("RUNNERD_TOKEN="),
        "runnerd's token does not reach execs: {out}"
    );

    provider.destroy(&sandbox).await.expect("destroy");
    provider
        .destroy(&sandbox)
        .await
        .expect("destroy is idempotent");
    // Its address is gone too: a connection may hang rather than fail.
    let after = tokio::time::timeout(
        Duration::from_secs(3),
        Client::new(sandbox.endpoint.clone(), sandbox.token.clone()).health(),
    )
    .await;
    assert!(!matches!(after, Ok(Ok(_))), "runnerd is gone");
    let volume = provider
        .docker()
        .inspect_volume(&format!("{}-workspace", sandbox.id))
        .await;
    assert!(volume.is_err(), "the workspace volume is gone");
    assert_eq!(podman::running(fixture.podman, &fixture.config.instance), 0);
}

/// A listener on this machine's outward address stands in for "outside":
/// an egress sandbox reaches it by its default route; a `network: none`
/// sandbox has no route to it, while the host still reaches its runnerd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_cannot_reach_out_and_egress_can() {
    let fixture = Fixture::new("network").await;
    let provider = fixture.provider().await;
    let outward = outward_address().expect("this machine has an outward address");
    let listener = std::net::TcpListener::bind((outward, 0)).expect("listen");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            use std::io::Write;
            let mut stream = stream;
            let _ = stream.write_all(b"reached\n");
        }
    });
    let probe = format!("nc -w 3 {outward} {port} </dev/null && echo CONNECTED || echo BLOCKED");

    let none = provider
        .provision(&spec("s-none", "alice", NetworkPolicy::None))
        .await
        .expect("provision none");
    let (out, _) = run(&none, &probe).await;
    assert!(out.contains("BLOCKED") && !out.contains("reached"), "{out}");
    let (out, _) = run(&none, "cat /proc/net/route").await;
    assert!(
        !out.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("00000000")),
        "no default route: {out}"
    );

    let egress = provider
        .provision(&spec("s-egress", "alice", NetworkPolicy::Egress))
        .await
        .expect("provision egress");
    let (out, _) = run(&egress, &probe).await;
    assert!(out.contains("reached"), "egress reaches out: {out}");
}

/// The source address of this machine's default route.
fn outward_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_shares_one_cache_volume_across_sandboxes() {
    let fixture = Fixture::new("cache").await;
    let provider = fixture.provider().await;
    let owner = format!("cache-owner-{}", std::process::id());
    // Both at once: they race to create the owner's new cache volume.
    let (one, two) = (
        spec("s-c1", &owner, NetworkPolicy::None),
        spec("s-c2", &owner, NetworkPolicy::None),
    );
    let (first, second) = tokio::join!(provider.provision(&one), provider.provision(&two));
    let (first, second) = (first.expect("first"), second.expect("second"));
    let other = provider
        .provision(&spec("s-c3", "someone-else", NetworkPolicy::None))
        .await
        .expect("other owner");
    let (out, _) = run(
        &first,
        "stat -c '%a %u' /cache; mkdir -p $npm_config_cache && echo cached > $npm_config_cache/pkg && echo $npm_config_cache",
    )
    .await;
    assert!(out.starts_with("1777 0\n"), "sticky, root-owned: {out}");
    assert!(out.contains("/cache/npm"), "{out}");
    let (out, _) = run(&second, "cat /cache/npm/pkg").await;
    assert_eq!(out, "cached\n", "the same owner sees it");
    let (out, _) = run(&other, "cat /cache/npm/pkg 2>&1 || echo missing").await;
    assert!(out.contains("missing"), "another owner does not: {out}");
    let (out, _) = run(&second, "ls -A /workspace | wc -l").await;
    assert_eq!(out.trim(), "0", "workspaces are per sandbox");
    for sandbox in [&first, &second, &other] {
        provider.destroy(sandbox).await.expect("destroy");
    }
    podman::remove_owner_caches(fixture.podman, &owner);
    podman::remove_owner_caches(fixture.podman, "someone-else");
}

/// Two hosts on one engine, both starting with no internal network:
/// each creates it on its first `network: none` sandbox, at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_create_the_internal_network_at_once() {
    /// Removes the network also when the test fails.
    struct Network(&'static Podman, String);
    impl Drop for Network {
        fn drop(&mut self) {
            podman::remove_network(self.0, &self.1);
        }
    }
    let network = format!("paddock-none-race-{}", std::process::id());
    let mut fixtures = [Fixture::new("net-a").await, Fixture::new("net-b").await];
    let _network = Network(fixtures[0].podman, network.clone());
    for fixture in &mut fixtures {
        fixture.config.none_network = network.clone();
    }
    let (a, b) = (fixtures[0].provider().await, fixtures[1].provider().await);
    let (one, two) = (
        spec("s-na", "alice", NetworkPolicy::None),
        spec("s-nb", "alice", NetworkPolicy::None),
    );
    let (first, second) = tokio::join!(a.provision(&one), b.provision(&two));
    let (first, second) = (first.expect("first host"), second.expect("second host"));
    for sandbox in [&first, &second] {
        let (out, _) = run(sandbox, "echo up").await;
        assert_eq!(out, "up\n");
    }
    a.destroy(&first).await.expect("destroy");
    b.destroy(&second).await.expect("destroy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_provider_re_adopts_live_sandboxes_and_removes_the_rest() {
    let fixture = Fixture::new("adopt").await;
    let provider = fixture.provider().await;
    let live = provider
        .provision(&spec("s-live", "alice", NetworkPolicy::None))
        .await
        .expect("live");
    let (out, _) = run(&live, "echo kept > /workspace/file; echo ok").await;
    assert_eq!(out, "ok\n");
    let mut short = spec("s-expired", "alice", NetworkPolicy::Egress);
    short.expires_at_ms = now_ms() + 1_500;
    let expired = provider.provision(&short).await.expect("expiring");
    let stopped = provider
        .provision(&spec("s-dead", "alice", NetworkPolicy::None))
        .await
        .expect("dead");
    provider
        .docker()
        .kill_container(
            &stopped.id,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .expect("kill");
    drop(provider);
    tokio::time::sleep(Duration::from_millis(1_600)).await;

    // A host restart: a new provider that knows nothing but the labels.
    let provider = fixture.provider().await;
    let adopted = provider.adopt().await.expect("adopt");
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    assert_eq!(adopted[0], live, "the same endpoint, token and times");
    let (out, _) = run(&adopted[0], "cat /workspace/file").await;
    assert_eq!(out, "kept\n");
    assert_eq!(
        podman::running(fixture.podman, &fixture.config.instance),
        1,
        "the expired and the dead sandbox were removed"
    );
    for gone in [&expired, &stopped] {
        let inspected = provider.docker().inspect_container(&gone.id, None).await;
        assert!(inspected.is_err(), "{} was removed", gone.id);
    }
    // Another instance on the same engine adopts nothing of this one's.
    let mut other = fixture.config.clone();
    other.instance = format!("{}-other", fixture.config.instance);
    let foreign = DockerProvider::connect(other).await.expect("other");
    assert!(foreign.adopt().await.expect("adopt").is_empty());
    assert_eq!(podman::running(fixture.podman, &fixture.config.instance), 1);
    provider.destroy(&live).await.expect("destroy");
}

/// With `publish_ip`, an egress sandbox's runnerd is reached on a port
/// published there; a `network: none` one still on its container address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_ip_reaches_egress_sandboxes_on_a_published_port() {
    let mut fixture = Fixture::new("publish").await;
    fixture.config.publish_ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    let provider = fixture.provider().await;
    let egress = provider
        .provision(&spec("s-pub", "alice", NetworkPolicy::Egress))
        .await
        .expect("egress");
    assert!(
        egress.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        egress.endpoint
    );
    assert_eq!(run(&egress, "echo hi").await.0, "hi\n");
    let none = provider
        .provision(&spec("s-pub-none", "alice", NetworkPolicy::None))
        .await
        .expect("none");
    assert!(
        !none.endpoint.starts_with("http://127."),
        "{}",
        none.endpoint
    );
    assert_eq!(run(&none, "echo hi").await.0, "hi\n");
    let adopted = fixture.provider().await.adopt().await.expect("adopt");
    assert_eq!(adopted.len(), 2, "both are re-adopted: {adopted:?}");
    assert!(adopted.contains(&egress) && adopted.contains(&none));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_engine_is_named_in_the_error() {
    let config = DockerConfig {
        host: Some("unix:///nonexistent/paddock-test.sock".to_owned()),
        ..DockerConfig::default()
    };
    let err = DockerProvider::connect(config)
        .await
        .expect_err("no engine");
    let text = err.to_string();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{text}");
    assert!(
        text.contains("unix:///nonexistent/paddock-test.sock")
            && text.contains("sandbox.docker.host"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_says_how_to_build_it() {
    let fixture = Fixture::new("noimage").await;
    let mut config = fixture.config.clone();
    config.image = "localhost/paddock-no-such-image:1".to_owned();
    let err = DockerProvider::connect(config).await.expect_err("no image");
    assert!(err.to_string().contains("just sandbox-image"), "{err}");
}
