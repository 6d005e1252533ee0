//! The replay ring of one exec: its newest frames, bounded by payload bytes.
//!
//! Seqs are contiguous, so a frame is found by subtraction. Readers keep a
//! cursor (the next seq they want); one that fell behind the oldest frame
//! gets a gap frame for exactly what it missed, never a silent hole.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::proto::{FrameKind, GapRange, encode_header};

fn counted(kind: FrameKind, payload: &Bytes) -> usize {
    match kind {
        FrameKind::Stdout | FrameKind::Stderr => payload.len(),
        FrameKind::Exit | FrameKind::Gap => 0,
    }
}

#[derive(Debug)]
struct Entry {
    kind: FrameKind,
    payload: Bytes,
}

/// What [`Ring::read`] appended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The next seq the reader wants.
    pub cursor: u64,
    /// Frames appended (a gap included).
    pub frames: usize,
    /// Whether any stdout/stderr frame was appended.
    pub output: bool,
    /// Whether the terminal frame was appended: the stream is complete.
    pub terminal: bool,
}

#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    /// Seq of `entries[0]` (or of the next frame while empty).
    first_seq: u64,
    bytes: usize,
    capacity: usize,
}

impl Ring {
    /// A ring keeping at most `capacity` bytes of output; the newest output
    /// frame is always kept, even when larger.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            first_seq: 1,
            bytes: 0,
            capacity,
        }
    }

    /// Appends a frame and returns its seq, evicting the oldest as needed.
    /// Only output counts against the capacity: the small terminal frame
    /// must not push the last output out of a tiny ring.
    pub fn push(&mut self, kind: FrameKind, payload: Bytes) -> u64 {
        let seq = self.first_seq + self.entries.len() as u64;
        self.bytes += counted(kind, &payload);
        self.entries.push_back(Entry { kind, payload });
        // Evict oldest first, but never the newest output frame.
        while self.bytes > self.capacity {
            let Some(front) = self.entries.front() else {
                break;
            };
            let front_bytes = counted(front.kind, &front.payload);
            if self.bytes == front_bytes {
                break;
            }
            self.entries.pop_front();
            self.bytes -= front_bytes;
            self.first_seq += 1;
        }
        seq
    }

    /// The newest seq that pushing `incoming` more output bytes would
    /// evict, if any.
    pub fn evicted_by(&self, incoming: usize) -> Option<u64> {
        let mut excess = (self.bytes + incoming).checked_sub(self.capacity)?;
        let mut evicted = None;
        for (seq, entry) in (self.first_seq..).zip(&self.entries) {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(counted(entry.kind, &entry.payload));
            evicted = Some(seq);
        }
        evicted
    }

    /// Seq of the newest frame; 0 before the first.
    pub fn last_seq(&self) -> u64 {
        self.first_seq + self.entries.len() as u64 - 1
    }

    /// Seq of the oldest retained frame; 0 while empty.
    pub fn first_seq(&self) -> u64 {
        if self.entries.is_empty() {
            0
        } else {
            self.first_seq
        }
    }

    /// Encodes frames from `cursor` on into `out` until it holds at least
    /// `max_bytes` (whole frames, at least one), starting with a gap frame
    /// if `cursor` was evicted.
    pub fn read(&self, cursor: u64, out: &mut BytesMut, max_bytes: usize) -> ReadOutcome {
        let mut outcome = ReadOutcome {
            cursor: cursor.max(1),
            ..ReadOutcome::default()
        };
        if self.entries.is_empty() {
            return outcome;
        }
        if outcome.cursor < self.first_seq {
            let range = GapRange {
                from: outcome.cursor,
                to: self.first_seq - 1,
            };
            let json = serde_json::to_vec(&range).unwrap_or_default();
            encode_header(FrameKind::Gap, range.to, json.len() as u32, out);
            out.extend_from_slice(&json);
            outcome.cursor = self.first_seq;
            outcome.frames += 1;
        }
        let start = (outcome.cursor - self.first_seq) as usize;
        for (appended, entry) in self.entries.iter().skip(start).enumerate() {
            if appended > 0 && out.len() >= max_bytes {
                break;
            }
            encode_header(entry.kind, outcome.cursor, entry.payload.len() as u32, out);
            out.extend_from_slice(&entry.payload);
            outcome.cursor += 1;
            outcome.frames += 1;
            match entry.kind {
                FrameKind::Stdout | FrameKind::Stderr => outcome.output = true,
                FrameKind::Exit => outcome.terminal = true,
                FrameKind::Gap => {}
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Frame, FrameDecoder};

    fn decode(bytes: &[u8]) -> Vec<Frame> {
        let mut decoder = FrameDecoder::new();
        decoder.extend(bytes);
        let mut frames = Vec::new();
        while let Ok(Some(frame)) = decoder.next_frame() {
            frames.push(frame);
        }
        frames
    }

    #[test]
    fn replays_once_then_reports_gap_after_eviction() {
        let mut ring = Ring::new(6);
        assert_eq!(ring.last_seq(), 0);
        for chunk in [&b"ab"[..], b"cd", b"ef"] {
            ring.push(FrameKind::Stdout, Bytes::copy_from_slice(chunk));
        }
        assert_eq!((ring.first_seq(), ring.last_seq()), (1, 3));
        let mut out = BytesMut::new();
        let read = ring.read(2, &mut out, usize::MAX);
        assert_eq!(read.cursor, 4);
        assert_eq!(
            decode(&out).iter().map(Frame::seq).collect::<Vec<_>>(),
            [2, 3]
        );

        ring.push(FrameKind::Stderr, Bytes::from_static(b"gh"));
        assert_eq!(ring.first_seq(), 2, "oldest evicted");
        let mut out = BytesMut::new();
        let read = ring.read(1, &mut out, usize::MAX);
        let frames = decode(&out);
        assert_eq!(
            frames[0],
            Frame::Gap {
                seq: 1,
                range: GapRange { from: 1, to: 1 }
            }
        );
        assert_eq!(frames.len(), 4);
        assert_eq!(read.cursor, 5);
        assert!(read.output && !read.terminal);
    }

    #[test]
    fn knows_what_a_push_would_evict() {
        let mut ring = Ring::new(6);
        assert_eq!(ring.evicted_by(6), None);
        for chunk in [&b"ab"[..], b"cd", b"ef"] {
            ring.push(FrameKind::Stdout, Bytes::copy_from_slice(chunk));
        }
        assert_eq!(ring.evicted_by(0), None);
        assert_eq!(ring.evicted_by(1), Some(1));
        assert_eq!(ring.evicted_by(3), Some(2));
    }

    #[test]
    fn keeps_newest_frame_even_if_larger_than_capacity() {
        let mut ring = Ring::new(1);
        ring.push(FrameKind::Stdout, Bytes::from_static(b"hello"));
        ring.push(FrameKind::Stdout, Bytes::from_static(b"world"));
        ring.push(FrameKind::Exit, Bytes::from_static(b"{}"));
        assert_eq!(
            (ring.first_seq(), ring.last_seq()),
            (2, 3),
            "the terminal frame does not evict the last output"
        );
        let mut out = BytesMut::new();
        let read = ring.read(0, &mut out, 0);
        assert!(!read.terminal);
        assert_eq!(read.frames, 2, "the gap for seq 1, then at least one frame");
        assert_eq!(read.cursor, 3);
    }
}
