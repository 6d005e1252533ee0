//! What an exec's terminal event means for the `paddock` process: its exit
//! status, and a line on stderr when the exec did not simply exit.
//!
//! Shell conventions, so scripts can branch on them: the command's own
//! code; 128+N when signal N killed it; 124 when it timed out (as
//! `timeout(1)`); 130 when it was cancelled (as after Ctrl-C); 1 when its
//! output hit the cap or the host lost it.

use std::time::Duration;

use paddock_runnerd::proto::{ExitInfo, ExitReason};

use super::human;

/// The exit status and the explanation to print, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub code: u8,
    pub message: Option<String>,
}

pub const TIMED_OUT: u8 = 124;
pub const CANCELLED: u8 = 130;

/// The outcome of an exec that ended as `info` says.
pub fn outcome(info: &ExitInfo) -> Outcome {
    let after = human::duration(Duration::from_millis(info.duration_ms));
    match info.reason {
        ExitReason::Exited { code } => Outcome {
            // Codes outside 0..=255 do not come from a Unix process; do not
            // let one wrap around to 0.
            code: u8::try_from(code).unwrap_or(1),
            message: None,
        },
        ExitReason::Signaled { signal } => Outcome {
            code: u8::try_from(128 + signal).unwrap_or(1),
            message: Some(format!(
                "the exec was killed by {} after {after}",
                signal_name(signal)
            )),
        },
        ExitReason::TimedOut => Outcome {
            code: TIMED_OUT,
            message: Some(format!("the exec timed out after {after}")),
        },
        ExitReason::Cancelled => Outcome {
            code: CANCELLED,
            message: Some(format!("the exec was cancelled after {after}")),
        },
        ExitReason::OutputCapped => Outcome {
            code: 1,
            message: Some(format!(
                "the exec's output reached the host's cap after {after}; it was killed"
            )),
        },
        ExitReason::Lost => Outcome {
            code: 1,
            message: Some(format!(
                "the host lost track of the exec after {after} (reason `lost`): its sandbox or runnerd died"
            )),
        },
    }
}

/// The outcome of an exit event this build cannot read (a newer host).
pub fn unreadable(json: &str) -> Outcome {
    Outcome {
        code: 1,
        message: Some(format!("the exec ended: {json}")),
    }
}

/// `SIGTERM (15)`, or `signal 42`.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        _ => return format!("signal {signal}"),
    };
    format!("{name} ({signal})")
}

#[cfg(test)]
mod tests {
    use paddock_runnerd::proto::ProcessStatus;

    use super::*;

    fn info(reason: ExitReason) -> ExitInfo {
        ExitInfo {
            reason,
            status: None,
            duration_ms: 1_500,
        }
    }

    #[test]
    fn exit_codes_follow_shell_conventions() {
        assert_eq!(
            outcome(&info(ExitReason::Exited { code: 3 })),
            Outcome {
                code: 3,
                message: None
            }
        );
        assert_eq!(outcome(&info(ExitReason::Exited { code: 0 })).code, 0);
        assert_eq!(outcome(&info(ExitReason::Exited { code: 300 })).code, 1);
        let killed = outcome(&info(ExitReason::Signaled { signal: 9 }));
        assert_eq!(killed.code, 137);
        assert_eq!(
            killed.message.as_deref(),
            Some("the exec was killed by SIGKILL (9) after 1.5 s")
        );
        assert_eq!(outcome(&info(ExitReason::TimedOut)).code, 124);
        let cancelled = outcome(&ExitInfo {
            status: Some(ProcessStatus::Signaled(15)),
            ..info(ExitReason::Cancelled)
        });
        assert_eq!(cancelled.code, 130);
        assert!(cancelled.message.is_some_and(|m| m.contains("cancelled")));
        assert_eq!(outcome(&info(ExitReason::Lost)).code, 1);
        assert_eq!(outcome(&info(ExitReason::OutputCapped)).code, 1);
    }
}
