//! What goes into an adapter (a run spec) and what comes out (an exec spec).
//!
//! The JSON forms are what `paddock plugin build-exec` reads and prints and
//! what the host's exec API accepts as an agent run's `run`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an adapter drives and can do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    pub display_name: String,
    pub version: String,
    pub binaries: Vec<String>,
    /// See [`features`] for the well-known values.
    pub features: Vec<String>,
}

/// Well-known values of [`AgentInfo::features`].
pub mod features {
    /// Continues an earlier agent session (`run-spec.resume`).
    pub const RESUME: &str = "resume";
    /// `encode-input` steers the CLI while it runs.
    pub const STDIN_STEERING: &str = "stdin-steering";
    /// Emits `text_delta`.
    pub const PARTIAL_TEXT: &str = "partial-text";
    pub const THINKING: &str = "thinking";
    pub const SUB_AGENTS: &str = "sub-agents";
    /// Reports cost in USD.
    pub const COST: &str = "cost";
    pub const MAX_TURNS: &str = "max-turns";
    pub const SYSTEM_PROMPT: &str = "system-prompt";
    /// The CLI can be pointed at a gateway speaking the Anthropic Messages
    /// API (`run-spec.gateway`); the host then hands it its built-in
    /// gateway's Anthropic base URL.
    pub const GATEWAY_ANTHROPIC: &str = "gateway:anthropic";
    /// The same for the OpenAI API (Responses or Chat Completions).
    pub const GATEWAY_OPENAI: &str = "gateway:openai";
}

/// Where the CLI sends its LLM requests: the session's gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    pub base_url: String,
    /// The environment variable that holds the session's key. The key is put
    /// there by the host; adapters only name the variable to the CLI.
    pub token_env: String,
}

/// Token totals in the one convention (cache excluded from input).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageTotals {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl UsageTotals {
    /// Adds one `usage` event (events are increments: their sum is the total).
    pub fn add(&mut self, usage: &crate::agent::Usage) {
        self.input_tokens += usage.input_tokens;
        self.output_tokens += usage.output_tokens;
        self.cache_read_tokens += usage.cache_read_tokens;
        self.cache_write_tokens += usage.cache_write_tokens;
        self.reasoning_tokens += usage.reasoning_tokens.unwrap_or(0);
        if let Some(cost) = usage.cost_usd {
            *self.cost_usd.get_or_insert(0.0) += cost;
        }
    }
}

/// What the platform asked an agent to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The agent's own session id of an earlier run to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt_append: Option<String>,
    /// The directory the agent works in, inside the sandbox.
    #[serde(default = "default_workdir")]
    pub workdir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Gateway>,
    /// Adapter-specific options; each adapter documents its keys and refuses
    /// unknown ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

fn default_workdir() -> String {
    ".".to_owned()
}

/// A file the host writes (relative to the workdir) before starting the exec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecFile {
    pub path: String,
    pub contents: String,
}

/// How to start the CLI.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Variables set at spawn from another variable of the exec's
    /// environment: key = the variable the CLI reads, value = the variable
    /// to copy (usually [`Gateway::token_env`]), so a CLI gets the session's
    /// gateway key under its own name without the adapter ever seeing it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_from: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    #[serde(default)]
    pub keep_stdin_open: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ExecFile>,
}

/// What a parser knows that is not in the CLI's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseContext {
    /// The agent session's totals before this run, for CLIs whose counters
    /// are cumulative over the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_usage: Option<UsageTotals>,
}

/// How the CLI's process ended, as the host saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessEnd {
    Exited(i32),
    Signaled(i32),
    /// The host cancelled the exec.
    Cancelled,
    TimedOut,
    /// The sandbox or its daemon went away.
    Lost,
}

/// How to steer a running CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// A follow-up user message.
    Message,
    /// Stop the current turn.
    Interrupt,
}

/// Why an adapter refused a call (shared by every plugin kind).
pub use crate::error::PluginError;
