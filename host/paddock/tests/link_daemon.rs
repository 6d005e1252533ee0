//! `paddock link` as a real process against a real host on loopback: it
//! registers, reports the agent CLIs on its PATH (a stand-in `claude`
//! script: the desktop's real CLIs are not installed here), heartbeats,
//! goes offline when killed, comes back when started again, deregisters on
//! SIGTERM, and runs sessions whose commands, events and files go through
//! the host.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ALICE, BOB, Host, eventually, exit, json_body, stdout};
use serde_json::{Value, json};

/// A desktop: a PATH with a stand-in `claude` and the daemon's data dir.
struct Desktop {
    dir: tempfile::TempDir,
}

impl Desktop {
    fn new() -> Self {
        // Seen by a sandbox confined by bubblewrap (not under /tmp).
        let dir = common::visible_tempdir();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // The stand-in answers `--version`, and otherwise replays a captured
        // Claude Code transcript as the real CLI would print it.
        let fixtures =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/claude-code");
        std::fs::copy(
            fixtures.join("b_tool_bash.jsonl"),
            bin.join("transcript.jsonl"),
        )
        .unwrap();
        let claude = bin.join("claude");
        std::fs::write(
            &claude,
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '2.1.0 (Claude Code)'; exit 0; fi\n\
             cat >/dev/null\nwhile IFS= read -r line; do printf '%s\\n' \"$line\"; done < \"$(dirname \"$0\")/transcript.jsonl\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
        // Compiled plugins are shared with the test hosts' cache.
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-plugin-cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::os::unix::fs::symlink(&cache, data.join("cache")).unwrap();
        Self { dir }
    }

    /// Starts `paddock link`; returns it once it printed its link id.
    fn link(&self, host: &Host) -> (LinkProcess, String) {
        self.link_to(&host.url)
    }

    fn link_to(&self, host_url: &str) -> (LinkProcess, String) {
        self.link_with(host_url, &[])
    }

    fn link_with(&self, host_url: &str, extra: &[&str]) -> (LinkProcess, String) {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            "/usr/bin:/bin"
        );
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["link", "--host", host_url, "--token", ALICE])
            .args(extra)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .env("PATH", path)
            .env("PADDOCK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start paddock link");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("link's first line {line:?}: {e}"));
        (
            LinkProcess {
                child,
                data: self.dir.path().join("data"),
            },
            started["link_id"].as_str().unwrap().to_owned(),
        )
    }
}

/// A running `paddock link`. Dropped (a test ended or failed), it is
/// killed with the runnerds it started, so nothing outlives the test.
struct LinkProcess {
    child: Child,
    data: std::path::PathBuf,
}

impl std::ops::Deref for LinkProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for LinkProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for LinkProcess {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        for pid in common::runnerd_pids_in(&self.data) {
            // SAFETY: kill(2) on a runnerd this link started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Waits until the host says alice's link takes requests (its control
/// connection comes up just after it registered).
async fn wait_connected(host: &Host) {
    let connected = eventually(Duration::from_secs(10), async || {
        let (_, me) = host.call("GET", "/v1/links/me", ALICE, None).await;
        me["connected"] == true
    })
    .await;
    assert!(connected, "the link's control connection came up");
}

async fn resolve(host: &Host, agent: &str) -> (u16, Value) {
    host.call(
        "POST",
        "/v1/dispatch/resolve",
        ALICE,
        Some(json!({ "preference": "user-desktop", "agent": agent })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_daemon_registers_heartbeats_and_goes_offline_when_killed() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with_env(
        &dir.path().join("data"),
        "",
        &[("PADDOCK_LINK_TTL_SECS", "3")],
    );
    let desktop = Desktop::new();
    let (mut link, id) = desktop.link(&host);

    let (status, me) = host.call("GET", "/v1/links/me", ALICE, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["online"], true);
    let agents = me["capabilities"]["agents"].as_array().unwrap();
    assert_eq!(
        agents,
        &vec![json!({ "binary": "claude", "version": "2.1.0 (Claude Code)" })],
        "only the CLI on its PATH, with its version"
    );

    // Heartbeats keep it online well past the TTL.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = resolve(&host, "claude-code").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["link_id"], id.as_str());
    let (status, body) = resolve(&host, "codex").await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["code"],
        "user_desktop_link_capability_missing"
    );

    // Killed: offline once the TTL passes.
    link.kill().unwrap();
    link.wait().unwrap();
    let offline = eventually(Duration::from_secs(8), async || {
        let (status, body) = resolve(&host, "claude-code").await;
        status == 409 && body["error"]["code"] == "user_desktop_link_offline"
    })
    .await;
    assert!(offline, "a killed link goes offline after the TTL");

    // Started again: online again, as a new registration.
    let (mut link, again) = desktop.link(&host);
    assert_ne!(again, id);
    let (status, _) = resolve(&host, "claude-code").await;
    assert_eq!(status, 200);

    // SIGTERM: it deregisters before exiting; no TTL to wait for.
    unsafe { libc::kill(link.id() as i32, libc::SIGTERM) };
    let exit = link.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let (status, _) = host.call("GET", "/v1/links/me", ALICE, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_with_a_refused_token_says_so_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&dir.path().join("data"), "");
    let desktop = Desktop::new();
    let output = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["link", "--host", &host.url, "--token", "not-a-real-token"])
        .arg("--data-dir")
        .arg(desktop.dir.path().join("data"))
        .env("PADDOCK_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refused the API token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desktop_session_runs_on_the_link_and_streams_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with_env(
        &dir.path().join("data"),
        "",
        &[("PADDOCK_LINK_TTL_SECS", "3")],
    );
    let desktop = Desktop::new();
    let (mut link, _) = desktop.link(&host);
    wait_connected(&host).await;
    let desktop_sandboxes = desktop.dir.path().join("data/sandboxes");

    let (status, body) = host
        .call(
            "POST",
            "/v1/sessions",
            BOB,
            Some(json!({ "preference": "user-desktop" })),
        )
        .await;
    assert_eq!(status, 409, "bob has no desktop linked: {body}");
    assert_eq!(body["error"]["code"], "user_desktop_link_offline");

    let session = host
        .create_session(ALICE, json!({ "preference": "user-desktop" }))
        .await;
    let (_, view) = host
        .call("GET", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(view["provider"], "user-desktop", "{view}");

    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&["sh", "-c", "echo on the desktop; pwd"]),
        )
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    let out = stdout(&events);
    assert!(out.starts_with("on the desktop\n"), "{out:?}");
    let pwd = out.lines().nth(1).unwrap_or_default();
    assert!(
        Path::new(pwd).starts_with(&desktop_sandboxes) || pwd.starts_with("/workspace"),
        "it ran in a sandbox of the desktop's data dir: {pwd}"
    );
    assert_eq!(exit(&events)["code"], 0);

    // Files go through the link too.
    let status = host
        .request(
            reqwest::Method::PUT,
            &format!("/v1/sessions/{session}/files/notes/todo.txt"),
            ALICE,
        )
        .query(&[("parents", "true")])
        .body("written from the platform")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert!((200..300).contains(&status), "{status}");
    let read = host
        .request(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/files/notes/todo.txt"),
            ALICE,
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(read, "written from the platform");

    // An agent whose CLI the desktop lacks is refused before anything runs.
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs"),
            ALICE,
            Some(json!({ "agent": "codex", "run": { "prompt": "hi" } })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["error"]["code"],
        "user_desktop_link_capability_missing"
    );

    // An agent run: the desktop's own `claude` (found on the link's PATH)
    // runs, and its normalized events stream back through the host.
    let exec = host
        .exec(
            ALICE,
            &session,
            json!({ "agent": "claude-code", "run": { "prompt": "run echo hello" } }),
        )
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    common::assert_claude_golden(&events, "b_tool_bash");

    // The session ran claude-code: it is pinned to it.
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs"),
            ALICE,
            Some(json!({ "agent": "gemini", "run": { "prompt": "hi" } })),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "dispatch_pinned");

    // Ending the session destroys the sandbox on the desktop.
    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 204);
    let gone = eventually(Duration::from_secs(10), async || {
        std::fs::read_dir(&desktop_sandboxes).map_or(true, |mut d| d.next().is_none())
    })
    .await;
    assert!(gone, "the desktop's sandbox is gone");
    link.kill().ok();
    link.wait().ok();
}

/// A TCP relay between the link and the host whose connections the test
/// can cut, as a flaky network would: a real drop of the link's WebSocket.
struct Relay {
    url: String,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    async fn start(to: &str) -> Self {
        let target = to.trim_start_matches("http://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let held = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                held.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { url, connections }
    }

    /// Drops every connection open through the relay.
    fn cut(&self) {
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_connection_loses_no_events() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start_with_env(
        &dir.path().join("data"),
        "",
        &[("PADDOCK_LINK_TTL_SECS", "10")],
    );
    let relay = Relay::start(&host.url).await;
    let desktop = Desktop::new();
    let (mut link, _) = desktop.link_to(&relay.url);
    wait_connected(&host).await;
    let session = host
        .create_session(ALICE, json!({ "preference": "user-desktop" }))
        .await;
    let script = "for i in $(seq 1 30); do echo line $i; sleep 0.1; done";
    let exec = host
        .exec(ALICE, &session, json_body(&["sh", "-c", script]))
        .await;

    let mut sse = host.events(ALICE, &session, &exec, None).await;
    let mut events = Vec::new();
    while let Some(event) = sse.next().await {
        let fifth = event.data["text"]
            .as_str()
            .is_some_and(|t| t.contains("line 5\n"));
        events.push(event);
        if fifth {
            break;
        }
    }
    // The link's connection drops mid-exec; it reconnects on its own.
    relay.cut();
    events.extend(sse.collect().await);

    let out = stdout(&events);
    let expected: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(out, expected, "every line exactly once, in order");
    assert!(
        events.iter().all(|e| e.event != "gap"),
        "no gap in the events"
    );
    assert_eq!(exit(&events)["code"], 0);
    link.kill().ok();
    link.wait().ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_link_is_called_directly_where_the_operator_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = Host::start(&dir.path().join("refusing"), "");
    let desktop = Desktop::new();
    let output = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["link", "--host", &refusing.url, "--token", ALICE])
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(desktop.dir.path().join("data"))
        .env("PADDOCK_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allow_direct"), "{stderr}");

    let host = Host::start(
        &dir.path().join("allowing"),
        "[links]\nallow_direct = true\n",
    );
    let (mut link, _) = desktop.link_with(&host.url, &["--listen", "127.0.0.1:0"]);
    wait_connected(&host).await;
    let session = host
        .create_session(ALICE, json!({ "preference": "user-desktop" }))
        .await;
    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&["sh", "-c", "echo called directly"]),
        )
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    assert_eq!(stdout(&events), "called directly\n");
    link.kill().ok();
    link.wait().ok();
}
