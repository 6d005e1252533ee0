//! A Server-Sent Events parser (the WHATWG `text/event-stream` format), fed
//! with a response body's chunks as they arrive.
//!
//! Chunks are cut wherever the network cut them: a line, a UTF-8 character
//! or a CRLF pair may straddle two chunks, so bytes are buffered until a
//! whole line is in and only then decoded.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The last event id the stream set, as the spec defines it: an event
    /// without its own `id:` carries the previous one.
    pub id: Option<String>,
    /// The `event:` name; `message` when the event had none.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An event grew past the parser's limit: the stream is not what the
/// client expects, and buffering more would only use up memory.
#[derive(Debug, thiserror::Error)]
#[error("an event of the stream is larger than {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// The parser's state between chunks.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF starting the next chunk
    /// completes that CRLF rather than ending an empty line.
    after_cr: bool,
    /// Whether the first line (which may start with a byte-order mark) has
    /// been seen.
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    limit: usize,
}

impl SseParser {
    /// A parser that refuses events (and lines) larger than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            line: Vec::new(),
            after_cr: false,
            started: false,
            event: None,
            data: String::new(),
            has_data: false,
            last_id: None,
            limit,
        }
    }

    /// Feeds the next chunk of the body; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, TooLarge> {
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..end]);
            let was_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut events);
            self.check_size()?;
        }
        self.line.extend_from_slice(rest);
        self.check_size()?;
        Ok(events)
    }

    fn check_size(&self) -> Result<(), TooLarge> {
        if self.line.len() + self.data.len() > self.limit {
            return Err(TooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        let text = String::from_utf8_lossy(line);
        let mut text: &str = &text;
        if !self.started {
            self.started = true;
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        if text.is_empty() {
            self.dispatch(events);
            return;
        }
        if text.starts_with(':') {
            // A comment: the host's keep-alive.
            return;
        }
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // The spec ignores an id with a NUL in it.
            "id" if !value.contains('\0') => {
                self.last_id = (!value.is_empty()).then(|| value.to_owned());
            }
            // `retry:` and unknown fields: the reconnect policy is the
            // client's own.
            _ => {}
        }
    }

    fn dispatch(&mut self, events: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        events.push(SseEvent {
            id: self.last_id.clone(),
            event: event.unwrap_or_else(|| "message".to_owned()),
            data: std::mem::take(&mut self.data),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new(1 << 20);
        chunks
            .iter()
            .flat_map(|chunk| parser.feed(chunk).unwrap())
            .collect()
    }

    fn event(id: Option<&str>, name: &str, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_owned),
            event: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn reads_id_event_and_data() {
        let events = parse_all(&[b"id: 1\nevent: stdout\ndata: {\"text\":\"hi\"}\n\n"]);
        assert_eq!(events, [event(Some("1"), "stdout", "{\"text\":\"hi\"}")]);
    }

    #[test]
    fn joins_multi_line_data_with_newlines() {
        let events = parse_all(&[b"data: a\ndata:b\ndata:  c\ndata\n\n"]);
        assert_eq!(events, [event(None, "message", "a\nb\n c\n")]);
    }

    #[test]
    fn skips_comments_and_events_without_data() {
        let events = parse_all(&[b": keep-alive\n\nevent: ping\n\n:x\nid: 7\ndata: y\n\n"]);
        assert_eq!(events, [event(Some("7"), "message", "y")]);
    }

    #[test]
    fn accepts_crlf_and_bare_cr_line_ends() {
        let events =
            parse_all(&[b"id: 1\r\nevent: a\r\ndata: x\r\n\r\nid: 2\revent: b\rdata: y\r\r"]);
        assert_eq!(
            events,
            [event(Some("1"), "a", "x"), event(Some("2"), "b", "y")]
        );
    }

    #[test]
    fn an_event_split_at_every_byte_comes_out_whole() {
        let stream = "\u{feff}id: 41\r\nevent: agent\r\ndata: {\"text\":\"héllo 🦀\"}\r\n\r\n: ka\n\nid: 42\nevent: exit\ndata: {}\n\n";
        let expected = parse_all(&[stream.as_bytes()]);
        assert_eq!(
            expected,
            [
                event(Some("41"), "agent", "{\"text\":\"héllo 🦀\"}"),
                event(Some("42"), "exit", "{}")
            ]
        );
        let bytes = stream.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(
                parse_all(&[&bytes[..cut], &bytes[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&one_by_one), expected);
    }

    #[test]
    fn an_event_without_id_keeps_the_last_one() {
        let events =
            parse_all(&[b"id: 5\ndata: a\n\nevent: shutdown\ndata: {}\n\nid\ndata: b\n\n"]);
        assert_eq!(
            events,
            [
                event(Some("5"), "message", "a"),
                event(Some("5"), "shutdown", "{}"),
                event(None, "message", "b")
            ]
        );
    }

    #[test]
    fn an_unterminated_event_is_not_dispatched() {
        assert!(parse_all(&[b"id: 1\ndata: partial\n"]).is_empty());
    }

    #[test]
    fn refuses_an_endless_line() {
        let mut parser = SseParser::new(16);
        assert!(parser.feed(b"data: 0123456").is_ok());
        assert!(parser.feed(b"789abcdef").is_err());
        let mut parser = SseParser::new(16);
        assert!(
            parser
                .feed(b"data: 0123456789\ndata: 0123456789\n")
                .is_err()
        );
    }
}
