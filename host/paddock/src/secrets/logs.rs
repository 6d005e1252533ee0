//! Redaction of live secrets from the host's own log output.
//!
//! The values of every credential issued to a live session are registered
//! here; the log writer ([`RedactingWriter`]) masks them in each formatted
//! log line before it reaches stderr. A plugin that logs what it issued, an
//! error message quoting a response body, a debug print of a request: none
//! of them can put a live secret in the log.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{LazyLock, RwLock};

use tracing_subscriber::fmt::MakeWriter;

use super::redact::{RedactError, Redactor};

/// The secrets of the live sessions of this process, by session.
#[derive(Default)]
pub struct LiveSecrets {
    by_session: RwLock<BTreeMap<String, Vec<Vec<u8>>>>,
    redactor: RwLock<Redactor>,
}

/// The process-wide set the log writer reads.
pub static LIVE: LazyLock<LiveSecrets> = LazyLock::new(LiveSecrets::default);

impl LiveSecrets {
    /// Adds `values` to what is masked, under `session`.
    pub fn add(&self, session: &str, values: Vec<Vec<u8>>) -> Result<(), RedactError> {
        let mut map = self.by_session.write().unwrap_or_else(|e| e.into_inner());
        map.entry(session.to_owned()).or_default().extend(values);
        self.rebuild(&map)
    }

    /// Stops masking what `session` was issued (it was revoked).
    pub fn remove(&self, session: &str) {
        let mut map = self.by_session.write().unwrap_or_else(|e| e.into_inner());
        if map.remove(session).is_some()
            && let Err(err) = self.rebuild(&map)
        {
            // The old, larger set stays in force: masking a revoked value
            // longer is harmless.
            tracing::error!(error = %err, "cannot rebuild the log redactor");
        }
    }

    fn rebuild(&self, map: &BTreeMap<String, Vec<Vec<u8>>>) -> Result<(), RedactError> {
        let redactor = Redactor::new(map.values().flatten())?;
        *self.redactor.write().unwrap_or_else(|e| e.into_inner()) = redactor;
        Ok(())
    }

    /// The current set.
    pub fn redactor(&self) -> Redactor {
        self.redactor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A [`MakeWriter`] whose writers mask live secrets. Each writer buffers one
/// formatted event and writes it, masked, to the inner writer when dropped
/// (the fmt layer makes one writer per event).
#[derive(Clone)]
pub struct RedactingWriter<M> {
    inner: M,
    live: &'static LiveSecrets,
}

impl<M> RedactingWriter<M> {
    /// Masks the process-wide [`LIVE`] set in what `inner` writes.
    pub fn new(inner: M) -> Self {
        Self { inner, live: &LIVE }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = LineWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            inner: self.inner.make_writer(),
            redactor: self.live.redactor(),
            buffer: Vec::new(),
        }
    }
}

/// One event's writer: buffers, then masks and writes on drop.
pub struct LineWriter<W: Write> {
    inner: W,
    redactor: Redactor,
    buffer: Vec<u8>,
}

impl<W: Write> Write for LineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.redactor.is_empty() {
            return self.inner.write(buf);
        }
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buffer.is_empty() {
            let masked = self.redactor.redact(&self.buffer);
            self.buffer.clear();
            self.inner.write_all(&masked)?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for LineWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failing log write but the log itself.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_live_secret_is_masked_in_log_lines_until_revoked() {
        let captured = Captured::default();
        let live: &'static LiveSecrets = Box::leak(Box::default());
        let writer = RedactingWriter {
            inner: {
                let c = captured.clone();
                move || c.clone()
            },
            live,
        };
        live.add("ses-1", vec![b"hunter2-db-password".to_vec()])
            .unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(body = "token=hunter2-db-password", "upstream said");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("token=[REDACTED]"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
