//! The processes of a local sandbox, found and signalled by pid without
//! ever hitting a stranger.
//!
//! A pid read from a state file may have been reused by an unrelated
//! process since. Before any signal the process must still name the
//! sandbox's workspace on its command line (`--workspace <dir>`, which
//! runnerd has and, when confined, its bubblewrap launcher too), and on
//! Linux the signal goes through a pidfd opened before that check, so a pid
//! reused between the check and the signal cannot be hit either.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

/// The flag runnerd takes its workspace with.
const WORKSPACE_FLAG: &[u8] = b"--workspace";

/// How a process was ended by [`terminate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// It exited within the grace after SIGTERM.
    Exited,
    /// It had to be sent SIGKILL.
    Killed,
}

/// A handle to a live process of one sandbox.
#[derive(Debug)]
pub(super) struct SandboxProcess {
    pid: libc::pid_t,
    /// Pins the process's identity where the kernel supports pidfds.
    pidfd: Option<OwnedFd>,
}

impl SandboxProcess {
    /// A handle to `pid` if it is running and its command line names
    /// `workspace`; `None` for a dead, reused or foreign pid.
    pub fn find(pid: u32, workspace: &Path) -> Option<Self> {
        // pid 0 and 1 (and anything not a valid pid_t) would make kill(2)
        // hit a process group or init; never a sandbox.
        let pid = libc::pid_t::try_from(pid).ok().filter(|&p| p > 1)?;
        let pidfd = pidfd_open(pid);
        let process = Self { pid, pidfd };
        (process.is_running() && names_workspace(pid, workspace)).then_some(process)
    }

    pub fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Whether the process has not exited yet (a zombie has).
    pub fn is_running(&self) -> bool {
        match &self.pidfd {
            Some(fd) => !pidfd_exited(fd),
            None => pid_is_running(self.pid),
        }
    }

    /// Sends `signal`; a process that is already gone is not an error.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        let rc = match &self.pidfd {
            Some(fd) => pidfd_send_signal(fd, signal),
            // SAFETY: kill(2) with a pid > 1 and a signal number; no memory
            // is involved.
            None => unsafe { libc::kill(self.pid, signal) },
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(err)
        }
    }

    /// Waits up to `limit` for the process to exit; whether it did.
    pub async fn wait_exit(&self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        let mut pause = Duration::from_millis(2);
        loop {
            if !self.is_running() {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep_until((Instant::now() + pause).min(until)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }
}

/// SIGTERM, up to `grace` to exit, then SIGKILL (and a short wait for the
/// kernel to finish it).
///
/// # Errors
///
/// A signal could not be sent (other than to a process already gone).
pub(super) async fn terminate(process: &SandboxProcess, grace: Duration) -> io::Result<Ending> {
    process.signal(libc::SIGTERM)?;
    if process.wait_exit(grace).await {
        return Ok(Ending::Exited);
    }
    process.signal(libc::SIGKILL)?;
    if !process.wait_exit(Duration::from_secs(1)).await {
        tracing::warn!(
            pid = process.pid(),
            "process still running one second after SIGKILL"
        );
    }
    Ok(Ending::Killed)
}

/// Every process (other than this one) whose command line names
/// `workspace`: a sandbox's runnerd and launcher when no state file says
/// which they are.
pub(super) fn processes_of(workspace: &Path) -> Vec<SandboxProcess> {
    let entries = match std::fs::read_dir("/proc") {
        Ok(entries) => entries,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list /proc to find a sandbox's processes");
            return Vec::new();
        }
    };
    let own = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter_map(|pid| SandboxProcess::find(pid, workspace))
        .collect()
}

/// Whether `pid`'s command line has `--workspace <workspace>`.
fn names_workspace(pid: libc::pid_t, workspace: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = workspace.as_os_str().as_bytes();
    let mut args = cmdline.split(|&b| b == 0);
    while let Some(arg) = args.next() {
        if arg == WORKSPACE_FLAG {
            if args.next() == Some(wanted) {
                return true;
            }
        } else if let Some(value) = arg
            .strip_prefix(WORKSPACE_FLAG)
            .and_then(|rest| rest.strip_prefix(b"="))
            && OsStr::from_bytes(value) == workspace.as_os_str()
        {
            return true;
        }
    }
    false
}

/// Whether `/proc/<pid>/stat` shows a process that has not exited (a zombie
/// or a dead task has).
fn pid_is_running(pid: libc::pid_t) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": comm may hold anything, the state follows the
    // last ')'.
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    !matches!(stat.get(close + 2), Some(b'Z' | b'X' | b'x') | None)
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new file
    // descriptor (owned by us from here on) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: libc::pid_t) -> Option<OwnedFd> {
    None
}

#[cfg(target_os = "linux")]
fn pidfd_send_signal(fd: &OwnedFd, signal: libc::c_int) -> libc::c_int {
    // SAFETY: pidfd_send_signal(2) with a valid pidfd, a signal number, no
    // siginfo and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc == 0 { 0 } else { -1 }
}

#[cfg(not(target_os = "linux"))]
fn pidfd_send_signal(_fd: &OwnedFd, _signal: libc::c_int) -> libc::c_int {
    -1
}

/// A pidfd turns readable once its process has exited.
fn pidfd_exited(fd: &OwnedFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let rc = unsafe { libc::poll(&mut pollfd, 1, 0) };
    rc > 0 && pollfd.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    use super::*;

    /// Starts `sh -c SCRIPT runnerd --workspace WORKSPACE` (its command line
    /// names the workspace like runnerd's does) and returns once the script
    /// has printed its first line, so it has exec'd and set up its traps.
    fn spawn_named(script: &str, workspace: &Path) -> (Child, SandboxProcess) {
        let mut child = Command::new("sh")
            .args(["-c", script, "runnerd", "--workspace"])
            .arg(workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("ready line");
        assert_eq!(line, "ready\n");
        let process = SandboxProcess::find(child.id(), workspace).expect("found by pid");
        (child, process)
    }

    #[tokio::test]
    async fn finds_and_terminates_only_processes_naming_the_workspace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = dir.path().join("workspace");
        // A loop, so sh does not exec into `sleep`.
        let (child, process) = spawn_named("echo ready; while :; do sleep 0.05; done", &workspace);
        let pid = process.pid();

        assert!(SandboxProcess::find(pid, &dir.path().join("other")).is_none());
        assert!(SandboxProcess::find(0, &workspace).is_none());
        assert!(SandboxProcess::find(1, &workspace).is_none());
        let found = processes_of(&workspace);
        assert_eq!(
            found.iter().map(SandboxProcess::pid).collect::<Vec<_>>(),
            [pid]
        );

        // Reap concurrently, as the provider's reaper does.
        let mut child = child;
        let waiter = std::thread::spawn(move || child.wait());
        let ending = terminate(&process, Duration::from_secs(5))
            .await
            .expect("terminate");
        assert_eq!(ending, Ending::Exited);
        assert!(!process.is_running());
        // Signalling a process that is gone is fine.
        process
            .signal(libc::SIGKILL)
            .expect("signal a dead process");
        waiter.join().expect("join").expect("wait");
        assert!(SandboxProcess::find(pid, &workspace).is_none());
    }

    #[tokio::test]
    async fn kills_what_ignores_sigterm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let workspace = dir.path().join("workspace");
        let (mut child, process) = spawn_named(
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
            &workspace,
        );
        let waiter = std::thread::spawn(move || child.wait());
        let ending = terminate(&process, Duration::from_millis(200))
            .await
            .expect("terminate");
        assert_eq!(ending, Ending::Killed);
        waiter.join().expect("join").expect("wait");
    }
}
