//! The real Claude Code CLI as an agent exec: `paddock serve` starts the
//! pinned `claude` in a session, pointed (through the run spec's gateway) at
//! a scripted Anthropic Messages API this test serves on loopback. The CLI
//! asks for a Bash tool call, runs it, sends the result back and prints the
//! final answer; the host must turn all of it into normalized events and the
//! exec record's totals. The Messages API is scripted because the real one
//! is not reachable from this machine (and would not answer
//! deterministically); everything else is the real CLI and host.
//!
//! Set-up installs `@anthropic-ai/claude-code@2.1.330` with npm once into
//! `<target dir>/claude-code-2.1.330` (kept between runs). Without network
//! the install fails the test, unless `PADDOCK_SKIP_NETWORK_TESTS=1`.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use common::{ALICE, Host, exit};
use serde_json::{Value, json};

/// The version the adapter and the fixtures were made with.
const VERSION: &str = "2.1.330";
const PACKAGE: &str = "@anthropic-ai/claude-code";
const SKIP_VAR: &str = "PADDOCK_SKIP_NETWORK_TESTS";
/// The longest a cold install may take (the native package is ~380 MB).
const INSTALL_LIMIT: Duration = Duration::from_secs(15 * 60);

const MODEL: &str = "claude-sonnet-4-5-20250929";
const PROMPT: &str = "Run echo hello-from-tool in the shell and tell me what it printed.";
const FIRST_TEXT: &str = "I'll run that command.";
const TOOL_ID: &str = "toolu_01PaddockE2eBashCall0001";
const COMMAND: &str = "echo hello-from-tool";
const TOOL_OUTPUT: &str = "hello-from-tool";
const FINAL_TEXT: &str = "The command printed `hello-from-tool`.";
/// The session env variable holding the gateway key; the adapter has the
/// host copy it into `ANTHROPIC_API_KEY`.
const KEY_VAR: &str = "PADDOCK_GATEWAY_KEY";
const FAKE_KEY: &str = "sk-ant-api03-fake-key-for-paddock-e2e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_claude_cli_runs_a_tool_and_answers_through_the_host() {
    let Some(bin_dir) = installed_cli().await else {
        return;
    };

    let mock = Mock::default();
    let mock_url = mock.serve().await;

    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(&dir.path().join("data"), "");
    let session = cli_session(&host, &bin_dir, json!({}), json!({KEY_VAR: FAKE_KEY})).await;
    let (exec, events) = run_claude(
        &host,
        &session,
        json!({"model": MODEL, "gateway": {"base_url": mock_url, "token_env": KEY_VAR}}),
    )
    .await;

    let agent: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| &e.data)
        .collect();
    let report = format!(
        "agent events: {agent:#?}\nstderr: {}\nexit: {:?}\nmock requests: {:?}",
        common::text_of(&events, "stderr"),
        events.iter().find(|e| e.event == "exit").map(|e| &e.data),
        mock.summary(),
    );
    let position = |what: &str, check: &dyn Fn(&Value) -> bool| -> usize {
        agent
            .iter()
            .position(|e| e["type"] == what && check(e))
            .unwrap_or_else(|| panic!("no matching `{what}` event\n{report}"))
    };

    let started = position("run_started", &|_| true);
    let session_id = agent[started]["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !session_id.is_empty(),
        "run_started has the CLI's session id\n{report}"
    );
    assert_eq!(agent[started]["model"], MODEL, "{report}");

    let first_text = position("text", &|e| e["text"] == FIRST_TEXT);
    let tool_use = position("tool_use", &|e| e["id"] == TOOL_ID);
    let call = agent[tool_use];
    assert_eq!(call["name"], "Bash", "{report}");
    assert_eq!(call["kind"], "shell", "{report}");
    assert_eq!(call["input"]["command"], COMMAND, "{report}");

    let tool_result = position("tool_result", &|e| e["id"] == TOOL_ID);
    let output = &agent[tool_result];
    assert!(
        output["output"]
            .as_str()
            .is_some_and(|o| o.contains(TOOL_OUTPUT)),
        "the tool really ran in the sandbox\n{report}"
    );
    assert_eq!(output["is_error"], false, "{report}");

    let final_text = position("text", &|e| e["text"] == FINAL_TEXT);
    let result = position("result", &|_| true);
    assert_eq!(agent[result]["status"], "success", "{report}");
    assert_eq!(agent[result]["text"], FINAL_TEXT, "{report}");
    assert_eq!(agent[result]["session_id"], session_id.as_str(), "{report}");
    assert!(
        started < first_text
            && first_text < tool_use
            && tool_use < tool_result
            && tool_result < final_text
            && final_text < result,
        "events in order\n{report}"
    );
    assert!(
        agent.iter().any(|e| e["type"] == "text_delta"),
        "partial messages are on by default: text deltas stream\n{report}"
    );
    assert_eq!(
        agent.iter().filter(|e| e["type"] == "result").count(),
        1,
        "{report}"
    );
    assert!(
        !agent.iter().any(|e| e["type"] == "error"),
        "no error events\n{report}"
    );
    let end = exit(&events);
    assert_eq!(end["reason"], "exited", "{report}");
    assert_eq!(end["code"], 0, "{report}");

    let (status, view) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/execs/{exec}"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["kind"], "agent", "{view}");
    assert_eq!(view["state"], "ended", "{view}");
    assert_eq!(view["agent_session_id"], session_id.as_str(), "{view}");
    assert_eq!(view["result"]["status"], "success", "{view}");
    for key in ["input_tokens", "output_tokens"] {
        assert!(
            view["usage"][key].as_u64().is_some_and(|n| n > 0),
            "usage.{key} > 0: {view}"
        );
    }
    // The scripted usage: 2 messages of INPUT_TOKENS in and OUTPUT_TOKENS
    // out each, which the CLI's own accounting (modelUsage) reports.
    assert_eq!(view["usage"]["input_tokens"], 2 * INPUT_TOKENS, "{view}");
    assert_eq!(view["usage"]["output_tokens"], 2 * OUTPUT_TOKENS, "{view}");

    // What reached the scripted API: exactly the two Messages calls, with the
    // gateway key, the second one carrying the tool's output.
    let requests = mock.requests();
    let messages: Vec<&Recorded> = requests.iter().filter(|r| r.is_messages()).collect();
    assert_eq!(
        messages.len(),
        2,
        "two Messages API calls: {:?}",
        mock.summary()
    );
    for request in &messages {
        assert_eq!(
            request.api_key.as_deref(),
            Some(FAKE_KEY),
            "the gateway key as x-api-key"
        );
        assert_eq!(request.body["model"], MODEL);
        assert_eq!(request.body["stream"], true);
    }
    assert!(
        messages[0].body.to_string().contains(PROMPT),
        "the first call carries the prompt"
    );
    let returned =
        tool_result_of(&messages[1].body).expect("the second call carries the tool result");
    assert!(
        returned.contains(TOOL_OUTPUT),
        "tool result sent back: {returned:?}"
    );
}

/// The upstream's real key, which only the host holds.
const REAL_KEY: &str = "sk-ant-api03-real-upstream-key-only-the-host-has";
/// The prefix of the built-in gateway's virtual keys.
const VIRTUAL_KEY_PREFIX: &str = "pdk-gw-";

/// The same CLI with no gateway in its run spec: the host points it at its
/// built-in gateway with the session's virtual key. Within the model
/// allowlist the run works and the upstream sees only the real key; a model
/// off the list and a run past the token budget are refused by the gateway
/// (the upstream never sees them) and the CLI reports the error; the real
/// key is nowhere in the sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_claude_cli_runs_through_the_builtin_gateway_on_a_virtual_key() {
    let Some(bin_dir) = installed_cli().await else {
        return;
    };
    let mock = Mock::default();
    let mock_url = mock.serve().await;
    let dir = common::visible_tempdir();
    // One run costs 2 × (INPUT_TOKENS + OUTPUT_TOKENS) = 288 tokens: the
    // budget lets the first run finish and refuses the next.
    let config = format!(
        "[gateway.upstreams.anthropic]\nbase_url = \"{mock_url}\"\napi_key_env = \"PADDOCK_E2E_UPSTREAM_KEY\"\n\n\
         [gateway.limits]\nmodels = [\"claude-sonnet-4-5-*\"]\nbudget_tokens = 250\n"
    );
    let host = Host::start_with_env(
        &dir.path().join("data"),
        &config,
        &[("PADDOCK_E2E_UPSTREAM_KEY", REAL_KEY)],
    );
    let session = cli_session(&host, &bin_dir, json!({}), json!({})).await;
    let run = async |model: &str| {
        let (_, events) = run_claude(&host, &session, json!({"model": model})).await;
        let agent: Vec<Value> = events
            .iter()
            .filter(|e| e.event == "agent")
            .map(|e| e.data.clone())
            .collect();
        let report = format!(
            "agent events: {agent:#?}\nstderr: {}\nmock requests: {:?}",
            common::text_of(&events, "stderr"),
            mock.summary()
        );
        (agent, report)
    };
    let result_of = |agent: &[Value]| {
        agent
            .iter()
            .rfind(|e| e["type"] == "result")
            .cloned()
            .unwrap_or(Value::Null)
    };

    // Within the allowlist and the budget: the whole tool round trip.
    let (agent, report) = run(MODEL).await;
    assert_eq!(result_of(&agent)["status"], "success", "{report}");
    assert_eq!(result_of(&agent)["text"], FINAL_TEXT, "{report}");
    let seen = mock.requests();
    let messages: Vec<&Recorded> = seen.iter().filter(|r| r.is_messages()).collect();
    assert_eq!(messages.len(), 2, "{report}");
    for request in &seen {
        assert_eq!(
            request.api_key.as_deref(),
            Some(REAL_KEY),
            "the upstream sees the real key, never the virtual one: {request:?}"
        );
    }

    // A model off the allowlist never reaches the upstream.
    let (agent, report) = run("claude-opus-4-1-20250805").await;
    assert_ne!(result_of(&agent)["status"], "success", "{report}");
    assert!(report.contains("is not allowed"), "{report}");
    assert_eq!(mock.requests().len(), seen.len(), "{report}");

    // The budget is spent: refused too, with the reason.
    let (agent, report) = run(MODEL).await;
    assert_ne!(result_of(&agent)["status"], "success", "{report}");
    assert!(report.to_lowercase().contains("budget"), "{report}");
    assert_eq!(mock.requests().len(), seen.len(), "{report}");

    // The gateway recorded the first run's usage for the session.
    let (status, body) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/gateway"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["usage"]["total"]["input_tokens"],
        2 * INPUT_TOKENS,
        "{body}"
    );
    assert_eq!(
        body["usage"]["total"]["output_tokens"],
        2 * OUTPUT_TOKENS,
        "{body}"
    );

    // The sandbox (its files, its runnerd's state) never held the real key,
    // and the virtual key is masked in what the session printed.
    assert!(
        !report.contains(VIRTUAL_KEY_PREFIX),
        "the virtual key is masked in output: {report}"
    );
    let mut stack = vec![host.data.join("sandboxes")];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                stack.push(entry.path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(REAL_KEY),
                "the real key is in {}",
                path.display()
            );
        }
    }
}

/// An operator's own gateway comes through grants: a session granted
/// `PADDOCK_GATEWAY_URL` and `PADDOCK_GATEWAY_KEY` (here by the `env`
/// broker; `llm-gateway-litellm` issues the same pair) has its agent runs
/// pointed there, with the granted key, and the built-in gateway is not
/// used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_claude_cli_uses_a_gateway_the_session_was_granted() {
    let Some(bin_dir) = installed_cli().await else {
        return;
    };
    let mock = Mock::default();
    let mock_url = mock.serve().await;
    let dir = common::visible_tempdir();
    let config = "[secrets.policy.alice]\nallow = [\"env:PADDOCK_GATEWAY_URL\", \"env:PADDOCK_GATEWAY_KEY\"]\n\n\
                  [plugins.grants.env]\nsecrets = [\"PADDOCK_GATEWAY_URL\", \"PADDOCK_GATEWAY_KEY\"]\n";
    let host = Host::start_with_env(
        &dir.path().join("data"),
        config,
        &[
            ("PADDOCK_SECRET_PADDOCK_GATEWAY_URL", &mock_url),
            ("PADDOCK_SECRET_PADDOCK_GATEWAY_KEY", FAKE_KEY),
        ],
    );
    let grants = json!({"grants": [
        {"broker": "env", "name": "PADDOCK_GATEWAY_URL"},
        {"broker": "env", "name": "PADDOCK_GATEWAY_KEY"},
    ]});
    let session = cli_session(&host, &bin_dir, grants, json!({})).await;
    let (_, events) = run_claude(&host, &session, json!({"model": MODEL})).await;
    let result = events
        .iter()
        .rfind(|e| e.event == "agent" && e.data["type"] == "result")
        .map(|e| e.data.clone());
    assert_eq!(
        result.as_ref().map(|r| r["status"].clone()),
        Some(json!("success")),
        "{events:?}"
    );
    let messages: Vec<Recorded> = mock
        .requests()
        .into_iter()
        .filter(Recorded::is_messages)
        .collect();
    assert_eq!(messages.len(), 2, "{:?}", mock.summary());
    for request in &messages {
        assert_eq!(request.api_key.as_deref(), Some(FAKE_KEY));
    }
    let (status, _) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/gateway"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 404, "the built-in gateway was not used");
}

/// A session created with `create` whose PATH finds the installed CLI,
/// with `env` set too.
async fn cli_session(host: &Host, bin_dir: &Path, create: Value, env: Value) -> String {
    let session = host.create_session(ALICE, create).await;
    let mut set = env;
    set["PATH"] = json!(format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        bin_dir.display()
    ));
    let (status, body) = host
        .call(
            "PATCH",
            &format!("/v1/sessions/{session}/env"),
            ALICE,
            Some(json!({ "set": set })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    session
}

/// Runs the CLI on [`PROMPT`] with the run spec's other fields from `run`;
/// returns the exec id and every event of the run.
async fn run_claude(host: &Host, session: &str, run: Value) -> (String, Vec<common::SseEvent>) {
    let mut spec = json!({
        "prompt": PROMPT,
        "options": {"permission_mode": "bypassPermissions"},
    });
    if let (Some(spec), Some(run)) = (spec.as_object_mut(), run.as_object()) {
        spec.extend(run.clone());
    }
    let exec = host
        .exec(
            ALICE,
            session,
            json!({"agent": "claude-code", "run": spec, "timeout_ms": 100_000}),
        )
        .await;
    let sse = host.events(ALICE, session, &exec, None).await;
    let events = tokio::time::timeout(Duration::from_secs(150), sse.collect())
        .await
        .expect("the agent run ended within 150 s");
    (exec, events)
}

// ---------------------------------------------------------------------------
// Installing the CLI

/// [`install_claude_code`] off the async runtime.
async fn installed_cli() -> Option<PathBuf> {
    tokio::task::spawn_blocking(install_claude_code)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Makes sure the pinned CLI is installed in the cache and returns the
/// directory holding its native `claude` binary; `None` means skip.
fn install_claude_code() -> Option<PathBuf> {
    // Beside the build cache, where the CLI run in a sandbox sees it.
    let target = common::seen_by_sandboxes(
        Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("CARGO_TARGET_TMPDIR has a parent")
            .to_owned(),
        "agents",
    );
    let root = target.join(format!("claude-code-{VERSION}"));
    // One installer at a time across test processes; the lock goes with
    // the file descriptor.
    let lock = File::create(target.join(format!("claude-code-{VERSION}.lock"))).unwrap();
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());

    if let Some(dir) = native_dir(&root) {
        return Some(dir);
    }
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!(
            "SKIPPED: {PACKAGE}@{VERSION} is not cached in {} and {SKIP_VAR}=1, so it is not installed",
            root.display()
        );
        return None;
    }

    // Install into a scratch dir and rename it into place when complete, so
    // an interrupted install never looks like a cached one.
    let partial = target.join(format!("claude-code-{VERSION}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&partial).unwrap();
    let log_path = target.join(format!("claude-code-{VERSION}.npm.log"));
    let log = File::create(&log_path).unwrap();
    let started = Instant::now();
    let spawned = Command::new("npm")
        .current_dir(&partial)
        .arg("install")
        .arg("--prefix")
        .arg(&partial)
        .args([
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--no-save",
            "--no-package-lock",
            "--no-update-notifier",
            // 2.1.330 declares node >= 22; it needs no Node at all (the CLI
            // is a native binary), so an older Node must not refuse it.
            "--engine-strict=false",
            // The native binary is an optional dependency.
            "--include=optional",
            // The wrapper's postinstall only links the native binary over
            // its placeholder; the test uses the native package directly.
            "--ignore-scripts",
            "--fetch-retries=1",
        ])
        .arg(format!("{PACKAGE}@{VERSION}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => panic!(
            "cannot run npm to install {PACKAGE}@{VERSION}: {err}. \
             Install Node.js/npm, or set {SKIP_VAR}=1 to skip this test"
        ),
    };
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > INSTALL_LIMIT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut npm_log = String::new();
    File::open(&log_path)
        .unwrap()
        .read_to_string(&mut npm_log)
        .ok();
    let failed = match status {
        None => Some(format!("timed out after {INSTALL_LIMIT:?}")),
        Some(s) if !s.success() => Some(format!("npm exited with {s}")),
        Some(_) => None,
    };
    if let Some(why) = failed {
        panic!(
            "installing {PACKAGE}@{VERSION} with npm failed ({why}); is the npm registry \
             reachable? Set {SKIP_VAR}=1 to skip this test without network.\nnpm output:\n{npm_log}"
        );
    }
    if native_dir(&partial).is_none() {
        panic!(
            "npm installed {PACKAGE}@{VERSION} but no native `claude` {VERSION} binary for this \
             platform is in {}/node_modules/@anthropic-ai (was the optional dependency omitted?)\n\
             npm output:\n{npm_log}",
            partial.display()
        );
    }
    std::fs::rename(&partial, &root).unwrap();
    eprintln!(
        "installed {PACKAGE}@{VERSION} into {} in {:.1?}",
        root.display(),
        started.elapsed()
    );
    native_dir(&root)
}

/// The directory of the native `claude` binary of an install at `root`,
/// when it is there and reports the pinned version.
fn native_dir(root: &Path) -> Option<PathBuf> {
    let scope = root.join("node_modules/@anthropic-ai");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    // The glibc package first: npm may also install the musl one.
    let preferred = scope.join(format!("claude-code-{}-{arch}", std::env::consts::OS));
    let mut candidates = vec![preferred];
    if let Ok(entries) = std::fs::read_dir(&scope) {
        let mut others: Vec<PathBuf> = entries
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("claude-code-"))
            })
            .collect();
        others.sort();
        candidates.extend(others);
    }
    candidates.into_iter().find(|dir| {
        let bin = dir.join("claude");
        let executable = std::fs::metadata(&bin)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        executable && reports_version(&bin)
    })
}

fn reports_version(bin: &Path) -> bool {
    let home = tempfile::tempdir().unwrap();
    Command::new(bin)
        .arg("--version")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with(VERSION)
        })
}

// ---------------------------------------------------------------------------
// The scripted Anthropic Messages API

const INPUT_TOKENS: u64 = 120;
const OUTPUT_TOKENS: u64 = 24;

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    uri: String,
    api_key: Option<String>,
    body: Value,
}

impl Recorded {
    fn is_messages(&self) -> bool {
        self.method == "POST" && self.uri.split('?').next() == Some("/v1/messages")
    }
}

#[derive(Clone, Default)]
struct Mock {
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    /// Serves on 127.0.0.1:0 for the rest of the test; returns the base URL.
    async fn serve(&self) -> String {
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .fallback(probe)
            .layer(DefaultBodyLimit::disable())
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    fn record(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Recorded {
        let recorded = Recorded {
            method: method.to_string(),
            uri: uri.to_string(),
            api_key: headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: serde_json::from_slice(body).unwrap_or(Value::Null),
        };
        self.requests.lock().unwrap().push(recorded.clone());
        recorded
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Method and URI of every request, for failure messages.
    fn summary(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.uri))
            .collect()
    }
}

/// Anything but the Messages API (connectivity probes, if the CLI sent
/// any): recorded and answered 200.
async fn probe(
    State(mock): State<Mock>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    mock.record(&method, &uri, &headers, &body);
    StatusCode::OK
}

/// `POST /v1/messages`: a tool call first; once the conversation carries
/// its result, the final answer.
async fn messages(State(mock): State<Mock>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let request = mock.record(&Method::POST, &uri, &headers, &body);
    let stream = if tool_result_of(&request.body).is_some() {
        sse_message(
            "msg_01PaddockE2eFinalAnswer00",
            &[Block::Text(FINAL_TEXT)],
            "end_turn",
        )
    } else {
        sse_message(
            "msg_01PaddockE2eToolCall0000",
            &[
                Block::Text(FIRST_TEXT),
                Block::ToolUse {
                    id: TOOL_ID,
                    name: "Bash",
                    input: json!({"command": COMMAND, "description": "Print hello-from-tool"}),
                },
            ],
            "tool_use",
        )
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        stream,
    )
        .into_response()
}

/// The text of the `tool_result` for [`TOOL_ID`] in a Messages request.
fn tool_result_of(body: &Value) -> Option<String> {
    let mut blocks = body["messages"]
        .as_array()?
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten();
    let result = blocks.rfind(|b| b["type"] == "tool_result" && b["tool_use_id"] == TOOL_ID)?;
    Some(match &result["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    })
}

enum Block {
    Text(&'static str),
    ToolUse {
        id: &'static str,
        name: &'static str,
        input: Value,
    },
}

/// One assistant message as the Messages API streams it.
fn sse_message(id: &str, blocks: &[Block], stop_reason: &str) -> String {
    let mut events = vec![
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": MODEL,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {
                "input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 1, "service_tier": "standard",
            },
        }}),
        json!({"type": "ping"}),
    ];
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                events.push(json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "text", "text": ""}}));
                // Two deltas, split inside a word, as the real stream does.
                let (head, tail) = text.split_at(text.len() / 2);
                for part in [head, tail] {
                    events.push(json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "text_delta", "text": part}}));
                }
            }
            Block::ToolUse { id, name, input } => {
                events.push(json!({"type": "content_block_start", "index": index,
                    "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}));
                let json = input.to_string();
                let (head, tail) = json.split_at(json.len() / 2);
                for part in [head, tail] {
                    events.push(json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": part}}));
                }
            }
        }
        events.push(json!({"type": "content_block_stop", "index": index}));
    }
    events.push(json!({"type": "message_delta",
    "delta": {"stop_reason": stop_reason, "stop_sequence": null},
    "usage": {
        "input_tokens": INPUT_TOKENS, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": OUTPUT_TOKENS,
    }}));
    events.push(json!({"type": "message_stop"}));
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}
