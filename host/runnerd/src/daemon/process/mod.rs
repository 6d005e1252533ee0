//! Processes at the OS level: reaping every child (runnerd may be PID 1),
//! killing whole process trees, and per-exec cgroups.
//!
//! Linux only: runnerd runs inside Linux sandboxes.

mod cgroup;
mod reaper;
mod tree;

pub use cgroup::{Cgroup, CgroupRoot};
pub use reaper::Reaper;
pub use tree::ProcessTree;

/// Sends `signal` to `pid` (negative: a process group). A target that is
/// already gone is not an error; anything else is logged, never swallowed.
pub fn send_signal(pid: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == -1 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pid, signal, error = %err, "kill failed");
        }
    }
}

/// Makes runnerd the reaper of orphaned descendants, so that processes which
/// leave an exec's tree (double fork, setsid) are still reaped by runnerd and
/// never pile up as zombies under an init that does not reap.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == -1 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot become child subreaper");
    }
}
