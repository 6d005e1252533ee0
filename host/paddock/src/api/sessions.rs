//! `/v1/sessions`: create, list, inspect, extend, delete; the env store.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use paddock_runnerd::proto::{EnvPatch, EnvView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Owner;
use super::error::{ApiError, ErrorBody};
use super::{ApiJson, AppState};
use crate::link::Pins;
use crate::session::{CreateSession, EndReason, SessionView};

/// `GET /v1/sessions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

/// `POST /v1/sessions/{id}/extend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Extend {
    /// Seconds to add to the TTL; the total is capped at `sessions.max_ttl_secs`.
    pub by_secs: u64,
}

/// Create a session. Nothing is provisioned until the first exec, file or
/// env operation.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = CreateSession,
    responses((status = 201, body = SessionView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "a grant is not allowed for this owner (`grant_denied`)", body = ErrorBody),
        (status = 502, description = "a broker could not issue a grant (`broker_failed`); nothing stays issued", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    owner: Owner,
    ApiJson(mut request): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    // Dispatch decides where; nothing is provisioned yet.
    let target = state
        .dispatcher
        .resolve(
            &owner.0,
            None,
            request.preference,
            &Pins {
                provider: request.provider.clone(),
                agent: None,
            },
        )
        .await?;
    request.provider = Some(target.provider);
    let session = state.sessions.create(&owner.0, request).await?;
    Ok((StatusCode::CREATED, Json(session.view())))
}

/// The caller's sessions, oldest first (ended ones included until they are
/// forgotten).
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, owner: Owner) -> Json<SessionList> {
    Json(SessionList {
        sessions: state
            .sessions
            .list(&owner.0)
            .iter()
            .map(|s| s.view())
            .collect(),
    })
}

/// One session. Another owner's session is a 404.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    Ok(Json(state.sessions.get(&owner.0, &id)?.view()))
}

/// End a session from any state: running execs are cancelled (each stream
/// ends with its exit event) and the sandbox destroyed. Idempotent.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    state.sessions.end(&session, EndReason::Deleted).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Extend the TTL. Reading or attaching never does.
#[utoipa::path(post, path = "/v1/sessions/{id}/extend", tag = "sessions",
    params(("id" = String, Path)), request_body = Extend,
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn extend(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<Extend>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    state.sessions.extend(&session, request.by_secs).await?;
    Ok(Json(session.view()))
}

/// `GET /v1/sessions/{id}/gateway`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GatewayUsageView {
    /// Requests and tokens (input excludes cache reads and writes) in total
    /// and per model; `cost_usd` where `[gateway.prices]` has the model.
    #[schema(value_type = Object)]
    pub usage: crate::gateway::GatewayUsage,
}

/// What the session's agent runs used through the built-in LLM gateway
/// (404 `not_found` before its first run through it).
#[utoipa::path(get, path = "/v1/sessions/{id}/gateway", tag = "sessions",
    params(("id" = String, Path)),
    responses((status = 200, body = GatewayUsageView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn gateway_usage(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
) -> Result<Json<GatewayUsageView>, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    let usage = state.sessions.gateway_usage(&session).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the session has not used the built-in gateway",
        )
    })?;
    Ok(Json(GatewayUsageView { usage }))
}

/// Set and unset variables of the session's env store (merged into every
/// exec). All or nothing; loader variables such as `LD_PRELOAD` are refused.
/// The answer lists the store's variables, with the values of granted
/// secrets masked.
#[utoipa::path(patch, path = "/v1/sessions/{id}/env", tag = "sessions",
    params(("id" = String, Path)),
    request_body(content = Object, description = "`{\"set\": {NAME: value}, \"unset\": [NAME]}`"),
    responses((status = 200, description = "`{vars, max_vars, max_bytes, used_bytes}`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_env(
    State(state): State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<EnvPatch>,
) -> Result<Json<EnvView>, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    let client = state.sessions.client(&session).await?;
    let mut view = client
        .patch_env(&patch)
        .await
        .map_err(crate::session::SessionError::from)?;
    // The store holds the grants' credentials too: they are the
    // sandbox's, not the API's to echo.
    let redactor = session.redactor();
    for value in view.vars.values_mut() {
        if let std::borrow::Cow::Owned(masked) = redactor.redact_str(value) {
            *value = masked;
        }
    }
    Ok(Json(view))
}
