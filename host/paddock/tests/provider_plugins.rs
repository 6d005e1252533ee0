//! Provider plugins end to end: the real `paddock` binary with `hardened`
//! launching on the local-process engine, `remote-runnerd` leasing from a
//! pool of real runnerd processes this test starts, and the misbehaving
//! `test-provider-faults` (a trap, an endless loop) failing only the
//! provisioning of the session that hit it. Hot reload goes through the real
//! directory watcher.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ALICE, BOB, Host, eventually, exit, json_body, stdout};
use serde_json::{Value, json};

const POOL_TOKEN: &str = "pool-token-for-tests-0001";

/// Runs `echo` in a new session of `token`'s owner with `labels`; returns
/// the status of the exec request and its body.
async fn try_exec(host: &Host, token: &str, labels: Value) -> (u16, Value, String) {
    let session = host
        .create_session(token, json!({ "labels": labels }))
        .await;
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs"),
            token,
            Some(json_body(&["sh", "-c", "echo provided"])),
        )
        .await;
    (status, body, session)
}

/// The exec ran in a sandbox and printed its line.
async fn ran(host: &Host, token: &str, session: &str, body: &Value) {
    let exec = body["id"].as_str().expect("an exec id");
    let events = host.collect(token, session, exec).await;
    assert_eq!(stdout(&events), "provided\n");
    assert_eq!(exit(&events)["code"], 0);
}

/// Where `/v1/plugins` says plugin `name` comes from.
async fn source_of(host: &Host, name: &str) -> String {
    let (_, listed) = host.call("GET", "/v1/plugins", ALICE, None).await;
    listed["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .and_then(|p| p["source"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Hot reload of a shipped provider: its wasm dropped into the plugins
/// directory replaces the built-in (a session then runs on the file's
/// version); removing the file brings the built-in back.
async fn reload_builtin(host: &Host, name: &str) {
    let file = format!("{name}.wasm");
    let wasm = paddock::plugin::builtins()
        .find(|b| b.file_name == file)
        .expect("a shipped provider")
        .wasm;
    let plugins = host.data.join("plugins");
    std::fs::write(plugins.join(".reload.tmp"), wasm).unwrap();
    std::fs::rename(plugins.join(".reload.tmp"), plugins.join(&file)).unwrap();
    let from_file = eventually(Duration::from_secs(10), async || {
        source_of(host, name).await.ends_with(&file)
    })
    .await;
    assert!(from_file, "{name} is served from the dropped file");
    std::fs::remove_file(plugins.join(&file)).unwrap();
    let builtin = eventually(Duration::from_secs(10), async || {
        source_of(host, name).await == "built-in"
    })
    .await;
    assert!(
        builtin,
        "{name} is the built-in again once its file is gone"
    );
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardened_launches_on_the_engine_and_enforces_its_owner_limit() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &dir.path().join("data"),
        "[sandbox]\nprovider = \"hardened\"\n\
         [plugins.config.hardened]\nmax_sandboxes_per_owner = \"1\"\nmax_memory_mib = \"512\"\n",
    );
    let (status, body, first) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &first, &body).await;
    let (_, view) = host
        .call("GET", &format!("/v1/sessions/{first}"), ALICE, None)
        .await;
    assert_eq!(view["provider"], "hardened", "{view}");

    // A second live sandbox of the same owner is over the policy's limit:
    // a refusal, not an outage.
    let (status, body, second) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "sandbox_refused");
    let text = message(&body);
    assert!(
        text.contains("hardened") && text.contains("max_sandboxes_per_owner"),
        "the refusal names the plugin and the limit: {text}"
    );
    // Another owner has a limit of its own.
    let (status, body, bob) = try_exec(&host, BOB, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, BOB, &bob, &body).await;

    // Ending the first session frees the slot for the next provision, on a
    // hot-reloaded version of the plugin.
    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{first}"), ALICE, None)
        .await;
    assert_eq!(status, 204);
    reload_builtin(&host, "hardened").await;
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{second}/execs"),
            ALICE,
            Some(json_body(&["sh", "-c", "echo provided"])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &second, &body).await;
}

/// A runnerd of the pool, on loopback.
struct PoolMember {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for PoolMember {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn pool_member() -> PoolMember {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir(&workspace).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, POOL_TOKEN).unwrap();
    let runnerd = paddock::provider::default_runnerd_path().expect("runnerd is built");
    let mut child = Command::new(runnerd)
        .arg("--workspace")
        .arg(&workspace)
        .arg("--token-file")
        .arg(&token_file)
        .args(["--listen", "127.0.0.1:0", "--no-cgroups"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start runnerd");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).unwrap();
    PoolMember {
        child,
        url: format!("http://{}", listening["listening"].as_str().unwrap()),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runnerd_leases_each_pool_member_to_one_session_at_a_time() {
    let pool = [pool_member(), pool_member()];
    let endpoints = pool.iter().map(|m| m.url.as_str()).collect::<Vec<_>>();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[sandbox]\nprovider = \"remote-runnerd\"\n\
         [plugins.config.remote-runnerd]\nendpoints = \"{}\"\n\
         [plugins.grants.remote-runnerd]\nenv = [\"PADDOCK_POOL_TOKEN\"]\nallow_hosts = [\"127.0.0.1\"]\n",
        endpoints.join(",")
    );
    let host = Host::start_with_env(
        &dir.path().join("data"),
        &config,
        &[("PADDOCK_POOL_TOKEN", POOL_TOKEN)],
    );

    let (status, body, a) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &a, &body).await;
    let (status, body, b) = try_exec(&host, BOB, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, BOB, &b, &body).await;

    // Both members are leased: a third session has nowhere to run.
    let (status, body, c) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("remote-runnerd"), "{body}");

    // A lease ends with its session; the member serves the next one, on a
    // hot-reloaded version of the plugin.
    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{a}"), ALICE, None)
        .await;
    assert_eq!(status, 204);
    reload_builtin(&host, "remote-runnerd").await;
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{c}/execs"),
            ALICE,
            Some(json_body(&["sh", "-c", "echo provided"])),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &c, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_runnerd_without_the_pool_on_its_allowlist_is_refused() {
    let pool = [pool_member()];
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[sandbox]\nprovider = \"remote-runnerd\"\n\
         [plugins.config.remote-runnerd]\nendpoints = \"{}\"\n\
         [plugins.grants.remote-runnerd]\nenv = [\"PADDOCK_POOL_TOKEN\"]\n",
        pool[0].url
    );
    let host = Host::start_with_env(
        &dir.path().join("data"),
        &config,
        &[("PADDOCK_POOL_TOKEN", POOL_TOKEN)],
    );
    let (status, body, _) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(message(&body).contains("allow_hosts"), "{body}");
}

fn install_faults(plugins: &Path) {
    std::fs::create_dir_all(plugins).unwrap();
    let wasm = std::fs::read(env!("PADDOCK_TEST_PROVIDER_FAULTS_WASM"))
        .expect("the build script builds test-provider-faults");
    // Written beside and renamed in, as an operator's deploy would.
    let tmp = plugins.join(".faults.tmp");
    std::fs::write(&tmp, wasm).unwrap();
    std::fs::rename(tmp, plugins.join("faults.wasm")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_plugin_that_traps_or_hangs_fails_only_that_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    install_faults(&data.join("plugins"));
    let host = Host::start(
        &data,
        "[sandbox]\nprovider = \"test-provider-faults\"\n\
         [plugins.overrides.test-provider-faults]\ncall_timeout_ms = 1000\n",
    );

    let (status, body, _) = try_exec(&host, ALICE, json!({ "fault": "trap" })).await;
    assert_eq!(status, 503, "{body}");
    let text = message(&body);
    assert!(
        text.contains("test-provider-faults") && text.contains("trapped"),
        "{text}"
    );

    let started = std::time::Instant::now();
    let (status, body, _) = try_exec(&host, ALICE, json!({ "fault": "hang" })).await;
    assert_eq!(status, 503, "{body}");
    assert!(message(&body).contains("deadline"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the endless loop was cut at its deadline"
    );

    // The plugin and the host go on serving.
    let (status, body, session) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &session, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_plugin_is_hot_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let plugins = data.join("plugins");
    install_faults(&plugins);
    let host = Host::start(&data, "[sandbox]\nprovider = \"test-provider-faults\"\n");
    let (status, body, session) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &session, &body).await;

    // Removed: the next provisioning says the plugin is gone.
    std::fs::remove_file(plugins.join("faults.wasm")).unwrap();
    let mut last = Value::Null;
    let gone = eventually(Duration::from_secs(10), async || {
        let (status, body, _) = try_exec(&host, ALICE, json!({})).await;
        last = body;
        status == 503 && message(&last).contains("no provider plugin named")
    })
    .await;
    assert!(gone, "removal took effect: {last}");

    // Added back: sessions run again, and the API shows where it came from.
    install_faults(&plugins);
    let back = eventually(Duration::from_secs(10), async || {
        let (status, body, session) = try_exec(&host, ALICE, json!({})).await;
        if status != 201 {
            return false;
        }
        ran(&host, ALICE, &session, &body).await;
        true
    })
    .await;
    assert!(back, "the re-added plugin serves provisioning");
    let (_, listed) = host.call("GET", "/v1/plugins", ALICE, None).await;
    let row = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "test-provider-faults")
        .cloned()
        .unwrap_or_default();
    assert_eq!(row["kind"], "provider", "{listed}");
    assert!(
        row["source"]
            .as_str()
            .unwrap_or_default()
            .ends_with("faults.wasm"),
        "{listed}"
    );

    // A broken replacement is refused; the version before it keeps serving.
    std::fs::write(plugins.join(".broken.tmp"), b"\0asm broken").unwrap();
    std::fs::rename(plugins.join(".broken.tmp"), plugins.join("faults.wasm")).unwrap();
    let refused = eventually(Duration::from_secs(10), async || {
        let (_, listed) = host.call("GET", "/v1/plugins", ALICE, None).await;
        listed["refused"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert!(refused, "the broken file is listed as refused");
    let (status, body, session) = try_exec(&host, ALICE, json!({})).await;
    assert_eq!(status, 201, "{body}");
    ran(&host, ALICE, &session, &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_names_a_configured_profile_or_gets_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(
        &dir.path().join("data"),
        "[sessions.profiles.small]\ncpu_millis = 500\nmemory_mib = 256\npids = 64\nworkspace_mib = 100\n",
    );
    let (status, _) = host
        .call(
            "POST",
            "/v1/sessions",
            ALICE,
            Some(json!({ "profile": "small" })),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = host
        .call(
            "POST",
            "/v1/sessions",
            ALICE,
            Some(json!({ "profile": "huge" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let text = message(&body);
    assert!(text.contains("default") && text.contains("small"), "{text}");
}
