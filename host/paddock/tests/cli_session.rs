//! End-to-end tests of `paddock session …`: the real `paddock` binary as
//! the client, against a real `paddock serve` (and the runnerd processes
//! its local-process provider starts) on a temporary data dir.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "token-alice-123";
/// How long one CLI command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `paddock serve` may take to listen: the first start compiles
/// the built-in plugins (seconds in a debug build); later starts find them
/// in the shared cache.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// Where compiled plugins are cached across tests and runs (written
/// atomically by the host, so concurrent hosts can share it).
fn shared_plugin_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-session-plugin-cache")
}

/// A running `paddock serve`. Dropping it ends the sessions' sandboxes
/// (SIGKILL to every runnerd of its data dir) and the host.
struct Host {
    child: Option<Child>,
    url: String,
    data: PathBuf,
    /// `Some` when tokens are configured; `None` when the host generated
    /// one into `<data>/api-token`, which the CLI finds with `--data-dir`.
    token: Option<&'static str>,
    _dir: tempfile::TempDir,
}

impl Host {
    fn start(token: Option<&'static str>) -> Host {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let cache = shared_plugin_cache();
        std::fs::create_dir_all(&cache).expect("plugin cache dir");
        std::fs::create_dir_all(&data).expect("data dir");
        std::os::unix::fs::symlink(&cache, data.join("cache")).expect("link the plugin cache");
        let mut host = Host {
            child: None,
            url: String::new(),
            data,
            token,
            _dir: dir,
        };
        host.spawn("127.0.0.1:0");
        host
    }

    fn spawn(&mut self, listen: &str) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_paddock"));
        command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(&self.data)
            .env_remove("PADDOCK_CONFIG")
            .env_remove("PADDOCK_DATA_DIR")
            .env_remove("PADDOCK_API_TOKENS")
            .env("PADDOCK_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(token) = self.token {
            command.env("PADDOCK_API_TOKENS", format!("alice={token}"));
        }
        let mut child = command.spawn().expect("start paddock serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        self.child = Some(child);
        let line = rx
            .recv_timeout(START_TIMEOUT)
            .expect("paddock serve prints its address");
        let listening: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("listening line {line:?}: {e}"));
        self.url = listening["listening"]
            .as_str()
            .expect("a listening URL")
            .to_owned();
    }

    /// SIGTERM (open streams get a `shutdown` event), then a new host on
    /// the same address and data dir after `pause`.
    fn restart(&mut self, pause: Duration) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            wait(&mut child, COMMAND_TIMEOUT);
        }
        std::thread::sleep(pause);
        let listen = self
            .url
            .strip_prefix("http://")
            .expect("an http URL")
            .to_owned();
        self.spawn(&listen);
    }

    /// `paddock session ARGS…` against this host.
    fn session(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_paddock"));
        command.arg("session");
        if self.token.is_none() {
            command.arg("--data-dir").arg(&self.data);
        }
        command
            .args(args)
            .env("PADDOCK_HOST", &self.url)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env_remove("PADDOCK_CONFIG")
            .env_remove("PADDOCK_DATA_DIR")
            .env_remove("PADDOCK_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = self.token {
            command.env("PADDOCK_TOKEN", token);
        }
        command
    }

    /// Runs `paddock session ARGS…` to its end.
    fn run(&self, args: &[&str]) -> Output {
        let child = self.session(args).spawn().expect("run paddock session");
        finish(child, COMMAND_TIMEOUT)
    }

    /// Runs it and returns its stdout, asserting success.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "paddock session {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 stdout")
    }

    fn create(&self) -> String {
        self.ok(&["create"]).trim().to_owned()
    }

    /// Pids of the runnerd processes of this data dir.
    fn runnerd_pids(&self) -> Vec<i32> {
        let Ok(dirs) = std::fs::read_dir(self.data.join("sandboxes")) else {
            return Vec::new();
        };
        dirs.filter_map(|dir| {
            let text = std::fs::read_to_string(dir.ok()?.path().join("state.json")).ok()?;
            let state: Value = serde_json::from_str(&text).ok()?;
            state["pid"]
                .as_i64()
                .and_then(|pid| i32::try_from(pid).ok())
        })
        .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.runnerd_pids() {
            // SAFETY: kill(2) with a pid this test's host started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("a pid fits in i32");
    // SAFETY: kill(2) on a child of this test.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

/// Waits for `child`, killing it and failing the test after `limit`.
fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} still running after {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Collects a child's output (read on threads, so a full pipe cannot
/// block it) and waits for it.
fn finish(mut child: Child, limit: Duration) -> Output {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait(&mut child, limit);
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A child whose stdout is read line by line as it comes.
struct Streaming {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Streaming {
    fn spawn(mut command: Command) -> Streaming {
        let mut child = command.spawn().expect("spawn paddock session");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next stdout line.
    fn next_line(&mut self) -> String {
        let line = self
            .lines
            .recv_timeout(COMMAND_TIMEOUT)
            .expect("a line of output in time");
        self.seen.push(line.clone());
        line
    }

    /// Waits for the end; returns the exit code, every stdout line, stderr.
    fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().expect("piped stderr");
        let reader = std::thread::spawn(move || {
            let _ = pipe.read_to_string(&mut stderr);
            stderr
        });
        let status = wait(&mut self.child, COMMAND_TIMEOUT);
        self.seen.extend(self.lines.iter());
        (
            status.code(),
            self.seen,
            reader.join().expect("stderr reader"),
        )
    }
}

#[test]
fn create_exec_list_and_rm() {
    let host = Host::start(Some(TOKEN));
    let session = host.create();
    assert!(session.starts_with("ses-"), "{session:?}");

    let output = host.run(&[
        "exec",
        &session,
        "--",
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
    ]);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(output.status.code(), Some(3));

    let table = host.ok(&["list"]);
    let row = table
        .lines()
        .find(|line| line.starts_with(&session))
        .unwrap_or_else(|| panic!("{session} not listed:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..4], ["active", "yes", "1"], "{table}");
    let listed: Value = serde_json::from_str(&host.ok(&["list", "--json"])).expect("JSON list");
    assert_eq!(listed["sessions"][0]["id"], session.as_str());

    assert_eq!(host.ok(&["rm", &session]).trim(), session);
    let table = host.ok(&["list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&session) && l.contains("ended (deleted)")),
        "{table}"
    );

    let output = host.run(&["exec", &session, "--", "true"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("session_ended"), "{stderr}");
    let output = host.run(&["rm", "ses-nope"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not_found"));
}

#[test]
fn stdin_files_env_and_cwd_reach_the_command() {
    let host = Host::start(Some(TOKEN));
    let session = host.create();
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "first\nsecond\n").expect("write input");
    let out = host.ok(&[
        "exec",
        &session,
        "--stdin-file",
        input.to_str().expect("UTF-8 path"),
        "--env",
        "GREETING=hello there",
        "--",
        "sh",
        "-c",
        "mkdir -p sub && cat && echo \"$GREETING\"",
    ]);
    assert_eq!(out, "first\nsecond\nhello there\n");
    let out = host.ok(&[
        "exec",
        &session,
        "--cwd",
        "sub",
        "--",
        "sh",
        "-c",
        "basename \"$PWD\"",
    ]);
    assert_eq!(out, "sub\n");
    host.ok(&["rm", &session]);
}

#[test]
fn ctrl_c_cancels_the_exec() {
    let host = Host::start(Some(TOKEN));
    let session = host.create();
    let mut exec = Streaming::spawn(host.session(&[
        "exec",
        &session,
        "--",
        "sh",
        "-c",
        "echo started; exec sleep 60",
    ]));
    assert_eq!(exec.next_line(), "started");
    let started = Instant::now();
    signal(&exec.child, libc::SIGINT);
    let (code, _, stderr) = exec.finish();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("cancelling exec"), "{stderr}");
    assert!(stderr.contains("the exec was cancelled"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancel is prompt"
    );
    host.ok(&["rm", &session]);
}

#[test]
fn attach_replays_and_follows_across_a_host_restart() {
    // No configured tokens: the host generates one into its data dir and
    // the CLI reads it from there (`--data-dir`).
    let mut host = Host::start(None);
    let session = host.create();
    let exec = host
        .ok(&[
            "exec",
            "--detach",
            &session,
            "--",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do echo $i; sleep 0.5; done",
        ])
        .trim()
        .to_owned();
    assert!(exec.starts_with("ex-"), "{exec:?}");

    let mut attach = Streaming::spawn(host.session(&["attach", &session, &exec]));
    assert_eq!(attach.next_line(), "1");
    host.restart(Duration::from_millis(500));
    let (code, lines, stderr) = attach.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        lines,
        ["1", "2", "3", "4", "5", "6"],
        "no gap, no duplicate: {stderr}"
    );
    assert!(stderr.contains("reconnected"), "{stderr}");

    // Every stdout line was its own event (1..=6), so after 4 come 5 and 6.
    let out = host.ok(&["attach", &session, &exec, "--since", "4"]);
    assert_eq!(out, "5\n6\n");
    host.ok(&["rm", &session]);
}

#[test]
fn an_agent_run_prints_readable_events() {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/claude-code");
    let host = Host::start(Some(TOKEN));
    let session = host.create();
    // A stand-in `claude` in the workspace replays a captured transcript.
    let transcript = fixtures.join("b_tool_bash.jsonl");
    let script = "mkdir -p .stand-in && cat > .stand-in/transcript.jsonl && \
        printf '#!/bin/sh\\ncat >/dev/null\\nwhile IFS= read -r line; do printf \"%%s\\\\n\" \"$line\"; done < \"$(dirname \"$0\")/transcript.jsonl\"\\n' > .stand-in/claude && \
        chmod +x .stand-in/claude && pwd";
    let workspace = host.ok(&[
        "exec",
        &session,
        "--stdin-file",
        transcript.to_str().expect("UTF-8 path"),
        "--",
        "sh",
        "-c",
        script,
    ]);
    let path = format!("PATH={}/.stand-in:/usr/bin:/bin", workspace.trim());
    let agent = [
        "exec",
        &session,
        "--env",
        &path,
        "--agent",
        "claude-code",
        "--prompt",
        "run echo hello",
    ];

    let out = host.ok(&agent);
    let expected = [
        "▶ session ab9683a1-5bb7-4248-97ea-8b7c51b0820d · claude-sonnet-4-5-20250929 · /workspace",
        "● I'll run that command.",
        "⚙ Bash echo hello",
        "  ↳ hello",
        "● The command printed `hello`.",
        "✓ success · 2 turns · 1.0 s · tokens 11 in, 83 out, 30293 cache read, 1969 cache write · $0.0177",
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{out}");

    let raw = host.ok(&[&agent[..], &["--raw"]].concat());
    let golden =
        std::fs::read_to_string(fixtures.join("b_tool_bash.golden.jsonl")).expect("golden");
    let parse = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    assert_eq!(parse(&raw), parse(&golden));
    host.ok(&["rm", &session]);
}
