//! Gemini CLI's `--output-format stream-json` lines, as borrowed serde types.
//!
//! Every line is one flat JSON object whose `type` says which fields it has;
//! [`Line`] holds the union of the fields the adapter reads, so each line is
//! deserialized once, borrowing strings from the input where they have no
//! escapes. Fields that may not have the expected JSON type are read
//! leniently (a wrong type reads as absent) so one odd field does not turn a
//! whole `tool_result` or `result` into a `raw` event.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// One stdout line. Which fields are set depends on `kind`.
#[derive(Deserialize)]
pub struct Line<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,

    // init
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub session_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub model: Option<Cow<'a, str>>,

    // message
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub role: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "bool_or_none")]
    pub delta: Option<bool>,

    // tool_use / tool_result
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub tool_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub tool_id: Option<Cow<'a, str>>,
    /// The model's raw tool arguments, copied through unparsed.
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub output: Option<Cow<'a, str>>,

    // tool_result / result
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "error_or_none")]
    pub error: Option<ErrorBody<'a>>,

    // error
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub severity: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub message: Option<Cow<'a, str>>,

    // result
    #[serde(default, deserialize_with = "map_or_none")]
    pub stats: Option<Stats>,
}

/// `error` of a `tool_result` or `result`: `{type, message}`.
#[derive(Default, Deserialize)]
pub struct ErrorBody<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "str_or_none")]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub message: Option<Cow<'a, str>>,
}

/// `result.stats`: token counts summed over every model request of the
/// process (so cumulative if a process ever wrote two results), and the
/// same per model.
#[derive(Deserialize)]
pub struct Stats {
    #[serde(default, deserialize_with = "u64_or_none")]
    pub total_tokens: Option<u64>,
    /// Prompt tokens, cached ones included.
    #[serde(default, deserialize_with = "u64_or_none")]
    pub input_tokens: Option<u64>,
    /// Candidate tokens, thinking excluded.
    #[serde(default, deserialize_with = "u64_or_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cached: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "models_or_none")]
    pub models: Option<Vec<(String, ModelStats)>>,
}

/// One model's entry in `stats.models`.
#[derive(Default, Deserialize)]
pub struct ModelStats {
    #[serde(default, deserialize_with = "u64_or_none")]
    pub total_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "u64_or_none")]
    pub cached: Option<u64>,
}

/// `parameters` of `write_file` and `replace`, read only for those tools.
#[derive(Deserialize)]
pub struct FileParams<'a> {
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub file_path: Option<Cow<'a, str>>,
    /// The name in older CLI versions.
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub absolute_path: Option<Cow<'a, str>>,
}

/// `parameters` of `write_todos`: the whole list, every call.
#[derive(Deserialize)]
pub struct TodoParams<'a> {
    #[serde(borrow, default)]
    pub todos: Vec<TodoParam<'a>>,
}

#[derive(Deserialize)]
pub struct TodoParam<'a> {
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub description: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub status: Option<Cow<'a, str>>,
}

/// The JSON body Gemini CLI embeds in an API error message
/// (`[API Error: {"error":{"code":500,"status":"INTERNAL","message":"…"}}]`).
#[derive(Deserialize)]
pub struct ApiErrorBody<'a> {
    #[serde(borrow, default, deserialize_with = "map_or_none")]
    pub error: Option<ApiError<'a>>,
}

#[derive(Deserialize)]
pub struct ApiError<'a> {
    #[serde(default, deserialize_with = "u64_or_none")]
    pub code: Option<u64>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub status: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "str_or_none")]
    pub message: Option<Cow<'a, str>>,
}

// ---------------------------------------------------------------------------
// Lenient field readers: the expected type, or `None` for anything else.

/// Consumes the rest of a sequence or map whose value is not wanted.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods for every JSON type but the wanted one as
/// "absent".
macro_rules! otherwise_none {
    () => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq).map(|()| None)
        }
    };
}

struct StrOrNone;

impl<'de> Visitor<'de> for StrOrNone {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| None)
    }
    otherwise_none!();
}

/// A string, borrowed from the line when it has no escapes.
fn str_or_none<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    d.deserialize_any(StrOrNone)
}

struct BoolOrNone;

impl<'de> Visitor<'de> for BoolOrNone {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| None)
    }
}

fn bool_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(BoolOrNone)
}

struct CountOrNone;

impl<'de> Visitor<'de> for CountOrNone {
    type Value = Option<u64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative number")
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).ok())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // JavaScript numbers: a count may come as 12.0.
        Ok((v.is_finite() && v >= 0.0).then_some(v as u64))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| None)
    }
}

fn u64_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(CountOrNone)
}

struct MapOrNone<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for MapOrNone<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    otherwise_none!();
}

/// An object read as `T`; anything else (an array would otherwise be read
/// as `T`'s fields in order) as absent.
fn map_or_none<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    d.deserialize_any(MapOrNone(PhantomData))
}

struct ErrorOrNone;

impl<'de> Visitor<'de> for ErrorOrNone {
    type Value = Option<ErrorBody<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an error object or message")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        ErrorBody::deserialize(MapAccessDeserializer::new(map)).map(Some)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(ErrorBody {
            kind: None,
            message: Some(Cow::Borrowed(v)),
        }))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(ErrorBody {
            kind: None,
            message: Some(Cow::Owned(v.to_owned())),
        }))
    }
    otherwise_none!();
}

/// `{type, message}`, or a bare message string.
fn error_or_none<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<ErrorBody<'a>>, D::Error> {
    d.deserialize_any(ErrorOrNone)
}

struct ModelsOrNone;

impl<'de> Visitor<'de> for ModelsOrNone {
    type Value = Option<Vec<(String, ModelStats)>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of models")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut models = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let stats = map.next_value::<Lenient<ModelStats>>()?;
            models.push((name, stats.0.unwrap_or_default()));
        }
        Ok(Some(models))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    otherwise_none!();
}

/// `stats.models` in the CLI's order (a map would sort the names).
fn models_or_none<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<(String, ModelStats)>>, D::Error> {
    d.deserialize_any(ModelsOrNone)
}

/// An object as `T`, anything else as `None`, for map values.
struct Lenient<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        map_or_none(d).map(Lenient)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let line: Line = serde_json::from_str(
            r#"{"type":"message","role":"assistant","content":"plain","delta":true}"#,
        )
        .unwrap();
        assert!(matches!(line.content, Some(Cow::Borrowed("plain"))));
        let line: Line = serde_json::from_str(r#"{"type":"message","content":"a\nb"}"#).unwrap();
        assert_eq!(line.content.as_deref(), Some("a\nb"));
    }

    #[test]
    fn odd_field_types_read_as_absent() {
        let line: Line = serde_json::from_str(
            r#"{"type":"tool_result","tool_id":"t","output":{"diff":1},"error":[1],"delta":"yes","stats":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(line.tool_id.as_deref(), Some("t"));
        assert!(line.output.is_none());
        assert!(line.error.is_none());
        assert!(line.delta.is_none());
        assert!(line.stats.is_none());
    }

    #[test]
    fn counts_accept_whole_floats_and_refuse_negatives() {
        let stats: Stats =
            serde_json::from_str(r#"{"input_tokens":12.0,"cached":-1,"models":{"m":7}}"#).unwrap();
        assert_eq!(stats.input_tokens, Some(12));
        assert_eq!(stats.cached, None);
        let models = stats.models.unwrap();
        assert_eq!(models.len(), 1);
        assert_eq!(models[0].0, "m");
        assert_eq!(models[0].1.input_tokens, None);
    }
}
