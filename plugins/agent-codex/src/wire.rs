//! The stdout format of `codex exec --json` (Codex CLI 0.169.0), as borrowing
//! serde types: one pass per line, strings borrowed from the line unless they
//! contain escapes, tool inputs kept as raw JSON text.
//!
//! Only the fields the adapter uses are declared; serde skips the rest.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A JSON string, borrowed from the line when it has no escapes.
///
/// A newtype because serde only borrows a `Cow<str>` field marked
/// `#[serde(borrow)]`: inside an `Option` it would always allocate.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line: `{"type": "...", ...}`. The union of every top-level event's
/// fields; which ones are set depends on `kind`.
#[derive(Debug, Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// `thread.started`.
    #[serde(borrow, default)]
    pub thread_id: Option<Str<'a>>,
    /// `item.started` / `item.updated` / `item.completed`.
    #[serde(borrow, default)]
    pub item: Option<Item<'a>>,
    /// `turn.completed`.
    #[serde(default)]
    pub usage: Option<CliUsage>,
    /// `turn.failed`.
    #[serde(borrow, default)]
    pub error: Option<Message<'a>>,
    /// `error`.
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
}

/// `{"message": "..."}`.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    #[serde(borrow, default)]
    pub message: Option<Str<'a>>,
}

/// `turn.completed.usage`: cumulative for the whole thread (earlier resumed
/// runs included), `input_tokens` including the cached ones (OpenAI's
/// convention), `output_tokens` including the reasoning ones.
#[derive(Debug, Default, Deserialize)]
pub struct CliUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub reasoning_output_tokens: Option<u64>,
}

/// One entry of a `file_change` item's `changes`.
#[derive(Debug, Deserialize, Serialize)]
pub struct Change<'a> {
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Str<'a>>,
    /// `add`, `update` or `delete`.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str<'a>>,
    /// Not written by 0.169.0; newer versions add the patch text.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<Str<'a>>,
    /// The destination of a move, where a version reports it.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub move_path: Option<Str<'a>>,
}

/// One entry of a `todo_list` item.
#[derive(Debug, Deserialize)]
pub struct TodoIn<'a> {
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
    #[serde(default)]
    pub completed: Option<bool>,
    /// Not written by 0.169.0 (it only has `completed`); accepted if a
    /// version adds it.
    #[serde(borrow, default)]
    pub status: Option<Str<'a>>,
}

/// `mcp_tool_call.result`.
#[derive(Debug, Deserialize)]
pub struct McpResult<'a> {
    #[serde(borrow, default)]
    pub content: Option<Vec<McpBlock<'a>>>,
    #[serde(borrow, default)]
    pub structured_content: Option<&'a RawValue>,
}

/// One MCP content block; only text blocks carry text.
#[derive(Debug, Deserialize)]
pub struct McpBlock<'a> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub text: Option<Str<'a>>,
}

/// A thread item (`item` of the `item.*` events): the union of every item
/// type's fields.
///
/// Deserialized by hand because a `web_search` item has the key `id` twice
/// (`"id":"item_0"`, then the API's `"id":"ws_..."`), which derived code
/// refuses as a duplicate field. The first `id` is the item id that pairs
/// `item.started` with `item.completed`; later ones are ignored.
#[derive(Debug, Default)]
pub struct Item<'a> {
    pub id: Option<Str<'a>>,
    pub kind: Option<Str<'a>>,
    /// `agent_message`, `reasoning`.
    pub text: Option<Str<'a>>,
    /// `command_execution`.
    pub command: Option<Str<'a>>,
    pub aggregated_output: Option<Str<'a>>,
    pub exit_code: Option<i64>,
    /// `command_execution`, `file_change`, `mcp_tool_call`, `collab_tool_call`.
    pub status: Option<Str<'a>>,
    /// `file_change`.
    pub changes: Option<Vec<Change<'a>>>,
    /// `web_search`.
    pub query: Option<Str<'a>>,
    pub action: Option<&'a RawValue>,
    /// `mcp_tool_call`; `tool` is also `collab_tool_call`'s tool.
    pub server: Option<Str<'a>>,
    pub tool: Option<Str<'a>>,
    pub arguments: Option<&'a RawValue>,
    pub result: Option<McpResult<'a>>,
    pub error: Option<Message<'a>>,
    /// `todo_list`.
    pub items: Option<Vec<TodoIn<'a>>>,
    /// `error` items (non-fatal warnings).
    pub message: Option<Str<'a>>,
    /// `collab_tool_call`.
    pub prompt: Option<Str<'a>>,
    pub sender_thread_id: Option<Str<'a>>,
    pub receiver_thread_ids: Option<&'a RawValue>,
    pub agents_states: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Id,
    Type,
    Text,
    Command,
    AggregatedOutput,
    ExitCode,
    Status,
    Changes,
    Query,
    Action,
    Server,
    Tool,
    Arguments,
    Result,
    Error,
    Items,
    Message,
    Prompt,
    SenderThreadId,
    ReceiverThreadIds,
    AgentsStates,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Codex thread item object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Item<'de>, M::Error> {
        let mut item = Item::default();
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Id => {
                    let id: Option<Str<'de>> = map.next_value()?;
                    if item.id.is_none() {
                        item.id = id;
                    }
                }
                Field::Type => item.kind = map.next_value()?,
                Field::Text => item.text = map.next_value()?,
                Field::Command => item.command = map.next_value()?,
                Field::AggregatedOutput => item.aggregated_output = map.next_value()?,
                Field::ExitCode => item.exit_code = map.next_value()?,
                Field::Status => item.status = map.next_value()?,
                Field::Changes => item.changes = map.next_value()?,
                Field::Query => item.query = map.next_value()?,
                Field::Action => item.action = map.next_value()?,
                Field::Server => item.server = map.next_value()?,
                Field::Tool => item.tool = map.next_value()?,
                Field::Arguments => item.arguments = map.next_value()?,
                Field::Result => item.result = map.next_value()?,
                Field::Error => item.error = map.next_value()?,
                Field::Items => item.items = map.next_value()?,
                Field::Message => item.message = map.next_value()?,
                Field::Prompt => item.prompt = map.next_value()?,
                Field::SenderThreadId => item.sender_thread_id = map.next_value()?,
                Field::ReceiverThreadIds => item.receiver_thread_ids = map.next_value()?,
                Field::AgentsStates => item.agents_states = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(item)
    }

    fn visit_seq<S: de::SeqAccess<'de>>(self, _: S) -> Result<Item<'de>, S::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let line = br#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"plain"}}"#;
        let parsed: Line = serde_json::from_slice(line).unwrap();
        let item = parsed.item.unwrap();
        assert!(matches!(item.text.unwrap().0, Cow::Borrowed("plain")));
        assert!(matches!(item.id.unwrap().0, Cow::Borrowed("item_1")));
    }

    #[test]
    fn web_search_keeps_the_first_of_its_two_ids() {
        let line = br#"{"type":"item.started","item":{"id":"item_0","type":"web_search","id":"ws_abc","query":"","action":{"type":"other"}}}"#;
        let parsed: Line = serde_json::from_slice(line).unwrap();
        assert_eq!(parsed.item.unwrap().id.unwrap().as_str(), "item_0");
    }
}
