//! Per-exec cgroup v2 directories under runnerd's own cgroup.
//!
//! A process that calls `setsid` leaves the exec's process group, and one
//! whose parent died is no longer found through parent links; a cgroup keeps
//! them all, and `cgroup.kill` kills them in one write. No controllers are
//! enabled: the cgroup is used for membership only, which cgroup v2 allows
//! beside processes in the parent.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use super::send_signal;

/// runnerd's own cgroup v2 directory, found writable at startup.
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    dir: PathBuf,
}

impl CgroupRoot {
    /// Finds runnerd's cgroup v2 directory and checks that a child can be
    /// created in it. `None` (logged) when there is no cgroup v2 or it is
    /// read-only, as in an unprivileged Docker container.
    pub fn detect(probe_name: &str) -> Option<Self> {
        let dir = match own_cgroup_dir() {
            Ok(dir) => dir,
            Err(err) => {
                tracing::info!(error = %err, "no cgroup v2: execs are killed by process group and /proc tree only");
                return None;
            }
        };
        let probe = dir.join(probe_name);
        if let Err(err) = std::fs::create_dir(&probe) {
            tracing::info!(
                cgroup = %dir.display(), error = %err,
                "cgroup v2 is not writable: execs are killed by process group and /proc tree only"
            );
            return None;
        }
        if let Err(err) = std::fs::remove_dir(&probe) {
            tracing::warn!(cgroup = %probe.display(), error = %err, "cannot remove probe cgroup");
        }
        tracing::info!(cgroup = %dir.display(), "execs get their own cgroup");
        Some(Self { dir })
    }

    /// Creates the child cgroup `name`, ready to be joined.
    ///
    /// # Errors
    ///
    /// Creating the directory or opening its `cgroup.procs`.
    pub fn create(&self, name: &str) -> io::Result<Cgroup> {
        let path = self.dir.join(name);
        std::fs::create_dir(&path)?;
        match OpenOptions::new()
            .write(true)
            .open(path.join("cgroup.procs"))
        {
            Ok(procs) => {
                let dir = File::open(&path)?;
                Ok(Cgroup { path, procs, dir })
            }
            Err(err) => {
                let _ = std::fs::remove_dir(&path).inspect_err(|rm| {
                    tracing::warn!(cgroup = %path.display(), error = %rm, "cannot remove cgroup");
                });
                Err(err)
            }
        }
    }
}

/// One exec's cgroup.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
    /// Open for the child to write "0" (itself) between fork and exec, so it
    /// is inside before it can fork anything.
    procs: File,
    /// The directory, for `clone3(CLONE_INTO_CGROUP)`.
    dir: File,
}

impl Cgroup {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory descriptor a child is cloned into (close-on-exec).
    pub fn dir_fd(&self) -> RawFd {
        self.dir.as_raw_fd()
    }

    /// The `cgroup.procs` descriptor the child joins through (close-on-exec).
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Pids of the processes in the cgroup.
    ///
    /// # Errors
    ///
    /// Reading `cgroup.procs`.
    pub fn pids(&self) -> io::Result<Vec<libc::pid_t>> {
        Ok(std::fs::read_to_string(self.path.join("cgroup.procs"))?
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect())
    }

    /// SIGKILLs every process in the cgroup: `cgroup.kill` where the kernel
    /// has it (5.14+), else each listed pid.
    ///
    /// # Errors
    ///
    /// Writing `cgroup.kill` or listing the processes.
    pub fn kill(&self) -> io::Result<()> {
        match OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.kill"))
        {
            Ok(mut file) => file.write_all(b"1"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                for pid in self.pids()? {
                    send_signal(pid, libc::SIGKILL);
                }
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Removes the (empty) cgroup directory.
    ///
    /// # Errors
    ///
    /// `EBUSY` while processes remain in it.
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir(&self.path) {
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// `<cgroup2 mount><own path>` from /proc/self/cgroup and mountinfo.
fn own_cgroup_dir() -> io::Result<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup")?;
    let own = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| io::Error::other("no cgroup v2 entry in /proc/self/cgroup"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for line in mountinfo.lines() {
        let Some((fields, fs)) = line.split_once(" - ") else {
            continue;
        };
        if fs.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = fields.split_whitespace().collect();
        let (Some(root), Some(mount)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let Some(rel) = own.strip_prefix(root.trim_end_matches('/')) else {
            continue;
        };
        let dir = Path::new(mount).join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    Err(io::Error::other("no cgroup2 mount holds runnerd's cgroup"))
}

/// Whether `fd` is still usable; used only in tests.
#[cfg(test)]
fn fd_ok(fd: RawFd) -> bool {
    // SAFETY: fcntl(F_GETFD) only queries the descriptor.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_remove_when_available() {
        let Some(root) = CgroupRoot::detect("runnerd-unit-probe") else {
            eprintln!("cgroup v2 not writable here: nothing to test");
            return;
        };
        let name = format!("runnerd-unit-{}", std::process::id());
        let cgroup = root.create(&name).expect("create");
        assert!(fd_ok(cgroup.procs_fd()));
        assert_eq!(cgroup.pids().expect("list").len(), 0);
        cgroup.kill().expect("kill on an empty cgroup");
        cgroup.remove().expect("remove");
        assert!(!cgroup.path().exists());
    }
}
