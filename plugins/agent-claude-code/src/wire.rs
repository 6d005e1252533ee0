//! The parts of Claude Code's stream-json lines the adapter reads.
//!
//! One struct covers every line type: serde matches each key once and skips
//! the rest, so a line is parsed in a single borrowing pass. Fields whose
//! shape differs between line types (`message` is an object on `assistant`
//! lines and a string on `system/permission_denied`, `error` is a string or
//! an object) are read leniently: a shape we do not expect becomes `None`
//! instead of failing the whole line.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One stdout line.
#[derive(Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub subtype: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub parent_tool_use_id: Option<Cow<'a, str>>,

    // system/init
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub cwd: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "seq_or_none")]
    pub tools: Option<Vec<MaybeStr>>,

    // assistant / user
    #[serde(borrow, default, deserialize_with = "map_or_none")]
    pub message: Option<Message<'a>>,
    #[serde(default, deserialize_with = "bool_or_none")]
    pub is_api_error_message: Option<bool>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub api_error_status: Option<u64>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub api_error_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub error: Option<Cow<'a, str>>,
    /// The structured side channel of a tool result; read only for the few
    /// tools whose result says more than its text (Write, Edit, TaskCreate).
    #[serde(borrow, default)]
    pub tool_use_result: Option<&'a RawValue>,

    // result
    #[serde(default, deserialize_with = "bool_or_none")]
    pub is_error: Option<bool>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub result: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub num_turns: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "f64_or_none")]
    pub total_cost_usd: Option<f64>,
    #[serde(rename = "modelUsage", default, deserialize_with = "map_or_none")]
    pub model_usage: Option<BTreeMap<String, ModelUsage>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub terminal_reason: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "seq_or_none")]
    pub errors: Option<Vec<MaybeStr>>,

    // stream_event
    #[serde(borrow, default, deserialize_with = "map_or_none")]
    pub event: Option<StreamEvent<'a>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub api_message_id: Option<Cow<'a, str>>,
}

/// `message` of an `assistant` or `user` line.
#[derive(Deserialize)]
pub struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<Content<'a>>,
    #[serde(default, deserialize_with = "map_or_none")]
    pub usage: Option<TokenUsage>,
}

/// Message content: a plain string (replayed input) or content blocks.
pub enum Content<'a> {
    Text(Cow<'a, str>),
    Blocks(Vec<Block<'a>>),
}

/// One content block; which fields are set depends on `kind`.
#[derive(Deserialize)]
pub struct Block<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub tool_use_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub content: Option<ToolContent<'a>>,
    #[serde(default, deserialize_with = "bool_or_none")]
    pub is_error: Option<bool>,
}

/// A tool result's content: a string, or blocks whose text parts are joined
/// with newlines (images and other non-text parts are left out).
pub struct ToolContent<'a>(pub Cow<'a, str>);

#[derive(Deserialize)]
struct ToolContentPart<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    text: Option<Cow<'a, str>>,
}

/// Anthropic API usage as Claude Code forwards it (per API message, and in
/// `message_delta` stream events). `input_tokens` already excludes the cache.
#[derive(Deserialize, Default)]
pub struct TokenUsage {
    #[serde(default, deserialize_with = "u64_or_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cache_creation_input_tokens: Option<u64>,
}

/// One model's entry of a result's `modelUsage`: true totals of this process.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    #[serde(default, deserialize_with = "u64_or_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub thinking_tokens: Option<u64>,
    #[serde(rename = "costUSD", default, deserialize_with = "f64_or_none")]
    pub cost_usd: Option<f64>,
}

/// The Anthropic SSE event of a `stream_event` line.
#[derive(Deserialize)]
pub struct StreamEvent<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "map_or_none")]
    pub delta: Option<Delta<'a>>,
    #[serde(default, deserialize_with = "map_or_none")]
    pub usage: Option<TokenUsage>,
    #[serde(borrow, default, deserialize_with = "map_or_none")]
    pub message: Option<StartMessage<'a>>,
}

#[derive(Deserialize)]
pub struct Delta<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct StartMessage<'a> {
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub id: Option<Cow<'a, str>>,
}

/// A string element of a list whose other elements are ignored.
pub struct MaybeStr(pub Option<String>);

impl<'de> Deserialize<'de> for MaybeStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(MaybeStr(str_or_none(d)?.map(Cow::into_owned)))
    }
}

impl MaybeStr {
    pub fn collect(list: Option<Vec<MaybeStr>>) -> Option<Vec<String>> {
        list.map(|l| l.into_iter().filter_map(|s| s.0).collect())
    }
}

// ---- tool_use_result side channels, parsed only for the tools that need them

/// Write / Edit / MultiEdit results: `{type: "create" | "update", filePath,
/// content, structuredPatch}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileResult<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub file_path: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "seq_or_none")]
    pub structured_patch: Option<Vec<Hunk>>,
    #[serde(default, deserialize_with = "map_or_none")]
    pub task: Option<TaskRef>,
}

/// One hunk of a unified diff; `lines` carry their ` `/`-`/`+` prefix.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hunk {
    #[serde(default)]
    pub old_start: u64,
    #[serde(default)]
    pub old_lines: u64,
    #[serde(default)]
    pub new_start: u64,
    #[serde(default)]
    pub new_lines: u64,
    #[serde(default, deserialize_with = "seq_or_none")]
    pub lines: Option<Vec<MaybeStr>>,
}

/// TaskCreate's result: `{task: {id, subject}}`.
#[derive(Deserialize)]
pub struct TaskRef {
    #[serde(default, deserialize_with = "id_or_none")]
    pub id: Option<String>,
}

/// The input fields of the tools whose calls also yield a `file_change` or
/// `todos` (parsed from the tool's raw input only for those tools).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolInput {
    #[serde(
        default,
        alias = "file_path",
        alias = "notebook_path",
        deserialize_with = "owned_str_or_none"
    )]
    pub path: Option<String>,
    #[serde(default, deserialize_with = "seq_or_none")]
    pub todos: Option<Vec<TodoInput>>,
    #[serde(default, deserialize_with = "owned_str_or_none")]
    pub subject: Option<String>,
    #[serde(default, deserialize_with = "id_or_none")]
    pub task_id: Option<String>,
    #[serde(default, deserialize_with = "owned_str_or_none")]
    pub status: Option<String>,
}

/// One TodoWrite item: `{content, status, activeForm}`.
#[derive(Deserialize)]
pub struct TodoInput {
    #[serde(default, deserialize_with = "owned_str_or_none")]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "owned_str_or_none")]
    pub status: Option<String>,
}

// ---- custom shapes

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut blocks = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(block) = seq.next_element::<Block<'a>>()? {
                    blocks.push(block);
                }
                Ok(Content::Blocks(blocks))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ToolContent<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ToolContent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ToolContent(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ToolContent(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ToolContent(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ToolContent(Cow::Borrowed("")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut text: Option<Cow<'a, str>> = None;
                while let Some(part) = seq.next_element::<ToolContentPart<'a>>()? {
                    let Some(t) = part.text else { continue };
                    if part.kind.as_deref().is_some_and(|k| k != "text") {
                        continue;
                    }
                    text = Some(match text {
                        None => t,
                        Some(prev) => {
                            let mut joined = prev.into_owned();
                            joined.push('\n');
                            joined.push_str(&t);
                            Cow::Owned(joined)
                        }
                    });
                }
                Ok(ToolContent(text.unwrap_or(Cow::Borrowed(""))))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

// ---- lenient field readers: an unexpected shape is `None`, not an error

/// Implements the visitor methods for every JSON shape a lenient reader does
/// not want, consuming the value and returning `Ok(None)`.
macro_rules! none_for {
    (bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (num) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    };
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    };
}

/// A string, borrowed when it has no escapes.
pub fn str_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
        none_for!(bool);
        none_for!(num);
        none_for!(unit);
        none_for!(seq);
        none_for!(map);
    }
    d.deserialize_any(V)
}

fn owned_str_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(str_or_none(d)?.map(Cow::into_owned))
}

/// An id given as a string or a number (TaskUpdate's `taskId` is either).
fn id_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an id")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        none_for!(bool);
        none_for!(unit);
        none_for!(seq);
        none_for!(map);
    }
    d.deserialize_any(V)
}

pub fn u64_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a count")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Whole, non-negative and in range only; `as` would saturate.
            Ok((v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < 1.8e19).then_some(v as u64))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.trim().parse().ok())
        }
        none_for!(bool);
        none_for!(unit);
        none_for!(seq);
        none_for!(map);
    }
    d.deserialize_any(V)
}

pub fn f64_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f64))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(v.is_finite().then_some(v))
        }
        none_for!(bool);
        none_for!(str);
        none_for!(unit);
        none_for!(seq);
        none_for!(map);
    }
    d.deserialize_any(V)
}

pub fn bool_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<bool>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a boolean")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        none_for!(num);
        none_for!(str);
        none_for!(unit);
        none_for!(seq);
        none_for!(map);
    }
    d.deserialize_any(V)
}

/// An object read as `T`; any other shape is `None`.
pub fn map_or_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
        none_for!(bool);
        none_for!(num);
        none_for!(str);
        none_for!(unit);
        none_for!(seq);
    }
    d.deserialize_any(V(PhantomData))
}

/// A list read as `Vec<T>`; any other shape is `None`.
pub fn seq_or_none<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(item) = seq.next_element::<T>()? {
                out.push(item);
            }
            Ok(Some(out))
        }
        none_for!(bool);
        none_for!(num);
        none_for!(str);
        none_for!(unit);
        none_for!(map);
    }
    d.deserialize_any(V(PhantomData))
}
