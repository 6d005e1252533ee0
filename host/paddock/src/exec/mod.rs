//! Execs: one process run in a session, and its numbered event log.

pub mod log;

pub use log::{DEFAULT_RING, Delivery, Entry, EventLog, RingLimits, Subscription, Weigh};
