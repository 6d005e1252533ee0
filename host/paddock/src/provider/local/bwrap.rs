//! Confinement with bubblewrap (`bwrap`).
//!
//! A confined runnerd sees the host's file system read-only, its own
//! sandbox directory read-write, a private `/tmp`, `/dev` and `/proc`, and
//! its own pid, IPC and UTS namespaces. It runs as PID 1 of its pid
//! namespace (`--as-pid-1`), so its pid from `--info-fd` is the one to
//! signal and, when it exits, the kernel kills everything left in the
//! namespace: no exec tree outlives its sandbox.
//!
//! Deliberately not used:
//! - `--die-with-parent`: a sandbox must survive the host being killed, so
//!   a restarted host can adopt it.
//! - `--unshare-net`: the host reaches runnerd over TCP on loopback, which a
//!   network namespace of its own would cut off. `network: none` is therefore
//!   not enforced by this provider (see [`super::LocalProcessProvider`]).

use std::fmt;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Whether sandboxes run under bubblewrap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BwrapMode {
    /// Confine when `bwrap` is on `PATH` and works here; otherwise run
    /// unconfined and say so once.
    #[default]
    Auto,
    /// Never confine.
    Off,
    /// Confine, or refuse to start.
    Required,
}

impl BwrapMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Off => "off",
            Self::Required => "required",
        }
    }
}

impl fmt::Display for BwrapMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bwrap mode name that is not one of `auto`, `off`, `required`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown bwrap mode {0:?} (allowed: auto, off, required)")]
pub struct UnknownBwrapMode(pub String);

impl FromStr for BwrapMode {
    type Err = UnknownBwrapMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "off" => Ok(Self::Off),
            "required" => Ok(Self::Required),
            _ => Err(UnknownBwrapMode(s.to_owned())),
        }
    }
}

/// Namespaces and session of a confined runnerd.
const NAMESPACE_ARGS: &[&str] = &[
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--as-pid-1",
    "--new-session",
];

/// The file system a confined runnerd sees, before its own binds.
const MOUNT_ARGS: &[&str] = &[
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
];

/// How long the start-up probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A working `bwrap`.
#[derive(Debug, Clone)]
pub(super) struct Bwrap {
    path: PathBuf,
}

impl Bwrap {
    /// Finds `bwrap` on `PATH` and checks that it can set up the sandbox
    /// this provider asks for, by running `runnerd --version` in one
    /// (user namespaces may be disabled, or bwrap too old for a flag).
    ///
    /// # Errors
    ///
    /// Why bwrap cannot be used, for the operator.
    pub fn detect(runnerd: &Path) -> Result<Self, String> {
        let path = find_on_path("bwrap").ok_or("bwrap is not on PATH")?;
        let mut probe = Command::new(&path);
        probe
            .args(NAMESPACE_ARGS)
            .args(MOUNT_ARGS)
            .arg("--ro-bind")
            .arg(runnerd)
            .arg(runnerd)
            .arg("--")
            .arg(runnerd)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match run_with_timeout(probe, PROBE_TIMEOUT) {
            Ok(()) => Ok(Self { path }),
            Err(reason) => Err(format!("{} does not work here: {reason}", path.display())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `bwrap` command that runs `runnerd` confined to `sandbox_dir`,
    /// reporting the host pid of runnerd on `info_fd` (which the child must
    /// inherit). runnerd's own arguments are appended by the caller.
    pub fn command(&self, sandbox_dir: &Path, runnerd: &Path, info_fd: RawFd) -> Command {
        let mut command = Command::new(&self.path);
        command
            .args(NAMESPACE_ARGS)
            .args(MOUNT_ARGS)
            // Visible even when it lives under /tmp.
            .arg("--ro-bind")
            .arg(runnerd)
            .arg(runnerd)
            .arg("--bind")
            .arg(sandbox_dir)
            .arg(sandbox_dir)
            .arg("--chdir")
            .arg(sandbox_dir)
            .arg("--info-fd")
            .arg(info_fd.to_string())
            .arg("--")
            .arg(runnerd);
        command
    }
}

/// What bwrap writes to `--info-fd`.
#[derive(Debug, Deserialize)]
pub(super) struct BwrapInfo {
    /// The sandboxed process's pid in the host's pid namespace.
    #[serde(rename = "child-pid")]
    pub child_pid: u32,
}

/// The first executable file named `name` in `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;

    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `command` to completion within `limit`; its stderr explains a
/// failure.
fn run_with_timeout(mut command: Command, limit: Duration) -> Result<(), String> {
    let mut child = command.spawn().map_err(|e| format!("cannot run it: {e}"))?;
    let until = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    if let Err(err) = pipe.read_to_string(&mut stderr) {
                        stderr = format!("(stderr unreadable: {err})");
                    }
                }
                return Err(format!("{status}: {}", stderr.trim()));
            }
            Ok(None) if Instant::now() >= until => {
                if let Err(err) = child.kill() {
                    tracing::warn!(error = %err, "cannot kill the bwrap probe");
                }
                if let Err(err) = child.wait() {
                    tracing::warn!(error = %err, "cannot reap the bwrap probe");
                }
                return Err(format!("no answer within {limit:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(err) => return Err(format!("cannot wait for it: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_name_the_allowed_values() {
        assert_eq!("Required".parse::<BwrapMode>(), Ok(BwrapMode::Required));
        assert_eq!(" off ".parse::<BwrapMode>(), Ok(BwrapMode::Off));
        let err = "sometimes".parse::<BwrapMode>().expect_err("unknown");
        assert!(err.to_string().contains("auto, off, required"), "{err}");
        assert_eq!(BwrapMode::default().to_string(), "auto");
    }
}
