//! An exec's supervisor: drains its pipes into the ring whether or not
//! anyone is attached, enforces the deadline, the output cap and cancels,
//! and writes the one terminal frame.
//!
//! Ending, in order:
//! 1. the process exits (or is killed: SIGTERM to the tree, SIGKILL after
//!    the grace);
//! 2. if runnerd killed it, whatever is left of the tree is SIGKILLed;
//! 3. the pipes are drained to EOF, for at most `drain` (a background child
//!    may hold them open; it then loses them);
//! 4. the terminal frame is pushed, stdin closed, the cgroup removed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use super::{Control, Exec, Execs};
use crate::daemon::process::{Cgroup, ProcessTree};
use crate::proto::{ExitInfo, ExitReason, FrameKind, ProcessStatus};

/// Bytes asked of a pipe per read: a quarter of the enlarged pipe buffer,
/// so a fast producer is drained in few, large frames.
const READ_CHUNK: usize = 256 * 1024;

/// After the drain timed out with back-pressure, how long the pipes get to
/// empty into the ring without it.
const FINAL_DRAIN: Duration = Duration::from_millis(200);

/// Pipe buffer size asked for stdout and stderr (the Linux default
/// `pipe-max-size`): fewer wake-ups and larger frames for chatty processes.
const PIPE_SIZE: libc::c_int = 1024 * 1024;

/// Far enough to never fire; used for disabled timers.
const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Everything a supervisor owns.
pub(super) struct Supervision {
    pub exec: Arc<Exec>,
    pub execs: Arc<Execs>,
    pub status_rx: oneshot::Receiver<ProcessStatus>,
    pub control_rx: mpsc::UnboundedReceiver<Control>,
    pub tree: ProcessTree,
    pub stdout: pipe::Receiver,
    pub stderr: pipe::Receiver,
    pub kill_grace: Duration,
    pub drain: Duration,
    pub cgroup: Option<Arc<Cgroup>>,
}

/// Why runnerd is killing the tree; the first one wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    TimedOut,
    Cancelled,
    OutputCapped,
}

/// The kill in progress, if any.
#[derive(Debug, Default)]
struct Kill {
    cause: Option<Cause>,
    /// When SIGKILL follows the SIGTERM.
    hard_at: Option<Instant>,
    hard_done: bool,
}

impl Kill {
    /// SIGTERMs the tree (SIGKILL at once for a zero grace) the first time;
    /// later calls keep the first cause and may only shorten the grace.
    fn begin(&mut self, exec: &Exec, cause: Cause, grace: Duration, tree: &mut ProcessTree) {
        let at = Instant::now() + grace;
        if self.cause.is_none() {
            self.cause = Some(cause);
            tracing::info!(exec = %exec.id, ?cause, grace_ms = grace.as_millis() as u64, "killing the process tree");
            tree.signal(libc::SIGTERM);
            self.hard_at = Some(at);
        } else if self.hard_at.is_none_or(|current| at < current) {
            self.hard_at = Some(at);
        }
        if grace.is_zero() && !self.hard_done {
            tree.signal(libc::SIGKILL);
            self.hard_done = true;
        }
    }
}

/// Enlarges a pipe's buffer to [`PIPE_SIZE`]; a refusal (an unprivileged
/// limit) only costs throughput, so it is logged and ignored.
fn grow_pipe(exec: &Exec, pipe: &pipe::Receiver) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(F_SETPIPE_SZ) on a pipe descriptor we own.
    if unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) } == -1 {
        tracing::debug!(exec = %exec.id, error = %std::io::Error::last_os_error(), "cannot enlarge the pipe buffer");
    }
}

/// Starts the pipe readers and the supervisor task.
pub(super) fn start(s: Supervision) {
    grow_pipe(&s.exec, &s.stdout);
    grow_pipe(&s.exec, &s.stderr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let readers = vec![
        tokio::spawn(pump(
            Arc::clone(&s.exec),
            s.stdout,
            FrameKind::Stdout,
            stop_rx.clone(),
        )),
        tokio::spawn(pump(
            Arc::clone(&s.exec),
            s.stderr,
            FrameKind::Stderr,
            stop_rx,
        )),
    ];
    tokio::spawn(supervise(
        s.exec,
        s.execs,
        s.status_rx,
        s.control_rx,
        s.tree,
        s.kill_grace,
        s.drain,
        s.cgroup,
        readers,
        stop_tx,
    ));
}

/// Copies one pipe into the ring until EOF or `stop`.
async fn pump(
    exec: Arc<Exec>,
    mut pipe: pipe::Receiver,
    kind: FrameKind,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if buf.capacity() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        exec.wait_for_room(buf.capacity() - buf.len(), &mut stop)
            .await;
        let read = tokio::select! {
            read = pipe.read_buf(&mut buf) => read,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match read {
            Ok(0) => return,
            // After the cap, output is read and dropped so the process is
            // not stuck on a full pipe while it is being killed.
            Ok(_) => {
                exec.push_output(kind, buf.split().freeze());
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                tracing::warn!(exec = %exec.id, ?kind, error = %err, "reading the process's output failed");
                return;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    exec: Arc<Exec>,
    execs: Arc<Execs>,
    mut status_rx: oneshot::Receiver<ProcessStatus>,
    mut control_rx: mpsc::UnboundedReceiver<Control>,
    mut tree: ProcessTree,
    kill_grace: Duration,
    drain: Duration,
    cgroup: Option<Arc<Cgroup>>,
    readers: Vec<JoinHandle<()>>,
    stop_tx: watch::Sender<bool>,
) {
    let mut kill = Kill::default();

    let status = loop {
        let deadline = exec.deadline();
        let now = tokio::time::Instant::now();
        let deadline_sleep = sleep_until(
            deadline
                .map(tokio::time::Instant::from_std)
                .unwrap_or(now + NEVER),
        );
        let hard_sleep = sleep_until(
            kill.hard_at
                .map(tokio::time::Instant::from_std)
                .unwrap_or(now + NEVER),
        );
        tokio::select! {
            biased;
            status = &mut status_rx => break status.ok(),
            control = control_rx.recv() => match control {
                Some(Control::Cancel { grace }) => kill.begin(&exec, Cause::Cancelled, grace, &mut tree),
                Some(Control::OutputCapped) => kill.begin(&exec, Cause::OutputCapped, kill_grace, &mut tree),
                Some(Control::DeadlineMoved) => {}
                // The exec holds the sender; this cannot happen while we
                // hold the exec. Wait for the process alone then.
                None => break (&mut status_rx).await.ok(),
            },
            _ = deadline_sleep, if deadline.is_some() && kill.cause.is_none() => {
                kill.begin(&exec, Cause::TimedOut, kill_grace, &mut tree);
            }
            _ = hard_sleep, if kill.hard_at.is_some() && !kill.hard_done => {
                tree.signal(libc::SIGKILL);
                kill.hard_done = true;
            }
        }
    };

    if status.is_none() {
        tracing::error!(exec = %exec.id, "the reaper lost this exec's process status");
    }
    if kill.cause.is_some() {
        // The leader is gone; nothing of its tree may outlive a kill.
        tree.signal(libc::SIGKILL);
    }

    // Drain the pipes, bounded: a surviving background child may hold them.
    // Attached clients still pace the drain (so a tail larger than the ring
    // is not lost to them); with nobody attached, nothing holds it back.
    exec.release_starter();
    let drain_until = tokio::time::Instant::now() + drain;
    let mut readers: Vec<Option<JoinHandle<()>>> = readers.into_iter().map(Some).collect();
    for slot in &mut readers {
        let Some(handle) = slot.as_mut() else {
            continue;
        };
        match tokio::time::timeout_at(drain_until, &mut *handle).await {
            Ok(joined) => {
                log_join(&exec, joined);
                *slot = None;
            }
            Err(_) => {
                // Whatever is still in the pipes goes into the ring at full
                // speed (a slow client gets a gap frame for it), briefly.
                exec.end_backpressure();
                if let Ok(joined) = tokio::time::timeout(FINAL_DRAIN, &mut *handle).await {
                    log_join(&exec, joined);
                    *slot = None;
                    continue;
                }
                tracing::info!(exec = %exec.id, "pipes still open after the process ended; closing them");
                break;
            }
        }
    }
    stop_tx.send_replace(true);
    for handle in readers.into_iter().flatten() {
        log_join(&exec, handle.await);
    }
    // Output that crossed the cap while draining (the process may have
    // exited with its last output still in the pipe) was cut too: say so,
    // and leave nothing of the tree behind.
    if kill.cause.is_none() && exec.is_capped() {
        kill.cause = Some(Cause::OutputCapped);
        tree.signal(libc::SIGKILL);
    }
    exec.close_stdin();

    let reason = match (kill.cause, status) {
        (Some(Cause::TimedOut), _) => ExitReason::TimedOut,
        (Some(Cause::Cancelled), _) => ExitReason::Cancelled,
        (Some(Cause::OutputCapped), _) => ExitReason::OutputCapped,
        (None, Some(ProcessStatus::Exited(code))) => ExitReason::Exited { code },
        (None, Some(ProcessStatus::Signaled(signal))) => ExitReason::Signaled { signal },
        (None, None) => ExitReason::Lost,
    };
    let exit = ExitInfo {
        reason,
        status,
        duration_ms: exec.started.elapsed().as_millis() as u64,
    };
    tracing::info!(exec = %exec.id, ?reason, ?status, "exec ended");
    exec.finish(exit);
    execs.ended(&exec, cgroup.as_ref());
}

fn log_join(exec: &Exec, joined: Result<(), tokio::task::JoinError>) {
    if let Err(err) = joined {
        tracing::error!(exec = %exec.id, error = %err, "pipe reader failed");
    }
}
