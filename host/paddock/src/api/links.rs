//! `/v1/links`: desktops running `paddock link` register, heartbeat and
//! deregister; `/v1/dispatch/resolve` says where a run would go.
//!
//! Registration and `me` use the owner's API token. Heartbeats and
//! deregistration authenticate with the link's own secret in
//! `X-Link-Secret` (not `Authorization`), so a desktop's heartbeats never
//! look like failed API-key logins.

use std::time::Duration;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Owner;
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, AppState};
use crate::clock::unix_ms;
use crate::link::{Capabilities, DispatchError, DispatchTarget, Link, LinkError, Pins, Preference};

/// The header a link authenticates its own calls with.
pub const LINK_SECRET_HEADER: &str = "x-link-secret";

/// How often a link should heartbeat: a third of the TTL.
fn heartbeat_every(ttl: Duration) -> u64 {
    (ttl.as_secs() / 3).max(1)
}

/// `POST /v1/links`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    #[serde(default)]
    pub capabilities: Capabilities,
    /// `http://ADDR` where the host should call this link directly
    /// (`paddock link --listen`); only accepted where the operator allowed
    /// it (`links.allow_direct`), since the host then sends requests to an
    /// address a user chose.
    pub endpoint: Option<String>,
}

/// The answer to a registration: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub link_id: String,
    /// Signs what the host sends this link and authenticates its
    /// heartbeats. Keep it private.
    pub link_secret: String,
    pub heartbeat_interval_secs: u64,
    pub ttl_secs: u64,
}

/// `POST /v1/links/{id}/heartbeat`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// New capabilities, when the desktop's probe found a change.
    pub capabilities: Option<Capabilities>,
}

/// `GET /v1/links/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkStatus {
    pub id: String,
    pub online: bool,
    pub capabilities: Capabilities,
    pub registered_at_ms: u64,
    pub last_seen_ms: u64,
    /// Whether requests reach it now: its control connection is up (or the
    /// host calls it directly). Sessions run there only then.
    pub connected: bool,
}

impl LinkStatus {
    fn of(link: Link, state: &AppState) -> Self {
        Self {
            online: state.dispatcher.links().is_online(&link, unix_ms()),
            connected: state.connections.reachable(&link),
            id: link.id,
            capabilities: link.capabilities,
            registered_at_ms: link.registered_at_ms,
            last_seen_ms: link.last_seen_ms,
        }
    }
}

/// The link's secret from `X-Link-Secret`. An extractor, so that a call
/// without it is a 401 before its body is even read.
pub struct LinkSecret(String);

impl<S: Send + Sync> FromRequestParts<S> for LinkSecret {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .headers
            .get(LINK_SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|v| Self(v.to_owned()))
            .ok_or_else(|| ApiError::unauthorized("missing X-Link-Secret"))
    }
}

impl From<LinkError> for ApiError {
    fn from(err: LinkError) -> Self {
        match err {
            LinkError::Unauthorized => ApiError::unauthorized(err.to_string()),
            LinkError::Entropy(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                err.to_string(),
            ),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> Self {
        ApiError::new(StatusCode::CONFLICT, err.code(), err.to_string())
    }
}

/// Register the caller's desktop (replacing its earlier registration).
#[utoipa::path(post, path = "/v1/links", tag = "links",
    request_body = Register,
    responses((status = 201, body = Registered), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<AppState>,
    owner: Owner,
    ApiJson(request): ApiJson<Register>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    if let Some(endpoint) = &request.endpoint {
        if !state.link_direct {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "link_direct_refused",
                "this host does not call links directly (links.allow_direct is off); connect instead",
            ));
        }
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| ApiError::bad_request(format!("endpoint {endpoint:?}: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(ApiError::bad_request(format!(
                "endpoint {endpoint:?} is not an http(s) URL"
            )));
        }
    }
    let link = state
        .dispatcher
        .links()
        .register(&owner.0, request.capabilities, request.endpoint)
        .await?;
    tracing::info!(link = %link.id, owner = %owner.0, agents = link.capabilities.agents.len(), "link registered");
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            link_id: link.id,
            link_secret: link.secret,
            heartbeat_interval_secs: heartbeat_every(state.link_ttl),
            ttl_secs: state.link_ttl.as_secs(),
        }),
    ))
}

/// A link's heartbeat (authenticated by `X-Link-Secret`).
#[utoipa::path(post, path = "/v1/links/{id}/heartbeat", tag = "links",
    request_body = Heartbeat,
    params(("id" = String, Path), ("X-Link-Secret" = String, Header)),
    responses((status = 200, body = LinkStatus), (status = 401, body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    LinkSecret(secret): LinkSecret,
    ApiJson(request): ApiJson<Heartbeat>,
) -> Result<Json<LinkStatus>, ApiError> {
    let link = state
        .dispatcher
        .links()
        .heartbeat(&id, &secret, request.capabilities)
        .await?;
    Ok(Json(LinkStatus::of(link, &state)))
}

/// Deregister a link (authenticated by `X-Link-Secret`).
#[utoipa::path(delete, path = "/v1/links/{id}", tag = "links",
    params(("id" = String, Path), ("X-Link-Secret" = String, Header)),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn deregister(
    State(state): State<AppState>,
    Path(id): Path<String>,
    LinkSecret(secret): LinkSecret,
) -> Result<StatusCode, ApiError> {
    state.dispatcher.links().deregister(&id, &secret).await?;
    tracing::info!(link = %id, "link deregistered");
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's link, online or not.
#[utoipa::path(get, path = "/v1/links/me", tag = "links",
    responses((status = 200, body = LinkStatus), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, owner: Owner) -> Result<Json<LinkStatus>, ApiError> {
    let link = state
        .dispatcher
        .links()
        .for_owner(&owner.0)
        .await
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no link registered"))?;
    Ok(Json(LinkStatus::of(link, &state)))
}

/// `POST /v1/dispatch/resolve`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// The agent adapter to run; none for a plain command.
    pub agent: Option<String>,
    #[serde(default)]
    pub preference: Preference,
    /// What an earlier run of the session fixed.
    #[serde(default)]
    pub pins: Pins,
}

/// Where a run would go, or the 409 that says why it cannot.
#[utoipa::path(post, path = "/v1/dispatch/resolve", tag = "links",
    request_body = Resolve,
    responses((status = 200, body = DispatchTarget), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn resolve(
    State(state): State<AppState>,
    owner: Owner,
    ApiJson(request): ApiJson<Resolve>,
) -> Result<Json<DispatchTarget>, ApiError> {
    let target = state
        .dispatcher
        .resolve(
            &owner.0,
            request.agent.as_deref(),
            request.preference,
            &request.pins,
        )
        .await?;
    Ok(Json(target))
}

/// `GET /v1/links/{id}/connect`: the link's control connection (a
/// WebSocket it dials, authenticated by `X-Link-Secret`). The host sends
/// signed requests over it; see `link::wire`.
pub async fn connect(
    State(state): State<AppState>,
    Path(id): Path<String>,
    LinkSecret(secret): LinkSecret,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<axum::response::Response, ApiError> {
    // Connecting counts as a heartbeat.
    state
        .dispatcher
        .links()
        .heartbeat(&id, &secret, None)
        .await?;
    let connections = state.connections.clone();
    Ok(upgrade
        .max_message_size(crate::link::wire::MAX_REQUEST_BODY + (1 << 20))
        .on_upgrade(move |socket| async move { connections.serve(id, socket).await }))
}
