//! Claude Code `--output-format stream-json --verbose` → normalized events.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use paddock_sdk::agent::{
    AgentError, AgentEvent, ErrorKind, Json, ParseContext, Parser, ResultStatus, RunResult,
    RunStarted, Text, TextDelta, Todos, ToolResult, ToolUse, Usage,
};
use serde_json::value::RawValue;

use crate::errors::classify;
use crate::tools::{self, Pending, TaskList};
use crate::wire::{
    Block, Content, FileResult, Line, MaybeStr, ModelUsage, StreamEvent, TokenUsage, ToolInput,
};

/// The state of one run: which API messages' usage was counted, what was
/// emitted per model (to reconcile against each `result`), tool calls
/// awaiting their result, and the current turn.
#[derive(Debug, Default)]
pub struct ClaudeParser {
    /// The earlier runs' cost of a resumed session, for `total_cost_usd`
    /// (cumulative over the session) when a result has no `modelUsage`.
    previous_cost: Option<f64>,
    /// The session id of the last `run_started`.
    session_id: Option<String>,
    /// Usage emitted per API message id: every content block of a message
    /// repeats the message's usage, which counts once.
    messages: HashMap<String, MessageUsage>,
    /// Usage emitted per model since the process started.
    models: Vec<ModelTotals>,
    /// Tool calls whose result yields a file change or a task-list update.
    pending: HashMap<String, Pending>,
    tasks: TaskList,
    /// The API message being streamed (`stream_event` lines without
    /// `api_message_id` belong to it).
    streaming: Option<String>,
    /// `total_cost_usd` of the previous result of this process.
    last_total_cost: Option<f64>,
    /// An `error` was emitted in this turn (a synthetic API-error message),
    /// so the turn's failed result does not repeat it.
    turn_error: bool,
    /// The CLI reported an interrupt in this turn.
    turn_interrupted: bool,
}

#[derive(Debug)]
struct MessageUsage {
    model: usize,
    emitted: Counts,
}

#[derive(Debug)]
struct ModelTotals {
    name: String,
    emitted: Counts,
    cost: f64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Counts {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    reasoning: u64,
}

impl Counts {
    fn from_api(u: &TokenUsage) -> Self {
        Counts {
            input: u.input_tokens.unwrap_or(0),
            output: u.output_tokens.unwrap_or(0),
            cache_read: u.cache_read_input_tokens.unwrap_or(0),
            cache_write: u.cache_creation_input_tokens.unwrap_or(0),
            reasoning: 0,
        }
    }

    /// `u`'s counters where given, `self`'s otherwise.
    fn overlay_api(self, u: &TokenUsage) -> Self {
        Counts {
            input: u.input_tokens.unwrap_or(self.input),
            output: u.output_tokens.unwrap_or(self.output),
            cache_read: u.cache_read_input_tokens.unwrap_or(self.cache_read),
            cache_write: u.cache_creation_input_tokens.unwrap_or(self.cache_write),
            reasoning: self.reasoning,
        }
    }

    fn overlay_model(self, u: &ModelUsage) -> Self {
        Counts {
            input: u.input_tokens.unwrap_or(self.input),
            output: u.output_tokens.unwrap_or(self.output),
            cache_read: u.cache_read_input_tokens.unwrap_or(self.cache_read),
            cache_write: u.cache_creation_input_tokens.unwrap_or(self.cache_write),
            reasoning: u.thinking_tokens.unwrap_or(self.reasoning),
        }
    }

    /// What `truth` adds to `self`, per counter; never negative (a counter
    /// already past the truth cannot be taken back in an additive stream).
    fn missing(self, truth: Counts) -> Counts {
        Counts {
            input: truth.input.saturating_sub(self.input),
            output: truth.output.saturating_sub(self.output),
            cache_read: truth.cache_read.saturating_sub(self.cache_read),
            cache_write: truth.cache_write.saturating_sub(self.cache_write),
            reasoning: truth.reasoning.saturating_sub(self.reasoning),
        }
    }

    fn add(&mut self, d: Counts) {
        self.input += d.input;
        self.output += d.output;
        self.cache_read += d.cache_read;
        self.cache_write += d.cache_write;
        self.reasoning += d.reasoning;
    }

    fn usage(self, message_id: Option<String>, model: Option<String>, cost: Option<f64>) -> Usage {
        Usage {
            message_id,
            model,
            input_tokens: self.input,
            output_tokens: self.output,
            cache_read_tokens: self.cache_read,
            cache_write_tokens: self.cache_write,
            reasoning_tokens: (self.reasoning > 0).then_some(self.reasoning),
            cost_usd: cost,
        }
    }
}

/// Costs are sums and differences of floats; 1e-12 USD is far below any
/// price and keeps `0.0051249` from printing as `0.005124899999999999`.
fn round_cost(usd: f64) -> f64 {
    (usd * 1e12).round() / 1e12
}

const INTERRUPT_MARKER: &str = "[Request interrupted by user";

impl ClaudeParser {
    pub fn new(context: ParseContext) -> Self {
        ClaudeParser {
            previous_cost: context.previous_usage.and_then(|u| u.cost_usd),
            ..Self::default()
        }
    }

    fn model_index(&mut self, name: &str) -> usize {
        match self.models.iter().position(|m| m.name == name) {
            Some(i) => i,
            None => {
                self.models.push(ModelTotals {
                    name: name.to_owned(),
                    emitted: Counts::default(),
                    cost: 0.0,
                });
                self.models.len() - 1
            }
        }
    }

    fn system(&mut self, line: Line, out: &mut Vec<AgentEvent>) -> bool {
        match line.subtype.as_deref() {
            Some("init") => {
                let Some(session_id) = line.session_id.filter(|s| !s.is_empty()) else {
                    return false;
                };
                // Every turn of stream-json input, and a background task
                // re-activating the session, repeat `init` with the same id.
                if self.session_id.as_deref() != Some(&*session_id) {
                    let session_id = session_id.into_owned();
                    self.session_id = Some(session_id.clone());
                    out.push(AgentEvent::RunStarted(RunStarted {
                        session_id,
                        model: line.model.map(Cow::into_owned),
                        cwd: line.cwd.map(Cow::into_owned),
                        tools: MaybeStr::collect(line.tools),
                    }));
                }
                true
            }
            // A live estimate while a thinking block streams: superseded by
            // the `thinking` block and the usage, and one line per delta.
            Some("thinking_tokens") => true,
            // api_retry (the CLI retries on its own: not a failure of the
            // run), permission_denied (the tool's error result follows),
            // task_*, status, …: no normalized counterpart, kept as raw.
            _ => false,
        }
    }

    fn assistant(&mut self, line: Line, out: &mut Vec<AgentEvent>) -> bool {
        let Some(message) = line.message else {
            return false;
        };
        let parent = line.parent_tool_use_id.map(Cow::into_owned);
        let message_id = message.id.as_deref();

        if line.is_api_error_message == Some(true) {
            self.count_message(
                message_id,
                message.model.as_deref(),
                message.usage.as_ref(),
                out,
            );
            // A sub-agent's API failure is reported to its parent as the
            // Agent tool's result; it does not fail the run.
            if parent.is_some() {
                return false;
            }
            let text = match message.content {
                Some(Content::Text(t)) => t.into_owned(),
                Some(Content::Blocks(blocks)) => join_text(&blocks),
                None => String::new(),
            };
            let types = [line.error.as_deref(), line.api_error_type.as_deref()];
            self.error(line.api_error_status, &types, text, out);
            return true;
        }

        let before = out.len();
        let mut understood = true;
        match message.content {
            Some(Content::Text(text)) => {
                if !text.is_empty() {
                    out.push(AgentEvent::Text(Text {
                        text: text.into_owned(),
                        message_id: message_id.map(str::to_owned),
                    }));
                }
            }
            Some(Content::Blocks(blocks)) => {
                for block in blocks {
                    match block.kind.as_deref() {
                        Some("text") => match block.text {
                            Some(text) if !text.is_empty() => out.push(AgentEvent::Text(Text {
                                text: text.into_owned(),
                                message_id: message_id.map(str::to_owned),
                            })),
                            _ => understood = false,
                        },
                        Some("thinking") => match block.thinking {
                            Some(text) if !text.is_empty() => {
                                out.push(AgentEvent::Thinking(Text {
                                    text: text.into_owned(),
                                    message_id: message_id.map(str::to_owned),
                                }))
                            }
                            _ => understood = false,
                        },
                        Some("tool_use") => {
                            understood &= self.tool_use(block, parent.as_deref(), out);
                        }
                        _ => understood = false,
                    }
                }
            }
            None => understood = false,
        }
        let produced = out.len() > before;
        self.count_message(
            message_id,
            message.model.as_deref(),
            message.usage.as_ref(),
            out,
        );
        understood && produced
    }

    /// A `tool_use` block → `tool_use` (and `todos` for TodoWrite). False if
    /// it has no id or name: such a call stays raw.
    fn tool_use(&mut self, block: Block, parent: Option<&str>, out: &mut Vec<AgentEvent>) -> bool {
        let (Some(id), Some(name)) = (
            block.id.filter(|s| !s.is_empty()),
            block.name.filter(|s| !s.is_empty()),
        ) else {
            return false;
        };
        let id = id.into_owned();
        let mut todos = None;
        if name == "TodoWrite" || tools::needs_result(&name) {
            let input = read_input(block.input);
            match &*name {
                "TodoWrite" => todos = input.todos.map(tools::todo_write),
                "TaskCreate" => {
                    self.pending.insert(
                        id.clone(),
                        Pending::TaskCreate {
                            subject: input.subject,
                        },
                    );
                }
                "TaskUpdate" => {
                    self.pending.insert(
                        id.clone(),
                        Pending::TaskUpdate {
                            task_id: input.task_id,
                            status: input.status,
                            subject: input.subject,
                        },
                    );
                }
                _ => {
                    self.pending.insert(
                        id.clone(),
                        Pending::File {
                            write: name == "Write",
                            path: input.path,
                        },
                    );
                }
            }
        }
        out.push(AgentEvent::ToolUse(ToolUse {
            id,
            kind: tools::kind(&name),
            name: name.into_owned(),
            input: block.input.map_or_else(Json::null, Json::from_raw),
            parent_id: parent.map(str::to_owned),
        }));
        if let Some(items) = todos {
            out.push(AgentEvent::Todos(Todos { items }));
        }
        true
    }

    /// The usage of an API message, the first time one of its blocks is
    /// seen. Provisional: `output_tokens` is the count at the message's
    /// start; `message_delta` or the next `result` completes it.
    fn count_message(
        &mut self,
        id: Option<&str>,
        model: Option<&str>,
        usage: Option<&TokenUsage>,
        out: &mut Vec<AgentEvent>,
    ) {
        let (Some(id), Some(usage)) = (id, usage) else {
            return;
        };
        if self.messages.contains_key(id) {
            return;
        }
        let model = self.model_index(model.unwrap_or("unknown"));
        let counts = Counts::from_api(usage);
        self.messages.insert(
            id.to_owned(),
            MessageUsage {
                model,
                emitted: counts,
            },
        );
        self.models[model].emitted.add(counts);
        if counts != Counts::default() {
            out.push(AgentEvent::Usage(counts.usage(
                Some(id.to_owned()),
                Some(self.models[model].name.clone()),
                None,
            )));
        }
    }

    fn user(&mut self, line: Line, out: &mut Vec<AgentEvent>) -> bool {
        let Some(message) = line.message else {
            return false;
        };
        let blocks = match message.content {
            Some(Content::Blocks(blocks)) => blocks,
            Some(Content::Text(text)) => {
                // Replayed or echoed input: there is no user-message event.
                self.turn_interrupted |= text.starts_with(INTERRUPT_MARKER);
                return false;
            }
            None => return false,
        };
        let parent = line.parent_tool_use_id.map(Cow::into_owned);
        let mut understood = true;
        for block in blocks {
            match block.kind.as_deref() {
                Some("tool_result") => {
                    let Some(id) = block.tool_use_id.filter(|s| !s.is_empty()) else {
                        understood = false;
                        continue;
                    };
                    let id = id.into_owned();
                    let output = block.content.map(|c| c.0.into_owned()).unwrap_or_default();
                    let is_error = block.is_error.unwrap_or(false);
                    let follow_up = match self.pending.remove(&id) {
                        Some(pending) if !is_error => {
                            self.resolve(pending, &output, line.tool_use_result)
                        }
                        _ => None,
                    };
                    out.push(AgentEvent::ToolResult(ToolResult {
                        id,
                        exit_code: if is_error {
                            tools::exit_code(&output)
                        } else {
                            None
                        },
                        output,
                        is_error,
                        parent_id: parent.clone(),
                    }));
                    out.extend(follow_up);
                }
                Some("text") => {
                    // Interrupt markers and sub-agent prompts: no event of
                    // their own, kept as raw.
                    if block
                        .text
                        .as_deref()
                        .is_some_and(|t| t.starts_with(INTERRUPT_MARKER))
                    {
                        self.turn_interrupted = true;
                    }
                    understood = false;
                }
                _ => understood = false,
            }
        }
        understood
    }

    /// The file change or task-list update of a successful tool call.
    fn resolve(
        &mut self,
        pending: Pending,
        output: &str,
        side: Option<&RawValue>,
    ) -> Option<AgentEvent> {
        let side = side.and_then(|raw| serde_json::from_str::<FileResult>(raw.get()).ok());
        match pending {
            Pending::File { write, path } => {
                tools::file_change(write, path, side).map(AgentEvent::FileChange)
            }
            Pending::TaskCreate { subject } => {
                let id = side
                    .and_then(|s| s.task)
                    .and_then(|t| t.id)
                    .or_else(|| tools::created_task_id(output))?;
                self.tasks.create(id, subject);
                Some(AgentEvent::Todos(Todos {
                    items: self.tasks.items(),
                }))
            }
            Pending::TaskUpdate {
                task_id,
                status,
                subject,
            } => {
                self.tasks.update(task_id?, status.as_deref(), subject);
                Some(AgentEvent::Todos(Todos {
                    items: self.tasks.items(),
                }))
            }
        }
    }

    fn stream_event(&mut self, line: Line, out: &mut Vec<AgentEvent>) -> bool {
        let Some(event) = line.event else {
            return false;
        };
        let StreamEvent {
            kind,
            delta,
            usage,
            message,
        } = event;
        match kind.as_deref() {
            Some("content_block_delta") => match delta {
                Some(delta) if delta.kind.as_deref() == Some("text_delta") => {
                    let id = match line.api_message_id {
                        Some(id) => id.into_owned(),
                        None => match &self.streaming {
                            Some(id) => id.clone(),
                            None => return false,
                        },
                    };
                    match delta.text {
                        Some(text) => {
                            if !text.is_empty() {
                                out.push(AgentEvent::TextDelta(TextDelta {
                                    message_id: id,
                                    text: text.into_owned(),
                                }));
                            }
                            true
                        }
                        None => false,
                    }
                }
                // Thinking, signatures and tool input arrive whole in the
                // `assistant` line of their block.
                Some(delta) => matches!(
                    delta.kind.as_deref(),
                    Some(
                        "thinking_delta"
                            | "signature_delta"
                            | "input_json_delta"
                            | "citations_delta"
                    )
                ),
                None => false,
            },
            Some("message_start") => {
                self.streaming = line
                    .api_message_id
                    .or(message.and_then(|m| m.id))
                    .map(Cow::into_owned);
                true
            }
            Some("message_delta") => {
                let id = line
                    .api_message_id
                    .map(Cow::into_owned)
                    .or_else(|| self.streaming.clone());
                if let (Some(id), Some(usage)) = (id, usage) {
                    self.complete_message(id, &usage, out);
                }
                true
            }
            // Block boundaries and keep-alives carry nothing the `assistant`
            // lines do not.
            Some("content_block_start" | "content_block_stop" | "message_stop" | "ping") => true,
            _ => false,
        }
    }

    /// `message_delta` carries the message's final usage: emit what the
    /// provisional count lacked. A message not seen yet is left to the
    /// result's reconciliation.
    fn complete_message(&mut self, id: String, usage: &TokenUsage, out: &mut Vec<AgentEvent>) {
        let Some(state) = self.messages.get_mut(&id) else {
            return;
        };
        let truth = state.emitted.overlay_api(usage);
        let delta = state.emitted.missing(truth);
        if delta == Counts::default() {
            return;
        }
        state.emitted.add(delta);
        let model = &mut self.models[state.model];
        model.emitted.add(delta);
        out.push(AgentEvent::Usage(delta.usage(
            Some(id),
            Some(model.name.clone()),
            None,
        )));
    }

    fn result(&mut self, line: Line, out: &mut Vec<AgentEvent>) -> bool {
        let cost = self.reconcile(line.model_usage, line.total_cost_usd, out);
        if line.total_cost_usd.is_some() {
            self.last_total_cost = line.total_cost_usd;
        }

        let subtype = line.subtype.as_deref().unwrap_or("");
        let is_error = line.is_error.unwrap_or(subtype != "success");
        let text = line.result.map(Cow::into_owned);
        let aborted = line
            .terminal_reason
            .as_deref()
            .is_some_and(|r| r.starts_with("aborted"));
        let status = if !is_error && subtype == "success" {
            ResultStatus::Success
        } else if subtype == "error_during_execution" && (self.turn_interrupted || aborted) {
            ResultStatus::Interrupted
        } else {
            if !self.turn_error {
                let message = text
                    .clone()
                    .filter(|t| !t.is_empty())
                    .or_else(|| {
                        let errors = MaybeStr::collect(line.errors).unwrap_or_default();
                        (!errors.is_empty()).then(|| errors.join("; "))
                    })
                    .unwrap_or_else(|| format!("the agent ended its turn with `{subtype}`"));
                match subtype {
                    "error_max_turns" => out.push(error_event(ErrorKind::MaxTurns, message, false)),
                    "error_max_budget_usd" => {
                        out.push(error_event(ErrorKind::Budget, message, false))
                    }
                    _ => {
                        let types = [line.api_error_type.as_deref(), line.error.as_deref()];
                        self.error(line.api_error_status, &types, message, out);
                    }
                }
            }
            ResultStatus::Error
        };
        out.push(AgentEvent::Result(RunResult {
            status,
            text,
            session_id: line.session_id.map(Cow::into_owned),
            turns: line.num_turns.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            duration_ms: line.duration_ms,
            cost_usd: cost,
        }));
        self.turn_error = false;
        self.turn_interrupted = false;
        true
    }

    /// Emits what the usage so far lacks to equal `modelUsage` (the true
    /// per-model totals of this process, sub-agents included), and returns
    /// this turn's cost. Without `modelUsage`, only the cost is known: the
    /// growth of `total_cost_usd`, which counts the whole session.
    fn reconcile(
        &mut self,
        model_usage: Option<BTreeMap<String, ModelUsage>>,
        total_cost: Option<f64>,
        out: &mut Vec<AgentEvent>,
    ) -> Option<f64> {
        let Some(model_usage) = model_usage else {
            let total = total_cost?;
            let base = self.last_total_cost.or(self.previous_cost).unwrap_or(0.0);
            let cost = round_cost((total - base).max(0.0));
            if cost > 0.0 {
                out.push(AgentEvent::Usage(Counts::default().usage(
                    None,
                    None,
                    Some(cost),
                )));
            }
            return Some(cost);
        };
        let mut turn_cost = 0.0;
        for (name, truth) in model_usage {
            let i = self.model_index(&name);
            let model = &mut self.models[i];
            let delta = model.emitted.missing(model.emitted.overlay_model(&truth));
            model.emitted.add(delta);
            let cost = truth.cost_usd.map(|c| {
                let d = round_cost((c - model.cost).max(0.0));
                model.cost = c;
                d
            });
            turn_cost += cost.unwrap_or(0.0);
            let usage = delta.usage(None, Some(name), cost);
            if !usage.is_empty() {
                out.push(AgentEvent::Usage(usage));
            }
        }
        Some(round_cost(turn_cost))
    }

    /// An API failure of the run (once per turn).
    fn error(
        &mut self,
        status: Option<u64>,
        types: &[Option<&str>],
        message: String,
        out: &mut Vec<AgentEvent>,
    ) {
        let (kind, retryable) = classify(status, types, &message);
        let message = if message.is_empty() {
            "the API request failed".to_owned()
        } else {
            message
        };
        out.push(error_event(kind, message, retryable));
        self.turn_error = true;
    }
}

fn error_event(kind: ErrorKind, message: String, retryable: bool) -> AgentEvent {
    AgentEvent::Error(AgentError {
        kind,
        message,
        retryable,
    })
}

fn join_text(blocks: &[Block]) -> String {
    let mut text = String::new();
    for t in blocks.iter().filter_map(|b| b.text.as_deref()) {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(t);
    }
    text
}

/// The fields of a tool's input the adapter needs, for the few tools that
/// need any; a second, small parse of that input only.
fn read_input(input: Option<&RawValue>) -> ToolInput {
    input
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .unwrap_or_default()
}

impl Parser for ClaudeParser {
    fn line(&mut self, bytes: &[u8], out: &mut Vec<AgentEvent>) {
        let Ok(line) = serde_json::from_slice::<Line>(bytes) else {
            out.push(AgentEvent::raw(bytes));
            return;
        };
        let understood = match line.kind {
            "assistant" => self.assistant(line, out),
            "user" => self.user(line, out),
            "stream_event" => self.stream_event(line, out),
            "result" => self.result(line, out),
            "system" => self.system(line, out),
            _ => false,
        };
        if !understood {
            out.push(AgentEvent::raw(bytes));
        }
    }
}
