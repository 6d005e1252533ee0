//! Running a command straight through a sandbox's runnerd, for the
//! provider-level tests (no host in between).

use std::time::Duration;

use paddock::provider::Sandbox;
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::{ExecRequest, ExitReason, Frame};

/// Which of the process's output streams [`run`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    /// stdout and stderr interleaved as they arrived.
    Both,
}

/// Runs `sh -c script` in the sandbox to its end; its output and how it
/// ended.
pub async fn run(sandbox: &Sandbox, script: &str, output: Output) -> (String, ExitReason) {
    let client = Client::new(sandbox.endpoint.clone(), sandbox.token.clone());
    let exec = client
        .create_exec(&ExecRequest {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            ..ExecRequest::default()
        })
        .await
        .expect("create exec");
    let frames = tokio::time::timeout(
        Duration::from_secs(30),
        client.frames(&exec.id, 0).await.expect("attach").collect(),
    )
    .await
    .expect("the exec ends in time")
    .expect("frames decode");
    let mut text = Vec::new();
    let mut reason = None;
    for frame in frames {
        match frame {
            Frame::Stdout { data, .. } => text.extend_from_slice(&data),
            Frame::Stderr { data, .. } if output == Output::Both => text.extend_from_slice(&data),
            Frame::Exit { exit, .. } => reason = Some(exit.reason),
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&text).into_owned(),
        reason.expect("a terminal frame"),
    )
}
