//! An exec's event log: every event numbered in order, kept in a bounded
//! replay ring, readable from any point by any number of subscribers.
//!
//! A subscriber that starts after sequence number `n` gets every later event
//! exactly once, then the live tail, and ends after the log is closed. If
//! events it asks for were already evicted it gets one explicit
//! [`Delivery::Gap`] naming the missing range, never a silent hole.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How much of a log stays replayable. Both bounds apply; the newest event
/// is always kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// How long an attached subscriber that reads nothing may hold the
    /// writer back before it gets a gap ([`BACKPRESSURE_STALL`] by default).
    pub stall: Duration,
}

/// Default ring: 100,000 events or 32 MiB, whichever comes first — a long
/// agent run's whole stream, so a client that reconnects minutes later still
/// gets everything.
pub const DEFAULT_RING: RingLimits = RingLimits {
    max_events: 100_000,
    max_bytes: 32 << 20,
    stall: BACKPRESSURE_STALL,
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
    /// Live subscribers, by id: how far each has read.
    readers: HashMap<u64, Reader>,
    next_reader: u64,
}

#[derive(Debug, Clone, Copy)]
struct Reader {
    /// The last sequence number it has taken.
    after: u64,
    /// It made no progress for [`BACKPRESSURE_STALL`]: it no longer holds
    /// the writer back and gets a gap for what it misses.
    lagging: bool,
}

/// How long [`EventLog::wait_for_room`] waits for a subscriber that has not
/// read what the next event would evict. A subscriber that keeps up slows
/// the writer to its pace (and, through runnerd, the process) and misses
/// nothing; one stalled longer falls behind into a gap.
pub const BACKPRESSURE_STALL: Duration = Duration::from_secs(2);

/// The reader id of the placeholder of [`EventLog::hold_for_first_subscriber`].
const FIRST_SUBSCRIBER: u64 = u64::MAX;

impl<E: Weigh> State<E> {
    /// The newest sequence number that appending an event of `weight`
    /// would evict, if any.
    fn evicted_by(&self, weight: usize, limits: RingLimits) -> Option<u64> {
        let (mut len, mut bytes) = (self.ring.len() + 1, self.bytes + weight);
        let mut evicted = None;
        for entry in &self.ring {
            if len <= 1 || (len <= limits.max_events && bytes <= limits.max_bytes) {
                break;
            }
            len -= 1;
            bytes -= entry.event.weight();
            evicted = Some(entry.seq);
        }
        evicted
    }
}

/// The log. Cheap to share behind an `Arc`.
pub struct EventLog<E> {
    state: Mutex<State<E>>,
    limits: RingLimits,
    /// Bumped on every push and on close, so subscribers wake up.
    changed: watch::Sender<u64>,
    /// Woken when a subscriber reads on or goes away.
    progress: tokio::sync::Notify,
}

impl<E: Weigh> EventLog<E> {
    pub fn new(limits: RingLimits) -> Self {
        Self {
            state: Mutex::new(State {
                ring: VecDeque::new(),
                next_seq: 1,
                bytes: 0,
                closed: false,
                readers: HashMap::new(),
                next_reader: 0,
            }),
            limits,
            changed: watch::channel(0).0,
            progress: tokio::sync::Notify::new(),
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
        self.append(event, true)
    }

    /// Appends the terminal event and closes the log. It evicts nothing
    /// (the ring may exceed its bounds by this one event): a writer that
    /// ends cannot wait for room, and its last event must not cost a slow
    /// reader a gap.
    pub fn push_last(&self, event: E) -> Option<u64> {
        let seq = self.append(event, false);
        self.close();
        seq
    }

    fn append(&self, event: E, evict: bool) -> Option<u64> {
        let seq = {
            let mut state = self.lock();
            if state.closed {
                return None;
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.bytes += event.weight();
            state.ring.push_back(Arc::new(Entry { seq, event }));
            while evict
                && state.ring.len() > 1
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

    /// Holds the events from the start for the first subscriber, who
    /// usually attaches just after the writer started (as a client does
    /// right after creating an exec): until then a placeholder reader at 0
    /// counts as live, under the same stall limit as any other.
    pub fn hold_for_first_subscriber(&self) {
        self.lock().readers.insert(
            FIRST_SUBSCRIBER,
            Reader {
                after: 0,
                lagging: false,
            },
        );
    }

    /// Waits until appending an event of `weight` would evict nothing a
    /// live subscriber still has to read, or until such a subscriber made
    /// no progress for [`BACKPRESSURE_STALL`] (it is then marked lagging).
    pub async fn wait_for_room(&self, weight: usize) {
        let mut since_progress = Instant::now();
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                let Some(evicted) = state.evicted_by(weight, self.limits) else {
                    return;
                };
                let mut behind = state
                    .readers
                    .values_mut()
                    .filter(|r| !r.lagging && r.after < evicted)
                    .peekable();
                if behind.peek().is_none() {
                    return;
                }
                if since_progress.elapsed() >= self.limits.stall {
                    behind.for_each(|r| r.lagging = true);
                    tracing::info!("a subscriber stalled; it will get a gap");
                    return;
                }
            }
            tokio::select! {
                () = &mut notified => since_progress = Instant::now(),
                () = tokio::time::sleep_until((since_progress + self.limits.stall).into()) => {}
            }
        }
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
        let id = {
            let mut state = self.lock();
            state.readers.remove(&FIRST_SUBSCRIBER);
            let id = state.next_reader;
            state.next_reader += 1;
            state.readers.insert(
                id,
                Reader {
                    after,
                    lagging: false,
                },
            );
            id
        };
        Subscription {
            id,
            log: self.clone(),
            after,
            changed: self.changed.subscribe(),
            pending: VecDeque::new(),
        }
    }
}

/// A reader of a log; see [`EventLog::subscribe`].
pub struct Subscription<E: Weigh> {
    /// Its id among the log's readers.
    id: u64,
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
        let filled = self.take_new();
        if filled {
            if let Some(reader) = self.log.lock().readers.get_mut(&self.id) {
                *reader = Reader {
                    after: self.after,
                    lagging: false,
                };
            }
            self.log.progress.notify_waiters();
        }
        filled
    }

    fn take_new(&mut self) -> bool {
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

impl<E: Weigh> Drop for Subscription<E> {
    fn drop(&mut self) {
        self.log.lock().readers.remove(&self.id);
        self.log.progress.notify_waiters();
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
            stall: BACKPRESSURE_STALL,
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

    #[tokio::test]
    async fn a_reading_subscriber_holds_the_writer_back_instead_of_missing_events() {
        let log = log(4, 1 << 20);
        let mut sub = log.subscribe(0);
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    log.wait_for_room(1).await;
                    log.push(i.to_string());
                }
                log.close();
            })
        };
        let mut got = Vec::new();
        while let Some(delivery) = sub.next().await {
            match delivery {
                Delivery::Event(e) => got.push(e.event.clone()),
                Delivery::Gap { from, to } => panic!("gap {from}..{to}"),
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert_eq!(got, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn the_last_event_evicts_nothing_a_reader_still_needs() {
        let log = log(2, usize::MAX);
        let mut sub = log.subscribe(0);
        log.push("a".to_owned());
        log.push("b".to_owned());
        log.push_last("end".to_owned());
        let mut events = 0;
        while let Some(delivery) = sub.next().await {
            match delivery {
                Delivery::Event(_) => events += 1,
                Delivery::Gap { from, to } => panic!("a gap {from}..={to} before the last event"),
            }
        }
        assert_eq!(events, 3);
    }

    #[tokio::test]
    async fn a_stalled_subscriber_stops_holding_the_writer_after_the_stall() {
        let log = log(2, 1 << 20);
        let sub = log.subscribe(0);
        for i in 0..10 {
            log.wait_for_room(1).await;
            log.push(i.to_string());
        }
        log.close();
        drop(sub);
        assert_eq!(log.last_seq(), 10, "the writer went on");
    }

    #[tokio::test]
    async fn the_first_subscriber_gets_what_was_written_before_it_came() {
        let log = log(4, 1 << 20);
        log.hold_for_first_subscriber();
        let writer = {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    log.wait_for_room(1).await;
                    log.push(i.to_string());
                }
                log.close();
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(log.last_seq(), 4, "the writer waits with a full ring");
        let got = drain(&mut log.subscribe(0)).await;
        writer.await.unwrap();
        assert_eq!(got.len(), 20, "no gap: {got:?}");
    }
}
