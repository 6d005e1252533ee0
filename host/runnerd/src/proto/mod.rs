//! The wire protocol between the host and runnerd: every request and response
//! body of the HTTP API, and the binary frame codec of an exec's output
//! stream.
//!
//! This module depends only on `serde`, `serde_json` and `bytes`, so the host
//! can share it without pulling in the daemon. `README.md` beside
//! `Cargo.toml` documents the endpoints these types travel on.
//!
//! Request types reject unknown fields: a typo in a field name is a 400, not
//! a silently ignored option.

mod frame;

pub mod env;

pub use frame::{
    FRAME_CONTENT_TYPE, FRAME_HEADER_LEN, Frame, FrameDecoder, FrameError, FrameKind, GapRange,
    MAX_FRAME_PAYLOAD, encode_header,
};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Prefix of every endpoint; bumped only for incompatible changes.
pub const API_PREFIX: &str = "/v1";

/// Environment variable holding the bearer token, when `--token-file` is not
/// given. There is no built-in default: runnerd refuses to start without one.
pub const TOKEN_ENV: &str = "RUNNERD_TOKEN";

/// Default total (stdout + stderr) output cap of an exec: enough for any
/// agent transcript, small enough that a runaway `yes` cannot fill memory.
pub const DEFAULT_OUTPUT_CAP_BYTES: u64 = 64 * 1024 * 1024;

/// Default grace between SIGTERM and SIGKILL when an exec is cancelled, timed
/// out or capped: long enough for a CLI to flush its session state.
pub const DEFAULT_KILL_GRACE_MS: u64 = 5_000;

/// Default maximum number of variables in the env store (seed included).
pub const DEFAULT_ENV_MAX_VARS: usize = 256;

/// Default maximum total size (names + values, in bytes) of the env store.
pub const DEFAULT_ENV_MAX_BYTES: usize = 256 * 1024;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// runnerd's crate version.
    pub version: String,
    /// Milliseconds since runnerd started.
    pub uptime_ms: u64,
    /// The activity clock, in unix milliseconds: the last time an exec
    /// started, delivered output to an attached client, received stdin, or
    /// was attached. The host reaps idle sandboxes by it; reading health
    /// does not move it.
    pub last_activity_ms: u64,
    /// Execs whose terminal frame has not been written yet.
    pub running_execs: u32,
    /// Whether execs are put into their own cgroup v2 (so `cgroup.kill`
    /// reaches processes that left the process group).
    pub cgroups: bool,
}

/// `POST /v1/execs`: what to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments; `argv[0]` is resolved on the `PATH` of the
    /// merged environment unless it contains a `/`. Never put secrets or
    /// prompts here: process lists show argv.
    pub argv: Vec<String>,
    /// Variables merged over the env store, which is merged over the base
    /// environment (`PATH`, `HOME`, `LANG`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `{VAR: SOURCE}`: set `VAR` to the value `SOURCE` has in the merged
    /// environment, so a secret can be handed to a CLI under its own name
    /// without the host ever seeing it again. A missing `SOURCE` is a 400.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_from: BTreeMap<String, String>,
    /// Working directory relative to the workspace (default: the workspace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Written to the process's stdin right after spawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Keep stdin open after `stdin` was written, for later
    /// `POST /v1/execs/{id}/stdin`. When false and `stdin` is absent, stdin
    /// is `/dev/null`.
    #[serde(default)]
    pub keep_stdin_open: bool,
    /// Deadline from spawn; when it passes the process tree is killed and
    /// the exec ends `timed_out`. `POST /v1/execs/{id}/deadline` moves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Exact cap on stdout + stderr bytes (default
    /// [`DEFAULT_OUTPUT_CAP_BYTES`]); the exec ends `output_capped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_cap_bytes: Option<u64>,
    /// SIGTERM→SIGKILL grace for timeout and output-cap kills (default
    /// [`DEFAULT_KILL_GRACE_MS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace_ms: Option<u64>,
}

/// Answer to `POST /v1/execs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCreated {
    /// The exec's id, for every `/v1/execs/{id}/…` call.
    pub id: String,
    /// The process id (also its process group and session id).
    pub pid: u32,
}

/// Whether an exec has written its terminal frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecState {
    Running,
    Ended,
}

/// `GET /v1/execs/{id}` (and each element of `GET /v1/execs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    pub id: String,
    pub argv: Vec<String>,
    pub pid: u32,
    pub state: ExecState,
    /// The terminal frame's content, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitInfo>,
    pub started_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Unix ms at which the exec will be timed out, if it has a deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_at_ms: Option<u64>,
    /// Bytes delivered into the stream (after the cap cut).
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    /// True once output reached the cap (the rest was discarded).
    pub output_capped: bool,
    /// Seq of the newest frame (0: none yet).
    pub last_seq: u64,
    /// Seq of the oldest frame still in the replay ring (0: none).
    pub first_seq: u64,
    pub stdin_open: bool,
    /// Whether the exec runs in its own cgroup.
    pub cgroup: bool,
}

/// `GET /v1/execs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecList {
    pub execs: Vec<ExecStatus>,
}

/// `POST /v1/execs/{id}/cancel`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// SIGTERM→SIGKILL grace (default [`DEFAULT_KILL_GRACE_MS`]); 0 kills at
    /// once. A second cancel may shorten a running grace, never lengthen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

/// `POST /v1/execs/{id}/deadline`: the exec times out `timeout_ms` from now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineRequest {
    pub timeout_ms: u64,
}

/// Why an exec ended; the `reason` field of the terminal frame.
///
/// The first cause wins: an exec cancelled while it was being timed out
/// stays `timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ExitReason {
    /// The process exited by itself with this code.
    Exited { code: i32 },
    /// The process was killed by a signal runnerd did not send.
    Signaled { signal: i32 },
    /// Its deadline passed; runnerd killed the process tree.
    TimedOut,
    /// `POST …/cancel` or runnerd's own shutdown killed the process tree.
    Cancelled,
    /// Output reached `output_cap_bytes`; the output was cut exactly at the
    /// cap and runnerd killed the process tree.
    OutputCapped,
    /// runnerd lost track of how the process ended (a bug, and logged as
    /// one). Never reported as a made-up exit code.
    Lost,
}

/// How the process itself ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    Exited(i32),
    Signaled(i32),
}

/// Payload of the terminal `exit` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    #[serde(flatten)]
    pub reason: ExitReason,
    /// The process's own status (for `timed_out`, `cancelled` and
    /// `output_capped` too: the code or signal it really ended with). Absent
    /// only if runnerd could not learn it, which it logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ProcessStatus>,
    /// Wall time from spawn to the terminal frame.
    pub duration_ms: u64,
}

/// `GET /v1/env` and the answer to `PATCH /v1/env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvView {
    pub vars: BTreeMap<String, String>,
    pub max_vars: usize,
    pub max_bytes: usize,
    /// Sum of name and value lengths, counted against `max_bytes`.
    pub used_bytes: usize,
}

/// `PATCH /v1/env`: applied all-or-nothing, unsets before sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPatch {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// `GET /v1/files/{path}?op=stat` (symlinks inside the workspace are
/// followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The path as requested, relative to the workspace.
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits (`0o755` …).
    pub mode: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_ms: Option<u64>,
}

/// One entry of a directory listing (symlinks are not followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    /// File name; non-UTF-8 bytes are replaced by U+FFFD.
    pub name: String,
    pub kind: FileKind,
    pub size: u64,
}

/// `GET /v1/files/{path}?op=list`, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    pub path: String,
    pub entries: Vec<DirEntry>,
}

/// Answer to `PUT /v1/files/{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWritten {
    pub path: String,
    pub size: u64,
}

/// Every error response: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable `code` (listed in README.md) and a message for
/// people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The line runnerd prints on stdout (and writes to `--addr-file`) once it
/// listens, so that a host which asked for port 0 learns the real port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listening {
    pub listening: String,
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_info_is_flat_json() {
        let info = ExitInfo {
            reason: ExitReason::Exited { code: 3 },
            status: Some(ProcessStatus::Exited(3)),
            duration_ms: 7,
        };
        let json = serde_json::to_string(&info).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"reason":"exited","code":3,"status":{"exited":3},"duration_ms":7}"#
        );
        let back: ExitInfo = serde_json::from_str(&json).expect("round trip");
        assert_eq!(back, info);

        let capped = ExitInfo {
            reason: ExitReason::OutputCapped,
            status: Some(ProcessStatus::Signaled(15)),
            duration_ms: 1,
        };
        let json = serde_json::to_string(&capped).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"reason":"output_capped","status":{"signaled":15},"duration_ms":1}"#
        );
        assert_eq!(serde_json::from_str::<ExitInfo>(&json).ok(), Some(capped));
    }

    #[test]
    fn exec_request_rejects_unknown_fields() {
        let err = serde_json::from_str::<ExecRequest>(r#"{"argv":["true"],"timeout":5}"#);
        assert!(err.is_err());
        let ok: ExecRequest =
            serde_json::from_str(r#"{"argv":["true"]}"#).expect("minimal request");
        assert!(!ok.keep_stdin_open);
        assert!(ok.env.is_empty());
    }
}
