//! Spawning straight into a cgroup with `clone3(CLONE_INTO_CGROUP)`.
//!
//! Moving a process into a cgroup by writing `cgroup.procs` takes the
//! cgroup threadgroup lock for writing, which waits out an RCU grace period:
//! ~12 ms for the first exec after a pause, most of a fresh session's first
//! exec. A child cloned into its cgroup never moves, so it pays none of it,
//! and it is inside before it runs a single instruction of its own.
//!
//! The child runs between `clone3` and `execve` with only async-signal-safe
//! calls on buffers prepared beforehand, like `std::process` does after
//! `fork`. Kernels without `clone3` or `CLONE_INTO_CGROUP` (before 5.7)
//! answer `ENOSYS`/`EINVAL`/`E2BIG`, and the caller falls back to the
//! `cgroup.procs` write.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use super::spawn::{SpawnPlan, Spawned, StdinMode};

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The kernel's `struct clone_args` (version 2, with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Whether an error means "this kernel cannot do it": fall back.
pub fn unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM)
    )
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Forks `plan` into the cgroup whose directory is `cgroup_dir`, then execs.
///
/// # Errors
///
/// `clone3` itself (see [`unsupported`]), or the child's setup or `execve`
/// (its errno, reported through a close-on-exec pipe).
pub fn spawn(plan: &SpawnPlan, cgroup_dir: RawFd) -> io::Result<Spawned> {
    // Everything the child touches is allocated now: after clone3 it may
    // not allocate (another thread may hold the allocator's lock).
    let program = cstring(plan.program.as_os_str().as_bytes())?;
    let argv: Vec<CString> = plan
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()?;
    let envp: Vec<CString> = plan
        .env
        .iter()
        .map(|(k, v)| cstring(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());

    let (stdin_child, stdin_parent) = match plan.stdin {
        StdinMode::Pipe => {
            let (read, write) = pipe()?;
            (read, Some(write))
        }
        StdinMode::Null => (std::fs::File::open("/dev/null")?.into(), None),
    };
    let (stdout_parent, stdout_child) = pipe()?;
    let (stderr_parent, stderr_child) = pipe()?;
    let (report_read, report_write) = pipe()?;
    let child_fds = [
        stdin_child.as_raw_fd(),
        stdout_child.as_raw_fd(),
        stderr_child.as_raw_fd(),
    ];
    let report = report_write.as_raw_fd();
    let cwd = plan.cwd_fd;

    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with a fully initialized clone_args of its own size
    // and no CLONE_VM: the child gets a copy of the address space, like fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: the child; only async-signal-safe calls on data prepared
        // above, ending in execve or _exit.
        unsafe { child(&child_fds, cwd, &program, &argv_ptrs, &envp_ptrs, report) }
    }
    let pid = pid as libc::pid_t;
    drop((stdin_child, stdout_child, stderr_child, report_write));
    // The report pipe closes on a successful exec; otherwise it carries the
    // child's errno.
    let mut errno = [0u8; 4];
    let mut report = std::fs::File::from(report_read);
    match io::Read::read(&mut report, &mut errno) {
        Ok(4) => {
            let mut status = 0;
            // SAFETY: reaps the child that failed before exec.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            Err(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
        }
        Ok(_) => Ok(Spawned {
            pid: pid as u32,
            stdin: stdin_parent,
            stdout: stdout_parent,
            stderr: stderr_parent,
        }),
        Err(err) => Err(err),
    }
}

/// The child between clone3 and execve.
unsafe fn child(
    fds: &[RawFd; 3],
    cwd: RawFd,
    program: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: RawFd,
) -> ! {
    // SAFETY: all async-signal-safe; every pointer outlives the call.
    unsafe {
        let fail = |report: RawFd| -> ! {
            let errno = *libc::__errno_location();
            libc::write(report, errno.to_ne_bytes().as_ptr().cast(), 4);
            libc::_exit(127)
        };
        for (target, fd) in fds.iter().enumerate() {
            let target = target as RawFd;
            // dup2 onto itself keeps close-on-exec: clear it instead.
            let done = if *fd == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(*fd, target)
            };
            if done == -1 {
                fail(report);
            }
        }
        // What std::process resets too: the Rust runtime ignores SIGPIPE,
        // and an ignored signal stays ignored across exec.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        if libc::setsid() == -1 || libc::fchdir(cwd) == -1 {
            fail(report);
        }
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(report)
    }
}
