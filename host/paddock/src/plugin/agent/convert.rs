//! Between the SDK's types (the JSON contract) and the generated bindings.
//! Output from a plugin is checked here: the host does not trust a plugin to
//! keep the contract's invariants.

use paddock_sdk::agent as sdk;

use super::wit;
use super::wit_types;

pub(super) fn run_spec(spec: &sdk::RunSpec) -> wit::RunSpec {
    wit::RunSpec {
        prompt: spec.prompt.clone(),
        model: spec.model.clone(),
        resume: spec.resume.clone(),
        max_turns: spec.max_turns,
        system_prompt_append: spec.system_prompt_append.clone(),
        workdir: spec.workdir.clone(),
        gateway: spec.gateway.as_ref().map(|g| wit::Gateway {
            base_url: g.base_url.clone(),
            token_env: g.token_env.clone(),
        }),
        options: kvs(&spec.options),
    }
}

fn kvs(map: &std::collections::BTreeMap<String, String>) -> Vec<wit_types::Kv> {
    map.iter()
        .map(|(key, value)| wit_types::Kv {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(super) fn exec_spec(exec: wit::ExecSpec) -> sdk::ExecSpec {
    sdk::ExecSpec {
        argv: exec.argv,
        env: exec.env.into_iter().map(|kv| (kv.key, kv.value)).collect(),
        env_from: exec
            .env_from
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect(),
        stdin: exec.stdin,
        keep_stdin_open: exec.keep_stdin_open,
        files: exec
            .files
            .into_iter()
            .map(|f| sdk::ExecFile {
                path: f.path,
                contents: f.contents,
            })
            .collect(),
    }
}

pub(super) fn parse_context(context: &sdk::ParseContext) -> wit::ParseContext {
    wit::ParseContext {
        previous_usage: context.previous_usage.as_ref().map(|u| wit::UsageTotals {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: u.cost_usd,
        }),
    }
}

pub(super) fn process_end(end: sdk::ProcessEnd) -> wit::ProcessEnd {
    match end {
        sdk::ProcessEnd::Exited(code) => wit::ProcessEnd::Exited(code),
        sdk::ProcessEnd::Signaled(signal) => wit::ProcessEnd::Signaled(signal),
        sdk::ProcessEnd::Cancelled => wit::ProcessEnd::Cancelled,
        sdk::ProcessEnd::TimedOut => wit::ProcessEnd::TimedOut,
        sdk::ProcessEnd::Lost => wit::ProcessEnd::Lost,
    }
}

pub(crate) fn plugin_error(error: wit_types::PluginError) -> sdk::PluginError {
    match error {
        wit_types::PluginError::InvalidInput(m) => sdk::PluginError::InvalidInput(m),
        wit_types::PluginError::Denied(m) => sdk::PluginError::Denied(m),
        wit_types::PluginError::Unavailable(m) => sdk::PluginError::Unavailable(m),
        wit_types::PluginError::Internal(m) => sdk::PluginError::Internal(m),
    }
}

/// Converts one event from `plugin`, repairing what breaks the contract:
/// a tool event without an id becomes `raw` (an empty id would break
/// tool-use/result pairing), a tool input that is not JSON is kept as a
/// JSON string.
pub fn from_wit_event(plugin: &str, event: wit::AgentEvent) -> sdk::AgentEvent {
    use wit::AgentEvent as W;
    match event {
        W::RunStarted(e) => sdk::AgentEvent::RunStarted(sdk::RunStarted {
            session_id: e.session_id,
            model: e.model,
            cwd: e.cwd,
            tools: e.tools,
        }),
        W::TextDelta(e) => sdk::AgentEvent::TextDelta(sdk::TextDelta {
            message_id: e.message_id,
            text: e.text,
        }),
        W::Text(e) => sdk::AgentEvent::Text(text(e)),
        W::Thinking(e) => sdk::AgentEvent::Thinking(text(e)),
        W::ToolUse(e) if e.id.is_empty() => invalid(plugin, "tool_use without an id", &e.input),
        W::ToolUse(e) => {
            let input = sdk::Json::from_string(e.input).unwrap_or_else(|err| {
                tracing::warn!(plugin, error = %err.to_string(), "tool input is not JSON; kept as a string");
                sdk::Json::from_value(&err.to_string())
            });
            sdk::AgentEvent::ToolUse(sdk::ToolUse {
                id: e.id,
                name: e.name,
                kind: tool_kind(e.kind),
                input,
                parent_id: e.parent_id,
            })
        }
        W::ToolResult(e) if e.id.is_empty() => {
            invalid(plugin, "tool_result without an id", &e.output)
        }
        W::ToolResult(e) => sdk::AgentEvent::ToolResult(sdk::ToolResult {
            id: e.id,
            output: e.output,
            is_error: e.is_error,
            exit_code: e.exit_code,
            parent_id: e.parent_id,
        }),
        W::FileChange(e) => sdk::AgentEvent::FileChange(sdk::FileChange {
            path: e.path,
            kind: match e.kind {
                wit::FileChangeKind::Add => sdk::FileChangeKind::Add,
                wit::FileChangeKind::Modify => sdk::FileChangeKind::Modify,
                wit::FileChangeKind::Delete => sdk::FileChangeKind::Delete,
                wit::FileChangeKind::Rename => sdk::FileChangeKind::Rename,
            },
            diff: e.diff,
            old_path: e.old_path,
        }),
        W::Todos(items) => sdk::AgentEvent::Todos(sdk::Todos {
            items: items
                .into_iter()
                .map(|item| sdk::TodoItem {
                    text: item.text,
                    status: match item.status {
                        wit::TodoStatus::Pending => sdk::TodoStatus::Pending,
                        wit::TodoStatus::InProgress => sdk::TodoStatus::InProgress,
                        wit::TodoStatus::Completed => sdk::TodoStatus::Completed,
                        wit::TodoStatus::Cancelled => sdk::TodoStatus::Cancelled,
                    },
                })
                .collect(),
        }),
        W::Usage(u) => sdk::AgentEvent::Usage(sdk::Usage {
            message_id: u.message_id,
            model: u.model,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: u.cost_usd,
        }),
        W::Result(r) => sdk::AgentEvent::Result(sdk::RunResult {
            status: match r.status {
                wit::ResultStatus::Success => sdk::ResultStatus::Success,
                wit::ResultStatus::Error => sdk::ResultStatus::Error,
                wit::ResultStatus::Cancelled => sdk::ResultStatus::Cancelled,
                wit::ResultStatus::Interrupted => sdk::ResultStatus::Interrupted,
            },
            text: r.text,
            session_id: r.session_id,
            turns: r.turns,
            duration_ms: r.duration_ms,
            cost_usd: r.cost_usd,
        }),
        W::Error(e) => sdk::AgentEvent::Error(sdk::AgentError {
            kind: match e.kind {
                wit::ErrorKind::Auth => sdk::ErrorKind::Auth,
                wit::ErrorKind::RateLimit => sdk::ErrorKind::RateLimit,
                wit::ErrorKind::Overloaded => sdk::ErrorKind::Overloaded,
                wit::ErrorKind::ContextLength => sdk::ErrorKind::ContextLength,
                wit::ErrorKind::MaxTurns => sdk::ErrorKind::MaxTurns,
                wit::ErrorKind::Budget => sdk::ErrorKind::Budget,
                wit::ErrorKind::Api => sdk::ErrorKind::Api,
                wit::ErrorKind::Timeout => sdk::ErrorKind::Timeout,
                wit::ErrorKind::Other => sdk::ErrorKind::Other,
            },
            message: e.message,
            retryable: e.retryable,
        }),
        W::Raw(line) => sdk::AgentEvent::Raw(sdk::Raw { line }),
    }
}

fn text(t: wit::Text) -> sdk::Text {
    sdk::Text {
        text: t.text,
        message_id: t.message_id,
    }
}

fn tool_kind(kind: wit::ToolKind) -> sdk::ToolKind {
    match kind {
        wit::ToolKind::Shell => sdk::ToolKind::Shell,
        wit::ToolKind::Read => sdk::ToolKind::Read,
        wit::ToolKind::Edit => sdk::ToolKind::Edit,
        wit::ToolKind::Write => sdk::ToolKind::Write,
        wit::ToolKind::Search => sdk::ToolKind::Search,
        wit::ToolKind::WebSearch => sdk::ToolKind::WebSearch,
        wit::ToolKind::Mcp => sdk::ToolKind::Mcp,
        wit::ToolKind::Subagent => sdk::ToolKind::Subagent,
        wit::ToolKind::Todo => sdk::ToolKind::Todo,
        wit::ToolKind::Other => sdk::ToolKind::Other,
    }
}

fn invalid(plugin: &str, what: &str, payload: &str) -> sdk::AgentEvent {
    tracing::warn!(plugin, "{what}: kept as a raw event");
    sdk::AgentEvent::Raw(sdk::Raw {
        line: format!("{what}: {payload}"),
    })
}
