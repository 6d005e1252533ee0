//! Starting a sandbox's runnerd as a detached process and waiting until it
//! answers.
//!
//! Detached means: its own session (so a terminal's Ctrl-C or the host's
//! process group being signalled does not reach it), stdin from `/dev/null`,
//! stdout and stderr appended to `runnerd.log`, nothing that kills it when
//! the host drops a handle or dies. The host only reaps it (see
//! `reaper.rs`) so no zombie stays behind while the host lives.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use paddock_runnerd::client::Client;
use paddock_runnerd::proto::Listening;
use tokio::time::Instant;

use super::bwrap::{Bwrap, BwrapInfo};
use super::layout::SandboxDir;

/// `PATH` of runnerd itself (its execs get their own base environment).
const RUNNERD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The grace runnerd gives its execs between SIGTERM and SIGKILL when it is
/// stopped. Below the provider's wait in `destroy` (3 s) so that runnerd,
/// not the provider's SIGKILL, ends the execs: unconfined, runnerd is the
/// only one who knows their process groups and cgroups.
const RUNNERD_SHUTDOWN_GRACE_MS: &str = "2000";

/// A runnerd that has been spawned but may not be listening yet.
#[derive(Debug)]
pub(super) struct Launched {
    /// runnerd, or its bwrap launcher when confined.
    pub child: Child,
    /// Where bwrap reports runnerd's pid, when confined.
    info: Option<File>,
}

/// A runnerd that answers `health`.
#[derive(Debug)]
pub(super) struct Ready {
    /// runnerd's pid in the host's pid namespace.
    pub pid: u32,
    pub endpoint: String,
}

/// Spawns runnerd for the sandbox in `dir` (whose files must exist),
/// detached, confined by `bwrap` when given. Blocking (fork and exec).
///
/// # Errors
///
/// Opening the log, making the info pipe, or spawning.
pub(super) fn spawn(
    runnerd: &Path,
    bwrap: Option<&Bwrap>,
    dir: &SandboxDir,
    stall_ms: u64,
) -> io::Result<Launched> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.log())?;
    let log_err = log.try_clone()?;

    let (mut command, info) = match bwrap {
        Some(bwrap) => {
            let (read, write) = cloexec_pipe()?;
            let command = bwrap.command(dir.path(), runnerd, write.as_raw_fd());
            (command, Some((read, write)))
        }
        None => (Command::new(runnerd), None),
    };
    let keep_fd = info.as_ref().map(|(_, write)| write.as_raw_fd());
    command
        .arg("--workspace")
        .arg(dir.workspace())
        .args(["--listen", "127.0.0.1:0"])
        .arg("--addr-file")
        .arg(dir.addr())
        .arg("--token-file")
        .arg(dir.token())
        .arg("--env-file")
        .arg(dir.env())
        .arg("--home")
        .arg(dir.home())
        .args(["--shutdown-grace-ms", RUNNERD_SHUTDOWN_GRACE_MS])
        .args(["--stall-ms", &stall_ms.to_string()])
        .current_dir(dir.path())
        // Nothing of the host's environment (its secrets included) enters
        // the sandbox.
        .env_clear()
        .env("PATH", RUNNERD_PATH)
        .env("HOME", dir.home())
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if let Some(level) = std::env::var_os("RUNNERD_LOG") {
        command.env("RUNNERD_LOG", level);
    }
    // SAFETY: `detach_child` makes only async-signal-safe system calls on
    // plain integers, as code between fork and exec must.
    unsafe {
        command.pre_exec(move || detach_child(keep_fd));
    }
    let child = command.spawn()?;
    // Our copy of the write end must go, or reading the info never ends.
    let info = info.map(|(read, write)| {
        drop(write);
        File::from(read)
    });
    Ok(Launched { child, info })
}

/// Waits, until `deadline` (one budget for every step), for runnerd to
/// report its pid (confined), publish its address, and answer `health` with
/// `token`.
///
/// # Errors
///
/// What went wrong, for the provisioning error (the caller adds the log).
pub(super) async fn wait_ready(
    launched: &mut Launched,
    dir: &SandboxDir,
    token: &str,
    deadline: Instant,
) -> Result<Ready, String> {
    let pid = match launched.info.take() {
        Some(info) => read_info(info, deadline).await?.child_pid,
        None => launched.child.id(),
    };
    let addr = wait_for_addr(&mut launched.child, &dir.addr(), deadline).await?;
    let endpoint = format!("http://{addr}");
    let client = Client::new(endpoint.clone(), token);
    let mut pause = Duration::from_millis(1);
    loop {
        let error = match tokio::time::timeout_at(deadline, client.health()).await {
            Ok(Ok(_)) => return Ok(Ready { pid, endpoint }),
            // An answer that is an error (a refused token) will not change.
            Ok(Err(err)) if err.status().is_some() => {
                return Err(format!("runnerd at {endpoint} refused health: {err}"));
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "no answer".to_owned(),
        };
        exited(&mut launched.child)?;
        if Instant::now() + pause >= deadline {
            return Err(format!(
                "runnerd at {endpoint} did not answer health in time: {error}"
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Reads bwrap's info JSON (`{"child-pid": N, ...}`) from the pipe.
async fn read_info(mut info: File, deadline: Instant) -> Result<BwrapInfo, String> {
    let read = tokio::task::spawn_blocking(move || -> Result<BwrapInfo, String> {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            // Parsed as soon as it is complete: the pipe's end may stay open
            // in a process that inherited it.
            if let Ok(info) = serde_json::from_slice::<BwrapInfo>(&bytes) {
                return Ok(info);
            }
            match info.read(&mut chunk) {
                Ok(0) => {
                    return Err(format!(
                        "bwrap ended its info before naming runnerd's pid: {:?}",
                        String::from_utf8_lossy(&bytes)
                    ));
                }
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(format!("reading bwrap's info: {err}")),
            }
        }
    });
    match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(format!("the task reading bwrap's info failed: {err}")),
        // The caller kills bwrap, which ends the blocked read.
        Err(_) => Err("bwrap did not report runnerd's pid in time".to_owned()),
    }
}

/// Polls the address file until runnerd has written it.
async fn wait_for_addr(
    child: &mut Child,
    path: &Path,
    deadline: Instant,
) -> Result<SocketAddr, String> {
    let mut pause = Duration::from_millis(1);
    loop {
        match std::fs::read(path) {
            Ok(bytes) => {
                let listening: Listening = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("malformed address file {}: {e}", path.display()))?;
                return listening.listening.parse().map_err(|e| {
                    format!(
                        "runnerd published a bad address {:?}: {e}",
                        listening.listening
                    )
                });
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(format!("cannot read {}: {err}", path.display())),
        }
        exited(child)?;
        if Instant::now() + pause >= deadline {
            return Err("runnerd did not publish its address in time".to_owned());
        }
        tokio::time::sleep(pause).await;
        // runnerd is usually up within a few ms: a longer pause would be
        // most of a provisioning's latency (a stat every 2 ms costs nothing).
        pause = (pause * 2).min(Duration::from_millis(2));
    }
}

/// An error if the spawned process has already exited.
fn exited(child: &mut Child) -> Result<(), String> {
    match child.try_wait() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => Err(format!("runnerd exited during start-up ({status})")),
        Err(err) => Err(format!("cannot check on runnerd: {err}")),
    }
}

/// Runs in the child between fork and exec: a session of its own, and no
/// descriptor the host inherited from its own parent (a jobserver pipe, a
/// supervisor's socket) passed on, except `keep` (bwrap's info pipe).
///
/// Descriptors are marked close-on-exec rather than closed, which leaves the
/// pipe std uses to report a failed exec working. Needs Linux 5.11; on older
/// kernels the inherited descriptors stay open, as before.
fn detach_child(keep: Option<RawFd>) -> io::Result<()> {
    // SAFETY: setsid(2), close_range(2) and fcntl(2) on plain integers; all
    // async-signal-safe.
    unsafe {
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        #[cfg(target_os = "linux")]
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        if let Some(fd) = keep
            && libc::fcntl(fd, libc::F_SETFD, 0) == -1
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2(2) fills the two-element array with new descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
