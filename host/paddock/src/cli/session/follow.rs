//! Following an exec's event stream to its end, across dropped connections
//! and host restarts.
//!
//! The follower runs as its own task and hands decoded events to the
//! command through a channel, so the command can wait for events and for
//! Ctrl-C at once without either wait losing state when the other wins.
//! After a drop it reconnects with `Last-Event-ID` = the last sequence
//! number it delivered: the host replays every later event exactly once.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use paddock_runnerd::proto::ExitInfo;
use paddock_sdk::agent::AgentEvent;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::client::Api;
use super::sse::{SseEvent, SseParser};
use super::watch::note;

/// The largest event the follower buffers (a tool result can be big).
const MAX_EVENT_BYTES: usize = 32 << 20;

/// When the follower deems a connection dead and when it stops trying.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The host sends a keep-alive every 15 s; this much silence means the
    /// connection is dead even if no FIN arrived.
    pub silence: Duration,
    /// How long reconnecting may keep failing before the follower gives up.
    pub give_up_after: Duration,
    /// A connection up this long counts as progress even without events.
    pub stable: Duration,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            silence: Duration::from_secs(45),
            give_up_after: Duration::from_secs(60),
            stable: Duration::from_secs(10),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One event of the stream, decoded.
#[derive(Debug)]
pub enum StreamEvent {
    Stdout(String),
    Stderr(String),
    /// A normalized agent event; `event` is `None` for a type this build
    /// does not know (a newer host), which `json` still carries.
    Agent {
        json: String,
        event: Option<AgentEvent>,
    },
    /// Output the host could not fetch from the sandbox in time.
    OutputGap {
        frames: u64,
    },
    /// Events evicted from the host's replay ring before we read them.
    Gap {
        from: u64,
        to: u64,
    },
    /// The terminal event. `info` is `None` if this build cannot read it.
    Exit {
        json: String,
        info: Option<ExitInfo>,
    },
}

/// An event and its sequence number.
#[derive(Debug)]
pub struct Delivered {
    pub seq: u64,
    pub event: StreamEvent,
}

/// Which exec to follow.
#[derive(Debug, Clone)]
pub struct Target {
    pub session: String,
    pub exec: String,
}

/// Starts following `target` after event `after`. The channel yields
/// events up to and including the exit event, or one error, then closes.
pub fn spawn(api: Api, target: Target, after: u64) -> mpsc::Receiver<anyhow::Result<Delivered>> {
    spawn_with(api, target, after, Policy::default())
}

fn spawn_with(
    api: Api,
    target: Target,
    after: u64,
    policy: Policy,
) -> mpsc::Receiver<anyhow::Result<Delivered>> {
    let (tx, rx) = mpsc::channel(64);
    let follower = Follower {
        api,
        target,
        policy,
        after,
        interrupted: false,
        reconnect_noted: false,
        tx,
    };
    tokio::spawn(follower.run());
    rx
}

/// How one connection ended.
enum Ended {
    /// The exit event was delivered.
    Exit,
    /// Nobody listens any more.
    Closed,
    /// Worth reconnecting.
    Dropped(String),
    /// Not worth reconnecting.
    Fatal(anyhow::Error),
}

struct Follower {
    api: Api,
    target: Target,
    policy: Policy,
    /// The last sequence number delivered.
    after: u64,
    /// A drop was reported and no connection has made progress since
    /// (each is reported once per such streak, not per attempt).
    interrupted: bool,
    reconnect_noted: bool,
    tx: mpsc::Sender<anyhow::Result<Delivered>>,
}

impl Follower {
    async fn run(mut self) {
        let mut failing_since: Option<Instant> = None;
        let mut backoff = self.policy.first_backoff;
        loop {
            let (ended, progressed) = self.connection().await;
            if progressed {
                failing_since = None;
                backoff = self.policy.first_backoff;
                self.interrupted = false;
                self.reconnect_noted = false;
            }
            let reason = match ended {
                Ended::Exit | Ended::Closed => return,
                Ended::Fatal(err) => {
                    // The receiver may be gone; then nobody needs the error.
                    let _ = self.tx.send(Err(err)).await;
                    return;
                }
                Ended::Dropped(reason) => reason,
            };
            let since = *failing_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.policy.give_up_after {
                let Target { session, exec } = &self.target;
                let err = anyhow::anyhow!(
                    "lost the event stream of exec {exec} ({reason}) and could not reconnect for {} s; \
                     it may still be running: paddock session attach {session} {exec} --since {}",
                    self.policy.give_up_after.as_secs(),
                    self.after,
                );
                let _ = self.tx.send(Err(err)).await;
                return;
            }
            if !self.interrupted {
                self.interrupted = true;
                note(&format!(
                    "the event stream was interrupted ({reason}); reconnecting"
                ));
            }
            tracing::debug!(exec = %self.target.exec, after = self.after, %reason, "reconnecting in {backoff:?}");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.tx.closed() => return,
            }
            backoff = (backoff * 2).min(self.policy.max_backoff);
        }
    }

    /// Reads one connection until it ends, advancing `after` past every
    /// event delivered. Also says whether it made progress: delivered an
    /// event, or stayed up long enough to count as healthy (a quiet exec's
    /// stream carries only keep-alives). A host that accepts and drops at
    /// once, or that only says `shutdown`, makes none, so the give-up clock
    /// keeps running.
    async fn connection(&mut self) -> (Ended, bool) {
        let Target { session, exec } = &self.target;
        let response = match self.api.events(session, exec, self.after).await {
            Ok(response) => response,
            Err(err) if err.is_transient() => return (Ended::Dropped(err.to_string()), false),
            Err(err) => return (Ended::Fatal(err.into()), false),
        };
        if self.interrupted && !self.reconnect_noted {
            self.reconnect_noted = true;
            note(&format!("reconnected; resuming after event {}", self.after));
        }
        let opened = Instant::now();
        let before = self.after;
        let ended = self.read(response).await;
        let progressed = self.after > before || opened.elapsed() >= self.policy.stable;
        (ended, progressed)
    }

    async fn read(&mut self, response: reqwest::Response) -> Ended {
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        loop {
            let chunk = match tokio::time::timeout(self.policy.silence, body.next()).await {
                Err(_) => {
                    let silence = self.policy.silence.as_secs();
                    return Ended::Dropped(format!("nothing received for {silence} s"));
                }
                Ok(None) => return Ended::Dropped("the host closed the stream".into()),
                Ok(Some(Err(err))) => return Ended::Dropped(err.to_string()),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let events = match parser.feed(&chunk) {
                Ok(events) => events,
                Err(err) => return Ended::Fatal(err.into()),
            };
            for sse in events {
                if let Some(ended) = self.deliver(sse).await {
                    return ended;
                }
            }
        }
    }

    /// Hands one event on; says how the connection ends if it does here.
    async fn deliver(&mut self, sse: SseEvent) -> Option<Ended> {
        if sse.event == "shutdown" {
            return Some(Ended::Dropped("the host is shutting down".into()));
        }
        let Some(seq) = sse.id.as_deref().and_then(|id| id.parse::<u64>().ok()) else {
            tracing::debug!(event = %sse.event, "event without a sequence number ignored");
            return None;
        };
        if seq <= self.after {
            // Already delivered (the host replays strictly after `after`;
            // this only guards against a misbehaving proxy).
            return None;
        }
        self.after = seq;
        let event = decode(&sse, seq)?;
        let is_exit = matches!(event, StreamEvent::Exit { .. });
        if self.tx.send(Ok(Delivered { seq, event })).await.is_err() {
            return Some(Ended::Closed);
        }
        is_exit.then_some(Ended::Exit)
    }
}

/// The event of `sse`, or `None` (logged) for a name or data this build
/// cannot use.
fn decode(sse: &SseEvent, seq: u64) -> Option<StreamEvent> {
    #[derive(Deserialize)]
    struct Text {
        text: String,
    }
    #[derive(Deserialize)]
    struct OutputGap {
        frames: u64,
    }
    #[derive(Deserialize)]
    struct Gap {
        from: u64,
        to: u64,
    }
    fn parse<T: for<'a> Deserialize<'a>>(sse: &SseEvent, seq: u64) -> Option<T> {
        match serde_json::from_str(&sse.data) {
            Ok(value) => Some(value),
            Err(err) => {
                tracing::warn!(seq, event = %sse.event, error = %err, "unreadable event skipped");
                None
            }
        }
    }
    Some(match sse.event.as_str() {
        "stdout" => StreamEvent::Stdout(parse::<Text>(sse, seq)?.text),
        "stderr" => StreamEvent::Stderr(parse::<Text>(sse, seq)?.text),
        "agent" => StreamEvent::Agent {
            event: serde_json::from_str(&sse.data).ok(),
            json: sse.data.clone(),
        },
        "output_gap" => StreamEvent::OutputGap {
            frames: parse::<OutputGap>(sse, seq)?.frames,
        },
        "gap" => {
            let gap = parse::<Gap>(sse, seq)?;
            StreamEvent::Gap {
                from: gap.from,
                to: gap.to,
            }
        }
        "exit" => StreamEvent::Exit {
            info: serde_json::from_str(&sse.data).ok(),
            json: sse.data.clone(),
        },
        other => {
            tracing::debug!(seq, event = other, "unknown event skipped");
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::http::HeaderMap;
    use paddock_runnerd::proto::ExitReason;

    use super::*;

    const FAST: Policy = Policy {
        silence: Duration::from_secs(5),
        give_up_after: Duration::from_millis(300),
        stable: Duration::from_secs(5),
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };

    fn target() -> Target {
        Target {
            session: "ses-1".into(),
            exec: "ex-1".into(),
        }
    }

    /// Serves `answers[n]` as the `n`th answer of the event stream (the
    /// last one again after that); returns the host's URL and the
    /// `Last-Event-ID` of each request.
    async fn host(answers: &'static [&'static str]) -> (String, Arc<Mutex<Vec<String>>>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let app = axum::Router::new().route(
            "/v1/sessions/{session}/execs/{exec}/events",
            axum::routing::get(move |headers: HeaderMap| {
                let last = headers
                    .get("last-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut seen = seen.lock().unwrap();
                seen.push(last);
                let answer = answers[(seen.len() - 1).min(answers.len() - 1)];
                async move { answer }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, asked)
    }

    async fn collect(url: &str) -> (Vec<u64>, Option<anyhow::Error>) {
        let api = Api::new(url, "token".into()).unwrap();
        let mut rx = spawn_with(api, target(), 0, FAST);
        let mut seqs = Vec::new();
        while let Some(item) = rx.recv().await {
            match item {
                Ok(delivered) => seqs.push(delivered.seq),
                Err(err) => return (seqs, Some(err)),
            }
        }
        (seqs, None)
    }

    #[tokio::test]
    async fn a_dropped_stream_resumes_after_the_last_event_seen() {
        let (url, asked) = host(&[
            // Two events (one sent twice), then the connection ends
            // without an exit event.
            "id: 1\nevent: stdout\ndata: {\"text\":\"a\"}\n\n\
             id: 2\nevent: stdout\ndata: {\"text\":\"b\"}\n\n\
             id: 2\nevent: stdout\ndata: {\"text\":\"b\"}\n\n",
            ": keep-alive\n\nevent: shutdown\ndata: {}\n\n",
            "id: 3\nevent: exit\ndata: {\"reason\":\"exited\",\"code\":0,\"duration_ms\":5}\n\n",
        ])
        .await;
        let (seqs, err) = collect(&url).await;
        assert!(err.is_none(), "{err:?}");
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(*asked.lock().unwrap(), ["0", "2", "2"]);
    }

    #[tokio::test]
    async fn it_gives_up_on_a_host_that_stays_away() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (seqs, err) = collect(&url).await;
        assert!(seqs.is_empty());
        let err = err.expect("an error").to_string();
        assert!(err.contains("could not reconnect"), "{err}");
        assert!(
            err.contains("paddock session attach ses-1 ex-1 --since 0"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_host_that_only_says_shutdown_is_given_up_too() {
        let (url, asked) = host(&[
            "id: 1\nevent: stdout\ndata: {\"text\":\"a\"}\n\n",
            "event: shutdown\ndata: {}\n\n",
        ])
        .await;
        let (seqs, err) = collect(&url).await;
        assert_eq!(seqs, [1]);
        let err = err.expect("an error").to_string();
        assert!(err.contains("the host is shutting down"), "{err}");
        assert!(err.contains("--since 1"), "{err}");
        assert!(asked.lock().unwrap().len() > 2);
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried() {
        let (url, asked) = host(&[""]).await;
        let api = Api::new(&format!("{url}/elsewhere"), "token".into()).unwrap();
        let started = Instant::now();
        let mut rx = spawn_with(api, target(), 0, FAST);
        let err = rx.recv().await.expect("one item").expect_err("a 404");
        assert!(err.to_string().contains("HTTP 404"), "{err}");
        assert!(started.elapsed() < FAST.give_up_after);
        assert!(rx.recv().await.is_none(), "nothing after the error");
        assert!(asked.lock().unwrap().is_empty());
    }

    fn sse(event: &str, data: &str) -> SseEvent {
        SseEvent {
            id: Some("1".into()),
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn decodes_the_hosts_events() {
        assert!(
            matches!(decode(&sse("stdout", r#"{"text":"hi\n"}"#), 1), Some(StreamEvent::Stdout(t)) if t == "hi\n")
        );
        assert!(matches!(
            decode(&sse("gap", r#"{"from":3,"to":9}"#), 1),
            Some(StreamEvent::Gap { from: 3, to: 9 })
        ));
        let Some(StreamEvent::Exit {
            info: Some(info), ..
        }) = decode(
            &sse(
                "exit",
                r#"{"reason":"exited","code":3,"status":{"exited":3},"duration_ms":12}"#,
            ),
            1,
        )
        else {
            panic!("exit not decoded");
        };
        assert_eq!(info.reason, ExitReason::Exited { code: 3 });
        let Some(StreamEvent::Agent { event: None, json }) =
            decode(&sse("agent", r#"{"type":"from_the_future"}"#), 1)
        else {
            panic!("an unknown agent event is kept as JSON");
        };
        assert!(json.contains("from_the_future"));
        assert!(decode(&sse("stdout", "not json"), 1).is_none());
        assert!(decode(&sse("new_kind", "{}"), 1).is_none());
    }
}
