//! `/v1/sessions/{id}/execs`: start, list, inspect, stream, steer, cancel.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use paddock_sdk::agent::InputKind;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Owner;
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, AppState};
use crate::exec::Delivery;
use crate::link::{Pins, Preference, USER_DESKTOP};
use crate::session::events::kind;
use crate::session::{Attachment, ExecRequest, ExecView, StdinInput};

/// SSE keep-alive comment interval, so proxies do not cut idle streams.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /v1/sessions/{id}/execs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecList {
    pub execs: Vec<ExecView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Replay events after this sequence number (as `Last-Event-ID`, which
    /// wins when both are given).
    pub since: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StdinQuery {
    /// Close stdin after writing (raw bytes only).
    #[serde(default)]
    pub close: bool,
}

/// A steer message for an agent run, which the adapter turns into its
/// CLI's own input format.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Steer {
    /// `message` (a follow-up user message) or `interrupt`.
    #[schema(value_type = String)]
    pub kind: InputKind,
    #[serde(default)]
    pub text: String,
}

/// Start a command (`argv`) or an agent run (`agent` + `run`). The sandbox
/// is provisioned now if it was not yet.
#[utoipa::path(post, path = "/v1/sessions/{id}/execs", tag = "execs",
    params(("id" = String, Path)), request_body = ExecRequest,
    responses((status = 201, body = ExecView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ExecRequest>,
) -> Result<(StatusCode, Json<ExecView>), ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    // Dispatch with the session's pins: its sandbox's provider, and the
    // agent of its first agent run (a conversation belongs to one CLI). An
    // agent run on a desktop also needs its CLI there and the link online.
    let provider = session.provider();
    let preference = if provider == USER_DESKTOP {
        Preference::UserDesktop
    } else {
        Preference::ClusterDefault
    };
    let pinned_agent = session
        .execs()
        .iter()
        .find_map(|exec| exec.record().agent.clone());
    // An unknown agent is the caller's mistake, said by `start_exec` (400,
    // listing the loaded ones), not a dispatch conflict.
    let known = request
        .agent
        .as_deref()
        .is_none_or(|name| state.sessions.plugins().agent(name).is_ok());
    if known {
        state
            .dispatcher
            .resolve(
                &owner.0,
                request.agent.as_deref(),
                preference,
                &Pins {
                    provider: Some(provider),
                    agent: pinned_agent,
                },
            )
            .await?;
    }
    let exec = state.sessions.start_exec(&session, request).await?;
    Ok((StatusCode::CREATED, Json(exec.view(session.id()))))
}

/// The session's execs, oldest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/execs", tag = "execs",
    params(("id" = String, Path)),
    responses((status = 200, body = ExecList), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<ExecList>, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    Ok(Json(ExecList {
        execs: session
            .execs()
            .iter()
            .map(|e| e.view(session.id()))
            .collect(),
    }))
}

/// One exec: state, exit, and for an agent run its usage totals, agent
/// session id and result.
#[utoipa::path(get, path = "/v1/sessions/{id}/execs/{exec}", tag = "execs",
    params(("id" = String, Path), ("exec" = String, Path)),
    responses((status = 200, body = ExecView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, exec)): Path<(String, String)>,
) -> Result<Json<ExecView>, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    let exec = state.sessions.exec(&session, &exec)?;
    Ok(Json(exec.view(session.id())))
}

/// The exec's events as Server-Sent Events, each with `id:` = its sequence
/// number. Reconnecting with `Last-Event-ID` (or `?since=`) replays every
/// later event exactly once, then the live tail; an evicted range is a
/// `gap` event. Event names: `stdout`, `stderr`, `agent`, `output_gap`,
/// `gap`, and the terminal `exit`, after which the stream ends (or
/// `shutdown` if the host is stopping: reconnect later).
#[utoipa::path(get, path = "/v1/sessions/{id}/execs/{exec}/events", tag = "execs",
    params(("id" = String, Path), ("exec" = String, Path), EventsQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "the last sequence number seen")),
    responses((status = 200, content_type = "text/event-stream", description = "the event stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, exec)): Path<(String, String)>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(query) = query?;
    let session = state.sessions.get(&owner.0, &id)?;
    let exec = state.sessions.exec(&session, &exec)?;
    let after = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a sequence number"))?,
        ),
        None => query.since,
    }
    .unwrap_or(0);
    // While an exec runs (or is being replayed after a restart) a client
    // may know events the log does not hold yet: it waits for them.
    let last = exec.last_event_id();
    if !exec.is_running() && after > last {
        return Err(ApiError::bad_request(format!(
            "event {after} does not exist yet; the newest is {last}"
        )));
    }
    let attachment = exec.subscribe(after);
    let shutdown = state.shutdown.clone();
    Ok(Sse::new(event_stream(attachment, shutdown))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// The SSE stream of one attachment; ends after the terminal event, or
/// with a `shutdown` event when the host stops.
fn event_stream(
    attachment: Attachment,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_util::stream::unfold(Some((attachment, shutdown)), |state| async move {
        let (mut attachment, mut shutdown) = state?;
        let delivery = tokio::select! {
            biased;
            delivery = attachment.subscription().next() => Some(delivery?),
            _ = shutdown.wait_for(|stopping| *stopping) => None,
        };
        let Some(delivery) = delivery else {
            let event = Event::default()
                .event("shutdown")
                .data("{\"reason\":\"host_shutdown\"}");
            return Some((Ok(event), None));
        };
        let event = match delivery {
            Delivery::Event(entry) => Event::default()
                .id(entry.seq.to_string())
                .event(entry.event.kind)
                .data(&entry.event.data),
            Delivery::Gap { from, to } => Event::default()
                .id(to.to_string())
                .event(kind::GAP)
                .data(format!("{{\"from\":{from},\"to\":{to}}}")),
        };
        Some((Ok(event), Some((attachment, shutdown))))
    })
}

/// Write to the exec's stdin: raw bytes (any content type but JSON), or for
/// an agent run a JSON steer message `{kind: message | interrupt, text}`
/// that the adapter encodes for its CLI (409 `steering_unsupported` when it
/// cannot).
#[utoipa::path(post, path = "/v1/sessions/{id}/execs/{exec}/stdin", tag = "execs",
    params(("id" = String, Path), ("exec" = String, Path), StdinQuery),
    request_body(content = Steer, description = "a steer message (application/json) or raw bytes (application/octet-stream)"),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stdin(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, exec)): Path<(String, String)>,
    query: Result<Query<StdinQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query?;
    let session = state.sessions.get(&owner.0, &id)?;
    let exec = state.sessions.exec(&session, &exec)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let input = if is_json {
        let steer: Steer = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("steer message: {e}")))?;
        StdinInput::Steer {
            kind: steer.kind,
            text: steer.text,
        }
    } else {
        StdinInput::Raw {
            data: body,
            close: query.close,
        }
    };
    state.sessions.stdin(&session, &exec, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancel: SIGTERM to the exec's whole process tree, SIGKILL after a grace;
/// the stream ends with one `exit` event of reason `cancelled`.
#[utoipa::path(post, path = "/v1/sessions/{id}/execs/{exec}/cancel", tag = "execs",
    params(("id" = String, Path), ("exec" = String, Path)),
    responses((status = 202, body = ExecView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, exec)): Path<(String, String)>,
) -> Result<(StatusCode, Json<ExecView>), ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    let exec = state.sessions.exec(&session, &exec)?;
    state.sessions.cancel(&session, &exec).await?;
    Ok((StatusCode::ACCEPTED, Json(exec.view(session.id()))))
}
