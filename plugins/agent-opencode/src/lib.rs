//! Paddock agent adapter for the OpenCode CLI (`opencode run --format json`).
//!
//! See the crate's README for the command line, the options, the event
//! mapping and how usage is counted.

mod errors;
mod exec;
mod parser;
mod tools;
mod wire;

use paddock_sdk::agent::{
    AgentAdapter, AgentInfo, ExecSpec, ParseContext, PluginError, RunSpec, features,
};

pub use exec::{OPTIONS, SYSTEM_PROMPT_FILE};
pub use parser::OpenCodeParser;

/// The OpenCode adapter.
pub struct OpenCode;

impl AgentAdapter for OpenCode {
    type Parser = OpenCodeParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "opencode".into(),
            display_name: "OpenCode".into(),
            version: "0.1.0".into(),
            binaries: vec![exec::BINARY.into()],
            features: [
                features::RESUME,
                features::THINKING,
                features::COST,
                features::MAX_TURNS,
                features::SYSTEM_PROMPT,
                // Its default provider first: a run whose model names no
                // provider goes to Anthropic.
                features::GATEWAY_ANTHROPIC,
                features::GATEWAY_OPENAI,
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        exec::build(spec)
    }

    // `opencode run` reads its whole stdin before it starts: it cannot be
    // steered, so `encode_input` keeps the default (None).

    fn parser(context: ParseContext) -> OpenCodeParser {
        OpenCodeParser::new(context)
    }
}

paddock_sdk::export_agent!(OpenCode);
