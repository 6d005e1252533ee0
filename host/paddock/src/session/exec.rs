//! One exec as the host sees it: its record, its event log, and the pump
//! that moves runnerd's frames into that log (through the adapter's parser
//! for an agent run).
//!
//! The pump reads runnerd's frame stream from the last frame it handled, so
//! a dropped connection or a restarted host resumes exactly where it was:
//! runnerd keeps its own replay ring, and the exec keeps running there
//! whatever happens to the host.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paddock_runnerd::client::{Client, ClientError};
use paddock_runnerd::proto::{ExitInfo, ExitReason, Frame, ProcessStatus};
use paddock_sdk::agent::{AgentError, AgentEvent, ErrorKind, ProcessEnd, UsageTotals};
use serde::Serialize;
use utoipa::ToSchema;

use super::events::{ExecEvent, Utf8Stream};
use super::store::ExecRecord;
use super::unix_ms;
use crate::exec::{EventLog, RingLimits, Subscription, Weigh};
use crate::plugin::{AgentParser, AgentPlugin};
use crate::secrets::Redactor;

/// How long the pump keeps retrying an unreachable runnerd before it
/// declares the exec lost.
const LOST_AFTER: Duration = Duration::from_secs(30);

/// An exec of a session.
pub struct Exec {
    /// runnerd's id of the exec (also in `record`; kept here to be read
    /// without the lock).
    id: String,
    record: Mutex<ExecRecord>,
    /// Turns true once the terminal event is recorded.
    ended: tokio::sync::watch::Sender<bool>,
    log: Arc<EventLog<ExecEvent>>,
    /// Clients attached to the event stream right now.
    attached: AtomicUsize,
    /// The adapter of an agent run, for steering.
    agent: Option<Arc<AgentPlugin>>,
    /// For an exec re-adopted after a restart: what was persisted, used if
    /// runnerd no longer has the exec to replay.
    persisted: Option<ExecRecord>,
}

/// `GET /v1/sessions/{id}/execs/{exec}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecView {
    pub id: String,
    pub session_id: String,
    /// `command` or `agent`.
    pub kind: &'static str,
    pub argv: Vec<String>,
    /// The adapter of an agent run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// `running` or `ended`.
    pub state: &'static str,
    /// How it ended: `{reason: exited|signaled|timed_out|cancelled|output_capped|lost, ...}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub exit: Option<ExitInfo>,
    pub created_at_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<u64>,
    /// Sequence number of the newest event.
    pub last_event_id: u64,
    /// Clients attached to the event stream.
    pub attached: usize,
    /// Token totals of an agent run.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub usage: Option<UsageTotals>,
    /// The agent CLI's own session id, to resume with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    /// The agent run's `result` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<paddock_sdk::agent::RunResult>,
}

impl Exec {
    pub fn new(record: ExecRecord, agent: Option<Arc<AgentPlugin>>, ring: RingLimits) -> Arc<Self> {
        Arc::new(Self {
            id: record.id.clone(),
            record: Mutex::new(record),
            ended: tokio::sync::watch::Sender::new(false),
            log: held_log(ring),
            attached: AtomicUsize::new(0),
            agent,
            persisted: None,
        })
    }

    /// An exec re-adopted after a restart, to be replayed from runnerd:
    /// its event log, exit and agent totals are rebuilt from the frames, so
    /// event ids stay what clients saw before.
    pub fn revived(
        record: ExecRecord,
        agent: Option<Arc<AgentPlugin>>,
        ring: RingLimits,
    ) -> Arc<Self> {
        let fresh = ExecRecord {
            exit: None,
            ended_at_ms: None,
            run: Default::default(),
            ..record.clone()
        };
        Arc::new(Self {
            id: record.id.clone(),
            record: Mutex::new(fresh),
            ended: tokio::sync::watch::Sender::new(false),
            log: held_log(ring),
            attached: AtomicUsize::new(0),
            agent,
            persisted: Some(record),
        })
    }

    /// runnerd no longer has the exec: end it as persisted, or as lost if
    /// it was still running when the host last saw it.
    fn end_unreplayable(&self) {
        match self
            .persisted
            .as_ref()
            .and_then(|p| p.exit.map(|exit| (exit, p)))
        {
            Some((exit, persisted)) => {
                self.lock().run = persisted.run.clone();
                self.end(exit);
            }
            None => {
                self.end_lost();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ExecRecord> {
        self.record.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sequence number of the newest event.
    pub fn last_event_id(&self) -> u64 {
        self.log.last_seq()
    }

    /// Resolves once the terminal event is recorded.
    pub async fn wait_ended(&self) {
        // The sender lives in `self`, so the channel cannot close first.
        let _ = self.ended.subscribe().wait_for(|ended| *ended).await;
    }

    pub fn record(&self) -> ExecRecord {
        self.lock().clone()
    }

    pub fn is_running(&self) -> bool {
        self.lock().exit.is_none()
    }

    pub fn agent(&self) -> Option<&Arc<AgentPlugin>> {
        self.agent.as_ref()
    }

    pub fn attached(&self) -> usize {
        self.attached.load(Ordering::Relaxed)
    }

    pub fn view(&self, session_id: &str) -> ExecView {
        let record = self.lock();
        ExecView {
            id: self.id.clone(),
            session_id: session_id.to_owned(),
            kind: if record.agent.is_some() {
                "agent"
            } else {
                "command"
            },
            argv: record.argv.clone(),
            agent: record.agent.clone(),
            state: if record.exit.is_some() {
                "ended"
            } else {
                "running"
            },
            exit: record.exit,
            created_at_ms: record.created_at_ms,
            ended_at_ms: record.ended_at_ms,
            last_event_id: self.log.last_seq(),
            attached: self.attached(),
            usage: record.run.usage.clone(),
            agent_session_id: record.run.agent_session_id.clone(),
            result: record.run.result.clone(),
        }
    }

    /// A reader of the event stream after event `after`; it counts as
    /// attached until dropped.
    pub fn subscribe(self: &Arc<Self>, after: u64) -> Attachment {
        self.attached.fetch_add(1, Ordering::Relaxed);
        Attachment {
            subscription: self.log.subscribe(after),
            exec: self.clone(),
        }
    }

    /// Records the terminal event and closes the stream; later calls are
    /// ignored, so exactly one terminal event is ever recorded.
    pub fn end(&self, exit: ExitInfo) -> bool {
        {
            let mut record = self.lock();
            if record.exit.is_some() {
                return false;
            }
            record.exit = Some(exit);
            record.ended_at_ms = Some(unix_ms());
        }
        self.log.push_last(ExecEvent::exit(&exit));
        self.ended.send_replace(true);
        true
    }

    /// Marks an exec the host can no longer follow.
    pub fn end_lost(&self) -> bool {
        let duration_ms = unix_ms().saturating_sub(self.lock().created_at_ms);
        self.end(ExitInfo {
            reason: ExitReason::Lost,
            status: None,
            duration_ms,
        })
    }

    fn note_agent_event(&self, event: &AgentEvent) {
        let mut record = self.lock();
        let run = &mut record.run;
        match event {
            AgentEvent::RunStarted(started) => {
                run.agent_session_id = Some(started.session_id.clone());
            }
            AgentEvent::Usage(usage) => {
                run.usage
                    .get_or_insert_with(UsageTotals::default)
                    .add(usage);
            }
            AgentEvent::Result(result) => {
                if let Some(id) = &result.session_id {
                    run.agent_session_id = Some(id.clone());
                }
                run.result = Some(result.clone());
            }
            _ => {}
        }
    }

    /// Appends an event, first letting attached clients read what it would
    /// evict (back-pressure that reaches the process through runnerd).
    async fn append(&self, event: ExecEvent) {
        self.log.wait_for_room(event.weight()).await;
        self.log.push(event);
    }

    async fn push_agent_events(&self, events: Vec<AgentEvent>) {
        for event in events {
            self.note_agent_event(&event);
            self.append(ExecEvent::agent(&event)).await;
        }
    }
}

/// An exec's log, holding its events for the client that attaches right
/// after creating (or re-attaching to) it.
fn held_log(ring: RingLimits) -> Arc<EventLog<ExecEvent>> {
    let log = Arc::new(EventLog::new(ring));
    log.hold_for_first_subscriber();
    log
}

/// A client attached to an exec's stream.
pub struct Attachment {
    subscription: Subscription<ExecEvent>,
    exec: Arc<Exec>,
}

impl Attachment {
    pub fn subscription(&mut self) -> &mut Subscription<ExecEvent> {
        &mut self.subscription
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.exec.attached.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The pump's view of the process end, for the parser.
fn process_end(exit: &ExitInfo) -> ProcessEnd {
    match (exit.reason, exit.status) {
        (ExitReason::Exited { code }, _) => ProcessEnd::Exited(code),
        (ExitReason::Signaled { signal }, _) => ProcessEnd::Signaled(signal),
        (ExitReason::TimedOut, _) => ProcessEnd::TimedOut,
        (ExitReason::Cancelled, _) => ProcessEnd::Cancelled,
        (ExitReason::OutputCapped, Some(ProcessStatus::Signaled(signal))) => {
            ProcessEnd::Signaled(signal)
        }
        (ExitReason::OutputCapped, Some(ProcessStatus::Exited(code))) => ProcessEnd::Exited(code),
        (ExitReason::OutputCapped | ExitReason::Lost, None) | (ExitReason::Lost, _) => {
            ProcessEnd::Lost
        }
    }
}

/// Moves the exec's frames from runnerd into its log until the terminal
/// frame, reconnecting from the last handled frame when the stream breaks.
/// `on_end` runs once the exec has ended (to persist it).
///
/// The session's secrets are masked in the raw bytes, before anything else
/// sees them: the text events, the adapter's parser (so agent events and
/// the run's result carry the mask too) and the persisted record.
pub async fn pump(
    exec: Arc<Exec>,
    client: Client,
    mut parser: Option<AgentParser>,
    redactor: Redactor,
    on_end: impl FnOnce(),
) {
    let id = exec.id().to_owned();
    let mut since = 0;
    let mut stdout = Utf8Stream::default();
    let mut stderr = Utf8Stream::default();
    let (mut stdout_mask, mut stderr_mask) = (redactor.stream(), redactor.stream());
    let mut failing_since: Option<std::time::Instant> = None;
    let mut backoff = Duration::from_millis(50);
    'attach: loop {
        if !exec.is_running() {
            // Ended by the session (deleted, lost) while we were away.
            break;
        }
        let mut stream = match client.frames(&id, since).await {
            Ok(stream) => stream,
            Err(err) => {
                if is_gone(&err) {
                    tracing::warn!(exec = %id, error = %err, "runnerd no longer knows the exec");
                    exec.end_unreplayable();
                    break;
                }
                let first = *failing_since.get_or_insert_with(std::time::Instant::now);
                if first.elapsed() > LOST_AFTER {
                    tracing::warn!(exec = %id, error = %err, "runnerd unreachable; the exec is lost");
                    exec.end_lost();
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        failing_since = None;
        backoff = Duration::from_millis(50);
        while let Some(frame) = stream.next().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(err) => {
                    tracing::debug!(exec = %id, error = %err, "frame stream broke; reattaching");
                    continue 'attach;
                }
            };
            since = frame.seq();
            match frame {
                Frame::Stdout { data, .. } => {
                    let data = stdout_mask.push(&data);
                    stdout_event(&exec, &mut stdout, &mut parser, &data).await;
                }
                Frame::Stderr { data, .. } => {
                    let data = stderr_mask.push(&data);
                    let text = stderr.push(&data);
                    if !text.is_empty() {
                        exec.append(ExecEvent::stderr(&text)).await;
                    }
                }
                Frame::Gap { range, .. } => {
                    exec.append(ExecEvent::output_gap(range.to - range.from + 1))
                        .await;
                }
                Frame::Exit { exit, .. } => {
                    let held = stdout_mask.finish();
                    stdout_event(&exec, &mut stdout, &mut parser, &held).await;
                    let held = stderr.push(&stderr_mask.finish());
                    if !held.is_empty() {
                        exec.append(ExecEvent::stderr(&held)).await;
                    }
                    for (rest, event) in [
                        (stdout.finish(), ExecEvent::stdout as fn(&str) -> ExecEvent),
                        (stderr.finish(), ExecEvent::stderr),
                    ] {
                        if !rest.is_empty() {
                            exec.append(event(&rest)).await;
                        }
                    }
                    parse(&exec, &mut parser, Step::Finish(process_end(&exit))).await;
                    exec.end(exit);
                    break 'attach;
                }
            }
        }
        // The stream ended without its terminal frame: reattach.
    }
    on_end();
}

/// One piece of (masked) stdout: its text event, then the parser.
async fn stdout_event(
    exec: &Exec,
    stdout: &mut Utf8Stream,
    parser: &mut Option<AgentParser>,
    data: &[u8],
) {
    if data.is_empty() {
        return;
    }
    let text = stdout.push(data);
    if !text.is_empty() {
        exec.append(ExecEvent::stdout(&text)).await;
    }
    parse(exec, parser, Step::Feed(data)).await;
}

enum Step<'a> {
    Feed(&'a [u8]),
    Finish(ProcessEnd),
}

/// Runs one parser step. A failing adapter is logged and reported as an
/// `error` event, then its parser is dropped; raw output keeps flowing.
async fn parse(exec: &Exec, parser: &mut Option<AgentParser>, step: Step<'_>) {
    let Some(p) = parser.as_mut() else {
        return;
    };
    let result = match step {
        Step::Feed(data) => p.feed(data).await,
        Step::Finish(end) => p.finish(end).await,
    };
    match result {
        Ok(events) => exec.push_agent_events(events).await,
        Err(err) => {
            tracing::error!(exec = %exec.id(), error = %err, "the agent adapter failed; its events stop, raw output goes on");
            exec.push_agent_events(vec![AgentEvent::Error(AgentError {
                kind: ErrorKind::Other,
                message: format!("the agent adapter failed: {err}"),
                retryable: false,
            })])
            .await;
            *parser = None;
        }
    }
}

/// runnerd answered that it has no such exec (it restarted, or dropped it).
fn is_gone(err: &ClientError) -> bool {
    err.status().is_some_and(|s| s.as_u16() == 404)
}
