//! Paddock agent adapter for Google's Gemini CLI (`gemini`), built against
//! `@google/gemini-cli` 0.61.0 and its `--output-format stream-json`.
//!
//! - [`exec`]: the command line, environment and settings file of a run;
//!   the prompt goes on stdin.
//! - [`parser`]: stream-json lines → normalized events.
//!
//! The crate README documents the mapping, the options and the gaps.

pub mod errors;
pub mod exec;
pub mod parser;
pub mod tools;
mod wire;

use paddock_sdk::agent::{
    AgentAdapter, AgentInfo, ExecSpec, ParseContext, PluginError, RunSpec, features,
};

pub use parser::GeminiParser;

/// The Gemini CLI adapter.
pub struct Gemini;

impl AgentAdapter for Gemini {
    type Parser = GeminiParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "gemini".into(),
            display_name: "Gemini CLI".into(),
            version: "0.1.0".into(),
            binaries: vec!["gemini".into()],
            features: [
                features::RESUME,
                features::PARTIAL_TEXT,
                features::MAX_TURNS,
                features::SYSTEM_PROMPT,
            ]
            .map(String::from)
            .to_vec(),
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        exec::build(spec)
    }

    fn parser(context: ParseContext) -> GeminiParser {
        GeminiParser::new(context)
    }
}

paddock_sdk::export_agent!(Gemini);
