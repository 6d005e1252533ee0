//! Serving an exec's frames to one attached client.
//!
//! Each client has its own task and cursor reading the shared ring, and a
//! small channel to its HTTP body: a slow client only blocks its own task
//! (the process keeps draining into the ring), and falls behind into a gap
//! frame rather than holding memory.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::{Exec, ExecError};
use crate::daemon::Activity;
use crate::daemon::body::ChannelBody;

/// Encoded bytes per body chunk; big enough to amortize syscalls at `cat`
/// speed, small enough to keep a slow client's buffer bounded.
const BATCH_BYTES: usize = 256 * 1024;

/// Chunks buffered per client between its task and hyper.
const CHANNEL_CHUNKS: usize = 2;

impl Exec {
    /// Attaches a client that has seen every frame up to `since`: it gets
    /// every retained frame after it exactly once (a gap frame for evicted
    /// ones), then the live tail, ending after the terminal frame.
    ///
    /// # Errors
    ///
    /// [`ExecError::BadSince`] if `since` is beyond the newest frame.
    pub fn attach(
        self: &Arc<Self>,
        since: u64,
        activity: Arc<Activity>,
    ) -> Result<ChannelBody, ExecError> {
        let last = self.lock().ring.last_seq();
        if since > last {
            return Err(ExecError::BadSince { since, last });
        }
        activity.touch();
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let exec = Arc::clone(self);
        tokio::spawn(async move {
            let mut seqs = exec.subscribe();
            let mut cursor = since + 1;
            let reader = ReaderGuard {
                id: exec.add_reader(cursor),
                exec: Arc::clone(&exec),
            };
            loop {
                // Mark the current seq seen before reading, so a frame
                // pushed after the read wakes `changed` below.
                seqs.borrow_and_update();
                let mut out = BytesMut::new();
                let read = exec.read_frames(cursor, &mut out, BATCH_BYTES);
                cursor = read.cursor;
                exec.advance_reader(reader.id, cursor);
                if read.frames == 0 && read.terminal {
                    return;
                }
                if read.frames > 0 {
                    if tx.send(Ok(out.freeze())).await.is_err() {
                        tracing::debug!(exec = %exec.id, "attached client went away");
                        return;
                    }
                    if read.output {
                        activity.touch();
                    }
                    if read.terminal {
                        return;
                    }
                    continue;
                }
                if seqs.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(ChannelBody::new(rx))
    }
}

/// Unregisters an attached client however its task ends.
struct ReaderGuard {
    id: u64,
    exec: Arc<Exec>,
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.exec.remove_reader(self.id);
    }
}
