//! Gemini CLI's stream-json stdout → normalized events.
//!
//! The CLI streams assistant text as `message` deltas without message ids
//! and without a final aggregated message, so the parser numbers messages
//! itself (`m1`, `m2`, …), assembles the deltas, and emits the full `text`
//! when the message ends: at the next event that is not a delta, or when
//! the process ends. Token counts come once, in the `result`'s `stats`.

use paddock_sdk::agent::{
    AgentError, AgentEvent, ErrorKind, FileChange, Json, ParseContext, Parser, ProcessEnd,
    ResultStatus, RunResult, RunStarted, Text, TextDelta, Todos, ToolResult, ToolUse, Usage,
};

use crate::errors::{self, Failure};
use crate::tools;
use crate::wire::{Line, Stats};

/// One run's parser. See the crate README for the mapping.
#[derive(Debug, Default)]
pub struct GeminiParser {
    session_id: Option<String>,
    model: Option<String>,
    /// The assistant message being streamed.
    message: Option<OpenMessage>,
    /// Messages numbered so far, for their ids.
    messages: u32,
    /// The text of the turn's last message after its last tool call: the
    /// answer, reported again in the `result`.
    answer: Option<String>,
    /// File-changing tool calls awaiting their result.
    pending: Vec<(String, FileChange)>,
    /// Token counters already reported, per model (the CLI's are cumulative
    /// over the process).
    counted: Vec<(String, Counters)>,
    /// A `result` ended the turn and nothing happened since.
    turn_closed: bool,
}

#[derive(Debug)]
struct OpenMessage {
    id: String,
    text: String,
}

/// Gemini's raw counters for one model.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    /// Prompt tokens, cached included.
    prompt: u64,
    cached: u64,
    /// Candidate tokens, thinking excluded.
    candidates: u64,
    /// Everything: prompt, candidates, thinking (and tool-use prompt).
    total: u64,
}

impl Counters {
    fn since(self, before: Counters) -> Counters {
        Counters {
            prompt: self.prompt.saturating_sub(before.prompt),
            cached: self.cached.saturating_sub(before.cached),
            candidates: self.candidates.saturating_sub(before.candidates),
            total: self.total.saturating_sub(before.total),
        }
    }

    /// In the one convention: input without the cache, thinking counted as
    /// output (Gemini bills it as output) and reported as reasoning too.
    fn usage(self, model: Option<String>) -> Usage {
        let reasoning = self
            .total
            .saturating_sub(self.prompt)
            .saturating_sub(self.candidates);
        Usage {
            message_id: None,
            model,
            input_tokens: self.prompt.saturating_sub(self.cached),
            output_tokens: self.candidates + reasoning,
            cache_read_tokens: self.cached,
            cache_write_tokens: 0,
            reasoning_tokens: Some(reasoning),
            cost_usd: None,
        }
    }
}

impl GeminiParser {
    /// Gemini's counters are per process, so nothing from the context is
    /// needed: a resumed run's `stats` cover only its own requests.
    pub fn new(_context: ParseContext) -> Self {
        Self::default()
    }

    fn handle(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        match &*line.kind {
            "init" => self.init(line, raw, out),
            "message" => self.message(line, raw, out),
            "tool_use" => self.tool_use(line, raw, out),
            "tool_result" => self.tool_result(line, raw, out),
            "error" => self.error(line, raw, out),
            "result" => self.result(line, out),
            _ => out.push(AgentEvent::raw(raw)),
        }
    }

    fn init(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        let Some(session_id) = line.session_id.filter(|s| !s.is_empty()) else {
            out.push(AgentEvent::raw(raw));
            return;
        };
        self.end_message(out);
        self.turn_closed = false;
        let session_id = session_id.into_owned();
        let model = line.model.map(|m| m.into_owned());
        self.session_id = Some(session_id.clone());
        self.model.clone_from(&model);
        out.push(AgentEvent::RunStarted(RunStarted {
            session_id,
            model,
            cwd: None,
            tools: None,
        }));
    }

    fn message(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        let (Some(role), Some(content)) = (line.role.as_deref(), line.content) else {
            out.push(AgentEvent::raw(raw));
            return;
        };
        match role {
            // The prompt echoed back: the host sent it, nothing new.
            "user" => self.end_message(out),
            "assistant" if line.delta == Some(true) => {
                // An empty chunk adds nothing and opens no message.
                if content.is_empty() {
                    return;
                }
                self.turn_closed = false;
                let message = self.message.get_or_insert_with(|| {
                    self.messages += 1;
                    OpenMessage {
                        id: format!("m{}", self.messages),
                        text: String::new(),
                    }
                });
                message.text.push_str(&content);
                out.push(AgentEvent::TextDelta(TextDelta {
                    message_id: message.id.clone(),
                    text: content.into_owned(),
                }));
            }
            // A whole message at once (not seen from 0.61.0, which always
            // streams): its text, without deltas.
            "assistant" => {
                self.end_message(out);
                self.turn_closed = false;
                self.messages += 1;
                let text = content.into_owned();
                self.answer = Some(text.clone());
                out.push(AgentEvent::Text(Text {
                    text,
                    message_id: Some(format!("m{}", self.messages)),
                }));
            }
            _ => out.push(AgentEvent::raw(raw)),
        }
    }

    /// Ends the streamed message, if any, with its full text.
    fn end_message(&mut self, out: &mut Vec<AgentEvent>) {
        if let Some(message) = self.message.take() {
            self.answer = Some(message.text.clone());
            out.push(AgentEvent::Text(Text {
                text: message.text,
                message_id: Some(message.id),
            }));
        }
    }

    fn tool_use(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        let (Some(id), Some(name)) = (
            line.tool_id.filter(|s| !s.is_empty()),
            line.tool_name.filter(|s| !s.is_empty()),
        ) else {
            out.push(AgentEvent::raw(raw));
            return;
        };
        self.end_message(out);
        self.turn_closed = false;
        // Text before a tool call is not the turn's answer.
        self.answer = None;
        let id = id.into_owned();
        if tools::changes_files(&name)
            && let Some(change) = tools::file_change(line.parameters)
        {
            self.pending.push((id.clone(), change));
        }
        let todos = if name == "write_todos" {
            tools::todos(line.parameters)
        } else {
            None
        };
        out.push(AgentEvent::ToolUse(ToolUse {
            id,
            kind: tools::kind(&name),
            name: name.into_owned(),
            input: line.parameters.map_or_else(Json::null, Json::from_raw),
            parent_id: None,
        }));
        if let Some(items) = todos {
            out.push(AgentEvent::Todos(Todos { items }));
        }
    }

    fn tool_result(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        let Some(id) = line.tool_id.filter(|s| !s.is_empty()) else {
            out.push(AgentEvent::raw(raw));
            return;
        };
        self.end_message(out);
        self.turn_closed = false;
        let is_error = match line.status.as_deref() {
            Some(status) => status != "success",
            None => line.error.is_some(),
        };
        let error_message = line.error.and_then(|e| e.message);
        // `output` is the CLI's display text; a failed call may have only
        // the error's message.
        let output = match (line.output, error_message) {
            (Some(output), _) if !output.is_empty() => output.into_owned(),
            (_, Some(message)) => message.into_owned(),
            (output, None) => output.map(|o| o.into_owned()).unwrap_or_default(),
        };
        let change = self
            .pending
            .iter()
            .position(|(pending, _)| *pending == id)
            .map(|at| self.pending.swap_remove(at).1);
        out.push(AgentEvent::ToolResult(ToolResult {
            id: id.into_owned(),
            output,
            is_error,
            exit_code: None,
            parent_id: None,
        }));
        if let Some(change) = change.filter(|_| !is_error) {
            out.push(AgentEvent::FileChange(change));
        }
    }

    fn error(&mut self, line: Line<'_>, raw: &[u8], out: &mut Vec<AgentEvent>) {
        // Warnings (loop detected, a hook blocked the agent) are not
        // failures of the run; they stay visible as raw lines.
        let severity = line.severity.as_deref().unwrap_or("error");
        let message = line.message.filter(|m| !m.is_empty());
        let (true, Some(message)) = (severity == "error", message) else {
            out.push(AgentEvent::raw(raw));
            return;
        };
        self.end_message(out);
        out.push(AgentEvent::Error(errors::error_event("", &message)));
    }

    fn result(&mut self, line: Line<'_>, out: &mut Vec<AgentEvent>) {
        self.end_message(out);
        if let Some(stats) = &line.stats {
            self.count(stats, out);
        }
        let status = match line.status.as_deref() {
            Some("success") => ResultStatus::Success,
            Some("error") => match line.error {
                Some(error) => match errors::classify(
                    error.kind.as_deref(),
                    error.message.as_deref().unwrap_or(""),
                ) {
                    Failure::Interrupted => ResultStatus::Interrupted,
                    Failure::Error(error) => {
                        out.push(AgentEvent::Error(error));
                        ResultStatus::Error
                    }
                },
                // The `error` line before it said why (an empty response).
                None => ResultStatus::Error,
            },
            other => {
                out.push(AgentEvent::Error(AgentError {
                    kind: ErrorKind::Other,
                    message: format!(
                        "Gemini CLI reported the result status {:?}",
                        other.unwrap_or("(none)")
                    ),
                    retryable: false,
                }));
                ResultStatus::Error
            }
        };
        let answer = self.answer.take();
        self.turn_closed = true;
        out.push(AgentEvent::Result(RunResult {
            status,
            text: answer.filter(|_| status == ResultStatus::Success),
            session_id: self.session_id.clone(),
            turns: None,
            // An API failure reports 0 ms: not a duration.
            duration_ms: line
                .stats
                .as_ref()
                .and_then(|s| s.duration_ms)
                .filter(|d| *d > 0),
            cost_usd: None,
        }));
    }

    /// One `usage` per model with what its counters grew by since the last
    /// `result` of this process.
    fn count(&mut self, stats: &Stats, out: &mut Vec<AgentEvent>) {
        let per_model: Vec<(Option<String>, Counters)> = match &stats.models {
            Some(models) if !models.is_empty() => models
                .iter()
                .map(|(name, m)| {
                    (
                        Some(name.clone()),
                        counters(m.input_tokens, m.cached, m.output_tokens, m.total_tokens),
                    )
                })
                .collect(),
            // Without the per-model split, the totals belong to the
            // session's model.
            _ => vec![(
                self.model.clone(),
                counters(
                    stats.input_tokens,
                    stats.cached,
                    stats.output_tokens,
                    stats.total_tokens,
                ),
            )],
        };
        for (model, now) in per_model {
            let key = model.as_deref().unwrap_or("");
            let before = match self.counted.iter_mut().find(|(m, _)| m == key) {
                Some((_, before)) => before,
                None => {
                    self.counted.push((key.to_owned(), Counters::default()));
                    let last = self.counted.len() - 1;
                    &mut self.counted[last].1
                }
            };
            let delta = now.since(*before);
            *before = now;
            let usage = delta.usage(model);
            if !usage.is_empty() {
                out.push(AgentEvent::Usage(usage));
            }
        }
    }
}

fn counters(
    prompt: Option<u64>,
    cached: Option<u64>,
    candidates: Option<u64>,
    total: Option<u64>,
) -> Counters {
    let prompt = prompt.unwrap_or(0);
    let candidates = candidates.unwrap_or(0);
    Counters {
        prompt,
        cached: cached.unwrap_or(0),
        candidates,
        total: total.unwrap_or(prompt + candidates),
    }
}

impl Parser for GeminiParser {
    fn line(&mut self, line: &[u8], out: &mut Vec<AgentEvent>) {
        // Only objects are events; this also keeps a JSON array from being
        // read as `Line`'s fields in order.
        let is_object = line
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{');
        if !is_object {
            out.push(AgentEvent::raw(line));
            return;
        }
        match serde_json::from_slice::<Line>(line) {
            Ok(parsed) => self.handle(parsed, line, out),
            Err(_) => out.push(AgentEvent::raw(line)),
        }
    }

    fn finish(&mut self, end: ProcessEnd, out: &mut Vec<AgentEvent>) {
        // Killed mid-message (Gemini writes nothing more on SIGINT or
        // SIGTERM): the text so far is all there is.
        self.end_message(out);
        // A fatal start-up error exits with a code of its own and no output;
        // the SDK then adds the generic error and the result.
        if !self.turn_closed
            && let ProcessEnd::Exited(code) = end
            && let Some(error) = errors::exit_code_error(code)
        {
            out.push(AgentEvent::Error(error));
        }
    }
}
