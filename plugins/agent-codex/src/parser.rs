//! `codex exec --json` stdout → normalized events.
//!
//! Codex writes one JSON object per line: `thread.started`, `turn.started`,
//! `item.started` / `item.updated` / `item.completed` (agent text,
//! reasoning, commands, patches, searches, MCP and collab calls, the plan),
//! then `turn.completed` (with usage) or `turn.failed`, and `error` lines for
//! retries and the final failure. See the crate README for the mapping.

use std::collections::HashSet;

use paddock_sdk::agent::{
    AgentError, AgentEvent, FileChange, FileChangeKind, Json, ParseContext, Parser, ResultStatus,
    RunResult, RunStarted, Text, TodoItem, TodoStatus, Todos, ToolKind, ToolResult, ToolUse, Usage,
    UsageTotals,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::errors;
use crate::wire::{Change, CliUsage, Item, Line, Str};

/// Which `item.*` event an item came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Started,
    Updated,
    Completed,
}

/// The parser of one Codex run.
#[derive(Debug, Default)]
pub struct CodexParser {
    /// The thread's cumulative usage as of the last `turn.completed` (or the
    /// context's previous totals), in the one convention: what the next
    /// cumulative report is diffed against.
    counted: UsageTotals,
    /// The latest thread id, for the `result`.
    session_id: Option<String>,
    /// The turn's last agent message: the `result`'s text.
    last_message: Option<String>,
    /// The message of the turn's last `error` event: `turn.failed` repeats
    /// it, and one failure must not show as two errors.
    last_error: Option<String>,
    /// Tool items with a `tool_use` and no `tool_result` yet.
    open_tools: HashSet<String>,
    /// The last plan emitted as `todos` (item id, items): `item.completed`
    /// of a plan repeats the last update.
    last_todos: Option<(Option<String>, Vec<TodoItem>)>,
}

impl CodexParser {
    pub fn new(context: ParseContext) -> Self {
        Self {
            counted: context.previous_usage.unwrap_or_default(),
            ..Self::default()
        }
    }

    /// Handles one parsed line; `false` means "not understood", and the
    /// caller emits the line as `raw`. Nothing is pushed when returning
    /// `false`.
    fn event(&mut self, line: Line<'_>, out: &mut Vec<AgentEvent>) -> bool {
        match line.kind {
            "thread.started" => {
                let Some(id) = non_empty(line.thread_id) else {
                    return false;
                };
                let id = id.0.into_owned();
                self.session_id = Some(id.clone());
                out.push(AgentEvent::RunStarted(RunStarted {
                    session_id: id,
                    model: None,
                    cwd: None,
                    tools: None,
                }));
                true
            }
            // No fields: it only says the prompt was submitted, which the
            // next event shows anyway. It starts a new turn's state.
            "turn.started" => {
                self.last_message = None;
                self.last_error = None;
                true
            }
            "item.started" => self.item(Phase::Started, line.item, out),
            "item.updated" => self.item(Phase::Updated, line.item, out),
            "item.completed" => self.item(Phase::Completed, line.item, out),
            "turn.completed" => {
                if let Some(usage) = line.usage
                    && let Some(delta) = self.usage_delta(&usage)
                {
                    out.push(AgentEvent::Usage(delta));
                }
                self.last_error = None;
                out.push(self.result(ResultStatus::Success));
                true
            }
            "turn.failed" => {
                let message = line
                    .error
                    .and_then(|e| e.message)
                    .map_or_else(|| "turn failed".to_owned(), |m| m.0.into_owned());
                if self.last_error.as_deref() != Some(message.as_str()) {
                    out.push(error_event(message));
                }
                self.last_error = None;
                self.last_message = None;
                out.push(self.result(ResultStatus::Error));
                true
            }
            "error" => {
                let Some(message) = line.message else {
                    return false;
                };
                // Codex retrying on its own is not a failure: stays raw.
                if errors::is_retry_notice(message.as_str()) {
                    return false;
                }
                let message = message.0.into_owned();
                self.last_error = Some(message.clone());
                out.push(error_event(message));
                true
            }
            _ => false,
        }
    }

    fn item(&mut self, phase: Phase, item: Option<Item<'_>>, out: &mut Vec<AgentEvent>) -> bool {
        let Some(item) = item else {
            return false;
        };
        let Some(kind) = item.kind.as_ref() else {
            return false;
        };
        match kind.as_str() {
            // Only ever written complete, as `item.completed`: anything
            // else is unexpected and stays raw rather than doubling text.
            "agent_message" if phase == Phase::Completed => {
                let Some(text) = item.text else {
                    return false;
                };
                let text = text.0.into_owned();
                self.last_message = Some(text.clone());
                out.push(AgentEvent::Text(Text {
                    text,
                    message_id: item.id.map(|id| id.0.into_owned()),
                }));
                true
            }
            "reasoning" if phase == Phase::Completed => {
                let Some(text) = item.text else {
                    return false;
                };
                out.push(AgentEvent::Thinking(Text {
                    text: text.0.into_owned(),
                    message_id: item.id.map(|id| id.0.into_owned()),
                }));
                true
            }
            "todo_list" => self.todos(item, out),
            "command_execution" | "file_change" | "web_search" | "mcp_tool_call"
            | "collab_tool_call" => self.tool(phase, item, out),
            // `error` items are warnings (e.g. unknown model metadata), not
            // failures: there is no warning event, so they stay raw.
            _ => false,
        }
    }

    /// A tool item: `tool_use` when it starts (or when it completes without
    /// having started), `tool_result` when it completes, plus `file_change`
    /// for every path of an applied patch.
    fn tool(&mut self, phase: Phase, item: Item<'_>, out: &mut Vec<AgentEvent>) -> bool {
        let Some(id) = item.id.as_ref().filter(|id| !id.0.is_empty()) else {
            // A tool event without an id stays raw, never gets an empty id.
            return false;
        };
        let id = id.as_str();
        let kind = item.kind.as_ref().map_or("", Str::as_str);
        match phase {
            // A repeated start, or an update of a running item whose final
            // state `item.completed` repeats: not understood as new, raw.
            Phase::Started | Phase::Updated if self.open_tools.contains(id) => false,
            Phase::Started | Phase::Updated => {
                out.push(tool_use(id, kind, &item));
                self.open_tools.insert(id.to_owned());
                true
            }
            Phase::Completed => {
                if !self.open_tools.remove(id) {
                    out.push(tool_use(id, kind, &item));
                }
                out.push(tool_result(id, kind, &item));
                if kind == "file_change" && is_applied(&item) {
                    for change in item.changes.iter().flatten() {
                        if let Some(event) = file_change(change) {
                            out.push(event);
                        }
                    }
                }
                true
            }
        }
    }

    /// The plan: every new state of the list as `todos`.
    fn todos(&mut self, item: Item<'_>, out: &mut Vec<AgentEvent>) -> bool {
        let Some(entries) = item.items else {
            return false;
        };
        let items: Vec<TodoItem> = entries
            .into_iter()
            .map(|entry| TodoItem {
                status: todo_status(entry.status.as_ref().map(Str::as_str), entry.completed),
                text: entry.text.map(|t| t.0.into_owned()).unwrap_or_default(),
            })
            .collect();
        let id = item.id.map(|id| id.0.into_owned());
        let repeat = self
            .last_todos
            .as_ref()
            .is_some_and(|(last_id, last)| *last_id == id && *last == items);
        if !repeat {
            out.push(AgentEvent::Todos(Todos {
                items: items.clone(),
            }));
            self.last_todos = Some((id, items));
        }
        true
    }

    /// The usage since the last report: Codex's counters are cumulative over
    /// the thread, and its input includes the cached tokens.
    fn usage_delta(&mut self, usage: &CliUsage) -> Option<Usage> {
        let cache_read = usage.cached_input_tokens;
        let cache_write = usage.cache_write_input_tokens;
        let now = UsageTotals {
            input_tokens: usage
                .input_tokens
                .saturating_sub(cache_read)
                .saturating_sub(cache_write),
            output_tokens: usage.output_tokens,
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            reasoning_tokens: usage.reasoning_output_tokens.unwrap_or(0),
            cost_usd: None,
        };
        let before = std::mem::replace(&mut self.counted, now);
        let now = &self.counted;
        let delta = Usage {
            message_id: None,
            model: None,
            input_tokens: now.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: now.output_tokens.saturating_sub(before.output_tokens),
            cache_read_tokens: now
                .cache_read_tokens
                .saturating_sub(before.cache_read_tokens),
            cache_write_tokens: now
                .cache_write_tokens
                .saturating_sub(before.cache_write_tokens),
            reasoning_tokens: usage
                .reasoning_output_tokens
                .map(|_| now.reasoning_tokens.saturating_sub(before.reasoning_tokens)),
            cost_usd: None,
        };
        (!delta.is_empty()).then_some(delta)
    }

    fn result(&mut self, status: ResultStatus) -> AgentEvent {
        AgentEvent::Result(RunResult {
            status,
            text: self.last_message.take(),
            session_id: self.session_id.clone(),
            turns: None,
            duration_ms: None,
            cost_usd: None,
        })
    }
}

impl Parser for CodexParser {
    fn line(&mut self, line: &[u8], out: &mut Vec<AgentEvent>) {
        // Only objects are Codex events; this also keeps a JSON array from
        // being read as a struct's fields in order.
        let is_object = line
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'{');
        let understood = is_object
            && match serde_json::from_slice::<Line>(line) {
                Ok(parsed) => self.event(parsed, out),
                Err(_) => false,
            };
        if !understood {
            out.push(AgentEvent::raw(line));
        }
    }
}

fn non_empty(s: Option<Str<'_>>) -> Option<Str<'_>> {
    s.filter(|s| !s.0.is_empty())
}

fn error_event(message: String) -> AgentEvent {
    let (kind, retryable) = errors::classify(&message);
    AgentEvent::Error(AgentError {
        kind,
        message,
        retryable,
    })
}

/// `completed: true` is all 0.169.0 says; a `status` wins where present.
fn todo_status(status: Option<&str>, completed: Option<bool>) -> TodoStatus {
    match status {
        Some("completed") => TodoStatus::Completed,
        Some("in_progress") => TodoStatus::InProgress,
        Some("cancelled") => TodoStatus::Cancelled,
        Some("pending") => TodoStatus::Pending,
        _ if completed == Some(true) => TodoStatus::Completed,
        _ => TodoStatus::Pending,
    }
}

#[derive(Serialize)]
struct CommandInput<'a> {
    command: &'a str,
}

#[derive(Serialize)]
struct PatchInput<'a, 'b> {
    changes: &'b [Change<'a>],
}

#[derive(Serialize)]
struct SearchInput<'a> {
    query: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct CollabInput<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_thread_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    receiver_thread_ids: Option<&'a RawValue>,
}

fn tool_use(id: &str, kind: &str, item: &Item<'_>) -> AgentEvent {
    let text = |s: &Option<Str<'_>>| s.as_ref().map_or("", Str::as_str).to_owned();
    let (name, tool_kind, input) = match kind {
        "command_execution" => (
            "command_execution".to_owned(),
            ToolKind::Shell,
            Json::from_value(&CommandInput {
                command: item.command.as_ref().map_or("", Str::as_str),
            }),
        ),
        "file_change" => (
            "file_change".to_owned(),
            ToolKind::Edit,
            Json::from_value(&PatchInput {
                changes: item.changes.as_deref().unwrap_or_default(),
            }),
        ),
        "web_search" => (
            "web_search".to_owned(),
            ToolKind::WebSearch,
            Json::from_value(&SearchInput {
                query: item.query.as_ref().map_or("", Str::as_str),
                action: item.action,
            }),
        ),
        "mcp_tool_call" => (
            // Claude Code's spelling of MCP tools, so both render alike.
            format!("mcp__{}__{}", text(&item.server), text(&item.tool)),
            ToolKind::Mcp,
            item.arguments.map_or_else(Json::null, Json::from_raw),
        ),
        // collab_tool_call: a sub-agent spawned, messaged, awaited, closed.
        _ => (
            item.tool.as_ref().map_or_else(
                || "collab_tool_call".to_owned(),
                |t| t.0.clone().into_owned(),
            ),
            ToolKind::Subagent,
            Json::from_value(&CollabInput {
                prompt: item.prompt.as_ref().map(Str::as_str),
                sender_thread_id: item.sender_thread_id.as_ref().map(Str::as_str),
                receiver_thread_ids: item.receiver_thread_ids,
            }),
        ),
    };
    AgentEvent::ToolUse(ToolUse {
        id: id.to_owned(),
        name,
        kind: tool_kind,
        input,
        parent_id: None,
    })
}

fn tool_result(id: &str, kind: &str, item: &Item<'_>) -> AgentEvent {
    let status = item.status.as_ref().map(Str::as_str);
    let failed = matches!(status, Some("failed" | "declined"));
    let (output, is_error, exit_code) = match kind {
        "command_execution" => {
            let exit_code = item.exit_code.and_then(|c| i32::try_from(c).ok());
            let output = item
                .aggregated_output
                .as_ref()
                .map_or_else(String::new, |o| o.0.clone().into_owned());
            (
                output,
                failed || exit_code.is_some_and(|c| c != 0),
                exit_code,
            )
        }
        // Codex reports no output for a patch; say what it did.
        "file_change" => {
            let mut output = String::new();
            for change in item.changes.iter().flatten() {
                if !output.is_empty() {
                    output.push('\n');
                }
                output.push_str(change.kind.as_ref().map_or("change", Str::as_str));
                output.push(' ');
                output.push_str(change.path.as_ref().map_or("", Str::as_str));
            }
            if failed {
                output.insert_str(0, "patch not applied:\n");
            }
            (output, failed, None)
        }
        // Codex does not surface search results, only the final query.
        "web_search" => (
            item.query
                .as_ref()
                .map_or_else(String::new, |q| q.0.clone().into_owned()),
            failed,
            None,
        ),
        "mcp_tool_call" => {
            let error = item.error.as_ref().and_then(|e| e.message.as_ref());
            let output = match (error, &item.result) {
                (Some(message), _) => message.0.clone().into_owned(),
                (None, Some(result)) => mcp_output(result),
                (None, None) => String::new(),
            };
            (output, failed || error.is_some(), None)
        }
        _ => (
            item.agents_states
                .map_or_else(String::new, |s| s.get().to_owned()),
            failed,
            None,
        ),
    };
    AgentEvent::ToolResult(ToolResult {
        id: id.to_owned(),
        output,
        is_error,
        exit_code,
        parent_id: None,
    })
}

/// The text blocks of an MCP result; other blocks are named, and a result
/// with only structured content shows that.
fn mcp_output(result: &crate::wire::McpResult<'_>) -> String {
    let mut output = String::new();
    for block in result.content.iter().flatten() {
        if !output.is_empty() {
            output.push('\n');
        }
        match (&block.text, &block.kind) {
            (Some(text), _) => output.push_str(text.as_str()),
            (None, kind) => {
                output.push('[');
                output.push_str(kind.as_ref().map_or("unknown", Str::as_str));
                output.push_str(" content]");
            }
        }
    }
    if output.is_empty()
        && let Some(structured) = result.structured_content
    {
        output.push_str(structured.get());
    }
    output
}

/// A patch item's changes happened only when it completed successfully
/// (0.169.0 always says; an item without a status is taken as applied).
fn is_applied(item: &Item<'_>) -> bool {
    item.status
        .as_ref()
        .is_none_or(|s| s.as_str() == "completed")
}

fn file_change(change: &Change<'_>) -> Option<AgentEvent> {
    let path = change.path.as_ref().filter(|p| !p.0.is_empty())?;
    let moved_to = change.move_path.as_ref().filter(|p| !p.0.is_empty());
    let (path, kind, old_path) = match (change.kind.as_ref().map(Str::as_str), moved_to) {
        (Some("add"), _) => (path, FileChangeKind::Add, None),
        (Some("delete"), _) => (path, FileChangeKind::Delete, None),
        (_, Some(to)) => (
            to,
            FileChangeKind::Rename,
            Some(path.0.clone().into_owned()),
        ),
        // `update`, and any kind a later version adds: the file changed.
        _ => (path, FileChangeKind::Modify, None),
    };
    Some(AgentEvent::FileChange(FileChange {
        path: path.0.clone().into_owned(),
        kind,
        diff: change.diff.as_ref().map(|d| d.0.clone().into_owned()),
        old_path,
    }))
}
