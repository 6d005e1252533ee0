//! Starts the real `runnerd` binary on 127.0.0.1:0 and talks to it through
//! the crate's client.

#![allow(dead_code)] // each test binary uses a different part of this

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::{ExecRequest, ExitInfo, Frame, Listening};

pub const TOKEN: &str = "test-token-0123456789";

/// A running runnerd; killed when dropped.
pub struct Runnerd {
    pub child: Child,
    pub client: Client,
    pub base: String,
    pub listening: Listening,
    pub workspace: tempfile::TempDir,
    pub scratch: tempfile::TempDir,
}

impl Runnerd {
    pub fn start() -> Self {
        Self::start_with(&[], None)
    }

    /// Starts with extra flags and optionally an env seed file.
    pub fn start_with(args: &[&str], env_seed: Option<&serde_json::Value>) -> Self {
        match Self::try_start(args, env_seed) {
            Ok(runnerd) => runnerd,
            Err(output) => panic!("runnerd did not start: {output}"),
        }
    }

    /// Starts, or returns what runnerd printed on stderr when it exited.
    pub fn try_start(args: &[&str], env_seed: Option<&serde_json::Value>) -> Result<Self, String> {
        Self::try_start_wrapped(&[], args, env_seed)
    }

    /// Starts runnerd through `wrapper` (a command prefix such as
    /// `unshare …`), or returns what was printed on stderr.
    pub fn try_start_wrapped(
        wrapper: &[&str],
        args: &[&str],
        env_seed: Option<&serde_json::Value>,
    ) -> Result<Self, String> {
        let workspace = tempfile::tempdir().expect("workspace");
        let scratch = tempfile::tempdir().expect("scratch");
        let addr_file = scratch.path().join("addr.json");
        let mut command = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(env!("CARGO_BIN_EXE_runnerd"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_runnerd")),
        };
        command
            .arg("--workspace")
            .arg(workspace.path())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--addr-file")
            .arg(&addr_file)
            .args(args)
            .env("RUNNERD_TOKEN", TOKEN)
            .env("RUNNERD_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(seed) = env_seed {
            let path = scratch.path().join("env.json");
            std::fs::write(&path, serde_json::to_vec(seed).expect("seed json")).expect("seed file");
            command.arg("--env-file").arg(path);
        }
        let mut child = command.spawn().map_err(|e| format!("spawn: {e}"))?;
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the listening line");
        if line.is_empty() {
            let output = child.wait_with_output().expect("wait");
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        // Keep stderr flowing into the test output (and the pipe drained).
        if let Some(stderr) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[runnerd] {line}");
                }
            });
        }
        let listening: Listening = serde_json::from_str(line.trim()).expect("listening JSON line");
        let from_file: Listening =
            serde_json::from_slice(&std::fs::read(&addr_file).expect("addr file"))
                .expect("addr file JSON");
        assert_eq!(from_file, listening, "addr file and stdout agree");
        let base = format!("http://{}", listening.listening);
        Ok(Self {
            client: Client::new(base.clone(), TOKEN),
            base,
            listening,
            child,
            workspace,
            scratch,
        })
    }

    pub fn workspace(&self) -> &Path {
        self.workspace.path()
    }

    pub fn scratch(&self) -> PathBuf {
        self.scratch.path().to_owned()
    }

    /// Sends a signal to runnerd itself.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill runnerd");
    }

    /// Waits for runnerd to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Runnerd {
    /// Stops runnerd the way a provider would (SIGTERM: running execs are
    /// cancelled and their cgroups removed), SIGKILL if it does not exit.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// An exec request for `argv`.
pub fn exec(argv: &[&str]) -> ExecRequest {
    ExecRequest {
        argv: argv.iter().map(|a| (*a).to_owned()).collect(),
        ..ExecRequest::default()
    }
}

/// What one full attachment delivered.
#[derive(Debug, Default)]
pub struct Collected {
    pub frames: Vec<Frame>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Collected {
    pub fn from_frames(frames: Vec<Frame>) -> Self {
        let mut out = BytesMut::new();
        let mut err = BytesMut::new();
        for frame in &frames {
            match frame {
                Frame::Stdout { data, .. } => out.extend_from_slice(data),
                Frame::Stderr { data, .. } => err.extend_from_slice(data),
                _ => {}
            }
        }
        Self {
            frames,
            stdout: out.to_vec(),
            stderr: err.to_vec(),
        }
    }

    /// The terminal frame, asserting it is the one exit frame and the last.
    pub fn exit(&self) -> ExitInfo {
        let exits: Vec<&Frame> = self
            .frames
            .iter()
            .filter(|f| matches!(f, Frame::Exit { .. }))
            .collect();
        assert_eq!(
            exits.len(),
            1,
            "exactly one terminal frame: {:?}",
            self.frames
        );
        match self.frames.last() {
            Some(Frame::Exit { exit, .. }) => *exit,
            other => panic!("last frame is not the terminal frame: {other:?}"),
        }
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.frames.iter().map(Frame::seq).collect()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Attaches from `since` and reads to the end (bounded by `limit`).
pub async fn collect(client: &Client, id: &str, since: u64) -> Collected {
    let stream = client.frames(id, since).await.expect("attach");
    let frames = tokio::time::timeout(Duration::from_secs(30), stream.collect())
        .await
        .expect("stream ended in time")
        .expect("stream decoded");
    Collected::from_frames(frames)
}

/// Whether `pid` is alive (present and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|at| stat[at + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Whether `/proc/PID` exists at all (a zombie counts).
pub fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `check` until true or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
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
