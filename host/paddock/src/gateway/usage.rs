//! Token usage read from upstream responses as they stream by, and what a
//! session has used so far.
//!
//! One convention throughout, the agent adapters' one: `input_tokens`
//! excludes cache reads and writes (Anthropic reports it that way; OpenAI's
//! `input_tokens`/`prompt_tokens` include cached tokens, which are
//! subtracted), and `output_tokens` includes reasoning tokens, which are also
//! counted on their own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::Price;

/// The most one SSE event or one JSON body may hold and still be read for
/// usage. Larger ones pass through untouched but uncounted.
const MAX_EVENT_BYTES: usize = 32 << 20;

/// What a session (or one model of it) has used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UsageCounts {
    /// Requests the upstream answered with success (2xx); its errors use
    /// no tokens and are not counted.
    pub requests: u64,
    /// Input tokens, cache reads and writes excluded.
    pub input_tokens: u64,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// The part of `output_tokens` spent reasoning (OpenAI reports it).
    pub reasoning_tokens: u64,
    /// Dollars, when the models used have a price.
    pub cost_usd: Option<f64>,
}

impl UsageCounts {
    /// Every token counted against `budget_tokens`.
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Adds one response's usage, priced with `price` if there is one.
    pub(crate) fn add(&mut self, usage: &TokenUsage, price: Option<&Price>) {
        self.requests += 1;
        self.input_tokens = self.input_tokens.saturating_add(usage.input);
        self.output_tokens = self.output_tokens.saturating_add(usage.output);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(usage.cache_read);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(usage.cache_write);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(usage.reasoning);
        if let Some(price) = price {
            *self.cost_usd.get_or_insert(0.0) += usage.cost(price);
        }
    }
}

/// What a session's key has used so far, per model and in total.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GatewayUsage {
    pub total: UsageCounts,
    pub models: BTreeMap<String, UsageCounts>,
}

impl GatewayUsage {
    pub(crate) fn add(&mut self, model: &str, usage: &TokenUsage, price: Option<&Price>) {
        self.total.add(usage, price);
        self.models
            .entry(model.to_owned())
            .or_default()
            .add(usage, price);
    }
}

/// The usage of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TokenUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl TokenUsage {
    /// Dollars at `price`; cache tokens at the input price unless priced.
    pub fn cost(&self, price: &Price) -> f64 {
        let per = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok / 1_000_000.0;
        per(self.input, price.input_per_mtok)
            + per(self.output, price.output_per_mtok)
            + per(
                self.cache_read,
                price.cache_read_per_mtok.unwrap_or(price.input_per_mtok),
            )
            + per(
                self.cache_write,
                price.cache_write_per_mtok.unwrap_or(price.input_per_mtok),
            )
    }
}

/// Which provider dialect a response speaks, for where its usage sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// Anthropic Messages: `message_start` then cumulative `message_delta`.
    Anthropic,
    /// OpenAI Responses: `response.completed` (or `.incomplete`, `.failed`).
    Responses,
    /// OpenAI Chat Completions: the last chunk's `usage`
    /// (`stream_options.include_usage`).
    Chat,
}

/// How a response body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Sse,
    Json,
}

/// Reads usage from a response body fed chunk by chunk, however the chunks
/// split it; the bytes themselves are never changed or held back.
#[derive(Debug)]
pub(crate) struct UsageScanner {
    dialect: Dialect,
    framing: Framing,
    /// The SSE line being assembled, or the whole JSON body.
    buf: Vec<u8>,
    /// The `data:` lines of the SSE event being assembled.
    data: Vec<u8>,
    /// The current line or event went past `MAX_EVENT_BYTES`: skip it.
    oversized: bool,
    usage: TokenUsage,
    found: bool,
}

impl UsageScanner {
    /// A scanner for a body of `content_type` (SSE if `text/event-stream`,
    /// else JSON).
    pub fn new(dialect: Dialect, content_type: &str) -> Self {
        let framing = if content_type.starts_with("text/event-stream") {
            Framing::Sse
        } else {
            Framing::Json
        };
        Self {
            dialect,
            framing,
            buf: Vec::new(),
            data: Vec::new(),
            oversized: false,
            usage: TokenUsage::default(),
            found: false,
        }
    }

    /// Reads the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        match self.framing {
            Framing::Json => {
                if self.buf.len() + chunk.len() > MAX_EVENT_BYTES {
                    self.oversized = true;
                } else if !self.oversized {
                    self.buf.extend_from_slice(chunk);
                }
            }
            Framing::Sse => self.feed_sse(chunk),
        }
    }

    /// The usage seen, once the body ended (or the client went away): None
    /// if the body carried none.
    pub fn finish(&mut self) -> Option<TokenUsage> {
        match self.framing {
            Framing::Json if !self.oversized => {
                if let Ok(value) = serde_json::from_slice::<Value>(&self.buf) {
                    self.apply(&value);
                }
                self.buf = Vec::new();
            }
            Framing::Json => {}
            Framing::Sse => {
                // A stream that ends without its blank line still ends its
                // last event.
                if !self.buf.is_empty() && !self.oversized {
                    let line = std::mem::take(&mut self.buf);
                    self.line(&line);
                }
                self.dispatch();
            }
        }
        self.found.then_some(self.usage)
    }

    fn feed_sse(&mut self, mut chunk: &[u8]) {
        while let Some(at) = memchr::memchr(b'\n', chunk) {
            let head = &chunk[..at];
            chunk = &chunk[at + 1..];
            if self.oversized {
                // The end of a line too long to read: dropped whole.
                self.oversized = false;
            } else if self.buf.is_empty() {
                self.line(head);
            } else if self.buf.len() + head.len() <= MAX_EVENT_BYTES {
                let mut line = std::mem::take(&mut self.buf);
                line.extend_from_slice(head);
                self.line(&line);
                line.clear();
                self.buf = line;
            }
            self.buf.clear();
        }
        if self.oversized {
            return;
        }
        if self.buf.len() + chunk.len() > MAX_EVENT_BYTES {
            self.oversized = true;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// One SSE line, without its `\n`.
    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.data.len() + value.len() > MAX_EVENT_BYTES {
                return;
            }
            if !self.data.is_empty() {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
    }

    /// The end of one SSE event: its data is read only if it mentions usage,
    /// so the many small deltas cost one substring scan each.
    fn dispatch(&mut self) {
        if self.data.is_empty() {
            return;
        }
        if memchr::memmem::find(&self.data, b"\"usage\"").is_some()
            && let Ok(value) = serde_json::from_slice::<Value>(&self.data)
        {
            self.apply(&value);
        }
        self.data.clear();
    }

    fn apply(&mut self, value: &Value) {
        match self.dialect {
            Dialect::Anthropic => {
                // `message_start` carries it in `message`, `message_delta`
                // and a whole (non-streamed) message at the top.
                if let Some(usage) = value.pointer("/message/usage") {
                    self.anthropic(usage);
                }
                if let Some(usage) = value.get("usage") {
                    self.anthropic(usage);
                }
            }
            Dialect::Responses => {
                let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
                if let Some(usage) = value.pointer("/response/usage")
                    && kind.starts_with("response.")
                {
                    self.openai(
                        usage,
                        "input_tokens",
                        "output_tokens",
                        "input_tokens_details",
                    );
                } else if let Some(usage) = value.get("usage") {
                    self.openai(
                        usage,
                        "input_tokens",
                        "output_tokens",
                        "input_tokens_details",
                    );
                }
            }
            Dialect::Chat => {
                if let Some(usage) = value.get("usage") {
                    self.openai(
                        usage,
                        "prompt_tokens",
                        "completion_tokens",
                        "prompt_tokens_details",
                    );
                }
            }
        }
    }

    /// Anthropic counts are cumulative: the latest value of each wins.
    fn anthropic(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        let field = |name: &str| usage.get(name).and_then(Value::as_u64);
        let fields = [
            (field("input_tokens"), &mut self.usage.input),
            (field("output_tokens"), &mut self.usage.output),
            (field("cache_read_input_tokens"), &mut self.usage.cache_read),
            (
                field("cache_creation_input_tokens"),
                &mut self.usage.cache_write,
            ),
        ];
        for (value, slot) in fields {
            if let Some(value) = value {
                *slot = value;
                self.found = true;
            }
        }
    }

    /// OpenAI reports once, cached tokens inside the input count.
    fn openai(&mut self, usage: &Value, input: &str, output: &str, details: &str) {
        let Some(total_in) = usage.get(input).and_then(Value::as_u64) else {
            return;
        };
        let cached = usage
            .get(details)
            .and_then(|d| d.get("cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let reasoning = ["output_tokens_details", "completion_tokens_details"]
            .iter()
            .find_map(|d| usage.get(*d)?.get("reasoning_tokens")?.as_u64())
            .unwrap_or(0);
        self.usage = TokenUsage {
            input: total_in.saturating_sub(cached),
            output: usage.get(output).and_then(Value::as_u64).unwrap_or(0),
            cache_read: cached,
            cache_write: 0,
            reasoning,
        };
        self.found = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANTHROPIC: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage: \\\"usage\\\"\"}}\r\n\r\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    const RESPONSES: &str = concat!(
        "event: response.created\n",
        "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
        "event: response.output_text.delta\n",
        "data: {\"type\":\"response.output_text.delta\",\"delta\":\"hi\"}\n\n",
        "event: response.completed\n",
        "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":300,\"input_tokens_details\":{\"cached_tokens\":200},\"output_tokens\":50,\"output_tokens_details\":{\"reasoning_tokens\":20},\"total_tokens\":350}}}\n\n",
    );

    const CHAT: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49,\"prompt_tokens_details\":{\"cached_tokens\":32}}}\n\n",
        "data: [DONE]\n\n",
    );

    fn scan(dialect: Dialect, content_type: &str, chunks: &[&[u8]]) -> Option<TokenUsage> {
        let mut scanner = UsageScanner::new(dialect, content_type);
        for chunk in chunks {
            scanner.feed(chunk);
        }
        scanner.finish()
    }

    /// The body split in two at every byte boundary, and fed byte by byte.
    fn every_split(dialect: Dialect, body: &str, expected: TokenUsage) {
        let body = body.as_bytes();
        for at in 0..=body.len() {
            let (a, b) = body.split_at(at);
            assert_eq!(
                scan(dialect, "text/event-stream", &[a, b]),
                Some(expected),
                "split at {at}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(
            scan(dialect, "text/event-stream; charset=utf-8", &bytes),
            Some(expected)
        );
    }

    #[test]
    fn anthropic_stream_usage_at_every_split() {
        every_split(
            Dialect::Anthropic,
            ANTHROPIC,
            TokenUsage {
                input: 25,
                output: 15,
                cache_read: 100,
                cache_write: 7,
                reasoning: 0,
            },
        );
    }

    #[test]
    fn responses_stream_usage_at_every_split() {
        every_split(
            Dialect::Responses,
            RESPONSES,
            TokenUsage {
                input: 100,
                output: 50,
                cache_read: 200,
                cache_write: 0,
                reasoning: 20,
            },
        );
    }

    #[test]
    fn chat_stream_usage_at_every_split() {
        every_split(
            Dialect::Chat,
            CHAT,
            TokenUsage {
                input: 8,
                output: 9,
                cache_read: 32,
                ..TokenUsage::default()
            },
        );
    }

    #[test]
    fn a_stream_cut_short_keeps_what_it_saw() {
        let cut = &ANTHROPIC[..ANTHROPIC.find("event: message_delta").unwrap()];
        let usage = scan(Dialect::Anthropic, "text/event-stream", &[cut.as_bytes()]).unwrap();
        assert_eq!((usage.input, usage.output), (25, 1));
        // No blank line after the last event: it still counts.
        let body = ANTHROPIC.trim_end();
        let usage = scan(Dialect::Anthropic, "text/event-stream", &[body.as_bytes()]).unwrap();
        assert_eq!(usage.output, 15);
    }

    #[test]
    fn whole_json_bodies() {
        let message = br#"{"id":"msg_1","type":"message","content":[],"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":0}}"#;
        let (a, b) = message.split_at(20);
        let usage = scan(Dialect::Anthropic, "application/json", &[a, b]).unwrap();
        assert_eq!((usage.input, usage.output), (3, 4));
        let response = br#"{"object":"response","usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":2}}"#;
        let usage = scan(Dialect::Responses, "application/json", &[response]).unwrap();
        assert_eq!((usage.input, usage.cache_read, usage.output), (6, 4, 2));
        let chat =
            br#"{"object":"chat.completion","usage":{"prompt_tokens":5,"completion_tokens":6}}"#;
        let usage = scan(Dialect::Chat, "application/json", &[chat]).unwrap();
        assert_eq!((usage.input, usage.output), (5, 6));
        let error = br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#;
        assert_eq!(scan(Dialect::Anthropic, "application/json", &[error]), None);
    }

    #[test]
    fn price_math() {
        let price = Price {
            input_per_mtok: 3.0,
            output_per_mtok: 15.0,
            cache_read_per_mtok: Some(0.3),
            cache_write_per_mtok: None,
        };
        let usage = TokenUsage {
            input: 1_000_000,
            output: 100_000,
            cache_read: 2_000_000,
            cache_write: 500_000,
            reasoning: 0,
        };
        // 3 + 1.5 + 0.6 + 1.5 (cache writes at the input price)
        assert!((usage.cost(&price) - 6.6).abs() < 1e-9);
        let mut total = GatewayUsage::default();
        total.add("m", &usage, Some(&price));
        total.add("free", &usage, None);
        assert_eq!(total.total.requests, 2);
        assert!((total.total.cost_usd.unwrap() - 6.6).abs() < 1e-9);
        assert_eq!(total.models["free"].cost_usd, None);
        assert_eq!(total.total.tokens(), 2 * 3_600_000);
    }
}
