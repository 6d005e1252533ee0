//! Paddock agent adapter for the OpenAI Codex CLI (`codex exec --json`),
//! built against `@openai/codex` 0.169.0.
//!
//! [`Codex::build_exec`] runs `codex exec --json ... -` with the prompt on
//! stdin; [`CodexParser`] turns its JSONL stdout into normalized events.
//! The README next to this crate documents the command line, the options,
//! the event mapping and how Codex's cumulative usage is converted.

mod errors;
mod exec;
mod parser;
mod wire;

use paddock_sdk::agent::{
    AgentAdapter, AgentInfo, ExecSpec, ParseContext, PluginError, RunSpec, features,
};

pub use exec::OPTION_KEYS;
pub use parser::CodexParser;

/// The Codex CLI adapter.
pub struct Codex;

impl AgentAdapter for Codex {
    type Parser = CodexParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "codex".into(),
            display_name: "Codex CLI".into(),
            version: "0.1.0".into(),
            binaries: vec!["codex".into()],
            // Not `max-turns` (Codex has no such limit), not `partial-text`
            // (it never streams text), not `stdin-steering` (stdin is read
            // to EOF), not `cost` (it reports tokens only).
            features: vec![
                features::RESUME.into(),
                features::THINKING.into(),
                features::SYSTEM_PROMPT.into(),
                features::GATEWAY_OPENAI.into(),
            ],
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        exec::build(spec)
    }

    fn parser(context: ParseContext) -> CodexParser {
        CodexParser::new(context)
    }
}

paddock_sdk::export_agent!(Codex);
