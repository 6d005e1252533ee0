//! The frame codec of `GET /v1/execs/{id}/frames`.
//!
//! Output travels as raw bytes (no base64, no JSON escaping) because the
//! host's streaming benchmark compares against `cat`. Each frame is a 13-byte
//! header followed by its payload:
//!
//! | offset | size | field                                            |
//! | ------ | ---- | ------------------------------------------------ |
//! | 0      | 1    | kind: 1 stdout, 2 stderr, 3 exit, 4 gap          |
//! | 1      | 8    | seq, unsigned big-endian                         |
//! | 9      | 4    | payload length N, unsigned big-endian            |
//! | 13     | N    | payload                                          |
//!
//! `stdout`/`stderr` payloads are the process's bytes as read. `exit` and
//! `gap` payloads are JSON: [`ExitInfo`] and [`GapRange`]. A gap frame's seq
//! is the last seq it stands for (`to`), so "the last seq I saw" stays a
//! single number a client can re-attach with.
//!
//! # Examples
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use paddock_runnerd::proto::{Frame, FrameDecoder};
//!
//! let mut wire = BytesMut::new();
//! Frame::Stdout { seq: 1, data: Bytes::from_static(b"hi\n") }.encode(&mut wire);
//! let mut decoder = FrameDecoder::new();
//! decoder.extend(&wire[..5]); // frames may arrive split anywhere
//! assert_eq!(decoder.next_frame().ok(), Some(None));
//! decoder.extend(&wire[5..]);
//! let frame = decoder.next_frame().ok().flatten();
//! assert_eq!(frame, Some(Frame::Stdout { seq: 1, data: Bytes::from_static(b"hi\n") }));
//! ```

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::ExitInfo;

/// `Content-Type` of a frame stream.
pub const FRAME_CONTENT_TYPE: &str = "application/vnd.paddock.frames.v1";

/// Size of a frame header: kind (1) + seq (8) + length (4).
pub const FRAME_HEADER_LEN: usize = 13;

/// Largest payload a decoder accepts. runnerd's own frames are at most one
/// pipe read (64 KiB); the limit only stops a corrupt stream from making the
/// decoder allocate without bound.
pub const MAX_FRAME_PAYLOAD: u32 = 16 * 1024 * 1024;

/// The kind byte of a frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    Stdout = 1,
    Stderr = 2,
    Exit = 3,
    Gap = 4,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Stdout),
            2 => Some(Self::Stderr),
            3 => Some(Self::Exit),
            4 => Some(Self::Gap),
            _ => None,
        }
    }
}

/// Payload of a `gap` frame: seqs `from..=to` were evicted from the replay
/// ring before this client could read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRange {
    pub from: u64,
    pub to: u64,
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout {
        seq: u64,
        data: Bytes,
    },
    Stderr {
        seq: u64,
        data: Bytes,
    },
    /// Frames were lost for this client (never a silent hole); `seq` equals
    /// `range.to`.
    Gap {
        seq: u64,
        range: GapRange,
    },
    /// The one terminal frame; always the last of a stream.
    Exit {
        seq: u64,
        exit: ExitInfo,
    },
}

impl Frame {
    /// The frame's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Stdout { seq, .. }
            | Self::Stderr { seq, .. }
            | Self::Gap { seq, .. }
            | Self::Exit { seq, .. } => *seq,
        }
    }

    /// Appends the frame's wire form to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Self::Stdout { seq, data } => encode_data(FrameKind::Stdout, *seq, data, buf),
            Self::Stderr { seq, data } => encode_data(FrameKind::Stderr, *seq, data, buf),
            Self::Gap { seq, range } => encode_json(FrameKind::Gap, *seq, range, buf),
            Self::Exit { seq, exit } => encode_json(FrameKind::Exit, *seq, exit, buf),
        }
    }
}

/// Appends a frame header; the caller appends exactly `len` payload bytes.
pub fn encode_header(kind: FrameKind, seq: u64, len: u32, buf: &mut BytesMut) {
    buf.reserve(FRAME_HEADER_LEN);
    buf.put_u8(kind as u8);
    buf.put_u64(seq);
    buf.put_u32(len);
}

fn encode_data(kind: FrameKind, seq: u64, data: &[u8], buf: &mut BytesMut) {
    // Payloads come from single pipe reads (64 KiB) or small JSON; a payload
    // beyond 4 GiB cannot occur, and would be cut rather than get a header
    // that lies about its length.
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    encode_header(kind, seq, len, buf);
    buf.extend_from_slice(&data[..len as usize]);
}

fn encode_json<T: Serialize>(kind: FrameKind, seq: u64, value: &T, buf: &mut BytesMut) {
    // Serializing these plain structs cannot fail; an empty object keeps the
    // stream well-formed if it ever did.
    let json = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    encode_data(kind, seq, &json, buf);
}

/// Why a frame stream could not be decoded.
#[derive(Debug)]
pub enum FrameError {
    /// A header named a kind this version does not know.
    UnknownKind(u8),
    /// A header announced a payload above [`MAX_FRAME_PAYLOAD`].
    TooLarge(u32),
    /// An `exit` or `gap` payload was not the expected JSON.
    BadControl(serde_json::Error),
    /// The stream ended inside a frame.
    Truncated { buffered: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKind(kind) => write!(f, "unknown frame kind {kind}"),
            Self::TooLarge(len) => write!(
                f,
                "frame payload of {len} bytes exceeds the limit of {MAX_FRAME_PAYLOAD}"
            ),
            Self::BadControl(err) => write!(f, "malformed control frame payload: {err}"),
            Self::Truncated { buffered } => {
                write!(
                    f,
                    "stream ended inside a frame ({buffered} bytes left over)"
                )
            }
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadControl(err) => Some(err),
            _ => None,
        }
    }
}

/// Incremental decoder: feed it bytes as they arrive, take frames out.
/// Data payloads are split off the internal buffer without copying.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    ///
    /// A malformed header or control payload; the stream cannot be resumed
    /// after an error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let mut header = &self.buf[..FRAME_HEADER_LEN];
        let kind_byte = header.get_u8();
        let seq = header.get_u64();
        let len = header.get_u32();
        let kind = FrameKind::from_byte(kind_byte).ok_or(FrameError::UnknownKind(kind_byte))?;
        if len > MAX_FRAME_PAYLOAD {
            return Err(FrameError::TooLarge(len));
        }
        let total = FRAME_HEADER_LEN + len as usize;
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_LEN);
        let payload = self.buf.split_to(len as usize).freeze();
        let frame = match kind {
            FrameKind::Stdout => Frame::Stdout { seq, data: payload },
            FrameKind::Stderr => Frame::Stderr { seq, data: payload },
            FrameKind::Gap => Frame::Gap {
                seq,
                range: serde_json::from_slice(&payload).map_err(FrameError::BadControl)?,
            },
            FrameKind::Exit => Frame::Exit {
                seq,
                exit: serde_json::from_slice(&payload).map_err(FrameError::BadControl)?,
            },
        };
        Ok(Some(frame))
    }

    /// Call at end of stream: an error if a partial frame is left.
    ///
    /// # Errors
    ///
    /// [`FrameError::Truncated`] when bytes of an incomplete frame remain.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(FrameError::Truncated {
                buffered: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ExitReason, ProcessStatus};

    fn sample() -> Vec<Frame> {
        vec![
            Frame::Stdout {
                seq: 1,
                data: Bytes::from_static(b"out\n"),
            },
            Frame::Stderr {
                seq: 2,
                data: Bytes::from(vec![0u8, 255, 10]),
            },
            Frame::Gap {
                seq: 9,
                range: GapRange { from: 3, to: 9 },
            },
            Frame::Stdout {
                seq: 10,
                data: Bytes::new(),
            },
            Frame::Exit {
                seq: 11,
                exit: ExitInfo {
                    reason: ExitReason::Cancelled,
                    status: Some(ProcessStatus::Signaled(15)),
                    duration_ms: 42,
                },
            },
        ]
    }

    #[test]
    fn round_trips_split_at_every_byte() {
        let frames = sample();
        let mut wire = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut wire);
        }
        for step in [1usize, 2, 7, 13, 1000] {
            let mut decoder = FrameDecoder::new();
            let mut out = Vec::new();
            for chunk in wire.chunks(step) {
                decoder.extend(chunk);
                while let Some(frame) = decoder.next_frame().expect("valid stream") {
                    out.push(frame);
                }
            }
            assert!(decoder.finish().is_ok());
            assert_eq!(out, frames, "chunk size {step}");
        }
    }

    #[test]
    fn header_is_thirteen_bytes_big_endian() {
        let mut wire = BytesMut::new();
        Frame::Stderr {
            seq: 0x0102,
            data: Bytes::from_static(b"ab"),
        }
        .encode(&mut wire);
        assert_eq!(
            &wire[..],
            &[2, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 2, b'a', b'b']
        );
    }

    #[test]
    fn rejects_garbage() {
        let mut decoder = FrameDecoder::new();
        decoder.extend(&[9; FRAME_HEADER_LEN]);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::UnknownKind(9))
        ));

        let mut decoder = FrameDecoder::new();
        let mut wire = BytesMut::new();
        encode_header(FrameKind::Stdout, 1, u32::MAX, &mut wire);
        decoder.extend(&wire);
        assert!(matches!(decoder.next_frame(), Err(FrameError::TooLarge(_))));

        let mut decoder = FrameDecoder::new();
        let mut wire = BytesMut::new();
        encode_header(FrameKind::Exit, 1, 3, &mut wire);
        wire.extend_from_slice(b"{x}");
        decoder.extend(&wire);
        assert!(matches!(
            decoder.next_frame(),
            Err(FrameError::BadControl(_))
        ));

        let mut decoder = FrameDecoder::new();
        decoder.extend(&[1, 0, 0]);
        assert!(matches!(decoder.next_frame(), Ok(None)));
        assert!(matches!(
            decoder.finish(),
            Err(FrameError::Truncated { buffered: 3 })
        ));
    }
}
