//! The cluster provider: golden files of the objects it creates, and its
//! create / readiness / re-adopt / delete flow against a fake Kubernetes
//! API server whose fake kubelet runs the REAL runnerd
//! (`common/fake_kube.rs` says why a fake: no real API server can run on
//! this machine or in CI).
//!
//! `PADDOCK_UPDATE_GOLDEN=1` rewrites the golden files under
//! `tests/fixtures/cluster/`; review the diff.

mod common;
#[path = "common/fake_kube.rs"]
mod fake_kube;

use common::runnerd;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_kube::{Behavior, FakeKube, Outcome};
use paddock::provider::cluster::TolerationConfig;
use paddock::provider::cluster::manifest::{self, SandboxParams};
use paddock::provider::{
    ClusterConfig, ClusterProvider, NetworkPolicy, ProviderError, Resources, Sandbox,
    SandboxProvider, SandboxSpec, default_runnerd_path,
};
use paddock_runnerd::proto::ExitReason;

const NS: &str = "sandboxes";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn spec(session: &str, network: NetworkPolicy) -> SandboxSpec {
    SandboxSpec {
        session_id: session.to_owned(),
        owner: "alice@example.com".to_owned(),
        expires_at_ms: now_ms() + 3_600_000,
        env: BTreeMap::from([("GREETING".to_owned(), "hello from the seed".to_owned())]),
        network,
        labels: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        resources: Resources::default(),
        image: None,
        runtime_class: None,
        runnerd_stall_ms: paddock::provider::DEFAULT_RUNNERD_STALL_MS,
    }
}

// ---------------------------------------------------------------- goldens

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cluster")
}

/// Compares `value`, pretty-printed, with golden file `name`, or rewrites
/// it when `PADDOCK_UPDATE_GOLDEN` is set.
fn assert_golden(name: &str, value: &impl serde::Serialize) {
    let path = fixtures().join(name);
    let actual = serde_json::to_string_pretty(value).expect("serializes") + "\n";
    if std::env::var_os("PADDOCK_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(fixtures()).expect("fixtures dir");
        std::fs::write(&path, &actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (PADDOCK_UPDATE_GOLDEN=1 creates it)",
            path.display()
        )
    });
    if let Some((i, (e, a))) = expected
        .lines()
        .zip(actual.lines())
        .enumerate()
        .find(|(_, (e, a))| e != a)
    {
        panic!(
            "{} differs at line {}:\n  expected: {e}\n  actual:   {a}\n(PADDOCK_UPDATE_GOLDEN=1 rewrites it)",
            path.display(),
            i + 1
        );
    }
    assert_eq!(expected, actual, "{} differs in length", path.display());
}

/// A spec with fixed times, so the objects are the same every run.
fn golden_spec(network: NetworkPolicy, resources: Resources) -> SandboxSpec {
    SandboxSpec {
        expires_at_ms: 1_800_003_600_000,
        resources,
        ..spec("ses_01golden", network)
    }
}

const GOLDEN_ID: &str = "paddock-0123456789abcdef";
const GOLDEN_TOKEN: &str = "token-for-the-golden-files";

#[test]
fn golden_objects_of_a_default_config() {
    let config = ClusterConfig::default();
    let spec = golden_spec(NetworkPolicy::Egress, Resources::default());
    let params = SandboxParams {
        config: &config,
        namespace: "default",
        id: GOLDEN_ID,
        spec: &spec,
        token: GOLDEN_TOKEN,
        created_at_ms: 1_800_000_000_000,
    };
    assert_golden("default.pod.json", &manifest::pod(&params));
    assert_golden("default.secret.json", &manifest::secret(&params));
    assert!(
        manifest::network_policy(&params).is_none(),
        "egress gets no policy"
    );
}

#[test]
fn golden_objects_of_a_hardened_config_with_network_none() {
    let config = ClusterConfig {
        namespace: Some(NS.into()),
        image: "registry.example/paddock-sandbox:1.2.3".into(),
        service_account: Some("paddock-sandbox".into()),
        runtime_class: Some("gvisor".into()),
        node_selector: BTreeMap::from([("paddock.dev/sandboxes".into(), "true".into())]),
        tolerations: vec![TolerationConfig {
            key: Some("paddock.dev/sandboxes".into()),
            operator: Some("Exists".into()),
            value: None,
            effect: Some("NoSchedule".into()),
            toleration_seconds: None,
        }],
        ingress_from_pod_labels: BTreeMap::from([(
            "app.kubernetes.io/name".into(),
            "paddock".into(),
        )]),
        ingress_from_namespace_labels: BTreeMap::from([(
            "kubernetes.io/metadata.name".into(),
            "paddock".into(),
        )]),
        ..ClusterConfig::default()
    };
    let resources = Resources {
        cpu_millis: 500,
        memory_mib: 512,
        pids: 256,
        workspace_mib: 1024,
    };
    let spec = golden_spec(NetworkPolicy::None, resources);
    let params = SandboxParams {
        config: &config,
        namespace: NS,
        id: GOLDEN_ID,
        spec: &spec,
        token: GOLDEN_TOKEN,
        created_at_ms: 1_800_000_000_000,
    };
    assert_golden("hardened.pod.json", &manifest::pod(&params));
    assert_golden("hardened.secret.json", &manifest::secret(&params));
    assert_golden(
        "hardened.networkpolicy.json",
        &manifest::network_policy(&params).expect("network none gets a policy"),
    );
}

#[test]
fn the_token_is_in_no_pod_field() {
    let config = ClusterConfig::default();
    let spec = spec("ses_1", NetworkPolicy::Egress);
    let params = SandboxParams {
        config: &config,
        namespace: "default",
        id: GOLDEN_ID,
        spec: &spec,
        token: GOLDEN_TOKEN,
        created_at_ms: 1,
    };
    let pod = serde_json::to_string(&manifest::pod(&params)).unwrap();
    assert!(!pod.contains(GOLDEN_TOKEN));
    assert!(
        !pod.contains("hello from the seed"),
        "the env seed is secret too"
    );
}

// ------------------------------------------------------- against the fake

fn runnerd() -> PathBuf {
    default_runnerd_path().expect("the build script builds runnerd")
}

fn config(fake: &FakeKube, start_timeout_secs: u64) -> ClusterConfig {
    ClusterConfig {
        namespace: Some(NS.into()),
        runnerd_port: fake.runnerd_port,
        start_timeout_secs,
        ..ClusterConfig::default()
    }
}

fn client_for(fake: &FakeKube) -> kube::Client {
    let config = kube::Config::new(fake.url.parse().expect("url"));
    kube::Client::try_from(config).expect("client")
}

fn provider(fake: &FakeKube, start_timeout_secs: u64) -> ClusterProvider {
    ClusterProvider::with_client(
        config(fake, start_timeout_secs),
        client_for(fake),
        NS.to_owned(),
    )
}

/// Runs `sh -c script` in the sandbox; its output and how it ended.
async fn run(sandbox: &Sandbox, script: &str) -> (String, ExitReason) {
    runnerd::run(sandbox, script, runnerd::Output::Stdout).await
}

/// Whether nothing of sandbox `id` is left in the fake.
fn gone(fake: &FakeKube, id: &str) -> bool {
    ["pods", "secrets", "networkpolicies"]
        .iter()
        .all(|r| fake.object(r, NS, id).is_none())
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// Provisions on a fake whose pods end up as `outcome`, with a start
/// budget of `budget_secs`; the provisioning error and how long it took.
async fn failed_provision(
    fake: &FakeKube,
    outcome: Outcome,
    budget_secs: u64,
    network: NetworkPolicy,
) -> (String, Duration) {
    fake.set_behavior(Behavior {
        outcome,
        ..Behavior::default()
    });
    let started = Instant::now();
    let message = provision_error(
        provider(fake, budget_secs)
            .provision(&spec("ses_failing", network))
            .await,
    );
    (message, started.elapsed())
}

fn provision_error(result: Result<Sandbox, ProviderError>) -> String {
    match result {
        Ok(sandbox) => panic!("provisioned {sandbox:?}"),
        Err(err @ ProviderError::Provision { .. }) => {
            eprintln!("provisioning failed as expected: {err}");
            err.to_string()
        }
        Err(other) => panic!("not a provisioning error: {other}"),
    }
}

#[tokio::test]
async fn provision_exec_destroy() {
    let fake = FakeKube::start(runnerd()).await;
    let provider = provider(&fake, 20);
    let sandbox = provider
        .provision(&spec("ses_1", NetworkPolicy::None))
        .await
        .expect("provision");
    assert_eq!(sandbox.provider, "cluster");
    assert!(
        sandbox.endpoint.starts_with("http://127.0.0."),
        "{}",
        sandbox.endpoint
    );
    assert!(
        sandbox
            .endpoint
            .ends_with(&format!(":{}", fake.runnerd_port)),
        "{}",
        sandbox.endpoint
    );

    // All three objects exist, owned by the pod, and the pod is hardened.
    let pod = fake.object("pods", NS, &sandbox.id).expect("pod");
    let uid = pod["metadata"]["uid"].clone();
    for resource in ["secrets", "networkpolicies"] {
        let object = fake.object(resource, NS, &sandbox.id).expect(resource);
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["uid"], uid,
            "{resource} is owned by the pod"
        );
    }
    assert_eq!(
        pod["metadata"]["annotations"]["paddock.dev/owner"],
        "alice@example.com"
    );
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);

    // The seed reached runnerd through the secret, and execs run.
    let (out, reason) = run(&sandbox, "echo \"$GREETING\"; pwd").await;
    assert!(
        matches!(reason, ExitReason::Exited { code: 0 }),
        "{reason:?}"
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("hello from the seed"));
    assert!(
        lines.next().is_some_and(|pwd| pwd.ends_with("/workspace")),
        "{out}"
    );
    // The host never asked the API server for exec.
    assert!(fake.requests().iter().all(|r| !r.contains("/exec")));

    provider.destroy(&sandbox).await.expect("destroy");
    assert!(gone(&fake, &sandbox.id), "pod, secret and policy deleted");
    assert!(
        eventually(Duration::from_secs(5), || !fake.runnerd_alive(&sandbox.id)).await,
        "runnerd stopped with its pod"
    );
    // Idempotent: already gone is success.
    provider.destroy(&sandbox).await.expect("destroy again");
    assert_eq!(
        provider.lost(&sandbox),
        None,
        "a destroyed sandbox is not lost"
    );
}

#[tokio::test]
async fn egress_sandboxes_get_no_network_policy() {
    let fake = FakeKube::start(runnerd()).await;
    let provider = provider(&fake, 20);
    let sandbox = provider
        .provision(&spec("ses_1", NetworkPolicy::Egress))
        .await
        .expect("provision");
    assert!(fake.object("networkpolicies", NS, &sandbox.id).is_none());
    provider.destroy(&sandbox).await.expect("destroy");
    assert!(gone(&fake, &sandbox.id));
}

/// Scheduling (1.2 s) and runnerd's start (1.2 s) each fit in the 2 s
/// budget, together they do not: one budget means the provision fails
/// after about 2 s, not 2.4 s or 4 s.
#[tokio::test]
async fn a_slow_schedule_leaves_less_time_for_health() {
    let fake = FakeKube::start(runnerd()).await;
    fake.set_behavior(Behavior {
        schedule_delay: Duration::from_millis(1200),
        start_delay: Duration::from_millis(1200),
        outcome: Outcome::Run,
    });
    let provider = provider(&fake, 2);
    let started = Instant::now();
    let message = provision_error(
        provider
            .provision(&spec("ses_slow", NetworkPolicy::Egress))
            .await,
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3000),
        "one budget: took {took:?}"
    );
    assert!(message.contains("did not answer health"), "{message}");
    assert!(message.contains("start timeout 2s"), "{message}");
    assert!(message.contains("the pod was deleted"), "{message}");
    assert!(fake.names("pods", NS).is_empty(), "the pod is deleted");
    assert!(
        fake.names("secrets", NS).is_empty(),
        "the secret is deleted"
    );

    // The same delays with a budget that fits both succeed.
    let provider = self::provider(&fake, 4);
    let sandbox = provider
        .provision(&spec("ses_slow", NetworkPolicy::Egress))
        .await
        .expect("provision within 4 s");
    provider.destroy(&sandbox).await.expect("destroy");
}

/// A caller that stops waiting does not leave a pod behind: the provision
/// finishes in a task of its own and destroys what it made.
#[tokio::test]
async fn an_abandoned_provision_cleans_up_after_itself() {
    let fake = FakeKube::start(runnerd()).await;
    fake.set_behavior(Behavior {
        schedule_delay: Duration::from_millis(300),
        ..Behavior::default()
    });
    let provider = provider(&fake, 20);
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        provider.provision(&spec("ses_gone", NetworkPolicy::None)),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up");
    assert!(
        eventually(Duration::from_secs(5), || fake.names("pods", NS).len() == 1).await,
        "the pod is made all the same"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            ["pods", "secrets", "networkpolicies"]
                .iter()
                .all(|r| fake.names(r, NS).is_empty())
        })
        .await,
        "everything is deleted once the provision finished"
    );
}

#[tokio::test]
async fn an_unschedulable_pod_fails_with_the_schedulers_reason() {
    let fake = FakeKube::start(runnerd()).await;
    let (message, _) =
        failed_provision(&fake, Outcome::Unschedulable, 1, NetworkPolicy::None).await;
    assert!(message.contains("was not scheduled"), "{message}");
    assert!(
        message.contains("Unschedulable: 0/3 nodes are available"),
        "{message}"
    );
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
    assert!(fake.names("networkpolicies", NS).is_empty());
}

#[tokio::test]
async fn image_pull_backoff_fails_without_waiting_for_the_budget() {
    let fake = FakeKube::start(runnerd()).await;
    let (message, took) =
        failed_provision(&fake, Outcome::ImagePullBackOff, 30, NetworkPolicy::Egress).await;
    assert!(took < Duration::from_secs(5), "fails fast");
    assert!(message.contains("ImagePullBackOff"), "{message}");
    assert!(message.contains("paddock-sandbox:latest"), "{message}");
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
}

#[tokio::test]
async fn a_pod_whose_runnerd_exits_fails_with_its_exit_code() {
    let fake = FakeKube::start(runnerd()).await;
    let (message, took) = failed_provision(&fake, Outcome::Crash, 20, NetworkPolicy::Egress).await;
    assert!(took < Duration::from_secs(10), "fails fast");
    assert!(
        message.contains("Failed") && message.contains("exited with code"),
        "{message}"
    );
    assert!(fake.names("pods", NS).is_empty());
    assert!(fake.names("secrets", NS).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_sandbox_is_adopted_past_its_original_expiry() {
    let fake = FakeKube::start(runnerd()).await;
    let first = provider(&fake, 20);
    let sandbox = first
        .provision(&SandboxSpec {
            expires_at_ms: now_ms() + 300,
            ..spec("ses_extended", NetworkPolicy::Egress)
        })
        .await
        .expect("provision");
    first
        .extend(&sandbox, now_ms() + 60_000)
        .await
        .expect("extend");
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = provider(&fake, 20);
    let adopted = second.adopt().await.expect("adopt");
    assert_eq!(adopted.len(), 1, "adopted past its first expiry");
    assert!(adopted[0].expires_at_ms > now_ms() + 50_000);
    second.destroy(&adopted[0]).await.expect("destroy");
}

#[tokio::test]
async fn a_new_provider_adopts_live_sandboxes_and_deletes_expired_and_dead_ones() {
    let fake = FakeKube::start(runnerd()).await;
    let first = provider(&fake, 20);
    let live = first
        .provision(&spec("ses_live", NetworkPolicy::None))
        .await
        .expect("provision");
    let expired = first
        .provision(&SandboxSpec {
            expires_at_ms: now_ms() + 300,
            ..spec("ses_expired", NetworkPolicy::Egress)
        })
        .await
        .expect("provision");
    let dead = first
        .provision(&spec("ses_dead", NetworkPolicy::Egress))
        .await
        .expect("provision");
    // The host goes away; while it is gone one sandbox expires and one
    // runnerd dies, and a crash leaves a secret without a pod.
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(fake.kill_runnerd(&dead.id));
    assert!(
        eventually(Duration::from_secs(5), || {
            fake.object("pods", NS, &dead.id)
                .is_some_and(|p| p["status"]["phase"] == "Failed")
        })
        .await
    );
    fake.insert(
        "secrets",
        NS,
        serde_json::json!({"metadata": {"name": "paddock-00000000000000aa", "labels": {
            "app.kubernetes.io/managed-by": "paddock", "paddock.dev/sandbox": "paddock-00000000000000aa"}}}),
    );

    // The new host is configured with another runnerd port: adoption uses
    // the port each pod was made with.
    let second = ClusterProvider::with_client(
        ClusterConfig {
            runnerd_port: fake.runnerd_port.wrapping_add(1).max(1),
            ..config(&fake, 20)
        },
        client_for(&fake),
        NS.to_owned(),
    );
    let adopted = second.adopt().await.expect("adopt");
    assert_eq!(adopted.len(), 1, "{adopted:?}");
    let sandbox = &adopted[0];
    assert_eq!(sandbox, &live, "the same sandbox, token included");
    let (out, reason) = run(sandbox, "echo adopted").await;
    assert_eq!(out, "adopted\n");
    assert!(
        matches!(reason, ExitReason::Exited { code: 0 }),
        "{reason:?}"
    );

    assert!(gone(&fake, &expired.id), "the expired sandbox is deleted");
    assert!(gone(&fake, &dead.id), "the dead sandbox is deleted");
    assert!(
        fake.object("secrets", NS, "paddock-00000000000000aa")
            .is_none(),
        "an orphaned secret is deleted"
    );
    assert!(
        eventually(Duration::from_secs(5), || !fake.runnerd_alive(&expired.id)).await,
        "the expired sandbox's runnerd is stopped"
    );
    second.destroy(sandbox).await.expect("destroy");
    assert!(fake.names("pods", NS).is_empty());
}

#[tokio::test]
async fn the_watch_reports_sandboxes_whose_pod_died() {
    let fake = FakeKube::start(runnerd()).await;
    let provider = provider(&fake, 20);
    let mut lost = provider.subscribe_lost();
    let killed = provider
        .provision(&spec("ses_k", NetworkPolicy::Egress))
        .await
        .expect("provision");
    let deleted = provider
        .provision(&spec("ses_d", NetworkPolicy::Egress))
        .await
        .expect("provision");
    let kept = provider
        .provision(&spec("ses_ok", NetworkPolicy::Egress))
        .await
        .expect("provision");
    assert_eq!(provider.lost(&killed), None);

    assert!(fake.kill_runnerd(&killed.id));
    let event = tokio::time::timeout(Duration::from_secs(10), lost.recv())
        .await
        .expect("a lost sandbox in time")
        .expect("the channel is open");
    assert_eq!(event.id, killed.id);
    assert!(event.reason.contains("Failed"), "{}", event.reason);
    let reason = provider.lost(&killed).expect("known lost");
    assert!(reason.contains("exited with code 137"), "{reason}");

    fake.delete_pod(NS, &deleted.id);
    let event = tokio::time::timeout(Duration::from_secs(10), lost.recv())
        .await
        .expect("a lost sandbox in time")
        .expect("the channel is open");
    assert_eq!(event.id, deleted.id);
    assert!(event.reason.contains("deleted"), "{}", event.reason);

    // A deletion the watch missed (its history compacted away) is found
    // by the re-list that the 410 Gone forces.
    let unseen = provider
        .provision(&spec("ses_u", NetworkPolicy::Egress))
        .await
        .expect("provision");
    fake.delete_pod_unseen(NS, &unseen.id);
    let event = tokio::time::timeout(Duration::from_secs(15), lost.recv())
        .await
        .expect("a lost sandbox in time")
        .expect("the channel is open");
    assert_eq!(event.id, unseen.id);
    assert_eq!(
        event.reason, "its pod no longer exists",
        "found by the re-list"
    );

    // Destroying a sandbox is not losing it.
    provider.destroy(&kept).await.expect("destroy");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), lost.recv())
            .await
            .is_err(),
        "no news for a destroyed sandbox"
    );
    assert_eq!(provider.lost(&kept), None);
    // The session sweep destroys a lost sandbox: that forgets it.
    provider
        .destroy(&killed)
        .await
        .expect("destroy a lost sandbox");
    assert_eq!(provider.lost(&killed), None);
}

/// A kubeconfig whose context `fake` points at the fake, in namespace
/// [`NS`], and whose current context points elsewhere.
fn write_kubeconfig(dir: &Path, fake: &FakeKube) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
- name: elsewhere
  cluster:
    server: http://127.0.0.1:9
contexts:
- name: fake
  context:
    cluster: fake
    user: tester
    namespace: {NS}
- name: other
  context:
    cluster: elsewhere
    user: tester
current-context: other
users:
- name: tester
  user:
    token: not-checked-by-the-fake
",
            url = fake.url
        ),
    )
    .expect("write kubeconfig");
    path
}

#[tokio::test]
async fn a_kubeconfig_names_the_server_and_the_namespace() {
    let fake = FakeKube::start(runnerd()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(dir.path(), &fake);
    let provider = ClusterProvider::new(ClusterConfig {
        kubeconfig: Some(kubeconfig.clone()),
        context: Some("fake".into()),
        runnerd_port: fake.runnerd_port,
        start_timeout_secs: 20,
        ..ClusterConfig::default()
    })
    .await
    .expect("provider from a kubeconfig");
    assert_eq!(provider.namespace(), NS, "the context's namespace");
    assert!(provider.adopt().await.expect("adopt").is_empty());
    let sandbox = provider
        .provision(&spec("ses_kc", NetworkPolicy::Egress))
        .await
        .expect("provision");
    assert!(fake.object("pods", NS, &sandbox.id).is_some());
    provider.destroy(&sandbox).await.expect("destroy");

    // A missing kubeconfig is a clear error naming it.
    let err = ClusterProvider::new(ClusterConfig {
        kubeconfig: Some(dir.path().join("missing")),
        ..ClusterConfig::default()
    })
    .await
    .expect_err("no kubeconfig");
    assert!(
        matches!(&err, ProviderError::Unavailable { .. }) && err.to_string().contains("missing"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_fails_adoption_with_a_clear_error() {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let provider = ClusterProvider::with_client(ClusterConfig::default(), client, NS.into());
    let err = provider
        .adopt()
        .await
        .expect_err("nothing listens on port 9");
    assert!(
        matches!(&err, ProviderError::Unavailable { .. }) && err.to_string().contains(NS),
        "{err}"
    );
}

/// The real `paddock serve`, configured for the cluster provider by its
/// config file: a session's exec runs in a pod of the fake cluster, and
/// deleting the session deletes the pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_serve_runs_sessions_in_pods() {
    let fake = FakeKube::start(runnerd()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = write_kubeconfig(dir.path(), &fake);
    let config = format!(
        "[sessions]\nsweep_interval_ms = 200\n\n[sandbox]\nprovider = \"cluster\"\n\n[sandbox.cluster]\nkubeconfig = {:?}\n\
         context = \"fake\"\nrunnerd_port = {}\nstart_timeout_secs = 20\n",
        kubeconfig.display().to_string(),
        fake.runnerd_port
    );
    // `Host::start` blocks until the host listens, which is after it
    // re-adopted from the fake: that must be served by another thread.
    let data = dir.path().join("data");
    let host = tokio::task::spawn_blocking(move || common::Host::start(&data, &config))
        .await
        .expect("the host starts");
    let session = host
        .create_session(common::ALICE, serde_json::json!({"network": "none"}))
        .await;
    let exec = host
        .exec(
            common::ALICE,
            &session,
            common::json_body(&["sh", "-c", "echo from the pod"]),
        )
        .await;
    let events = host.collect(common::ALICE, &session, &exec).await;
    assert_eq!(common::stdout(&events), "from the pod\n");
    let pods = fake.names("pods", NS);
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(fake.names("networkpolicies", NS), pods, "network none");

    let (status, body) = host
        .call(
            "DELETE",
            &format!("/v1/sessions/{session}"),
            common::ALICE,
            None,
        )
        .await;
    assert!(status < 300, "{status} {body}");
    assert!(
        eventually(Duration::from_secs(10), || fake
            .names("pods", NS)
            .is_empty())
        .await,
        "the session's pod is deleted with it"
    );

    // A pod that dies behind the host's back ends its session at the next
    // sweep, without waiting for an exec to fail.
    let session = host
        .create_session(common::ALICE, serde_json::json!({}))
        .await;
    let exec = host
        .exec(common::ALICE, &session, common::json_body(&["true"]))
        .await;
    host.collect(common::ALICE, &session, &exec).await;
    let pod = fake.names("pods", NS).pop().expect("the session's pod");
    assert!(fake.kill_runnerd(&pod));
    let mut view = serde_json::Value::Null;
    for _ in 0..100 {
        view = host
            .call(
                "GET",
                &format!("/v1/sessions/{session}"),
                common::ALICE,
                None,
            )
            .await
            .1;
        if view["state"] == "ended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(view["end_reason"], "provider_lost", "{view}");
}
