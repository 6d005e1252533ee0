//! The framing of the link's control connection (one WebSocket the link
//! dials, so that it works behind NAT): HTTP requests from the host and
//! their streamed responses, many at once, each on a stream id.
//!
//! Every message is binary: one kind byte, the stream id (u32, big-endian),
//! then the payload.
//!
//! | kind | direction | payload |
//! | --- | --- | --- |
//! | 1 request | host → link | JSON [`RequestHead`], `\n`, the body |
//! | 2 cancel | host → link | none: the host stopped reading |
//! | 3 head | link → host | JSON [`ResponseHead`] |
//! | 4 data | link → host | body bytes |
//! | 5 end | link → host | none: the body is complete |
//! | 6 error | link → host | UTF-8 message: the response broke off |

use serde::{Deserialize, Serialize};

/// Bytes before a message's payload: kind and stream id.
pub const HEADER_LEN: usize = 5;

/// Largest request body the host sends over a link (a file write).
pub const MAX_REQUEST_BODY: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Request = 1,
    Cancel = 2,
    Head = 3,
    Data = 4,
    End = 5,
    Error = 6,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Kind::Request,
            2 => Kind::Cancel,
            3 => Kind::Head,
            4 => Kind::Data,
            5 => Kind::End,
            6 => Kind::Error,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHead {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// Encodes one message.
pub fn encode(kind: Kind, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A request message: head and body.
pub fn encode_request(stream: u32, head: &RequestHead, body: &[u8]) -> Vec<u8> {
    let mut payload = serde_json::to_vec(head).unwrap_or_default();
    payload.push(b'\n');
    payload.extend_from_slice(body);
    encode(Kind::Request, stream, &payload)
}

/// Splits a message into kind, stream and payload.
pub fn decode(message: &[u8]) -> Result<(Kind, u32, &[u8]), WireError> {
    if message.len() < HEADER_LEN {
        return Err(WireError("message shorter than its header".into()));
    }
    let kind = Kind::from_byte(message[0])
        .ok_or_else(|| WireError(format!("unknown message kind {}", message[0])))?;
    let stream = u32::from_be_bytes([message[1], message[2], message[3], message[4]]);
    Ok((kind, stream, &message[HEADER_LEN..]))
}

/// Splits a request payload into its head and body.
pub fn decode_request(payload: &[u8]) -> Result<(RequestHead, &[u8]), WireError> {
    let split = newline(payload).ok_or_else(|| WireError("request without a head".into()))?;
    let head = serde_json::from_slice(&payload[..split])
        .map_err(|e| WireError(format!("request head: {e}")))?;
    Ok((head, &payload[split + 1..]))
}

fn newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed link message: {0}")]
pub struct WireError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let head = RequestHead {
            method: "PUT".into(),
            path: "/sandboxes/x/runnerd/v1/files/a%0Ab?parents=true".into(),
            headers: vec![("x-paddock-nonce".into(), "n".into())],
        };
        let body = b"line one\nline two\n\0binary";
        let message = encode_request(7, &head, body);
        let (kind, stream, payload) = decode(&message).unwrap();
        assert_eq!((kind, stream), (Kind::Request, 7));
        let (decoded, rest) = decode_request(payload).unwrap();
        assert_eq!(decoded, head);
        assert_eq!(rest, body);
        assert_eq!(
            decode(&encode(Kind::End, u32::MAX, b"")).unwrap(),
            (Kind::End, u32::MAX, &b""[..])
        );
        assert!(decode(&[9, 0, 0, 0, 1]).is_err());
        assert!(decode(&[1, 0]).is_err());
    }
}
