//! Turning an [`ExecRequest`] into a running process: environment merge,
//! program lookup, and the fork-time setup (own session, cwd by descriptor,
//! cgroup membership).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::ExecError;
use crate::daemon::env::{check_name, check_var};
use crate::daemon::process::Cgroup;

/// `PATH` of the base environment, the usual Debian/Alpine default.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `LANG` of the base environment: UTF-8 without depending on installed
/// locales.
pub const BASE_LANG: &str = "C.UTF-8";

/// The exec's environment: base ← env store ← request `env`, then
/// `env_from` copies.
///
/// # Errors
///
/// A refused or malformed variable in `env` or `env_from`, or an `env_from`
/// source that is not set.
pub fn merged_env(
    home: &Path,
    store: &BTreeMap<String, String>,
    env: &BTreeMap<String, String>,
    env_from: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ExecError> {
    let mut merged = BTreeMap::new();
    merged.insert("PATH".to_owned(), BASE_PATH.to_owned());
    merged.insert("HOME".to_owned(), home.to_string_lossy().into_owned());
    merged.insert("LANG".to_owned(), BASE_LANG.to_owned());
    for (name, value) in store {
        merged.insert(name.clone(), value.clone());
    }
    for (name, value) in env {
        check_var(name, value)?;
        merged.insert(name.clone(), value.clone());
    }
    let mut copies = Vec::with_capacity(env_from.len());
    for (name, source) in env_from {
        check_name(name)?;
        let value = merged
            .get(source)
            .ok_or_else(|| ExecError::EnvFromMissing {
                name: name.clone(),
                source_var: source.clone(),
            })?
            .clone();
        copies.push((name.clone(), value));
    }
    // Copies read the merged env as it was before any copy, so their order
    // does not matter.
    merged.extend(copies);
    Ok(merged)
}

/// Resolves `argv0` on `path_var` like a shell: a name with a `/` is used
/// as is (relative to the exec's cwd), otherwise the first executable
/// regular file in an absolute `PATH` entry.
///
/// # Errors
///
/// [`ExecError::CommandNotFound`] naming the program and the `PATH` searched.
pub fn resolve_program(argv0: &str, path_var: Option<&str>) -> Result<PathBuf, ExecError> {
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    let path_var = path_var.unwrap_or("");
    for dir in path_var.split(':') {
        // Relative entries would resolve against runnerd's own cwd, which is
        // meaningless for the exec; skip them.
        if !dir.starts_with('/') {
            continue;
        }
        let candidate = Path::new(dir).join(argv0);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(ExecError::CommandNotFound {
        program: argv0.to_owned(),
        path: path_var.to_owned(),
    })
}

/// How the child's stdin is wired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinMode {
    Null,
    Pipe,
}

/// Everything needed to fork and exec, resolved beforehand.
#[derive(Debug)]
pub struct SpawnPlan {
    pub program: PathBuf,
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The cwd, opened through the workspace's `cap_std` handle: the child
    /// `fchdir`s to it, so a symlink swapped in after the check cannot move
    /// it outside the workspace.
    pub cwd_fd: RawFd,
    pub stdin: StdinMode,
}

/// Forks and execs `plan`. The child becomes a session (and process group)
/// leader, changes into the cwd descriptor and, with `cgroup_procs_fd`,
/// joins the exec's cgroup — all before `exec`, so nothing it starts can be
/// outside them.
///
/// The descriptors must stay open until this returns; they are
/// close-on-exec, so the program never sees them.
///
/// # Errors
///
/// The fork, any setup step, or `exec` itself.
pub fn spawn(plan: &SpawnPlan, cgroup: Option<&Cgroup>) -> io::Result<Spawned> {
    if let Some(cgroup) = cgroup {
        match super::clone3::spawn(plan, cgroup.dir_fd()) {
            Err(err) if super::clone3::unsupported(&err) => {
                tracing::debug!(error = %err, "clone3 into the cgroup unavailable; joining it by cgroup.procs");
            }
            other => return other,
        }
    }
    let mut child = spawn_std(plan, cgroup.map(Cgroup::procs_fd))?;
    let missing = || io::Error::other("a piped stdio descriptor is missing");
    Ok(Spawned {
        pid: child.id(),
        stdin: child.stdin.take().map(OwnedFd::from),
        stdout: child.stdout.take().map(OwnedFd::from).ok_or_else(missing)?,
        stderr: child.stderr.take().map(OwnedFd::from).ok_or_else(missing)?,
    })
}

/// A spawned process: its pid and the parent's ends of its pipes.
#[derive(Debug)]
pub struct Spawned {
    pub pid: u32,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The same through `std::process`, joining the cgroup (if any) by writing
/// `cgroup.procs` between fork and exec.
fn spawn_std(plan: &SpawnPlan, cgroup_procs_fd: Option<RawFd>) -> io::Result<Child> {
    let mut command = Command::new(&plan.program);
    if let Some((argv0, args)) = plan.argv.split_first() {
        command.arg0(argv0).args(args);
    }
    command
        .env_clear()
        .envs(&plan.env)
        .stdin(match plan.stdin {
            StdinMode::Null => Stdio::null(),
            StdinMode::Pipe => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let cwd_fd = plan.cwd_fd;
    // SAFETY: the closure runs between fork and exec and calls only
    // async-signal-safe functions (setsid, fchdir, write) on plain integers.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::fchdir(cwd_fd) == -1 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = cgroup_procs_fd {
                // "0" moves the writing process itself.
                if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_layers_and_copies() {
        let store = map(&[("GATEWAY_KEY", "k1"), ("A", "store")]);
        let env = map(&[("A", "request")]);
        let env_from = map(&[("ANTHROPIC_API_KEY", "GATEWAY_KEY")]);
        let merged = merged_env(Path::new("/home/u"), &store, &env, &env_from).expect("valid env");
        assert_eq!(merged["A"], "request");
        assert_eq!(merged["ANTHROPIC_API_KEY"], "k1");
        assert_eq!(merged["HOME"], "/home/u");
        assert_eq!(merged["PATH"], BASE_PATH);

        let missing = merged_env(
            Path::new("/"),
            &store,
            &BTreeMap::new(),
            &map(&[("X", "NOPE")]),
        );
        assert!(matches!(missing, Err(ExecError::EnvFromMissing { .. })));
        let refused = merged_env(
            Path::new("/"),
            &store,
            &map(&[("LD_PRELOAD", "/x.so")]),
            &BTreeMap::new(),
        );
        assert!(matches!(refused, Err(ExecError::Env(_))));
        let refused = merged_env(
            Path::new("/"),
            &store,
            &BTreeMap::new(),
            &map(&[("LD_PRELOAD", "A")]),
        );
        assert!(matches!(refused, Err(ExecError::Env(_))));
    }

    #[test]
    fn resolves_on_path_only_executables() {
        assert_eq!(
            resolve_program("sh", Some("relative:/nonexistent:/bin:/usr/bin")).ok(),
            Some(PathBuf::from("/bin/sh"))
        );
        assert!(matches!(
            resolve_program("no-such-program-xyz", Some(BASE_PATH)),
            Err(ExecError::CommandNotFound { .. })
        ));
        assert_eq!(
            resolve_program("./x", None).ok(),
            Some(PathBuf::from("./x"))
        );
    }
}
