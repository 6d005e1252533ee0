//! One reaper for every child of runnerd.
//!
//! runnerd may be PID 1, where every orphan in the container becomes its
//! child, so it must `waitpid(-1)`. That would steal exit statuses from any
//! per-child waiter (tokio's process module included), so runnerd spawns
//! processes itself and collects all statuses here: an exec registers its
//! pid while the reaper is locked, and receives its status on a oneshot.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;

use crate::proto::ProcessStatus;

/// Fallback poll period in case a SIGCHLD is missed (signals coalesce, and a
/// handler installed late would miss earlier ones).
const POLL_PERIOD: Duration = Duration::from_secs(1);

/// Collects the status of every child and hands registered ones out.
#[derive(Debug, Default)]
pub struct Reaper {
    waiters: Mutex<HashMap<libc::pid_t, oneshot::Sender<ProcessStatus>>>,
}

impl Reaper {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<libc::pid_t, oneshot::Sender<ProcessStatus>>> {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `spawn` (which must return the new child's pid) with the reaper
    /// locked, and registers the pid before unlocking: the child's status
    /// cannot be collected before someone waits for it.
    ///
    /// Blocks while spawning: call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// Whatever `spawn` returned.
    pub fn spawn<T>(
        &self,
        spawn: impl FnOnce() -> io::Result<(T, u32)>,
    ) -> io::Result<(T, oneshot::Receiver<ProcessStatus>)> {
        let mut waiters = self.lock();
        let (value, pid) = spawn()?;
        let (tx, rx) = oneshot::channel();
        let pid = libc::pid_t::try_from(pid)
            .map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
        waiters.insert(pid, tx);
        Ok((value, rx))
    }

    /// Collects every exited child without blocking.
    pub fn reap(&self) {
        let mut waiters = self.lock();
        loop {
            let mut raw = 0;
            // SAFETY: waitpid writes only to `raw`.
            let pid = unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) };
            if pid == 0 {
                return;
            }
            if pid < 0 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::ECHILD) => return,
                    Some(libc::EINTR) => continue,
                    _ => {
                        tracing::warn!(error = %err, "waitpid failed");
                        return;
                    }
                }
            }
            let status = if libc::WIFEXITED(raw) {
                ProcessStatus::Exited(libc::WEXITSTATUS(raw))
            } else if libc::WIFSIGNALED(raw) {
                ProcessStatus::Signaled(libc::WTERMSIG(raw))
            } else {
                continue;
            };
            match waiters.remove(&pid) {
                Some(tx) => {
                    if tx.send(status).is_err() {
                        tracing::debug!(pid, "exec gone before its process's status arrived");
                    }
                }
                None => tracing::debug!(pid, ?status, "reaped a process that was not an exec"),
            }
        }
    }

    /// Starts reaping on every SIGCHLD (and every [`POLL_PERIOD`]). The
    /// signal handler is installed before this returns, so no child spawned
    /// afterwards can exit unnoticed. Call inside the runtime.
    pub fn start(self: &Arc<Self>) {
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(sigchld) => Some(sigchld),
            Err(err) => {
                tracing::error!(error = %err, "cannot watch SIGCHLD; polling for exited children");
                None
            }
        };
        let period = if sigchld.is_some() {
            POLL_PERIOD
        } else {
            Duration::from_millis(50)
        };
        let reaper = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                match sigchld.as_mut() {
                    Some(sigchld) => {
                        tokio::select! {
                            _ = sigchld.recv() => {}
                            _ = tick.tick() => {}
                        }
                    }
                    None => {
                        tick.tick().await;
                    }
                }
                reaper.reap();
            }
        });
    }
}
