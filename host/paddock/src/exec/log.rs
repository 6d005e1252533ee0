//! An exec's event log: every event numbered in order, kept in a bounded
//! replay ring, readable from any point by any number of subscribers.
//!
//! A subscriber that starts after sequence number `n` gets every later event
//! exactly once, then the live tail, and ends after the log is closed. If
//! events it asks for were already evicted it gets one explicit
//! [`Delivery::Gap`] naming the missing range, never a silent hole.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// How much of a log stays replayable. Both bounds apply; the newest event
/// is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// Default ring: 100,000 events or 32 MiB, whichever comes first — a long
/// agent run's whole stream, so a client that reconnects minutes later still
/// gets everything.
pub const DEFAULT_RING: RingLimits = RingLimits {
    max_events: 100_000,
    max_bytes: 32 << 20,
};

/// What an event weighs in the ring's byte bound.
pub trait Weigh {
    fn weight(&self) -> usize;
}

/// One numbered event.
#[derive(Debug)]
pub struct Entry<E> {
    pub seq: u64,
    pub event: E,
}

/// What a subscriber receives.
#[derive(Debug)]
pub enum Delivery<E> {
    Event(Arc<Entry<E>>),
    /// Events `from..=to` were evicted before this subscriber read them.
    Gap {
        from: u64,
        to: u64,
    },
}

struct State<E> {
    ring: VecDeque<Arc<Entry<E>>>,
    /// Sequence number of the next event (the first is 1).
    next_seq: u64,
    bytes: usize,
    closed: bool,
}

/// The log. Cheap to share behind an `Arc`.
pub struct EventLog<E> {
    state: Mutex<State<E>>,
    limits: RingLimits,
    /// Bumped on every push and on close, so subscribers wake up.
    changed: watch::Sender<u64>,
}

impl<E: Weigh> EventLog<E> {
    pub fn new(limits: RingLimits) -> Self {
        Self {
            state: Mutex::new(State {
                ring: VecDeque::new(),
                next_seq: 1,
                bytes: 0,
                closed: false,
            }),
            limits,
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<E>> {
        // Pushing cannot panic half-way through an update; a poisoned lock
        // still guards a consistent ring.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `event` and returns its sequence number, or `None` if the log
    /// is closed (the exec already ended).
    pub fn push(&self, event: E) -> Option<u64> {
        let seq = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.bytes += event.weight();
            state.ring.push_back(Arc::new(Entry { seq, event }));
            while state.ring.len() > 1
                && (state.ring.len() > self.limits.max_events
                    || state.bytes > self.limits.max_bytes)
            {
                if let Some(old) = state.ring.pop_front() {
                    state.bytes -= old.event.weight();
                }
            }
            seq
        };
        self.changed.send_replace(seq);
        Some(seq)
    }

    /// No more events: subscribers end once they have read the last one.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.send_modify(|_| {});
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The sequence number of the newest event (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// Reads every event after `after` (0: from the start), then follows.
    pub fn subscribe(self: &Arc<Self>, after: u64) -> Subscription<E> {
        Subscription {
            log: self.clone(),
            after,
            changed: self.changed.subscribe(),
            pending: VecDeque::new(),
        }
    }
}

/// A reader of a log; see [`EventLog::subscribe`].
pub struct Subscription<E> {
    log: Arc<EventLog<E>>,
    /// The last sequence number delivered (or skipped by a gap).
    after: u64,
    changed: watch::Receiver<u64>,
    pending: VecDeque<Delivery<E>>,
}

impl<E: Weigh> Subscription<E> {
    /// The next delivery, waiting for it if needed; `None` once the log is
    /// closed and everything was delivered.
    pub async fn next(&mut self) -> Option<Delivery<E>> {
        loop {
            if let Some(delivery) = self.pending.pop_front() {
                return Some(delivery);
            }
            // Mark the current version seen before reading, so a push after
            // the read wakes us.
            self.changed.borrow_and_update();
            if self.fill() {
                continue;
            }
            if self.log.is_closed() {
                // A push may have raced the close; read once more.
                if self.fill() {
                    continue;
                }
                return None;
            }
            if self.changed.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Moves what is newer than `after` into `pending`; false if nothing.
    fn fill(&mut self) -> bool {
        let state = self.log.lock();
        let Some(first) = state.ring.front().map(|e| e.seq) else {
            return false;
        };
        if self.after + 1 < first {
            self.pending.push_back(Delivery::Gap {
                from: self.after + 1,
                to: first - 1,
            });
            self.after = first - 1;
        }
        let skip = (self.after + 1).saturating_sub(first) as usize;
        for entry in state.ring.iter().skip(skip) {
            self.pending.push_back(Delivery::Event(entry.clone()));
            self.after = entry.seq;
        }
        !self.pending.is_empty()
    }

    /// The last sequence number delivered.
    pub fn position(&self) -> u64 {
        self.after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for String {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    fn log(max_events: usize, max_bytes: usize) -> Arc<EventLog<String>> {
        Arc::new(EventLog::new(RingLimits {
            max_events,
            max_bytes,
        }))
    }

    async fn drain(sub: &mut Subscription<String>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(d) = sub.next().await {
            out.push(match d {
                Delivery::Event(e) => format!("{}:{}", e.seq, e.event),
                Delivery::Gap { from, to } => format!("gap {from}..{to}"),
            });
        }
        out
    }

    #[tokio::test]
    async fn replay_from_any_point_then_end_at_close() {
        let log = log(100, 1 << 20);
        for word in ["a", "b", "c"] {
            log.push(word.to_owned());
        }
        log.close();
        assert_eq!(drain(&mut log.subscribe(0)).await, ["1:a", "2:b", "3:c"]);
        assert_eq!(drain(&mut log.subscribe(2)).await, ["3:c"]);
        assert!(drain(&mut log.subscribe(3)).await.is_empty());
        assert_eq!(log.push("late".into()), None, "a closed log takes nothing");
    }

    #[tokio::test]
    async fn evicted_ranges_are_an_explicit_gap() {
        let log = log(2, 1 << 20);
        for word in ["a", "b", "c", "d"] {
            log.push(word.to_owned());
        }
        log.close();
        assert_eq!(
            drain(&mut log.subscribe(0)).await,
            ["gap 1..2", "3:c", "4:d"]
        );
        assert_eq!(drain(&mut log.subscribe(3)).await, ["4:d"]);
    }

    #[tokio::test]
    async fn the_byte_bound_keeps_at_least_the_newest_event() {
        let log = log(100, 4);
        log.push("abc".into());
        log.push("a very long event".into());
        log.close();
        assert_eq!(
            drain(&mut log.subscribe(0)).await,
            ["gap 1..1", "2:a very long event"]
        );
    }

    #[tokio::test]
    async fn live_subscribers_get_every_event_exactly_once() {
        let log = log(1_000_000, usize::MAX);
        let mut readers = Vec::new();
        for _ in 0..4 {
            let mut sub = log.subscribe(0);
            readers.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                while let Some(Delivery::Event(e)) = sub.next().await {
                    seqs.push(e.seq);
                }
                seqs
            }));
        }
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..10_000 {
                    log.push(i.to_string());
                    if i % 100 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                log.close();
            })
        };
        writer.await.unwrap();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), (1..=10_000).collect::<Vec<u64>>());
        }
    }
}
