//! Paddock agent adapter for Anthropic's Claude Code CLI (`claude`), built
//! against 2.1.330. See README.md for the command line, the options and the
//! event mapping.

mod errors;
mod exec;
mod parser;
mod tools;
mod wire;

use paddock_sdk::agent::{
    AgentAdapter, AgentInfo, ExecSpec, InputKind, ParseContext, PluginError, RunSpec, features,
};

pub use exec::OPTIONS;
pub use parser::ClaudeParser;

/// The Claude Code adapter.
pub struct ClaudeCode;

impl AgentAdapter for ClaudeCode {
    type Parser = ClaudeParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "claude-code".into(),
            display_name: "Claude Code".into(),
            version: "0.1.0".into(),
            binaries: vec!["claude".into()],
            features: [
                features::RESUME,
                features::STDIN_STEERING,
                features::PARTIAL_TEXT,
                features::THINKING,
                features::SUB_AGENTS,
                features::COST,
                features::MAX_TURNS,
                features::SYSTEM_PROMPT,
                features::GATEWAY_ANTHROPIC,
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        exec::build(spec)
    }

    /// Works when the run was started with option `steering=true`
    /// (`--input-format stream-json`, stdin kept open).
    fn encode_input(kind: InputKind, text: &str) -> Option<String> {
        Some(match kind {
            InputKind::Message => exec::user_message(text),
            InputKind::Interrupt => exec::interrupt_request(),
        })
    }

    fn parser(context: ParseContext) -> ClaudeParser {
        ClaudeParser::new(context)
    }
}

paddock_sdk::export_agent!(ClaudeCode);
