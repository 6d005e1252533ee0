//! Runs an adapter's [`Parser`] over a byte stream: line splitting, and the
//! rule that every run ends with exactly one `result` per turn.

use super::Parser;
use super::event::{AgentError, AgentEvent, ErrorKind, ResultStatus, RunResult};
use super::lines::LineBuffer;
use super::spec::ProcessEnd;

/// Feeds chunks of stdout to a [`Parser`] line by line and, at the end,
/// synthesizes the `result` the CLI did not write.
///
/// This is what the host runs (inside the plugin) for every agent exec, and
/// what an adapter's native tests run.
#[derive(Debug)]
pub struct ParserDriver<P> {
    parser: P,
    lines: LineBuffer,
    turn: TurnState,
}

/// Whether the current turn still needs a `result`.
#[derive(Debug, Default)]
struct TurnState {
    /// Something happened since the last `result` (or there was none yet).
    open: bool,
    /// A `result` was seen at all.
    any_result: bool,
    /// The latest agent session id reported.
    session_id: Option<String>,
}

impl TurnState {
    fn observe(&mut self, events: &[AgentEvent]) {
        for event in events {
            match event {
                AgentEvent::Result(result) => {
                    self.open = false;
                    self.any_result = true;
                    if let Some(id) = &result.session_id {
                        self.session_id = Some(id.clone());
                    }
                }
                AgentEvent::RunStarted(started) => {
                    self.open = true;
                    self.session_id = Some(started.session_id.clone());
                }
                AgentEvent::Usage(_) | AgentEvent::Raw(_) | AgentEvent::Error(_) => {}
                _ => self.open = true,
            }
        }
    }

    fn needs_result(&self) -> bool {
        self.open || !self.any_result
    }
}

impl<P: Parser> ParserDriver<P> {
    pub fn new(parser: P) -> Self {
        Self {
            parser,
            lines: LineBuffer::new(),
            turn: TurnState::default(),
        }
    }

    /// Feeds a chunk of any size; returns the events of the lines it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        let parser = &mut self.parser;
        self.lines.feed(chunk, |line| parser.line(line, &mut out));
        self.turn.observe(&out);
        out
    }

    /// The process ended: flushes the last partial line, lets the adapter
    /// emit what it held back, and synthesizes a `result` if the turn has
    /// none. Call once.
    pub fn finish(&mut self, end: ProcessEnd) -> Vec<AgentEvent> {
        let mut out = Vec::new();
        let parser = &mut self.parser;
        self.lines.finish(|line| parser.line(line, &mut out));
        self.parser.finish(end, &mut out);
        self.turn.observe(&out);
        if self.turn.needs_result() {
            synthesize_result(end, self.turn.session_id.clone(), &mut out);
            self.turn.observe(&out);
        }
        out
    }

    pub fn parser(&self) -> &P {
        &self.parser
    }
}

/// The `result` (and, for failures, an `error`) of a run whose CLI wrote
/// none. An exit code alone never makes a run a success: a CLI that exits 0
/// without a result was interrupted (Gemini does this on SIGINT) or broken.
pub fn synthesize_result(end: ProcessEnd, session_id: Option<String>, out: &mut Vec<AgentEvent>) {
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    let (status, error) = match end {
        ProcessEnd::Signaled(SIGINT) | ProcessEnd::Exited(130) => (ResultStatus::Interrupted, None),
        ProcessEnd::Signaled(SIGTERM) | ProcessEnd::Exited(143) | ProcessEnd::Cancelled => {
            (ResultStatus::Cancelled, None)
        }
        ProcessEnd::Exited(0) => (
            ResultStatus::Error,
            Some((
                ErrorKind::Other,
                "the agent exited without reporting a result".to_owned(),
            )),
        ),
        ProcessEnd::Exited(code) => (
            ResultStatus::Error,
            Some((
                ErrorKind::Other,
                format!("the agent exited with code {code} without reporting a result"),
            )),
        ),
        ProcessEnd::Signaled(signal) => (
            ResultStatus::Error,
            Some((
                ErrorKind::Other,
                format!("the agent was killed by signal {signal}"),
            )),
        ),
        ProcessEnd::TimedOut => (
            ResultStatus::Error,
            Some((
                ErrorKind::Timeout,
                "the agent ran past its deadline and was stopped".to_owned(),
            )),
        ),
        ProcessEnd::Lost => (
            ResultStatus::Error,
            Some((
                ErrorKind::Other,
                "the sandbox was lost while the agent ran".to_owned(),
            )),
        ),
    };
    if let Some((kind, message)) = error {
        out.push(AgentEvent::Error(AgentError {
            kind,
            message,
            retryable: matches!(kind, ErrorKind::Timeout),
        }));
    }
    out.push(AgentEvent::Result(RunResult {
        status,
        text: None,
        session_id,
        turns: None,
        duration_ms: None,
        cost_usd: None,
    }));
}
