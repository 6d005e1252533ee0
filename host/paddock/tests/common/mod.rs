//! A harness for end-to-end tests: the real `paddock serve` binary (which
//! runs the real runnerd through the local-process provider) on a temporary
//! data dir, and a small HTTP + SSE client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

pub mod podman;
pub mod runnerd;
use serde_json::{Value, json};

pub const ALICE: &str = "token-alice-0001";
pub const BOB: &str = "token-bob-0002";

/// A running host. Dropping it kills the host and every runnerd it started
/// (or, on local-docker, every container of its instance).
pub struct Host {
    child: Option<Child>,
    pub url: String,
    pub data: PathBuf,
    http: reqwest::Client,
    /// The podman service and the host's instance name, on local-docker.
    docker: Option<(&'static podman::Podman, String)>,
}

/// The sandbox provider a test host runs: the suites that are about
/// sandboxes run once per provider, chosen through the host's config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    LocalProcess,
    /// Containers on podman's Docker-compatible service (`podman.rs`).
    LocalDocker,
}

impl Provider {
    /// Starts a host on `data` with extra TOML `config` (which must not
    /// have a `[sandbox]` table) and this provider.
    pub async fn host(self, data: &Path, config: &str) -> Host {
        match self {
            Provider::LocalProcess => Host::start(data, config),
            Provider::LocalDocker => {
                let podman = podman::podman().await;
                // The same data dir is the same host across restarts.
                let instance = {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    data.hash(&mut h);
                    format!("e2e-{:016x}", h.finish())
                };
                let config = format!(
                    "{config}\n[sandbox]\nprovider = \"local-docker\"\n\n[sandbox.docker]\n\
                     host = \"{}\"\nimage = \"{}\"\ninstance = \"{instance}\"\n",
                    podman.host, podman.image
                );
                let mut host = Host::start(data, &config);
                host.docker = Some((podman, instance));
                host
            }
        }
    }
}

impl Host {
    /// Starts a host on `data` with extra TOML config.
    pub fn start(data: &Path, config: &str) -> Host {
        Self::start_with_env(data, config, &[])
    }

    /// Starts a host with extra environment variables (what the operator
    /// grants plugins comes from the host's environment).
    pub fn start_with_env(data: &Path, config: &str, env: &[(&str, &str)]) -> Host {
        std::fs::create_dir_all(data).unwrap();
        // Compiled plugins are shared by every test's host (writes to the
        // cache are atomic), so each start does not recompile them.
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-plugin-cache");
        std::fs::create_dir_all(&cache).unwrap();
        if !data.join("cache").exists() {
            std::os::unix::fs::symlink(&cache, data.join("cache")).unwrap();
        }
        let config_path = data.join("paddock.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(&config_path)
            .env("PADDOCK_API_TOKENS", format!("alice={ALICE},bob={BOB}"))
            .env("PADDOCK_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start paddock serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let listening: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("listening line {line:?}: {e}"));
        Host {
            child: Some(child),
            url: listening["listening"].as_str().unwrap().to_owned(),
            data: data.to_owned(),
            http: reqwest::Client::new(),
            docker: None,
        }
    }

    /// SIGKILL, as a crash would: sandboxes keep running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// SIGTERM and wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
    }

    /// A JSON call; returns the status and the body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.request(method.parse().unwrap(), path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn create_session(&self, token: &str, body: Value) -> String {
        let (status, view) = self.call("POST", "/v1/sessions", token, Some(body)).await;
        assert_eq!(status, 201, "{view}");
        view["id"].as_str().unwrap().to_owned()
    }

    pub async fn exec(&self, token: &str, session: &str, body: Value) -> String {
        let (status, view) = self
            .call(
                "POST",
                &format!("/v1/sessions/{session}/execs"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{view}");
        view["id"].as_str().unwrap().to_owned()
    }

    /// Opens an exec's event stream after `since`.
    pub async fn events(&self, token: &str, session: &str, exec: &str, since: Option<u64>) -> Sse {
        let mut request = self.request(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/execs/{exec}/events"),
            token,
        );
        if let Some(since) = since {
            request = request.header("Last-Event-ID", since.to_string());
        }
        let response = request.send().await.expect("events");
        assert_eq!(response.status().as_u16(), 200);
        Sse {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// Every event of an exec from the start to its end.
    pub async fn collect(&self, token: &str, session: &str, exec: &str) -> Vec<SseEvent> {
        let sse = self.events(token, session, exec, None).await;
        tokio::time::timeout(Duration::from_secs(60), sse.collect())
            .await
            .expect("the stream ended in time")
    }

    /// Pids of the runnerd processes of this data dir.
    pub fn runnerd_pids(&self) -> Vec<i32> {
        runnerd_pids_in(&self.data)
    }
}

/// The runnerds of the local-process sandboxes under a data dir (a host's
/// or a link's).
pub fn runnerd_pids_in(data: &Path) -> Vec<i32> {
    let Ok(dirs) = std::fs::read_dir(data.join("sandboxes")) else {
        return Vec::new();
    };
    dirs.filter_map(|d| {
        let text = std::fs::read_to_string(d.ok()?.path().join("state.json")).ok()?;
        let state: Value = serde_json::from_str(&text).ok()?;
        state["pid"].as_i64().map(|p| p as i32)
    })
    .collect()
}

/// Checks the `agent` events of a stream against a Claude Code fixture's
/// golden file (`tests/fixtures/agents/claude-code/<name>.golden.jsonl`);
/// returns the golden events.
pub fn assert_claude_golden(events: &[SseEvent], name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/agents/claude-code")
        .join(format!("{name}.golden.jsonl"));
    let golden: Vec<Value> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let agent: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "agent")
        .map(|e| &e.data)
        .collect();
    assert_eq!(agent.len(), golden.len(), "{agent:#?}");
    for (got, want) in agent.iter().zip(&golden) {
        assert_eq!(*got, want);
    }
    golden
}

/// `preferred`, unless it is under /tmp (a sandbox confined by bubblewrap
/// has a /tmp of its own, so it would not see it): then
/// `~/.cache/paddock/<fallback>`. Created either way.
pub fn seen_by_sandboxes(preferred: PathBuf, fallback: &str) -> PathBuf {
    let dir = if preferred.starts_with("/tmp") {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
        home.join(".cache/paddock").join(fallback)
    } else {
        preferred
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A temporary directory that a sandbox confined by bubblewrap also sees.
pub fn visible_tempdir() -> tempfile::TempDir {
    let base = seen_by_sandboxes(PathBuf::from(env!("CARGO_TARGET_TMPDIR")), "tmp");
    tempfile::tempdir_in(base).unwrap()
}

impl Host {
    /// How many sandboxes of this host are running.
    pub fn sandbox_count(&self) -> usize {
        match &self.docker {
            Some((podman, instance)) => podman::running(podman, instance),
            None => self.runnerd_pids().len(),
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
        for pid in self.runnerd_pids() {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some((podman, instance)) = &self.docker {
            podman::remove_instance(podman, instance);
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: Value,
}

/// A minimal SSE reader: enough for the host's events.
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Sse {
    /// The next event; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if data.is_empty() && event.id.is_none() {
                    continue; // a keep-alive comment
                }
                event.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(event);
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    pub async fn collect(mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

/// The text of every `stdout` event.
pub fn stdout(events: &[SseEvent]) -> String {
    text_of(events, "stdout")
}

pub fn text_of(events: &[SseEvent], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e.event == kind)
        .map(|e| e.data["text"].as_str().unwrap_or_default())
        .collect()
}

/// The one `exit` event, which must be the last.
pub fn exit(events: &[SseEvent]) -> &Value {
    let exits: Vec<_> = events.iter().filter(|e| e.event == "exit").collect();
    assert_eq!(exits.len(), 1, "exactly one terminal event: {events:?}");
    assert_eq!(
        events.last().unwrap().event,
        "exit",
        "the terminal event is last"
    );
    &exits[0].data
}

/// Polls `check` until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Live processes with `arg` among their arguments.
pub fn pids_with_arg(arg: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
                && pid_alive(*pid)
        })
        .collect()
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn json_body(argv: &[&str]) -> Value {
    json!({ "argv": argv })
}
