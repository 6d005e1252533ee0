//! The local-process provider against the real runnerd binary: provision,
//! exec, destroy, re-adoption after the provider (the host) went away, and
//! the clean-up of dead, expired and damaged sandboxes.
//!
//! Most tests run once unconfined and, where bubblewrap works on this
//! machine, once more confined; the confined runs are skipped with a printed
//! reason where it does not.

#[path = "common/runnerd.rs"]
mod runnerd;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use paddock::provider::{
    BwrapMode, LocalProcessConfig, LocalProcessProvider, NetworkPolicy, ProviderError, Resources,
    Sandbox, SandboxProvider, SandboxSpec, default_runnerd_path,
};
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::ExitReason;

/// A temporary provider root. Dropping it also SIGKILLs every process still
/// naming it, so a failing test leaks no runnerd.
struct Root(tempfile::TempDir);

impl Root {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("tempdir"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let root = format!("{}/", self.path().display());
        for pid in processes_mentioning(&root) {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) on a process whose command line names this
                // test's own temporary directory.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn runnerd() -> PathBuf {
    default_runnerd_path().expect("the build script builds runnerd")
}

fn config(root: &Path, bwrap: BwrapMode) -> LocalProcessConfig {
    LocalProcessConfig {
        root: root.to_owned(),
        runnerd: runnerd(),
        bwrap,
        start_timeout: Duration::from_secs(10),
    }
}

fn provider(root: &Path, bwrap: BwrapMode) -> LocalProcessProvider {
    LocalProcessProvider::new(config(root, bwrap)).expect("provider")
}

/// Unconfined always; confined too where bubblewrap works here.
fn modes() -> Vec<BwrapMode> {
    let root = Root::new();
    match LocalProcessProvider::new(config(root.path(), BwrapMode::Required)) {
        Ok(_) => vec![BwrapMode::Off, BwrapMode::Required],
        Err(err) => {
            eprintln!("skipping the confined variant: {err}");
            vec![BwrapMode::Off]
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn spec(session: &str) -> SandboxSpec {
    SandboxSpec {
        session_id: session.to_owned(),
        owner: "owner-a".to_owned(),
        expires_at_ms: now_ms() + 3_600_000,
        env: BTreeMap::from([("GREETING".to_owned(), "hello from the seed".to_owned())]),
        network: NetworkPolicy::Egress,
        labels: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        resources: Resources::default(),
        image: None,
        runtime_class: None,
        runnerd_stall_ms: paddock::provider::DEFAULT_RUNNERD_STALL_MS,
    }
}

fn client(sandbox: &Sandbox) -> Client {
    Client::new(sandbox.endpoint.clone(), sandbox.token.clone())
}

/// Runs `sh -c script` in the sandbox; its output and how it ended.
async fn run(sandbox: &Sandbox, script: &str) -> (String, ExitReason) {
    runnerd::run(sandbox, script, runnerd::Output::Stdout).await
}

fn sandbox_dir(provider: &LocalProcessProvider, sandbox: &Sandbox) -> PathBuf {
    provider.sandbox_path(&sandbox.id).expect("a valid id")
}

fn state(provider: &LocalProcessProvider, sandbox: &Sandbox) -> serde_json::Value {
    let bytes = std::fs::read(sandbox_dir(provider, sandbox).join("state.json")).expect("state");
    serde_json::from_slice(&bytes).expect("state JSON")
}

/// runnerd's pid, from the state file.
fn pid_of(provider: &LocalProcessProvider, sandbox: &Sandbox) -> u32 {
    let pid = state(provider, sandbox)["pid"].as_u64().expect("pid");
    u32::try_from(pid).expect("pid fits")
}

/// Present and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pids of live processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own && alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

fn entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("list root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test read from the sandbox's state.
    let rc = unsafe { libc::kill(i32::try_from(pid).expect("pid"), signal) };
    assert_eq!(rc, 0, "kill {pid}");
}

fn mode_of(mode: BwrapMode) -> &'static str {
    if mode == BwrapMode::Off {
        "unconfined"
    } else {
        "confined"
    }
}

#[tokio::test]
async fn provisions_runs_execs_in_the_workspace_and_destroys_everything() {
    for mode in modes() {
        let root = Root::new();
        let provider = provider(root.path(), mode);
        assert_eq!(provider.kind(), "local-process");
        assert_eq!(provider.confined(), mode == BwrapMode::Required);

        let sandbox = provider
            .provision(&spec("sess-1"))
            .await
            .expect("provision");
        assert_eq!(sandbox.provider, "local-process");
        assert_eq!(sandbox.session_id, "sess-1");
        assert_eq!(sandbox.owner, "owner-a");
        assert!(
            sandbox.endpoint.starts_with("http://127.0.0.1:"),
            "{sandbox:?}"
        );
        let health = client(&sandbox).health().await.expect("health");
        assert_eq!(health.running_execs, 0);

        let dir = sandbox_dir(&provider, &sandbox);
        let workspace = dir.join("workspace");
        let (stdout, reason) = run(
            &sandbox,
            "pwd; echo \"$HOME\"; echo \"$GREETING\"; echo to-stderr >&2",
        )
        .await;
        assert_eq!(reason, ExitReason::Exited { code: 0 }, "{}", mode_of(mode));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines,
            [
                workspace.to_str().expect("utf-8 path"),
                dir.join("home").to_str().expect("utf-8 path"),
                "hello from the seed",
            ],
            "{}",
            mode_of(mode)
        );
        let (_, failed) = run(&sandbox, "exit 7").await;
        assert_eq!(failed, ExitReason::Exited { code: 7 });

        let pid = pid_of(&provider, &sandbox);
        assert!(alive(pid));
        provider.destroy(&sandbox).await.expect("destroy");
        assert!(
            eventually(Duration::from_secs(2), || !alive(pid)).await,
            "runnerd {pid} gone ({})",
            mode_of(mode)
        );
        assert!(!dir.exists(), "sandbox directory removed");
        assert!(client(&sandbox).health().await.is_err(), "nothing answers");
        provider
            .destroy(&sandbox)
            .await
            .expect("destroying twice is fine");
        assert!(entries(root.path()).is_empty());
    }
}

#[tokio::test]
async fn the_state_file_records_the_sandbox_and_secrets_stay_private() {
    let root = Root::new();
    // The defaults: runnerd found by `default_runnerd_path`, bwrap `auto`.
    let provider =
        LocalProcessProvider::new(LocalProcessConfig::new(root.path())).expect("provider");
    let mut spec = spec("sess-state");
    spec.network = NetworkPolicy::None;
    let sandbox = provider.provision(&spec).await.expect("provision");
    let dir = sandbox_dir(&provider, &sandbox);

    let state = state(&provider, &sandbox);
    assert_eq!(state["id"], sandbox.id.as_str());
    assert_eq!(state["endpoint"], sandbox.endpoint.as_str());
    assert_eq!(state["session_id"], "sess-state");
    assert_eq!(state["owner"], "owner-a");
    assert_eq!(state["created_at_ms"], sandbox.created_at_ms);
    assert_eq!(state["expires_at_ms"], spec.expires_at_ms);
    assert_eq!(state["labels"]["team"], "infra");
    assert_eq!(state["network"], "none");
    assert_eq!(state["provider_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(state["confined"], provider.confined());
    assert!(
        state.get("token").is_none(),
        "the token itself is not recorded"
    );
    let digest = state["token_sha256"].as_str().expect("digest");
    assert_eq!(digest.len(), 64);
    assert!(!digest.contains(&sandbox.token));

    assert!(
        sandbox.id.starts_with("sbx-") && sandbox.id.len() == 20,
        "{}",
        sandbox.id
    );
    assert_eq!(sandbox.token.len(), 64);
    let token_file = std::fs::read_to_string(dir.join("token")).expect("token file");
    assert_eq!(token_file.trim(), sandbox.token);
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("token")), 0o600);
    assert_eq!(mode(&dir.join("env.json")), 0o600);
    assert!(dir.join("workspace").is_dir() && dir.join("home").is_dir());
    let log = std::fs::read_to_string(dir.join("runnerd.log")).expect("log");
    assert!(
        log.contains("listening"),
        "runnerd's output goes to its log: {log}"
    );
    assert!(
        !format!("{sandbox:?}").contains(&sandbox.token),
        "Debug redacts the token"
    );

    provider.destroy(&sandbox).await.expect("destroy");
}

#[tokio::test]
async fn runnerd_is_detached_and_survives_the_provider() {
    for mode in modes() {
        let root = Root::new();
        let first = provider(root.path(), mode);
        let sandbox = first
            .provision(&spec("sess-detached"))
            .await
            .expect("provision");
        let pid = pid_of(&first, &sandbox);
        drop(first);

        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            alive(pid),
            "runnerd outlives the provider ({})",
            mode_of(mode)
        );
        client(&sandbox).health().await.expect("still answers");
        // Its own session: the host's terminal and process group do not
        // reach it.
        let pid_t = i32::try_from(pid).expect("pid");
        // SAFETY: getsid(2) only reads.
        let (sid, own_sid) = unsafe { (libc::getsid(pid_t), libc::getsid(0)) };
        assert_eq!(
            sid,
            pid_t,
            "runnerd leads its own session ({})",
            mode_of(mode)
        );
        assert_ne!(sid, own_sid);
        // Nothing this process inherited (cargo's jobserver pipe, under
        // `cargo test`) is passed on to runnerd; an idle runnerd has no pipe.
        let pipes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("runnerd's descriptors")
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .map(|target| target.display().to_string())
            .filter(|target| target.starts_with("pipe:"))
            .collect();
        assert!(
            pipes.is_empty(),
            "inherited descriptors: {pipes:?} ({})",
            mode_of(mode)
        );

        provider(root.path(), mode)
            .destroy(&sandbox)
            .await
            .expect("a new provider destroys it");
        assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);
    }
}

#[tokio::test]
async fn a_new_provider_adopts_live_sandboxes_with_working_tokens() {
    for mode in modes() {
        let root = Root::new();
        let first = provider(root.path(), mode);
        let a = first.provision(&spec("sess-a")).await.expect("provision a");
        let b = first.provision(&spec("sess-b")).await.expect("provision b");
        drop(first);

        let second = provider(root.path(), mode);
        let mut adopted = second.adopt().await.expect("adopt");
        adopted.sort_by(|x, y| x.session_id.cmp(&y.session_id));
        assert_eq!(adopted, [a, b], "{}", mode_of(mode));
        let (stdout, reason) = run(&adopted[0], "echo adopted").await;
        assert_eq!(
            (stdout.as_str(), reason),
            ("adopted\n", ExitReason::Exited { code: 0 })
        );

        // Adopting again finds the same sandboxes and harms none.
        assert_eq!(second.adopt().await.expect("adopt again").len(), 2);
        for sandbox in &adopted {
            second.destroy(sandbox).await.expect("destroy");
        }
        assert!(second.adopt().await.expect("adopt").is_empty());
        assert!(entries(root.path()).is_empty());
    }
}

#[tokio::test]
async fn adopt_cleans_up_a_killed_runnerd() {
    for mode in modes() {
        let root = Root::new();
        let first = provider(root.path(), mode);
        let dead = first
            .provision(&spec("sess-dead"))
            .await
            .expect("provision");
        let live = first
            .provision(&spec("sess-live"))
            .await
            .expect("provision");
        let pid = pid_of(&first, &dead);
        kill(pid, libc::SIGKILL);
        assert!(eventually(Duration::from_secs(2), || !alive(pid)).await);
        drop(first);

        let second = provider(root.path(), mode);
        let adopted = second.adopt().await.expect("adopt");
        assert_eq!(
            adopted,
            std::slice::from_ref(&live),
            "only the live one ({})",
            mode_of(mode)
        );
        assert!(
            !sandbox_dir(&second, &dead).exists(),
            "the dead one is removed"
        );
        second.destroy(&live).await.expect("destroy");
    }
}

#[tokio::test]
async fn adopt_destroys_expired_sandboxes() {
    for mode in modes() {
        let root = Root::new();
        let first = provider(root.path(), mode);
        let mut short = spec("sess-expired");
        short.expires_at_ms = now_ms() + 300;
        let sandbox = first.provision(&short).await.expect("provision");
        let pid = pid_of(&first, &sandbox);
        drop(first);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(alive(pid), "nothing stops it before a host looks");

        let second = provider(root.path(), mode);
        assert!(second.adopt().await.expect("adopt").is_empty());
        assert!(
            eventually(Duration::from_secs(2), || !alive(pid)).await,
            "the expired sandbox's runnerd is stopped ({})",
            mode_of(mode)
        );
        assert!(entries(root.path()).is_empty());
    }
}

#[tokio::test]
async fn an_extended_sandbox_is_adopted_past_its_original_expiry() {
    let root = Root::new();
    let first = provider(root.path(), BwrapMode::Off);
    let mut short = spec("sess-extended");
    short.expires_at_ms = now_ms() + 300;
    let sandbox = first.provision(&short).await.expect("provision");
    first
        .extend(&sandbox, now_ms() + 60_000)
        .await
        .expect("extend");
    drop(first);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let second = provider(root.path(), BwrapMode::Off);
    let adopted = second.adopt().await.expect("adopt");
    assert_eq!(adopted.len(), 1, "adopted past its first expiry");
    assert!(adopted[0].expires_at_ms > now_ms() + 50_000);
    second.destroy(&adopted[0]).await.expect("destroy");
}

#[tokio::test]
async fn adopt_cleans_up_corrupt_state_and_mismatched_tokens() {
    for mode in modes() {
        let root = Root::new();
        let first = provider(root.path(), mode);
        let corrupt = first
            .provision(&spec("sess-corrupt"))
            .await
            .expect("provision");
        let forged = first
            .provision(&spec("sess-forged"))
            .await
            .expect("provision");
        let corrupt_pid = pid_of(&first, &corrupt);
        let forged_pid = pid_of(&first, &forged);
        std::fs::write(
            sandbox_dir(&first, &corrupt).join("state.json"),
            b"{\"format\": 1, \"pid\": ",
        )
        .expect("corrupt the state");
        // The token file still works with runnerd, but no longer matches the
        // digest recorded at provisioning: not trusted.
        let mut tampered = state(&first, &forged);
        tampered["token_sha256"] = serde_json::Value::from("00".repeat(32));
        std::fs::write(
            sandbox_dir(&first, &forged).join("state.json"),
            serde_json::to_vec(&tampered).expect("state JSON"),
        )
        .expect("tamper with the digest");
        drop(first);

        let second = provider(root.path(), mode);
        assert!(second.adopt().await.expect("adopt").is_empty());
        assert!(entries(root.path()).is_empty(), "both removed");
        // Without a readable state the process is found by its command line.
        assert!(
            eventually(Duration::from_secs(2), || !alive(corrupt_pid)
                && !alive(forged_pid))
            .await,
            "both runnerds stopped ({})",
            mode_of(mode)
        );
    }
}

#[tokio::test]
async fn adopt_removes_stale_directories_without_state_and_leaves_others_alone() {
    let root = Root::new();
    let stale = root.path().join("sbx-00000000000000aa");
    let fresh = root.path().join("sbx-00000000000000bb");
    for dir in [&stale, &fresh] {
        std::fs::create_dir_all(dir.join("workspace")).expect("mkdir");
    }
    std::fs::File::open(&stale)
        .expect("open dir")
        .set_modified(SystemTime::now() - Duration::from_secs(120))
        .expect("age the directory");
    std::fs::create_dir(root.path().join("not-a-sandbox")).expect("mkdir");
    std::fs::write(root.path().join("notes.txt"), b"operator notes").expect("file");

    let provider = provider(root.path(), BwrapMode::Off);
    assert!(provider.adopt().await.expect("adopt").is_empty());
    assert_eq!(
        entries(root.path()),
        ["not-a-sandbox", "notes.txt", "sbx-00000000000000bb"],
        "a crashed provision is removed; one that may be in flight and foreign entries stay"
    );
}

#[tokio::test]
async fn a_missing_runnerd_is_a_clear_error() {
    let root = Root::new();
    let missing = root.path().join("no-such-runnerd");
    let mut config = config(root.path(), BwrapMode::Off);
    config.runnerd = missing.clone();
    let err = LocalProcessProvider::new(config).expect_err("no runnerd");
    let message = err.to_string();
    assert!(matches!(err, ProviderError::Unavailable { .. }), "{err:?}");
    assert!(
        message.contains(missing.to_str().expect("utf-8")),
        "{message}"
    );
    assert!(
        message.contains("PADDOCK_RUNNERD"),
        "says how to fix it: {message}"
    );

    let not_executable = root.path().join("runnerd.txt");
    std::fs::write(&not_executable, b"text").expect("file");
    let mut config = self::config(root.path(), BwrapMode::Off);
    config.runnerd = not_executable;
    let err = LocalProcessProvider::new(config).expect_err("not executable");
    assert!(err.to_string().contains("not executable"), "{err}");
}

/// Writes an executable shell script standing in for runnerd.
fn fake_runnerd(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[tokio::test]
async fn a_runnerd_that_fails_to_start_is_reported_with_its_log() {
    let bin = tempfile::tempdir().expect("tempdir");
    let root = Root::new();
    let mut config = config(root.path(), BwrapMode::Off);
    config.runnerd = fake_runnerd(
        bin.path(),
        "crashing-runnerd",
        "echo 'boom: cannot open the workspace' >&2; exit 3",
    );
    let provider = LocalProcessProvider::new(config).expect("provider");
    let err = provider
        .provision(&spec("sess-crash"))
        .await
        .expect_err("fails");
    let message = err.to_string();
    assert!(matches!(err, ProviderError::Provision { .. }), "{err:?}");
    assert!(message.contains("sess-crash"), "{message}");
    assert!(message.contains("exited during start-up"), "{message}");
    assert!(
        message.contains("boom: cannot open the workspace"),
        "quotes the log: {message}"
    );
    assert!(entries(root.path()).is_empty(), "nothing left behind");
}

#[tokio::test]
async fn a_runnerd_that_never_listens_is_killed_within_the_start_timeout() {
    let bin = tempfile::tempdir().expect("tempdir");
    let root = Root::new();
    let mut config = config(root.path(), BwrapMode::Off);
    // A loop, not `exec sleep`, so its command line keeps the script name.
    config.runnerd = fake_runnerd(
        bin.path(),
        "silent-runnerd",
        "echo 'starting, slowly' >&2; while :; do sleep 0.05; done",
    );
    config.start_timeout = Duration::from_millis(400);
    let provider = LocalProcessProvider::new(config).expect("provider");

    let started = Instant::now();
    let err = provider
        .provision(&spec("sess-slow"))
        .await
        .expect_err("times out");
    let took = started.elapsed();
    let message = err.to_string();
    assert!(
        took < Duration::from_secs(3),
        "one budget, not one per step: {took:?}"
    );
    assert!(message.contains("did not publish its address"), "{message}");
    assert!(message.contains("starting, slowly"), "{message}");
    assert!(entries(root.path()).is_empty(), "nothing left behind");
    assert!(
        eventually(Duration::from_secs(2), || processes_mentioning(
            "silent-runnerd"
        )
        .is_empty())
        .await,
        "the fake runnerd was killed"
    );
}

#[tokio::test]
async fn a_confined_sandbox_sees_the_system_read_only_and_dies_whole() {
    let root = Root::new();
    let provider = match LocalProcessProvider::new(config(root.path(), BwrapMode::Required)) {
        Ok(provider) => provider,
        Err(err) => {
            eprintln!("skipped: bubblewrap does not work here: {err}");
            return;
        }
    };
    let host_marker = tempfile::NamedTempFile::new_in("/tmp").expect("marker in /tmp");
    let sandbox = provider
        .provision(&spec("sess-confined"))
        .await
        .expect("provision");
    let script = format!(
        "touch /etc/paddock-probe 2>/dev/null && echo etc-writable || echo etc-read-only; \
         touch \"$HOME/h\" ./w && echo sandbox-writable; \
         test -e {marker} && echo tmp-shared || echo tmp-private; \
         ls /proc | grep -c '^[0-9]'",
        marker = host_marker.path().display()
    );
    let (stdout, reason) = run(&sandbox, &script).await;
    assert_eq!(reason, ExitReason::Exited { code: 0 }, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..3],
        ["etc-read-only", "sandbox-writable", "tmp-private"]
    );
    let visible: u32 = lines[3].trim().parse().expect("a count");
    assert!(
        visible < 10,
        "its own pid namespace: {visible} processes visible"
    );

    // A background process that left the exec's session dies with the
    // sandbox: it is in runnerd's pid namespace.
    let tag = format!("escapee-{}", sandbox.id);
    let (_, reason) = run(
        &sandbox,
        &format!(
            "printf 'while :; do sleep 0.05; done\\n' > {tag}.sh; \
             setsid sh ./{tag}.sh </dev/null >/dev/null 2>&1 &"
        ),
    )
    .await;
    assert_eq!(reason, ExitReason::Exited { code: 0 });
    assert!(
        eventually(Duration::from_secs(2), || !processes_mentioning(&tag)
            .is_empty())
        .await,
        "the escapee runs"
    );
    provider.destroy(&sandbox).await.expect("destroy");
    assert!(
        eventually(Duration::from_secs(2), || processes_mentioning(&tag)
            .is_empty())
        .await,
        "the escapee died with the sandbox"
    );
}

#[tokio::test]
async fn a_provision_whose_caller_stops_waiting_leaves_nothing_behind() {
    for mode in modes() {
        let root = Root::new();
        let provider = provider(root.path(), mode);
        // Far too short for runnerd to answer: the caller gives up mid-way.
        let gave_up = tokio::time::timeout(
            Duration::from_millis(2),
            provider.provision(&spec("sess-gone")),
        )
        .await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        let root_path = format!("{}/", root.path().display());
        assert!(
            eventually(Duration::from_secs(10), || {
                entries(root.path()).is_empty() && processes_mentioning(&root_path).is_empty()
            })
            .await,
            "the sandbox finished provisioning and was destroyed ({}): {:?}",
            mode_of(mode),
            entries(root.path())
        );
    }
}

#[tokio::test]
async fn destroy_refuses_what_is_not_a_sandbox_id() {
    let root = Root::new();
    let provider = provider(root.path(), BwrapMode::Off);
    let victim = root.path().join("precious");
    std::fs::create_dir(&victim).expect("mkdir");
    let sandbox = Sandbox {
        id: "../precious".to_owned(),
        session_id: "s".to_owned(),
        owner: "o".to_owned(),
        provider: "local-process".to_owned(),
        endpoint: "http://127.0.0.1:1".to_owned(),
        token: "t".to_owned(),
        created_at_ms: 0,
        expires_at_ms: 0,
        labels: Default::default(),
    };
    let err = provider.destroy(&sandbox).await.expect_err("refused");
    assert!(
        err.to_string().contains("not a local-process sandbox id"),
        "{err}"
    );
    assert!(victim.exists());
}
