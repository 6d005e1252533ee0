//! Execs: one process tree each, with a seq-numbered output stream kept in a
//! bounded replay ring, a deadline, an exact output cap, and exactly one
//! terminal frame.
//!
//! - [`Execs`] is the table (create, look up, retain ended ones).
//! - `spawn` resolves and starts the process.
//! - `supervise` drains its pipes and decides how it ends.
//! - `stream` serves the frames to attached clients.
//! - `ring` is the replay buffer.

mod clone3;
mod ring;
mod spawn;
mod stream;
mod supervise;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cap_std::fs::Dir;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Body;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};

use self::ring::{ReadOutcome, Ring};
use self::spawn::{SpawnPlan, StdinMode};
use super::env::EnvError;
use super::error::ApiError;
use super::files::{self, FileError};
use super::process::{Cgroup, CgroupRoot, ProcessTree, Reaper};
use super::{Activity, random_hex, unix_ms};
use crate::proto::{
    DEFAULT_KILL_GRACE_MS, DEFAULT_OUTPUT_CAP_BYTES, ExecCreated, ExecRequest, ExecState,
    ExecStatus, ExitInfo, FrameKind,
};

/// Why an exec request failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("argv is empty")]
    EmptyArgv,
    #[error("argv[{index}] contains a NUL byte")]
    NulInArgv { index: usize },
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("env_from: {name} copies {source_var}, which is not set")]
    EnvFromMissing { name: String, source_var: String },
    #[error("cwd: {0}")]
    Cwd(FileError),
    #[error("command {program:?} not found on PATH {path:?}")]
    CommandNotFound { program: String, path: String },
    #[error("cannot execute {program:?}: {source}")]
    NotExecutable { program: String, source: io::Error },
    #[error("cannot start {program:?}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("cannot wire the process's stdio: {0}")]
    Stdio(io::Error),
    #[error("{max} execs are already running")]
    TooMany { max: usize },
    #[error("runnerd is shutting down")]
    ShuttingDown,
    #[error("no exec {0:?}")]
    NotFound(String),
    #[error("exec {0} has ended")]
    Ended(String),
    #[error("stdin of exec {0} is closed")]
    StdinClosed(String),
    #[error("reading the request body: {0}")]
    Body(String),
    #[error("since={since} is beyond the exec's last seq {last}")]
    BadSince { since: u64, last: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ExecError> for ApiError {
    fn from(err: ExecError) -> Self {
        let err = match err {
            ExecError::Env(env) => return ApiError::from(env),
            ExecError::Cwd(file) => {
                let message = format!("cwd: {file}");
                let mut api = ApiError::from(file);
                api.message = message;
                return api;
            }
            other => other,
        };
        let (status, code) = match &err {
            ExecError::EmptyArgv | ExecError::NulInArgv { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_argv")
            }
            ExecError::EnvFromMissing { .. } => (StatusCode::BAD_REQUEST, "env_from_missing"),
            ExecError::CommandNotFound { .. } => (StatusCode::BAD_REQUEST, "command_not_found"),
            ExecError::NotExecutable { .. } => (StatusCode::BAD_REQUEST, "not_executable"),
            ExecError::Spawn { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "spawn_failed"),
            ExecError::Stdio(_) => (StatusCode::INTERNAL_SERVER_ERROR, "stdio_wiring_failed"),
            ExecError::TooMany { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_execs"),
            ExecError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ExecError::NotFound(_) => (StatusCode::NOT_FOUND, "exec_not_found"),
            ExecError::Ended(_) => (StatusCode::CONFLICT, "exec_ended"),
            ExecError::StdinClosed(_) => (StatusCode::CONFLICT, "stdin_closed"),
            ExecError::Body(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            ExecError::BadSince { .. } => (StatusCode::BAD_REQUEST, "bad_since"),
            ExecError::Internal(_) | ExecError::Env(_) | ExecError::Cwd(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// Table-wide settings, from the command line.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    pub ring_bytes: usize,
    pub keep_ended: usize,
    pub max_running: usize,
    pub drain: Duration,
    /// See [`BACKPRESSURE_STALL`], the default.
    pub stall: Duration,
    pub home: PathBuf,
}

/// Messages to an exec's supervisor.
#[derive(Debug)]
enum Control {
    Cancel { grace: Duration },
    OutputCapped,
    DeadlineMoved,
}

#[derive(Debug, Clone, Copy)]
struct Deadline {
    at: Instant,
    unix_ms: u64,
}

/// One attached client, as back-pressure sees it.
#[derive(Debug, Clone, Copy)]
struct Reader {
    /// The next seq it wants.
    cursor: u64,
    /// It made no progress for [`BACKPRESSURE_STALL`]: it no longer holds
    /// the process back, and gets a gap frame for what it misses.
    lagging: bool,
}

/// How long a process's output waits for an attached client that has not
/// read what the next chunk would evict. A client that keeps up (the host)
/// slows a fast writer to its own pace and misses nothing; one that stalls
/// longer than this falls behind into a gap instead of blocking the
/// process.
pub const BACKPRESSURE_STALL: Duration = Duration::from_secs(2);

/// A placeholder reader at seq 1, held from spawn until the first client
/// attaches: the host attaches right after `POST /v1/execs`, and a fast
/// writer must not have filled and wrapped the ring by then.
const STARTER_READER: u64 = 0;

#[derive(Debug)]
struct Inner {
    ring: Ring,
    readers: HashMap<u64, Reader>,
    next_reader: u64,
    stdout_bytes: u64,
    stderr_bytes: u64,
    cap: u64,
    capped: bool,
    exit: Option<ExitInfo>,
    ended_at_ms: Option<u64>,
    deadline: Option<Deadline>,
    stdin_open: bool,
}

/// One exec.
#[derive(Debug)]
pub struct Exec {
    id: String,
    argv: Vec<String>,
    pid: u32,
    started_at_ms: u64,
    started: Instant,
    in_cgroup: bool,
    inner: Mutex<Inner>,
    /// Bumped with the newest seq whenever a frame is pushed.
    seq_tx: watch::Sender<u64>,
    /// Woken whenever an attached client reads on or goes away.
    progress: tokio::sync::Notify,
    /// Set once the process exited: its remaining output is drained at
    /// full speed.
    draining: AtomicBool,
    stdin: Arc<tokio::sync::Mutex<Option<pipe::Sender>>>,
    control: mpsc::UnboundedSender<Control>,
    /// How long a stalled attached client may hold the output back.
    stall: Duration,
}

impl Exec {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends process output, cut exactly at the cap. Returns false once
    /// the cap is reached (later output is discarded).
    fn push_output(&self, kind: FrameKind, mut chunk: Bytes) -> bool {
        let seq = {
            let mut inner = self.lock();
            if inner.capped || inner.exit.is_some() {
                return false;
            }
            let used = inner.stdout_bytes + inner.stderr_bytes;
            let room = inner.cap.saturating_sub(used);
            if chunk.len() as u64 >= room {
                // The crossing chunk is cut at the cap; reaching the cap
                // exactly also ends the exec, so "capped" never depends on
                // whether more output happened to follow.
                chunk.truncate(room as usize);
                inner.capped = true;
                if self.control.send(Control::OutputCapped).is_err() {
                    tracing::warn!(exec = %self.id, "output capped after the supervisor ended");
                }
            }
            if chunk.is_empty() {
                return false;
            }
            match kind {
                FrameKind::Stderr => inner.stderr_bytes += chunk.len() as u64,
                _ => inner.stdout_bytes += chunk.len() as u64,
            }
            let capped = inner.capped;
            let seq = inner.ring.push(kind, chunk);
            if capped {
                drop(inner);
                self.seq_tx.send_replace(seq);
                return false;
            }
            seq
        };
        self.seq_tx.send_replace(seq);
        true
    }

    /// Registers an attached client that wants `cursor` next. The first
    /// one replaces the placeholder held for whoever started the exec.
    fn add_reader(&self, cursor: u64) -> u64 {
        let mut inner = self.lock();
        inner.readers.remove(&STARTER_READER);
        let id = inner.next_reader;
        inner.next_reader += 1;
        inner.readers.insert(
            id,
            Reader {
                cursor,
                lagging: false,
            },
        );
        id
    }

    fn advance_reader(&self, id: u64, cursor: u64) {
        if let Some(reader) = self.lock().readers.get_mut(&id) {
            *reader = Reader {
                cursor,
                lagging: false,
            };
        }
        self.progress.notify_waiters();
    }

    fn remove_reader(&self, id: u64) {
        self.lock().readers.remove(&id);
        self.progress.notify_waiters();
    }

    /// The process exited: the placeholder for a client that never
    /// attached stops holding its output back.
    fn release_starter(&self) {
        if let Some(starter) = self.lock().readers.get_mut(&STARTER_READER) {
            starter.lagging = true;
        }
        self.progress.notify_waiters();
    }

    fn end_backpressure(&self) {
        self.draining.store(true, Ordering::Release);
        self.progress.notify_waiters();
    }

    /// Waits until `incoming` more output bytes would evict nothing an
    /// attached client still has to read, or until such a client made no
    /// progress for [`BACKPRESSURE_STALL`] (it is then marked lagging).
    async fn wait_for_room(&self, incoming: usize, stop: &mut watch::Receiver<bool>) {
        let mut since_progress = Instant::now();
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.draining.load(Ordering::Acquire) {
                return;
            }
            {
                let mut inner = self.lock();
                let Some(evicted) = inner.ring.evicted_by(incoming) else {
                    return;
                };
                let mut behind = inner
                    .readers
                    .values_mut()
                    .filter(|r| !r.lagging && r.cursor <= evicted)
                    .peekable();
                if behind.peek().is_none() {
                    return;
                }
                if since_progress.elapsed() >= self.stall {
                    for reader in behind {
                        reader.lagging = true;
                    }
                    tracing::info!(exec = %self.id, "an attached client stalled; it will get a gap frame");
                    return;
                }
            }
            tokio::select! {
                () = &mut notified => since_progress = Instant::now(),
                () = tokio::time::sleep_until((since_progress + self.stall).into()) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// Pushes the terminal frame; nothing is pushed after it.
    fn finish(&self, exit: ExitInfo) {
        let payload = serde_json::to_vec(&exit).unwrap_or_else(|_| b"{}".to_vec());
        let seq = {
            let mut inner = self.lock();
            if inner.exit.is_some() {
                return;
            }
            inner.exit = Some(exit);
            inner.ended_at_ms = Some(unix_ms());
            inner.stdin_open = false;
            inner.deadline = None;
            inner.ring.push(FrameKind::Exit, Bytes::from(payload))
        };
        self.seq_tx.send_replace(seq);
    }

    /// Reads frames from `cursor`; `terminal` is also set when the reader
    /// is already past the terminal frame (attached with `since` = its seq).
    fn read_frames(&self, cursor: u64, out: &mut BytesMut, max_bytes: usize) -> ReadOutcome {
        let inner = self.lock();
        let mut read = inner.ring.read(cursor, out, max_bytes);
        if read.frames == 0 && inner.exit.is_some() {
            read.terminal = true;
        }
        read
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock().deadline.map(|d| d.at)
    }

    fn is_capped(&self) -> bool {
        self.lock().capped
    }

    pub fn is_running(&self) -> bool {
        self.lock().exit.is_none()
    }

    pub fn status(&self) -> ExecStatus {
        let inner = self.lock();
        ExecStatus {
            id: self.id.clone(),
            argv: self.argv.clone(),
            pid: self.pid,
            state: if inner.exit.is_some() {
                ExecState::Ended
            } else {
                ExecState::Running
            },
            exit: inner.exit,
            started_at_ms: self.started_at_ms,
            ended_at_ms: inner.ended_at_ms,
            deadline_at_ms: inner.deadline.map(|d| d.unix_ms),
            stdout_bytes: inner.stdout_bytes,
            stderr_bytes: inner.stderr_bytes,
            output_capped: inner.capped,
            last_seq: inner.ring.last_seq(),
            first_seq: inner.ring.first_seq(),
            stdin_open: inner.stdin_open,
            cgroup: self.in_cgroup,
        }
    }

    /// Starts killing the process tree (SIGTERM, SIGKILL after `grace`); the
    /// exec ends `cancelled` unless it was already ending for another
    /// reason. Idempotent; a no-op once ended.
    pub fn cancel(&self, grace: Duration) {
        if self.is_running() && self.control.send(Control::Cancel { grace }).is_err() {
            tracing::debug!(exec = %self.id, "cancel after the supervisor ended");
        }
    }

    /// Moves the deadline to `timeout` from now.
    ///
    /// # Errors
    ///
    /// [`ExecError::Ended`] once the exec has ended.
    pub fn set_deadline(&self, timeout: Duration) -> Result<ExecStatus, ExecError> {
        {
            let mut inner = self.lock();
            if inner.exit.is_some() {
                return Err(ExecError::Ended(self.id.clone()));
            }
            inner.deadline = Some(Deadline {
                at: Instant::now() + timeout,
                unix_ms: unix_ms().saturating_add(timeout.as_millis() as u64),
            });
        }
        if self.control.send(Control::DeadlineMoved).is_err() {
            tracing::debug!(exec = %self.id, "deadline moved after the supervisor ended");
        }
        Ok(self.status())
    }

    /// Streams `body` into the process's stdin, then closes stdin if
    /// `close`. Every received chunk counts as activity. Returns the number
    /// of bytes written.
    ///
    /// # Errors
    ///
    /// [`ExecError::Ended`] or [`ExecError::StdinClosed`] (409), a broken
    /// pipe reported as `Ended`, or a body that failed mid-way.
    pub async fn write_stdin<B>(
        &self,
        mut body: B,
        close: bool,
        activity: &Activity,
    ) -> Result<u64, ExecError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let mut stdin = self.stdin.lock().await;
        if !self.is_running() {
            return Err(ExecError::Ended(self.id.clone()));
        }
        let Some(pipe) = stdin.as_mut() else {
            return Err(ExecError::StdinClosed(self.id.clone()));
        };
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ExecError::Body(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            activity.touch();
            if let Err(err) = pipe.write_all(&data).await {
                return Err(if err.kind() == io::ErrorKind::BrokenPipe {
                    // The reader is gone: the process closed its stdin or
                    // exited.
                    self.lock().stdin_open = false;
                    stdin.take();
                    ExecError::Ended(self.id.clone())
                } else {
                    ExecError::Internal(format!("writing stdin: {err}"))
                });
            }
            written += data.len() as u64;
        }
        if close {
            stdin.take();
            self.lock().stdin_open = false;
        }
        Ok(written)
    }

    /// Drops stdin at the end, unless a writer holds it (its write fails
    /// with a broken pipe then).
    fn close_stdin(&self) {
        if let Ok(mut stdin) = self.stdin.try_lock() {
            stdin.take();
        }
        self.lock().stdin_open = false;
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.seq_tx.subscribe()
    }
}

#[derive(Debug, Default)]
struct Table {
    by_id: HashMap<String, Arc<Exec>>,
    /// Ended execs, oldest first, for bounded retention.
    ended: VecDeque<String>,
    running: usize,
    /// Cgroups that still held processes when their exec ended.
    leftover_cgroups: Vec<Arc<Cgroup>>,
}

/// All execs of this runnerd.
#[derive(Debug)]
pub struct Execs {
    table: Mutex<Table>,
    settings: ExecSettings,
    reaper: Arc<Reaper>,
    cgroups: Option<CgroupRoot>,
    cgroups_on: AtomicBool,
    workspace: Arc<Dir>,
    activity: Arc<Activity>,
    closing: AtomicBool,
    /// Number of running execs, for shutdown to wait on.
    running_tx: watch::Sender<usize>,
}

/// Undoes a running-slot reservation unless the exec was started.
struct Slot<'a> {
    execs: &'a Execs,
    armed: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut table = self.execs.lock();
            table.running = table.running.saturating_sub(1);
            self.execs.running_tx.send_replace(table.running);
        }
    }
}

impl Execs {
    pub fn new(
        settings: ExecSettings,
        reaper: Arc<Reaper>,
        cgroups: Option<CgroupRoot>,
        workspace: Arc<Dir>,
        activity: Arc<Activity>,
    ) -> Arc<Self> {
        let cgroups_on = AtomicBool::new(cgroups.is_some());
        Arc::new(Self {
            table: Mutex::new(Table::default()),
            settings,
            reaper,
            cgroups,
            cgroups_on,
            workspace,
            activity,
            closing: AtomicBool::new(false),
            running_tx: watch::Sender::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether new execs get a cgroup.
    pub fn cgroups_enabled(&self) -> bool {
        self.cgroups_on.load(Ordering::Relaxed)
    }

    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// # Errors
    ///
    /// [`ExecError::NotFound`] for an unknown (or evicted) id.
    pub fn get(&self, id: &str) -> Result<Arc<Exec>, ExecError> {
        self.lock()
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| ExecError::NotFound(id.to_owned()))
    }

    /// Every retained exec, oldest start first.
    pub fn list(&self) -> Vec<ExecStatus> {
        let execs: Vec<Arc<Exec>> = self.lock().by_id.values().cloned().collect();
        let mut statuses: Vec<ExecStatus> = execs.iter().map(|e| e.status()).collect();
        statuses.sort_by(|a, b| (a.started_at_ms, &a.id).cmp(&(b.started_at_ms, &b.id)));
        statuses
    }

    /// Starts an exec.
    ///
    /// # Errors
    ///
    /// See [`ExecError`]: a request that cannot run is refused with a clear
    /// error rather than started and "exited 127".
    pub async fn create(
        self: &Arc<Self>,
        request: ExecRequest,
        store: BTreeMap<String, String>,
    ) -> Result<ExecCreated, ExecError> {
        if self.closing.load(Ordering::Relaxed) {
            return Err(ExecError::ShuttingDown);
        }
        let Some(argv0) = request.argv.first() else {
            return Err(ExecError::EmptyArgv);
        };
        if let Some(index) = request.argv.iter().position(|a| a.contains('\0')) {
            return Err(ExecError::NulInArgv { index });
        }
        let env = spawn::merged_env(&self.settings.home, &store, &request.env, &request.env_from)?;
        let program = spawn::resolve_program(argv0, env.get("PATH").map(String::as_str))?;

        let workspace = Arc::clone(&self.workspace);
        let cwd_arg = request.cwd.clone().unwrap_or_default();
        let cwd: Dir = tokio::task::spawn_blocking(move || {
            let rel = files::relative(&cwd_arg).map_err(ExecError::Cwd)?;
            workspace
                .open_dir(rel)
                .map_err(|e| ExecError::Cwd(FileError::from_io(&cwd_arg, e)))
        })
        .await
        .map_err(|e| ExecError::Internal(e.to_string()))??;

        let mut slot = {
            let mut table = self.lock();
            if table.running >= self.settings.max_running {
                return Err(ExecError::TooMany {
                    max: self.settings.max_running,
                });
            }
            table.running += 1;
            self.running_tx.send_replace(table.running);
            Slot {
                execs: self,
                armed: true,
            }
        };

        let id = format!(
            "ex-{}",
            random_hex(12).map_err(|e| ExecError::Internal(e.to_string()))?
        );
        let cgroup = self.create_cgroup(&id);
        let plan = SpawnPlan {
            program: program.clone(),
            argv: request.argv.clone(),
            env,
            cwd_fd: cwd.as_raw_fd(),
            stdin: if request.stdin.is_some() || request.keep_stdin_open {
                StdinMode::Pipe
            } else {
                StdinMode::Null
            },
        };
        let path_var = plan.env.get("PATH").cloned().unwrap_or_default();
        let reaper = Arc::clone(&self.reaper);
        let (spawned, outcome) = tokio::task::spawn_blocking(move || {
            let attempt = |cgroup| {
                reaper.spawn(|| {
                    let spawned = spawn::spawn(&plan, cgroup)?;
                    let pid = spawned.pid;
                    Ok((spawned, pid))
                })
            };
            let result = match cgroup {
                None => (attempt(None), CgroupOutcome::None),
                Some(cgroup) => match attempt(Some(&cgroup)) {
                    Ok(spawned) => (Ok(spawned), CgroupOutcome::Joined(cgroup)),
                    Err(first) => {
                        // Joining the cgroup is the last step before exec
                        // and may be what failed: retry without. If that
                        // works, the cgroup was the cause.
                        let retry = attempt(None);
                        let culprit = retry.is_ok();
                        if culprit {
                            tracing::warn!(
                                error = %first,
                                "cannot join the exec's cgroup; execs run without cgroups from now on"
                            );
                        }
                        (retry, CgroupOutcome::Failed(cgroup, culprit))
                    }
                },
            };
            // The cwd descriptor had to stay open until the fork.
            drop(cwd);
            result
        })
        .await
        .map_err(|e| ExecError::Internal(e.to_string()))?;
        let cgroup = match outcome {
            CgroupOutcome::Joined(cgroup) => Some(cgroup),
            CgroupOutcome::None => None,
            CgroupOutcome::Failed(cgroup, culprit) => {
                if culprit {
                    self.cgroups_on.store(false, Ordering::Relaxed);
                }
                if let Err(err) = cgroup.remove() {
                    tracing::warn!(cgroup = %cgroup.path().display(), error = %err, "cannot remove cgroup");
                }
                None
            }
        };
        let (spawned, status_rx) = spawned.map_err(|source| {
            let program = argv0.clone();
            match source.raw_os_error() {
                Some(libc::ENOENT) => ExecError::CommandNotFound {
                    program,
                    path: path_var,
                },
                Some(libc::EACCES) | Some(libc::ENOEXEC) => {
                    ExecError::NotExecutable { program, source }
                }
                _ => ExecError::Spawn { program, source },
            }
        })?;
        let pid = spawned.pid;
        let cgroup = cgroup.map(Arc::new);
        let mut tree = ProcessTree::new(pid as libc::pid_t, cgroup.clone());

        // Wire the pipes; a failure here kills the fresh process instead of
        // leaving it running unobserved.
        let wired = (|| -> io::Result<_> {
            let stdout = pipe::Receiver::from_owned_fd(spawned.stdout)?;
            let stderr = pipe::Receiver::from_owned_fd(spawned.stderr)?;
            let stdin = match spawned.stdin {
                Some(stdin) => Some(pipe::Sender::from_owned_fd(stdin)?),
                None => None,
            };
            Ok((stdout, stderr, stdin))
        })();
        let (stdout, stderr, stdin) = match wired {
            Ok(wired) => wired,
            Err(err) => {
                tracing::error!(pid, error = %err, "stdio wiring failed; killing the process");
                tree.signal(libc::SIGKILL);
                if let Some(cgroup) = &cgroup {
                    self.remove_cgroup_later(cgroup);
                }
                return Err(ExecError::Stdio(err));
            }
        };
        let now = Instant::now();
        let deadline = request.timeout_ms.map(|ms| Deadline {
            at: now + Duration::from_millis(ms),
            unix_ms: unix_ms().saturating_add(ms),
        });
        let stdin_open = stdin.is_some() && request.keep_stdin_open;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let exec = Arc::new(Exec {
            id: id.clone(),
            argv: request.argv.clone(),
            pid,
            started_at_ms: unix_ms(),
            started: now,
            in_cgroup: cgroup.is_some(),
            stall: self.settings.stall,
            inner: Mutex::new(Inner {
                ring: Ring::new(self.settings.ring_bytes),
                readers: HashMap::from([(
                    STARTER_READER,
                    Reader {
                        cursor: 1,
                        lagging: false,
                    },
                )]),
                next_reader: STARTER_READER + 1,
                stdout_bytes: 0,
                stderr_bytes: 0,
                cap: request.output_cap_bytes.unwrap_or(DEFAULT_OUTPUT_CAP_BYTES),
                capped: false,
                exit: None,
                ended_at_ms: None,
                deadline,
                stdin_open,
            }),
            seq_tx: watch::Sender::new(0),
            progress: tokio::sync::Notify::new(),
            draining: AtomicBool::new(false),
            stdin: Arc::new(tokio::sync::Mutex::new(stdin)),
            control: control_tx,
        });

        // Initial stdin goes first: take the lock before anyone else can.
        if let Some(text) = request.stdin
            && let Ok(mut guard) = Arc::clone(&exec.stdin).try_lock_owned()
        {
            let keep_open = request.keep_stdin_open;
            let exec_id = id.clone();
            tokio::spawn(async move {
                if let Some(pipe) = guard.as_mut()
                    && let Err(err) = pipe.write_all(text.as_bytes()).await
                {
                    tracing::warn!(exec = %exec_id, error = %err, "writing the initial stdin failed");
                }
                if !keep_open {
                    guard.take();
                }
            });
        }

        self.lock().by_id.insert(id.clone(), Arc::clone(&exec));
        slot.armed = false;
        self.activity.touch();
        tracing::info!(exec = %id, pid, program = %program.display(), cgroup = exec.in_cgroup, "exec started");

        supervise::start(supervise::Supervision {
            exec,
            execs: Arc::clone(self),
            status_rx,
            control_rx,
            tree,
            stdout,
            stderr,
            kill_grace: Duration::from_millis(
                request.kill_grace_ms.unwrap_or(DEFAULT_KILL_GRACE_MS),
            ),
            drain: self.settings.drain,
            cgroup,
        });
        Ok(ExecCreated { id, pid })
    }

    fn create_cgroup(&self, id: &str) -> Option<Cgroup> {
        let root = self.cgroups.as_ref()?;
        if !self.cgroups_enabled() {
            return None;
        }
        match root.create(&format!("runnerd-{id}")) {
            Ok(cgroup) => Some(cgroup),
            Err(err) => {
                tracing::warn!(error = %err, "cannot create the exec's cgroup; execs run without cgroups from now on");
                self.cgroups_on.store(false, Ordering::Relaxed);
                None
            }
        }
    }

    /// Removes a cgroup now, or remembers it if processes remain.
    fn remove_cgroup_later(&self, cgroup: &Arc<Cgroup>) {
        if let Err(err) = cgroup.remove() {
            tracing::debug!(cgroup = %cgroup.path().display(), error = %err, "cgroup not empty yet; removing it later");
            self.lock().leftover_cgroups.push(Arc::clone(cgroup));
        }
    }

    /// Called once per exec after its terminal frame.
    fn ended(&self, exec: &Exec, cgroup: Option<&Arc<Cgroup>>) {
        if let Some(cgroup) = cgroup {
            self.remove_cgroup_later(cgroup);
        }
        let mut table = self.lock();
        table.running = table.running.saturating_sub(1);
        self.running_tx.send_replace(table.running);
        table.ended.push_back(exec.id.clone());
        while table.ended.len() > self.settings.keep_ended {
            if let Some(old) = table.ended.pop_front() {
                table.by_id.remove(&old);
            }
        }
        table
            .leftover_cgroups
            .retain(|cgroup| cgroup.remove().is_err());
    }

    /// Retries removing cgroups whose background processes outlived their
    /// exec; called periodically.
    pub fn sweep_cgroups(&self) {
        let mut table = self.lock();
        if !table.leftover_cgroups.is_empty() {
            table
                .leftover_cgroups
                .retain(|cgroup| cgroup.remove().is_err());
        }
    }

    /// Shutdown: refuse new execs, cancel running ones with `grace`, wait
    /// until every one has written its terminal frame (at most `grace` +
    /// `drain` + a margin), then kill what outlived earlier execs in their
    /// cgroups.
    pub async fn shutdown(&self, grace: Duration) {
        self.closing.store(true, Ordering::Relaxed);
        let running: Vec<Arc<Exec>> = self
            .lock()
            .by_id
            .values()
            .filter(|e| e.is_running())
            .cloned()
            .collect();
        for exec in &running {
            exec.cancel(grace);
        }
        let mut rx = self.running_tx.subscribe();
        let limit = grace + self.settings.drain + Duration::from_secs(2);
        if tokio::time::timeout(limit, rx.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                running = self.running(),
                "execs still running after the shutdown grace"
            );
        }
        // Background processes that outlived their exec go with runnerd.
        let leftovers = std::mem::take(&mut self.lock().leftover_cgroups);
        for cgroup in leftovers {
            if let Err(err) = cgroup.kill() {
                tracing::warn!(cgroup = %cgroup.path().display(), error = %err, "cgroup.kill failed");
            }
            let removed = async {
                while cgroup.remove().is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            };
            if tokio::time::timeout(Duration::from_secs(1), removed)
                .await
                .is_err()
            {
                tracing::warn!(cgroup = %cgroup.path().display(), "cannot remove cgroup at shutdown");
            }
        }
    }
}

/// What became of the cgroup across spawn attempts.
enum CgroupOutcome {
    Joined(Cgroup),
    None,
    /// The cgroup was not used; `true` when it was the cause of a failed
    /// spawn and cgroups must be turned off.
    Failed(Cgroup, bool),
}
