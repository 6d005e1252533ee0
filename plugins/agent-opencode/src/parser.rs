//! `opencode run --format json` stdout → normalized events.
//!
//! OpenCode prints each part of the session once it is finished: no deltas,
//! no start-of-session line, no final summary. The adapter therefore
//!
//! - reports `run_started` from the first line's `sessionID` (and again if
//!   it ever changes);
//! - ends a turn where OpenCode's own loop ends it: at a `step_finish` whose
//!   `reason` is neither `tool-calls` nor `unknown` (normally `stop`), or at
//!   an `error` line (OpenCode only prints errors it will not retry);
//! - reads usage from `step_finish` only: per step, final, never cumulative.
//!
//! A run killed mid-turn (SIGTERM, timeout) or stopped by a rejected
//! permission ends without any of these; the SDK's driver then synthesizes
//! the `result`.

use std::collections::HashSet;

use paddock_sdk::agent::{
    AgentError, AgentEvent, ErrorKind, Json, ParseContext, Parser, ResultStatus, RunResult,
    RunStarted, Text, Todos, ToolResult, ToolUse, Usage,
};

use crate::errors::{Failure, classify};
use crate::tools;
use crate::wire::{self, CowStr, Line, Loose, Part};

/// One run's parser state.
#[derive(Debug, Default)]
pub struct OpenCodeParser {
    session_id: Option<String>,
    turn: Turn,
    /// A `result` closed the turn and nothing happened since: a following
    /// `error` or `done` line must not end it a second time.
    ended: bool,
    /// The part id of the last `step_finish` counted: a repeated line is
    /// not counted twice.
    last_step: String,
    /// Tool calls reported `pending`/`running` (newer versions) whose
    /// `tool_use` was emitted and whose result is still to come.
    open_tools: HashSet<String>,
}

/// What the current turn accumulated for its `result`. The buffers are
/// reused from turn to turn.
#[derive(Debug, Default)]
struct Turn {
    /// `step_finish` lines: model calls that completed.
    steps: u32,
    cost: Option<f64>,
    /// The assistant message whose text parts are in `text` (empty: none).
    message_id: String,
    /// The text parts of that message, joined by blank lines.
    text: String,
    has_text: bool,
}

impl Turn {
    fn reset(&mut self) {
        self.steps = 0;
        self.cost = None;
        self.message_id.clear();
        self.text.clear();
        self.has_text = false;
    }
}

impl OpenCodeParser {
    pub fn new(_context: ParseContext) -> Self {
        // OpenCode's counters are per step, so a resumed run needs nothing
        // of the earlier runs' totals.
        Self::default()
    }

    fn session(&mut self, id: Option<&str>, out: &mut Vec<AgentEvent>) {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return;
        };
        if self.session_id.as_deref() != Some(id) {
            self.session_id = Some(id.to_owned());
            out.push(AgentEvent::RunStarted(RunStarted {
                session_id: id.to_owned(),
                model: None,
                cwd: None,
                tools: None,
            }));
        }
    }

    /// Something happened in the turn: it is open again.
    fn activity(&mut self) {
        self.ended = false;
    }

    fn text(&mut self, part: Part<'_>, thinking: bool, out: &mut Vec<AgentEvent>) -> bool {
        let Some(text) = part.text else {
            return false;
        };
        let text = text.into_owned();
        let message_id = part.message_id.map(CowStr::into_owned);
        if thinking {
            out.push(AgentEvent::Thinking(Text { text, message_id }));
            return true;
        }
        let turn = &mut self.turn;
        let id = message_id.as_deref().unwrap_or("");
        if turn.message_id != id {
            turn.message_id.clear();
            turn.message_id.push_str(id);
            turn.text.clear();
            turn.has_text = false;
        }
        if turn.has_text {
            turn.text.push_str("\n\n");
        }
        turn.text.push_str(&text);
        turn.has_text = true;
        out.push(AgentEvent::Text(Text { text, message_id }));
        true
    }

    fn tool(&mut self, part: Part<'_>, out: &mut Vec<AgentEvent>) -> bool {
        let (Some(id), Some(name), Some(state)) = (part.call_id, part.tool, part.state) else {
            return false;
        };
        if id.is_empty() || name.is_empty() {
            return false;
        }
        let kind = tools::kind(&name);
        let finished = match state.status.as_deref() {
            Some("completed") => Some(false),
            Some("error") => Some(true),
            Some("pending" | "running") => None,
            _ => return false,
        };
        let Some(is_error) = finished else {
            if self.open_tools.insert(id.to_string()) {
                out.push(tool_use(&id, &name, kind, state.input));
            }
            return true;
        };
        if self.open_tools.is_empty() || !self.open_tools.remove(&*id) {
            out.push(tool_use(&id, &name, kind, state.input));
        }
        let metadata = state.metadata.unwrap_or_default();
        let exit_code = metadata
            .exit
            .as_ref()
            .and_then(Loose::as_i64)
            .and_then(|code| i32::try_from(code).ok());
        let output = if is_error { state.error } else { state.output };
        out.push(AgentEvent::ToolResult(ToolResult {
            id: id.into_owned(),
            output: output.and_then(Loose::into_string).unwrap_or_default(),
            // A failing command is `completed` with its exit code; a call of
            // an unknown or denied tool is `completed` as tool `invalid`.
            is_error: is_error || &*name == "invalid" || exit_code.is_some_and(|code| code != 0),
            exit_code,
            parent_id: None,
        }));
        if !is_error {
            for change in tools::file_changes(&name, state.input, &metadata) {
                out.push(AgentEvent::FileChange(change));
            }
            if &*name == "todowrite"
                && let Some(items) = tools::todos(state.input)
            {
                out.push(AgentEvent::Todos(Todos { items }));
            }
        }
        true
    }

    fn step_finish(&mut self, part: Part<'_>, out: &mut Vec<AgentEvent>) {
        if let Some(id) = part.id.as_deref() {
            if id == self.last_step {
                // The same step reported twice: counted once, and it cannot
                // end the turn twice either.
                return;
            }
            self.last_step.clear();
            self.last_step.push_str(id);
        }
        self.activity();
        self.turn.steps += 1;
        let cost = part.cost.as_ref().and_then(Loose::as_f64);
        if let Some(cost) = cost {
            *self.turn.cost.get_or_insert(0.0) += cost;
        }
        if let Some(tokens) = &part.tokens {
            let cache = tokens.cache.as_ref();
            let reasoning = wire::count(&tokens.reasoning);
            let usage = Usage {
                message_id: part.message_id.as_deref().map(str::to_owned),
                model: None,
                // Already without the cache.
                input_tokens: wire::count(&tokens.input),
                // OpenCode's `output` leaves out the reasoning; the
                // normalized output counts every generated token.
                output_tokens: wire::count(&tokens.output) + reasoning,
                cache_read_tokens: cache.map_or(0, |c| wire::count(&c.read)),
                cache_write_tokens: cache.map_or(0, |c| wire::count(&c.write)),
                reasoning_tokens: tokens.reasoning.as_ref().map(|_| reasoning),
                cost_usd: cost,
            };
            if !usage.is_empty() {
                out.push(AgentEvent::Usage(usage));
            }
        } else if let Some(cost) = cost.filter(|c| *c != 0.0) {
            out.push(AgentEvent::Usage(Usage {
                message_id: part.message_id.as_deref().map(str::to_owned),
                cost_usd: Some(cost),
                ..Usage::default()
            }));
        }
        let reason = part.reason.as_deref().unwrap_or("");
        let (status, error) = match reason {
            // The model wants its tool results: the loop goes on.
            "tool-calls" | "unknown" | "" => return,
            "stop" | "other" => (ResultStatus::Success, None),
            "length" => (
                ResultStatus::Error,
                Some((
                    ErrorKind::Other,
                    "the model's reply was cut off at its output token limit".to_owned(),
                    false,
                )),
            ),
            "content-filter" => (
                ResultStatus::Error,
                Some((
                    ErrorKind::Api,
                    "the provider's content filter stopped the reply".to_owned(),
                    false,
                )),
            ),
            other => (
                ResultStatus::Error,
                Some((
                    ErrorKind::Api,
                    format!("the model's reply ended with reason `{other}`"),
                    true,
                )),
            ),
        };
        if let Some((kind, message, retryable)) = error {
            out.push(AgentEvent::Error(AgentError {
                kind,
                message,
                retryable,
            }));
        }
        let same_message =
            self.turn.has_text && part.message_id.as_deref() == Some(self.turn.message_id.as_str());
        let text = same_message.then(|| self.turn.text.clone());
        self.end_turn(status, text, out);
    }

    fn error(&mut self, line: &Line<'_>, out: &mut Vec<AgentEvent>) -> bool {
        let Some(error) = &line.error else {
            return false;
        };
        let status = match classify(error) {
            Failure::Aborted => ResultStatus::Cancelled,
            Failure::Error {
                kind,
                message,
                retryable,
            } => {
                out.push(AgentEvent::Error(AgentError {
                    kind,
                    message,
                    retryable,
                }));
                ResultStatus::Error
            }
        };
        if !self.ended {
            self.end_turn(status, None, out);
        }
        true
    }

    /// `done` (printed by versions newer than the one the fixtures show)
    /// marks the session idle. It ends the turn only when nothing else did:
    /// then the model had not finished (a rejected permission stops the loop).
    fn done(&mut self, line: &Line<'_>, out: &mut Vec<AgentEvent>) {
        if self.ended {
            return;
        }
        let rejected: Vec<&str> = line
            .rejected
            .iter()
            .flatten()
            .filter_map(Loose::as_str)
            .collect();
        let message = if rejected.is_empty() {
            "the session went idle before the model finished its turn".to_owned()
        } else {
            format!(
                "the run stopped at a permission request that was auto-rejected: {}",
                rejected.join(", ")
            )
        };
        out.push(AgentEvent::Error(AgentError {
            kind: ErrorKind::Other,
            message,
            retryable: false,
        }));
        self.end_turn(ResultStatus::Error, None, out);
    }

    fn end_turn(&mut self, status: ResultStatus, text: Option<String>, out: &mut Vec<AgentEvent>) {
        let turn = &self.turn;
        out.push(AgentEvent::Result(RunResult {
            status,
            text,
            session_id: self.session_id.clone(),
            turns: (turn.steps > 0).then_some(turn.steps),
            // Line timestamps are print times (a whole step can print within
            // one millisecond), so they say nothing about how long it took.
            duration_ms: None,
            cost_usd: turn.cost,
        }));
        self.turn.reset();
        self.ended = true;
    }
}

fn tool_use(
    id: &str,
    name: &str,
    kind: paddock_sdk::agent::ToolKind,
    input: Option<&serde_json::value::RawValue>,
) -> AgentEvent {
    AgentEvent::ToolUse(ToolUse {
        id: id.to_owned(),
        name: name.to_owned(),
        kind,
        input: input.map_or_else(Json::null, Json::from_raw),
        parent_id: None,
    })
}

impl Parser for OpenCodeParser {
    fn line(&mut self, bytes: &[u8], out: &mut Vec<AgentEvent>) {
        let Ok(line) = serde_json::from_slice::<Line>(bytes) else {
            out.push(AgentEvent::raw(bytes));
            return;
        };
        self.session(line.session_id.as_deref(), out);
        let understood = match line.kind.as_ref() {
            "step_start" if line.part.is_some() => {
                // A model call begins (again, with the same message id, on
                // each retry of a failed stream): nothing to report yet.
                self.activity();
                true
            }
            "text" | "reasoning" => match line.part {
                Some(part) => {
                    let thinking = line.kind == "reasoning";
                    let ok = self.text(part, thinking, out);
                    if ok {
                        self.activity();
                    }
                    ok
                }
                None => false,
            },
            "tool_use" => match line.part {
                Some(part) => {
                    let ok = self.tool(part, out);
                    if ok {
                        self.activity();
                    }
                    ok
                }
                None => false,
            },
            "step_finish" => match line.part {
                Some(part) => {
                    self.step_finish(part, out);
                    true
                }
                None => false,
            },
            "error" => self.error(&line, out),
            "done" => {
                self.done(&line, out);
                true
            }
            _ => false,
        };
        if !understood {
            // A new session's `run_started` stays; the line itself is raw.
            out.push(AgentEvent::raw(bytes));
        }
    }
}
