//! `agent` world: [`Component`] implements the generated `Guest` traits for
//! any [`AgentAdapter`].

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::agent::{self as sdk, AgentAdapter, ParserDriver};

pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "agent",
        pub_export_macro: true,
        export_macro_name: "__export_agent",
        default_bindings_module: "paddock_sdk::glue::agent::bindings",
        runtime_path: "paddock_sdk::glue::wit_bindgen::rt",
    });
}

pub use bindings::__export_agent;

use bindings::exports::paddock::plugin::agent_adapter as wit;
use bindings::paddock::plugin::types as wit_types;

/// The component for adapter `A`.
pub struct Component<A>(PhantomData<A>);

/// One `parser` resource: the adapter's parser behind the SDK's driver.
pub struct ParserResource<A: AgentAdapter>(RefCell<ParserDriver<A::Parser>>);

impl<A: AgentAdapter> wit::Guest for Component<A> {
    type Parser = ParserResource<A>;

    fn info() -> wit::AgentInfo {
        let info = A::info();
        wit::AgentInfo {
            name: info.name,
            display_name: info.display_name,
            version: info.version,
            binaries: info.binaries,
            features: info.features,
        }
    }

    fn build_exec(spec: wit::RunSpec) -> Result<wit::ExecSpec, wit_types::PluginError> {
        let spec = sdk::RunSpec {
            prompt: spec.prompt,
            model: spec.model,
            resume: spec.resume,
            max_turns: spec.max_turns,
            system_prompt_append: spec.system_prompt_append,
            workdir: spec.workdir,
            gateway: spec.gateway.map(|g| sdk::Gateway {
                base_url: g.base_url,
                token_env: g.token_env,
            }),
            options: spec
                .options
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
        };
        A::build_exec(spec)
            .map(|exec| wit::ExecSpec {
                argv: exec.argv,
                env: exec
                    .env
                    .into_iter()
                    .map(|(key, value)| wit_types::Kv { key, value })
                    .collect(),
                env_from: exec
                    .env_from
                    .into_iter()
                    .map(|(key, value)| wit_types::Kv { key, value })
                    .collect(),
                stdin: exec.stdin,
                keep_stdin_open: exec.keep_stdin_open,
                files: exec
                    .files
                    .into_iter()
                    .map(|f| wit::ExecFile {
                        path: f.path,
                        contents: f.contents,
                    })
                    .collect(),
            })
            .map_err(|e| match e {
                sdk::PluginError::InvalidInput(m) => wit_types::PluginError::InvalidInput(m),
                sdk::PluginError::Denied(m) => wit_types::PluginError::Denied(m),
                sdk::PluginError::Unavailable(m) => wit_types::PluginError::Unavailable(m),
                sdk::PluginError::Internal(m) => wit_types::PluginError::Internal(m),
            })
    }

    fn encode_input(kind: wit::InputKind, text: String) -> Option<String> {
        let kind = match kind {
            wit::InputKind::Message => sdk::InputKind::Message,
            wit::InputKind::Interrupt => sdk::InputKind::Interrupt,
        };
        A::encode_input(kind, &text)
    }
}

impl<A: AgentAdapter> wit::GuestParser for ParserResource<A> {
    fn new(context: wit::ParseContext) -> Self {
        let context = sdk::ParseContext {
            previous_usage: context.previous_usage.map(|u| sdk::UsageTotals {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_tokens: u.cache_read_tokens,
                cache_write_tokens: u.cache_write_tokens,
                reasoning_tokens: u.reasoning_tokens,
                cost_usd: u.cost_usd,
            }),
        };
        ParserResource(RefCell::new(ParserDriver::new(A::parser(context))))
    }

    fn feed(&self, chunk: Vec<u8>) -> Vec<wit::AgentEvent> {
        let events = self.0.borrow_mut().feed(&chunk);
        events.into_iter().map(to_wit).collect()
    }

    fn finish(&self, end: wit::ProcessEnd) -> Vec<wit::AgentEvent> {
        let end = match end {
            wit::ProcessEnd::Exited(code) => sdk::ProcessEnd::Exited(code),
            wit::ProcessEnd::Signaled(signal) => sdk::ProcessEnd::Signaled(signal),
            wit::ProcessEnd::Cancelled => sdk::ProcessEnd::Cancelled,
            wit::ProcessEnd::TimedOut => sdk::ProcessEnd::TimedOut,
            wit::ProcessEnd::Lost => sdk::ProcessEnd::Lost,
        };
        let events = self.0.borrow_mut().finish(end);
        events.into_iter().map(to_wit).collect()
    }
}

fn to_wit(event: sdk::AgentEvent) -> wit::AgentEvent {
    use sdk::AgentEvent as E;
    match event {
        E::RunStarted(e) => wit::AgentEvent::RunStarted(wit::RunStarted {
            session_id: e.session_id,
            model: e.model,
            cwd: e.cwd,
            tools: e.tools,
        }),
        E::TextDelta(e) => wit::AgentEvent::TextDelta(wit::TextDelta {
            message_id: e.message_id,
            text: e.text,
        }),
        E::Text(e) => wit::AgentEvent::Text(text(e)),
        E::Thinking(e) => wit::AgentEvent::Thinking(text(e)),
        E::ToolUse(e) => wit::AgentEvent::ToolUse(wit::ToolUse {
            id: e.id,
            name: e.name,
            kind: match e.kind {
                sdk::ToolKind::Shell => wit::ToolKind::Shell,
                sdk::ToolKind::Read => wit::ToolKind::Read,
                sdk::ToolKind::Edit => wit::ToolKind::Edit,
                sdk::ToolKind::Write => wit::ToolKind::Write,
                sdk::ToolKind::Search => wit::ToolKind::Search,
                sdk::ToolKind::WebSearch => wit::ToolKind::WebSearch,
                sdk::ToolKind::Mcp => wit::ToolKind::Mcp,
                sdk::ToolKind::Subagent => wit::ToolKind::Subagent,
                sdk::ToolKind::Todo => wit::ToolKind::Todo,
                sdk::ToolKind::Other => wit::ToolKind::Other,
            },
            input: e.input.into_string(),
            parent_id: e.parent_id,
        }),
        E::ToolResult(e) => wit::AgentEvent::ToolResult(wit::ToolResult {
            id: e.id,
            output: e.output,
            is_error: e.is_error,
            exit_code: e.exit_code,
            parent_id: e.parent_id,
        }),
        E::FileChange(e) => wit::AgentEvent::FileChange(wit::FileChange {
            path: e.path,
            kind: match e.kind {
                sdk::FileChangeKind::Add => wit::FileChangeKind::Add,
                sdk::FileChangeKind::Modify => wit::FileChangeKind::Modify,
                sdk::FileChangeKind::Delete => wit::FileChangeKind::Delete,
                sdk::FileChangeKind::Rename => wit::FileChangeKind::Rename,
            },
            diff: e.diff,
            old_path: e.old_path,
        }),
        E::Todos(e) => wit::AgentEvent::Todos(
            e.items
                .into_iter()
                .map(|item| wit::TodoItem {
                    text: item.text,
                    status: match item.status {
                        sdk::TodoStatus::Pending => wit::TodoStatus::Pending,
                        sdk::TodoStatus::InProgress => wit::TodoStatus::InProgress,
                        sdk::TodoStatus::Completed => wit::TodoStatus::Completed,
                        sdk::TodoStatus::Cancelled => wit::TodoStatus::Cancelled,
                    },
                })
                .collect(),
        ),
        E::Usage(u) => wit::AgentEvent::Usage(wit::Usage {
            message_id: u.message_id,
            model: u.model,
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
            cost_usd: u.cost_usd,
        }),
        E::Result(r) => wit::AgentEvent::Result(wit::RunResult {
            status: match r.status {
                sdk::ResultStatus::Success => wit::ResultStatus::Success,
                sdk::ResultStatus::Error => wit::ResultStatus::Error,
                sdk::ResultStatus::Cancelled => wit::ResultStatus::Cancelled,
                sdk::ResultStatus::Interrupted => wit::ResultStatus::Interrupted,
            },
            text: r.text,
            session_id: r.session_id,
            turns: r.turns,
            duration_ms: r.duration_ms,
            cost_usd: r.cost_usd,
        }),
        E::Error(e) => wit::AgentEvent::Error(wit::AgentError {
            kind: match e.kind {
                sdk::ErrorKind::Auth => wit::ErrorKind::Auth,
                sdk::ErrorKind::RateLimit => wit::ErrorKind::RateLimit,
                sdk::ErrorKind::Overloaded => wit::ErrorKind::Overloaded,
                sdk::ErrorKind::ContextLength => wit::ErrorKind::ContextLength,
                sdk::ErrorKind::MaxTurns => wit::ErrorKind::MaxTurns,
                sdk::ErrorKind::Budget => wit::ErrorKind::Budget,
                sdk::ErrorKind::Api => wit::ErrorKind::Api,
                sdk::ErrorKind::Timeout => wit::ErrorKind::Timeout,
                sdk::ErrorKind::Other => wit::ErrorKind::Other,
            },
            message: e.message,
            retryable: e.retryable,
        }),
        E::Raw(r) => wit::AgentEvent::Raw(r.line),
    }
}

fn text(t: sdk::Text) -> wit::Text {
    wit::Text {
        text: t.text,
        message_id: t.message_id,
    }
}
