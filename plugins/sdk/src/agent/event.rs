//! The normalized agent event stream and its JSON form.
//!
//! These types are the contract: the host's HTTP API, `paddock plugin parse`
//! and every adapter print exactly this JSON, one object per event, with
//! `"type"` in snake_case. Optional fields are omitted when absent.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One normalized event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The CLI reported its session; again whenever the id changes (the
    /// latest one wins).
    RunStarted(RunStarted),
    /// A piece of a message's text, where the CLI streams partial text.
    TextDelta(TextDelta),
    /// The authoritative full text of a message.
    Text(Text),
    /// The model's reasoning, where the CLI shows it.
    Thinking(Text),
    ToolUse(ToolUse),
    ToolResult(ToolResult),
    FileChange(FileChange),
    Todos(Todos),
    Usage(Usage),
    Result(RunResult),
    Error(AgentError),
    /// A line the adapter did not understand, ANSI escapes stripped.
    Raw(Raw),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStarted {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextDelta {
    pub message_id: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// What a tool does, so a platform can render any CLI's tools alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Shell,
    Read,
    Edit,
    Write,
    Search,
    WebSearch,
    Mcp,
    Subagent,
    Todo,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUse {
    /// Never empty: a tool call without an id stays a [`Raw`] event.
    pub id: String,
    pub name: String,
    pub kind: ToolKind,
    pub input: Json,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub id: String,
    pub output: String,
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    Add,
    Modify,
    Delete,
    Rename,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    pub kind: FileChangeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The path before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TodoStatus {
    Pending,
    InProgress,
    Completed,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TodoItem {
    pub text: String,
    pub status: TodoStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Todos {
    pub items: Vec<TodoItem>,
}

/// Token use, additive: the sum of every `usage` of a run is the run's total.
/// `input_tokens` never includes cache reads or writes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// True when every counter is zero and no cost is reported: such an
    /// event adds nothing and adapters leave it out.
    pub fn is_empty(&self) -> bool {
        self.input_tokens == 0
            && self.output_tokens == 0
            && self.cache_read_tokens == 0
            && self.cache_write_tokens == 0
            && self.reasoning_tokens.unwrap_or(0) == 0
            && self.cost_usd.unwrap_or(0.0) == 0.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    Success,
    Error,
    Cancelled,
    Interrupted,
}

/// The end of one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub status: ResultStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Auth,
    RateLimit,
    Overloaded,
    ContextLength,
    MaxTurns,
    Budget,
    Api,
    Timeout,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Raw {
    pub line: String,
}

/// A JSON value kept as its text: adapters copy a tool's input through
/// without building a tree, and the JSON output embeds it unchanged.
#[derive(Debug, Clone)]
pub struct Json(Box<RawValue>);

impl Json {
    /// Validates `text` as JSON.
    pub fn from_string(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Json)
    }

    /// Copies an already-validated borrowed value.
    pub fn from_raw(raw: &RawValue) -> Self {
        Json(raw.to_owned())
    }

    /// Serializes `value`.
    pub fn from_value<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::value::to_raw_value(value) {
            Ok(raw) => Json(raw),
            // Serializing plain data cannot fail; keep a valid value anyway.
            Err(_) => Json::null(),
        }
    }

    pub fn null() -> Self {
        Json(RawValue::NULL.to_owned())
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text, without copying it.
    pub fn into_string(self) -> String {
        Box::<str>::from(self.0).into_string()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `Value`: a `RawValue` cannot be read from inside an
        // internally tagged enum, which buffers its content first.
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Json::from_value(&value))
    }
}

impl AgentEvent {
    /// The snake_case `"type"` of the event's JSON form.
    pub fn type_name(&self) -> &'static str {
        match self {
            AgentEvent::RunStarted(_) => "run_started",
            AgentEvent::TextDelta(_) => "text_delta",
            AgentEvent::Text(_) => "text",
            AgentEvent::Thinking(_) => "thinking",
            AgentEvent::ToolUse(_) => "tool_use",
            AgentEvent::ToolResult(_) => "tool_result",
            AgentEvent::FileChange(_) => "file_change",
            AgentEvent::Todos(_) => "todos",
            AgentEvent::Usage(_) => "usage",
            AgentEvent::Result(_) => "result",
            AgentEvent::Error(_) => "error",
            AgentEvent::Raw(_) => "raw",
        }
    }

    /// A `raw` event for a line nobody understood: lossily decoded and with
    /// ANSI escapes and other control characters removed.
    pub fn raw(line: &[u8]) -> Self {
        AgentEvent::Raw(Raw {
            line: crate::agent::ansi::clean(line),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_form_uses_snake_case_type_and_omits_absent_fields() {
        let event = AgentEvent::ToolUse(ToolUse {
            id: "t1".into(),
            name: "Bash".into(),
            kind: ToolKind::WebSearch,
            input: Json::from_string(r#"{"command":"ls"}"#.into()).unwrap(),
            parent_id: None,
        });
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"tool_use","id":"t1","name":"Bash","kind":"web_search","input":{"command":"ls"}}"#
        );
        let back: AgentEvent =
            serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn invalid_tool_input_is_refused() {
        assert!(Json::from_string("{not json".into()).is_err());
    }
}
