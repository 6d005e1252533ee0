//! Redaction of issued secret values from what leaves the host: exec output,
//! agent events and the host's own logs.
//!
//! A [`Redactor`] is an immutable set of values; a [`StreamRedactor`] applies
//! one to a byte stream that arrives in chunks of any size, so a secret split
//! across two chunks is still caught: it holds back the longest tail of what
//! it has seen that could still be the start of a secret, and releases it
//! once the next chunk (or the end) decides.

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};

/// What a redacted value is replaced with.
pub const MASK: &[u8] = b"[REDACTED]";

/// The shortest value that is redacted. Shorter "secrets" (`1`, `yes`)
/// would mask ordinary output everywhere; they are still issued, and the
/// host logs a warning naming the grant (never the value).
pub const MIN_SECRET_LEN: usize = 6;

/// A set of secret values to mask.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Option<Arc<Patterns>>,
}

struct Patterns {
    matcher: AhoCorasick,
    values: Vec<Vec<u8>>,
}

/// The values could not be compiled into a matcher (only a set far beyond
/// any real one, in size, gets here). Issuing fails rather than leak.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the redaction matcher: {0}")]
pub struct RedactError(String);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values.
        f.debug_struct("Redactor")
            .field("values", &self.inner.as_ref().map_or(0, |p| p.values.len()))
            .finish()
    }
}

impl Redactor {
    /// A redactor for `values`; values shorter than [`MIN_SECRET_LEN`] and
    /// duplicates are left out.
    pub fn new<I, V>(values: I) -> Result<Self, RedactError>
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().to_vec())
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort();
        values.dedup();
        if values.is_empty() {
            return Ok(Self::default());
        }
        // Leftmost-longest: of two secrets where one contains the other, the
        // longer is masked whole.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&values)
            .map_err(|e| RedactError(e.to_string()))?;
        Ok(Self {
            inner: Some(Arc::new(Patterns { matcher, values })),
        })
    }

    /// Whether it masks nothing.
    pub fn is_empty(&self) -> bool {
        self.inner.is_none()
    }

    /// `data` with every secret masked (for whole messages: a log line, an
    /// event).
    pub fn redact(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        match &self.inner {
            None => out.extend_from_slice(data),
            Some(p) => {
                let end = replace_into(p, data, &mut out);
                out.extend_from_slice(&data[end..]);
            }
        }
        out
    }

    /// `text` with every secret masked.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.inner {
            Some(p) if p.matcher.is_match(text) => {
                Cow::Owned(String::from_utf8_lossy(&self.redact(text.as_bytes())).into_owned())
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// A stream redactor applying this set.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            redactor: self.clone(),
            held: Vec::new(),
        }
    }
}

/// Copies `data` into `out` with matches masked, up to the end of the last
/// match; returns where the unmatched rest starts.
fn replace_into(p: &Patterns, data: &[u8], out: &mut Vec<u8>) -> usize {
    let mut last = 0;
    for m in p.matcher.find_iter(data) {
        out.extend_from_slice(&data[last..m.start()]);
        out.extend_from_slice(MASK);
        last = m.end();
    }
    last
}

/// A [`Redactor`] over one byte stream.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    /// Bytes seen but not released: a tail that may be a secret's start.
    held: Vec<u8>,
}

impl StreamRedactor {
    /// The next chunk: returns what can be released now, masked. The
    /// released bytes followed by those of later calls and [`finish`] are
    /// exactly the stream with every secret masked.
    ///
    /// [`finish`]: Self::finish
    pub fn push<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(p) = self.redactor.inner.clone() else {
            // Nothing to mask: no copy.
            return Cow::Borrowed(chunk);
        };
        let data: Cow<'_, [u8]> = if self.held.is_empty() {
            Cow::Borrowed(chunk)
        } else {
            let mut joined = std::mem::take(&mut self.held);
            joined.extend_from_slice(chunk);
            Cow::Owned(joined)
        };
        let mut out = Vec::with_capacity(data.len());
        let rest = replace_into(&p, &data, &mut out);
        let tail = &data[rest..];
        let keep = partial_prefix_len(&p.values, tail);
        out.extend_from_slice(&tail[..tail.len() - keep]);
        self.held = tail[tail.len() - keep..].to_vec();
        Cow::Owned(out)
    }

    /// The end of the stream: releases what was held (it never completed a
    /// secret).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

/// The length of the longest suffix of `tail` that is a proper prefix of
/// one of `values` (a secret that may complete in the next chunk).
fn partial_prefix_len(values: &[Vec<u8>], tail: &[u8]) -> usize {
    let mut best = 0;
    for value in values {
        let max = (value.len() - 1).min(tail.len());
        for len in (best + 1..=max).rev() {
            if tail[tail.len() - len..] == value[..len] {
                best = len;
                break;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-DB-pass";

    fn stream_all(redactor: &Redactor, chunks: &[&[u8]]) -> Vec<u8> {
        let mut stream = redactor.stream();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(&stream.push(chunk));
        }
        out.extend(stream.finish());
        out
    }

    #[test]
    fn a_whole_message_is_masked() {
        let r = Redactor::new([SECRET]).unwrap();
        assert_eq!(
            r.redact(format!("password={SECRET}; again {SECRET}").as_bytes()),
            b"password=[REDACTED]; again [REDACTED]"
        );
        assert_eq!(r.redact_str("nothing here"), "nothing here");
    }

    #[test]
    fn a_secret_split_at_every_byte_boundary_is_caught() {
        let r = Redactor::new([SECRET, "ghs_0123456789abcdef"]).unwrap();
        let text = format!("before {SECRET} middle ghs_0123456789abcdef after");
        let expected = b"before [REDACTED] middle [REDACTED] after".to_vec();
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                stream_all(&r, &[&bytes[..cut], &bytes[cut..]]),
                expected,
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(stream_all(&r, &singles), expected);
    }

    #[test]
    fn a_false_start_is_released_unchanged() {
        let r = Redactor::new([SECRET]).unwrap();
        let mut stream = r.stream();
        // "s3cr" could start the secret: held back.
        assert_eq!(&*stream.push(b"abc s3cr"), b"abc ");
        // It did not.
        assert_eq!(&*stream.push(b"ew driver"), b"s3crew driver");
        assert_eq!(stream.finish(), b"");
        // A stream that ends on a partial prefix releases it at the end.
        let mut stream = r.stream();
        assert_eq!(&*stream.push(b"x s3cr3t"), b"x ");
        assert_eq!(stream.finish(), b"s3cr3t");
    }

    #[test]
    fn the_longer_of_two_overlapping_secrets_is_masked_whole() {
        let r = Redactor::new(["abcdef", "abcdefghij"]).unwrap();
        assert_eq!(
            stream_all(&r, &[b"xx abcde", b"fghij yy"]),
            b"xx [REDACTED] yy"
        );
        assert_eq!(r.redact(b"abcdefgh"), b"[REDACTED]gh");
    }

    #[test]
    fn short_values_are_not_redacted() {
        let r = Redactor::new(["yes", "1"]).unwrap();
        assert!(r.is_empty());
        assert_eq!(stream_all(&r, &[b"yes 1"]), b"yes 1");
    }

    #[test]
    fn binary_output_passes_through() {
        let r = Redactor::new([SECRET]).unwrap();
        let data: Vec<u8> = (0..=255u8).collect();
        assert_eq!(stream_all(&r, &[&data[..100], &data[100..]]), data);
    }
}
