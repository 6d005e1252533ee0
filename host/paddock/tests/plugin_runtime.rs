//! The plugin runtime against real components: fault containment,
//! capabilities, the compiled cache and hot reload through the real
//! directory watcher. The misbehaving plugin is `plugins/test-faults`, built
//! by the host's build script.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paddock::config::PluginsConfig;
use paddock::plugin::{
    CacheOutcome, DirGrant, EngineSettings, LimitsOverride, PluginEngine, PluginError,
    PluginGrants, PluginHost, PluginSource, sha256_hex,
};
use paddock_sdk::agent::{AgentEvent, ParseContext, RunSpec};

const FAULTS: &str = "test-faults";

fn faults_wasm() -> Vec<u8> {
    std::fs::read(env!("PADDOCK_TEST_FAULTS_WASM")).expect("the build script builds test-faults")
}

/// The faults plugin with its version's build marker replaced by `tag`
/// (8 characters): a distinct file of the same plugin.
fn faults_version(tag: &str) -> Vec<u8> {
    assert_eq!(tag.len(), 8);
    let mut wasm = faults_wasm();
    let marker = b"build.AAAAAAAA";
    let at = wasm
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("marker in the wasm");
    wasm[at + 6..at + 14].copy_from_slice(tag.as_bytes());
    wasm
}

/// Compiled components are shared by every test (and every run) so each
/// variant is compiled once.
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// Writes `bytes` to `dir/name` atomically, as an operator's deploy would.
fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A small pool: tests run in parallel, each with its own engine.
fn small() -> PluginsConfig {
    PluginsConfig {
        max_instances: Some(32),
        ..PluginsConfig::default()
    }
}

async fn host_with(config: PluginsConfig) -> (tempfile::TempDir, Arc<PluginHost>) {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "test-faults.wasm", &faults_wasm());
    let host = PluginHost::new(&config, Some(dir.path().to_owned()), &shared_cache())
        .await
        .unwrap();
    (dir, host)
}

fn limits(memory_mib: Option<u32>, call_timeout_ms: Option<u64>) -> PluginsConfig {
    let mut config = small();
    config.overrides.insert(
        FAULTS.into(),
        LimitsOverride {
            memory_mib,
            call_timeout_ms,
        },
    );
    config
}

fn raw_lines(events: &[AgentEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Raw(r) => Some(r.line.clone()),
            _ => None,
        })
        .collect()
}

async fn feed_one(host: &PluginHost, line: &str) -> Result<Vec<AgentEvent>, PluginError> {
    let plugin = host.agent(FAULTS)?;
    let mut parser = plugin.parser(&ParseContext::default()).await?;
    parser.feed(format!("{line}\n").as_bytes()).await
}

#[tokio::test]
async fn a_trap_fails_that_parser_only() {
    let (_dir, host) = host_with(small()).await;
    let plugin = host.agent(FAULTS).unwrap();
    let mut parser = plugin.parser(&ParseContext::default()).await.unwrap();
    assert_eq!(
        raw_lines(&parser.feed(b"before\n").await.unwrap()),
        ["before"]
    );

    let err = parser.feed(b"trap\n").await.unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    assert!(
        err.to_string().contains("test-faults"),
        "the error names the plugin: {err}"
    );
    // The trapped instance is never entered again…
    let err = parser.feed(b"after\n").await.unwrap_err();
    assert!(matches!(err, PluginError::Poisoned { .. }), "{err}");
    // …while the plugin and the host go on.
    assert_eq!(raw_lines(&feed_one(&host, "next").await.unwrap()), ["next"]);
}

#[tokio::test]
async fn an_endless_loop_is_interrupted_at_the_deadline() {
    let (_dir, host) = host_with(limits(None, Some(300))).await;
    let started = Instant::now();
    let err = feed_one(&host, "loop").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, PluginError::Deadline { .. }), "{err}");
    assert!(
        took >= Duration::from_millis(300),
        "interrupted before its deadline: {took:?}"
    );
    // Liveness bound, not a performance target: the call must end.
    assert!(
        took < Duration::from_secs(10),
        "the deadline did not stop the call: {took:?}"
    );
    assert_eq!(
        raw_lines(&feed_one(&host, "still here").await.unwrap()),
        ["still here"]
    );
}

#[tokio::test]
async fn unbounded_allocation_stops_at_the_memory_cap() {
    let (_dir, host) = host_with(limits(Some(16), None)).await;
    let err = feed_one(&host, "alloc").await.unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryCap { limit_mib: 16, .. }),
        "{err}"
    );
    assert_eq!(
        raw_lines(&feed_one(&host, "still here").await.unwrap()),
        ["still here"]
    );
}

#[tokio::test]
async fn a_trap_in_build_exec_is_an_error_for_that_call() {
    let (_dir, host) = host_with(small()).await;
    let plugin = host.agent(FAULTS).unwrap();
    let spec = |prompt: &str| RunSpec {
        prompt: prompt.into(),
        ..RunSpec::default()
    };
    let err = plugin.build_exec(&spec("trap")).await.unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    let exec = plugin.build_exec(&spec("hello")).await.unwrap();
    assert_eq!(exec.stdin.as_deref(), Some("hello"));
}

#[tokio::test]
async fn plugins_see_no_environment_and_no_files_unless_granted() {
    // SAFETY: set before any thread of this test reads the environment; the
    // variable is unique to this test.
    unsafe { std::env::set_var("PADDOCK_TEST_GRANTED_VAR", "visible") };
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("note.txt"), "hello").unwrap();

    let (_dir, host) = host_with(small()).await;
    let denied = raw_lines(
        &feed_one(&host, "env PADDOCK_TEST_GRANTED_VAR")
            .await
            .unwrap(),
    );
    assert!(denied[0].contains("not found"), "{denied:?}");
    let denied = raw_lines(&feed_one(&host, "read /granted/note.txt").await.unwrap());
    assert!(denied[0].contains("error"), "{denied:?}");
    let denied = raw_lines(&feed_one(&host, "read /etc/hostname").await.unwrap());
    assert!(denied[0].contains("error"), "{denied:?}");

    let mut config = small();
    config.grants.insert(
        FAULTS.into(),
        PluginGrants {
            env: vec!["PADDOCK_TEST_GRANTED_VAR".into()],
            dirs: vec![DirGrant {
                host: files.path().to_owned(),
                guest: "/granted".into(),
                writable: false,
            }],
            allow_hosts: vec![],
            secrets: vec![],
        },
    );
    let (_dir, host) = host_with(config).await;
    let granted = raw_lines(
        &feed_one(&host, "env PADDOCK_TEST_GRANTED_VAR")
            .await
            .unwrap(),
    );
    assert_eq!(granted, ["env PADDOCK_TEST_GRANTED_VAR=visible"]);
    let granted = raw_lines(&feed_one(&host, "read /granted/note.txt").await.unwrap());
    assert_eq!(granted, ["read /granted/note.txt: 5 bytes"]);
    // Only what was granted: other files stay out of reach.
    let denied = raw_lines(&feed_one(&host, "read /etc/hostname").await.unwrap());
    assert!(denied[0].contains("error"), "{denied:?}");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk() {
    let cache_dir = tempfile::tempdir().unwrap();
    let wasm = faults_wasm();
    let hash = sha256_hex(&wasm);
    let engine = PluginEngine::new(EngineSettings::default(), cache_dir.path()).unwrap();
    let (_, first) = engine
        .cache()
        .load(engine.engine(), FAULTS, &wasm, &hash)
        .unwrap();
    assert_eq!(first, CacheOutcome::Compiled);
    drop(engine);
    // A new engine (a restarted host) with the same settings finds it.
    let engine = PluginEngine::new(EngineSettings::default(), cache_dir.path()).unwrap();
    let (_, second) = engine
        .cache()
        .load(engine.engine(), FAULTS, &wasm, &hash)
        .unwrap();
    assert_eq!(second, CacheOutcome::Hit);
}

#[tokio::test]
async fn a_broken_file_is_refused_and_others_load() {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), "broken.wasm", b"\0asm this is not a component");
    install(dir.path(), "test-faults.wasm", &faults_wasm());
    let host = PluginHost::new(&small(), Some(dir.path().to_owned()), &shared_cache())
        .await
        .unwrap();
    let names: Vec<String> = host.list().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&FAULTS.to_owned()), "{names:?}");
    let refused = host.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, dir.path().join("broken.wasm"));
    assert!(
        refused[0].1.contains("broken.wasm"),
        "the reason names the file: {}",
        refused[0].1
    );
    assert!(
        names.contains(&"claude-code".to_owned()),
        "built-ins load too: {names:?}"
    );
}

#[tokio::test]
async fn a_file_overrides_the_built_in_of_the_same_name() {
    let dir = tempfile::tempdir().unwrap();
    let builtin = paddock::plugin::builtins()
        .find(|b| b.file_name == "codex.wasm")
        .unwrap();
    install(dir.path(), "codex.wasm", builtin.wasm);
    let host = PluginHost::new(&small(), Some(dir.path().to_owned()), &shared_cache())
        .await
        .unwrap();
    let codex = host.list().into_iter().find(|p| p.name == "codex").unwrap();
    assert_eq!(
        codex.source,
        PluginSource::File(dir.path().join("codex.wasm"))
    );
    std::fs::remove_file(dir.path().join("codex.wasm")).unwrap();
    host.rescan().await;
    let codex = host.list().into_iter().find(|p| p.name == "codex").unwrap();
    assert_eq!(
        codex.source,
        PluginSource::Builtin,
        "removing the file brings the built-in back"
    );
}

/// Waits (bounded) until `check` holds after a rescan by the watcher.
async fn eventually(
    host: &PluginHost,
    what: &str,
    check: impl Fn(&PluginHost) -> bool,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        if check(host) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what}: not seen within 20 s");
}

fn version_of(host: &PluginHost) -> Option<String> {
    host.agent(FAULTS).ok().map(|p| p.info().version.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_through_the_directory_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let host = PluginHost::new(&small(), Some(dir.path().to_owned()), &shared_cache())
        .await
        .unwrap();
    let _watch = paddock::plugin::watch(host.clone()).unwrap();
    assert_eq!(version_of(&host), None);

    // Add.
    install(dir.path(), "faults.wasm", &faults_version("11111111"));
    let took = eventually(&host, "added plugin", |h| {
        version_of(h).as_deref() == Some("1.0.0+build.11111111")
    })
    .await;
    eprintln!("add took effect after {took:?}");
    let plugin_v1 = host.agent(FAULTS).unwrap();
    let mut running = plugin_v1.parser(&ParseContext::default()).await.unwrap();

    // Replace: new parsers get the new version, the running one keeps its own.
    install(dir.path(), "faults.wasm", &faults_version("22222222"));
    let took = eventually(&host, "replaced plugin", |h| {
        version_of(h).as_deref() == Some("1.0.0+build.22222222")
    })
    .await;
    eprintln!("replace took effect after {took:?}");
    assert_eq!(running.plugin().info().version, "1.0.0+build.11111111");
    assert_eq!(
        raw_lines(&running.feed(b"old parser\n").await.unwrap()),
        ["old parser"]
    );

    // Broken: refused, the previous version stays active.
    let generation = host.generation();
    install(
        dir.path(),
        "faults.wasm",
        b"\0asm\x0d\0\x01\0 truncated garbage",
    );
    eventually(&host, "rescan after a broken file", |h| {
        h.generation() > generation
    })
    .await;
    assert_eq!(version_of(&host).as_deref(), Some("1.0.0+build.22222222"));
    assert_eq!(
        raw_lines(&feed_one(&host, "works").await.unwrap()),
        ["works"]
    );

    // Remove.
    std::fs::remove_file(dir.path().join("faults.wasm")).unwrap();
    eventually(&host, "removed plugin", |h| version_of(h).is_none()).await;
    let err = host.agent(FAULTS).unwrap_err();
    assert!(matches!(err, PluginError::UnknownAgent { .. }), "{err}");
}

/// Compile-time check: a parser and its calls can live in a spawned task
/// (each agent exec owns its parser on its own task).
#[allow(dead_code)]
fn parsers_are_send(parser: &mut paddock::plugin::AgentParser) {
    fn send<T: Send>(_: &T) {}
    send(parser);
    send(&parser.feed(b""));
}
