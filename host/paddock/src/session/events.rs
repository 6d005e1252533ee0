//! The events of an exec's stream, as the API serves them.
//!
//! Each event is serialized once, when it is recorded, and shared by every
//! subscriber: fan-out to many attached clients costs no re-encoding. The SSE
//! `event:` name says what the JSON `data` is.

use paddock_runnerd::proto::ExitInfo;
use paddock_sdk::agent::AgentEvent;
use serde::Serialize;

use crate::exec::Weigh;

/// SSE event names, which are part of the HTTP API contract.
pub mod kind {
    /// `{"text": ...}`: a piece of the process's stdout.
    pub const STDOUT: &str = "stdout";
    /// `{"text": ...}`: a piece of the process's stderr.
    pub const STDERR: &str = "stderr";
    /// A normalized agent event (the adapter contract: `{"type": ...}`).
    pub const AGENT: &str = "agent";
    /// `{"frames": n}`: output the host could not fetch from the sandbox in
    /// time (its own replay ring had moved on).
    pub const OUTPUT_GAP: &str = "output_gap";
    /// `{"reason": ..., "code"?, "signal"?, "duration_ms"}`: the one
    /// terminal event.
    pub const EXIT: &str = "exit";
    /// `{"from": a, "to": b}`: events this client asked for were evicted
    /// from the replay ring before it read them.
    pub const GAP: &str = "gap";
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct ExecEvent {
    pub kind: &'static str,
    /// The JSON `data` of the SSE event.
    pub data: String,
}

impl Weigh for ExecEvent {
    fn weight(&self) -> usize {
        self.data.len() + 16
    }
}

#[derive(Serialize)]
struct TextData<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct OutputGap {
    frames: u64,
}

impl ExecEvent {
    pub fn stdout(text: &str) -> Self {
        Self::json(kind::STDOUT, &TextData { text })
    }

    pub fn stderr(text: &str) -> Self {
        Self::json(kind::STDERR, &TextData { text })
    }

    pub fn agent(event: &AgentEvent) -> Self {
        Self::json(kind::AGENT, event)
    }

    pub fn output_gap(frames: u64) -> Self {
        Self::json(kind::OUTPUT_GAP, &OutputGap { frames })
    }

    pub fn exit(exit: &ExitInfo) -> Self {
        Self::json(kind::EXIT, exit)
    }

    fn json<T: Serialize + ?Sized>(kind: &'static str, value: &T) -> Self {
        // Serializing these plain types cannot fail; an empty object keeps
        // the stream well-formed if it ever did.
        let data = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
        Self { kind, data }
    }
}

/// Turns a byte stream cut at arbitrary points into text without splitting
/// a UTF-8 character across two events: an incomplete character at the end
/// of a chunk waits for the next one. Invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `chunk`, minus a trailing incomplete character.
    pub fn push(&mut self, chunk: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.carry);
        bytes.extend_from_slice(chunk);
        let keep = incomplete_tail(&bytes);
        self.carry = bytes.split_off(bytes.len() - keep);
        String::from_utf8(bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.carry);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

/// Length of a trailing, possibly valid but incomplete UTF-8 sequence.
fn incomplete_tail(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0b1100_0000 != 0b1000_0000 {
            // The lead byte: how long its sequence should be.
            let need = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if need > back { back } else { 0 };
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_across_chunks_stay_whole() {
        let text = "héllo → wörld 🦀";
        let bytes = text.as_bytes();
        for cut in 1..bytes.len() {
            let mut stream = Utf8Stream::default();
            let mut out = stream.push(&bytes[..cut]);
            out += &stream.push(&bytes[cut..]);
            out += &stream.finish();
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut stream = Utf8Stream::default();
        let out = stream.push(b"a\xffb");
        assert_eq!(out, "a\u{fffd}b");
        assert_eq!(stream.push(b"\xe2\x82"), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }
}
