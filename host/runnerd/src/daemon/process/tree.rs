//! Killing an exec's whole process tree.
//!
//! Three nets, because each alone has holes:
//! - the process group (every exec is a session leader via `setsid`), which
//!   misses children that called `setsid` themselves;
//! - the descendants found through `/proc` (parent links), remembered with
//!   their start time so a recycled pid is never hit; this catches the
//!   `setsid` grandchild while its parent still lives;
//! - the exec's cgroup where cgroup v2 is writable: `cgroup.kill` reaches
//!   everything, whatever it did to its session or parent.

use std::sync::Arc;

use super::{Cgroup, send_signal};

/// The processes of one exec, as far as runnerd has seen them.
#[derive(Debug)]
pub struct ProcessTree {
    pid: libc::pid_t,
    /// (pid, start time in clock ticks) of the exec and every descendant seen.
    known: Vec<(libc::pid_t, u64)>,
    cgroup: Option<Arc<Cgroup>>,
}

impl ProcessTree {
    /// The tree of the freshly spawned `pid`, a session and group leader.
    pub fn new(pid: libc::pid_t, cgroup: Option<Arc<Cgroup>>) -> Self {
        let known = proc_stat(pid)
            .map(|stat| vec![(pid, stat.start_time)])
            .unwrap_or_default();
        Self { pid, known, cgroup }
    }

    /// Records every live descendant of the processes already known.
    pub fn discover(&mut self) {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            tracing::warn!("cannot read /proc: only the process group and cgroup are killed");
            return;
        };
        let mut all = Vec::new();
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            if let Some(stat) = proc_stat(pid) {
                all.push((pid, stat));
            }
        }
        // Breadth-first from the known set; each pass adds the children of
        // what the previous pass found.
        let mut frontier: Vec<(libc::pid_t, u64)> = self.known.clone();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for (parent, parent_start) in &frontier {
                // The parent must still be the process we recorded.
                let alive = all
                    .iter()
                    .any(|(pid, stat)| pid == parent && stat.start_time == *parent_start);
                if !alive {
                    continue;
                }
                for (pid, stat) in &all {
                    if stat.ppid == *parent
                        && !self
                            .known
                            .iter()
                            .any(|(p, start)| p == pid && *start == stat.start_time)
                    {
                        self.known.push((*pid, stat.start_time));
                        next.push((*pid, stat.start_time));
                    }
                }
            }
            frontier = next;
        }
    }

    /// Sends `signal` to the whole tree; SIGKILL also kills the cgroup.
    pub fn signal(&mut self, signal: libc::c_int) {
        self.discover();
        send_signal(-self.pid, signal);
        for (pid, start) in &self.known {
            if proc_stat(*pid).is_some_and(|stat| stat.start_time == *start) {
                send_signal(*pid, signal);
            }
        }
        if let Some(cgroup) = &self.cgroup {
            if signal == libc::SIGKILL {
                if let Err(err) = cgroup.kill() {
                    tracing::warn!(cgroup = %cgroup.path().display(), error = %err, "cgroup.kill failed");
                }
            } else {
                match cgroup.pids() {
                    Ok(pids) => pids.into_iter().for_each(|pid| send_signal(pid, signal)),
                    Err(err) => tracing::warn!(
                        cgroup = %cgroup.path().display(), error = %err,
                        "cannot list the exec's cgroup"
                    ),
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ProcStat {
    ppid: libc::pid_t,
    start_time: u64,
}

/// Parent pid and start time from `/proc/PID/stat`; `None` once it is gone.
fn proc_stat(pid: libc::pid_t) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain
    // spaces and parentheses: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat { ppid, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_stat() {
        let me = std::process::id() as libc::pid_t;
        let stat = proc_stat(me).expect("own /proc entry");
        // SAFETY: getppid has no preconditions.
        assert_eq!(stat.ppid, unsafe { libc::getppid() });
        assert!(stat.start_time > 0);
    }
}
