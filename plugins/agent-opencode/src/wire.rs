//! The shape of `opencode run --format json` lines, read in one borrowing
//! pass. Only the fields the adapter uses are named; serde skips the rest
//! (the `time` objects, `metadata.output` of bash, provider metadata, …).
//!
//! Fields whose type differs between tools (plugin and MCP tools put
//! anything in `metadata`) are read as [`Loose`], so one odd value does not
//! turn a whole line into `raw`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One stdout line: `{"type", "timestamp", "sessionID", "part" | "error"}`.
#[derive(Debug, Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(rename = "sessionID", default, borrow)]
    pub session_id: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub part: Option<Part<'a>>,
    #[serde(default, borrow)]
    pub error: Option<Box<ErrorBody<'a>>>,
    /// `done` lines of newer versions: permissions auto-rejected in the turn.
    #[serde(default, borrow)]
    pub rejected: Option<Vec<Loose<'a>>>,
}

/// A message part: step-start, text, reasoning, tool or step-finish.
#[derive(Debug, Deserialize)]
pub struct Part<'a> {
    #[serde(default, borrow)]
    pub id: Option<CowStr<'a>>,
    #[serde(rename = "messageID", default, borrow)]
    pub message_id: Option<CowStr<'a>>,
    /// text and reasoning parts.
    #[serde(default, borrow)]
    pub text: Option<CowStr<'a>>,
    /// tool parts.
    #[serde(default, borrow)]
    pub tool: Option<CowStr<'a>>,
    #[serde(rename = "callID", default, borrow)]
    pub call_id: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub state: Option<Box<ToolState<'a>>>,
    /// step-finish parts.
    #[serde(default, borrow)]
    pub reason: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub tokens: Option<Box<Tokens<'a>>>,
    #[serde(default, borrow)]
    pub cost: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolState<'a> {
    #[serde(default, borrow)]
    pub status: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub input: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub output: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub error: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub metadata: Option<Box<Metadata<'a>>>,
}

/// The union of the `state.metadata` fields the adapter reads: bash
/// `{exit}`, write `{filepath, exists}`, edit `{diff, filediff}`,
/// apply_patch `{files}`.
#[derive(Debug, Default, Deserialize)]
pub struct Metadata<'a> {
    #[serde(default, borrow)]
    pub exit: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub filepath: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub exists: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub diff: Option<Loose<'a>>,
    /// Read on demand (edit only): `{file, patch}`.
    #[serde(default, borrow)]
    pub filediff: Option<&'a RawValue>,
    /// Read on demand (apply_patch only): `[{filePath, type, patch, movePath}]`.
    #[serde(default, borrow)]
    pub files: Option<&'a RawValue>,
}

/// `step-finish` token counts, per step. `input` excludes the cache,
/// `output` excludes `reasoning`.
#[derive(Debug, Default, Deserialize)]
pub struct Tokens<'a> {
    #[serde(default, borrow)]
    pub input: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub output: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub reasoning: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub cache: Option<Cache<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Cache<'a> {
    #[serde(default, borrow)]
    pub read: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub write: Option<Loose<'a>>,
}

/// A session error: `{name, data: {message, statusCode, isRetryable,
/// responseBody, …}}` (OpenCode's `NamedError` objects).
#[derive(Debug, Default, Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(default, borrow)]
    pub name: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub message: Option<Loose<'a>>,
    #[serde(default, borrow)]
    pub data: Option<ErrorData<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorData<'a> {
    #[serde(default, borrow)]
    pub message: Option<Loose<'a>>,
    #[serde(rename = "statusCode", default, borrow)]
    pub status_code: Option<Loose<'a>>,
    #[serde(rename = "isRetryable", default, borrow)]
    pub is_retryable: Option<Loose<'a>>,
    #[serde(rename = "responseBody", default, borrow)]
    pub response_body: Option<Loose<'a>>,
}

/// `edit` metadata `filediff`.
#[derive(Debug, Deserialize)]
pub struct FileDiff<'a> {
    #[serde(default, borrow)]
    pub file: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub patch: Option<CowStr<'a>>,
}

/// One file of `apply_patch` metadata `files`.
#[derive(Debug, Deserialize)]
pub struct PatchFile<'a> {
    #[serde(rename = "filePath", default, borrow)]
    pub file_path: Option<CowStr<'a>>,
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub patch: Option<CowStr<'a>>,
    #[serde(rename = "movePath", default, borrow)]
    pub move_path: Option<CowStr<'a>>,
}

/// The input of `write` / `edit`: the path, and a new file's content.
#[derive(Debug, Deserialize)]
pub struct FileInput<'a> {
    #[serde(rename = "filePath", default, borrow)]
    pub file_path: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub content: Option<CowStr<'a>>,
}

/// The input of `todowrite`: the whole list, every time.
#[derive(Debug, Deserialize)]
pub struct TodoInput<'a> {
    #[serde(default, borrow)]
    pub todos: Option<Vec<TodoEntry<'a>>>,
}

#[derive(Debug, Deserialize)]
pub struct TodoEntry<'a> {
    #[serde(default, borrow)]
    pub content: Option<CowStr<'a>>,
    #[serde(default, borrow)]
    pub status: Option<CowStr<'a>>,
}

/// A string that borrows from the line when it has no escapes. serde's own
/// `Cow<str>` borrows only as a struct field's direct type: inside an
/// `Option` it always allocates.
#[derive(Debug, Clone, PartialEq)]
pub struct CowStr<'a>(pub Cow<'a, str>);

impl<'a> CowStr<'a> {
    pub fn into_owned(self) -> String {
        self.0.into_owned()
    }
}

impl std::ops::Deref for CowStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CowStrVisitor)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = CowStr<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(CowStr(Cow::Owned(v)))
    }
}

/// A JSON value of a field whose type is not guaranteed: strings, numbers
/// and booleans are kept, anything else (objects, arrays, null) is skipped
/// without failing the line.
#[derive(Debug, Clone, PartialEq)]
pub enum Loose<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl<'a> Loose<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::Int(n) => Some(n),
            Loose::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(f as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Loose::Int(n) => Some(n as f64),
            Loose::Float(f) if f.is_finite() => Some(f),
            _ => None,
        }
    }

    /// A token count: non-negative whole numbers; anything else counts 0.
    pub fn count(&self) -> u64 {
        match *self {
            Loose::Int(n) => u64::try_from(n).unwrap_or(0),
            Loose::Float(f) if f.is_finite() && f > 0.0 => f.round() as u64,
            _ => 0,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Loose::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn into_string(self) -> Option<String> {
        match self {
            Loose::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }
}

/// The count of an optional field ([`Loose::count`]; absent counts 0).
pub fn count(value: &Option<Loose<'_>>) -> u64 {
    value.as_ref().map_or(0, Loose::count)
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Loose::Str(Cow::Owned(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Loose::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Loose::Float(v as f64), Loose::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(v))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Loose::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_values_keep_scalars_and_skip_structures() {
        let v: Vec<Loose> =
            serde_json::from_str(r#"["a\"b", 3, -2, 1.5, true, null, {"x": [1]}, [2]]"#).unwrap();
        assert_eq!(
            v,
            vec![
                Loose::Str("a\"b".into()),
                Loose::Int(3),
                Loose::Int(-2),
                Loose::Float(1.5),
                Loose::Bool(true),
                Loose::Other,
                Loose::Other,
                Loose::Other,
            ]
        );
        assert_eq!(v[1].count(), 3);
        assert_eq!(v[2].count(), 0, "negative counts are not counted");
        assert_eq!(v[0].count(), 0);
    }

    #[test]
    fn optional_strings_borrow_unless_escaped() {
        #[derive(Deserialize)]
        struct T<'a> {
            #[serde(borrow)]
            plain: Option<CowStr<'a>>,
            #[serde(borrow)]
            escaped: Option<CowStr<'a>>,
        }
        let t: T = serde_json::from_str(r#"{"plain":"abc","escaped":"a\nb"}"#).unwrap();
        assert!(matches!(t.plain.unwrap().0, Cow::Borrowed("abc")));
        assert!(matches!(t.escaped.unwrap().0, Cow::Owned(s) if s == "a\nb"));
    }
}
