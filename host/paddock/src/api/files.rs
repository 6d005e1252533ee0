//! `/v1/sessions/{id}/files/{path}`: the session's workspace. runnerd
//! confines every path to the workspace (`..`, absolute paths and symlinks
//! cannot escape); its refusals come back as 4xx with its error code.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use paddock_runnerd::proto::FileKind;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Owner;
use super::error::{ApiError, ErrorBody};
use crate::session::SessionError;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ReadQuery {
    /// First byte to read.
    #[serde(default)]
    pub offset: u64,
    /// Bytes to read (default: to the end).
    pub length: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RemoveQuery {
    /// Remove a directory with everything in it.
    #[serde(default)]
    pub recursive: bool,
}

/// The workspace root's listing.
pub async fn read_root(
    state: State<AppState>,
    owner: Owner,
    Path(id): Path<String>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    read(state, owner, Path((id, ".".to_owned())), query).await
}

/// A file's bytes (ranged with `offset`/`length`), or a directory's
/// listing as JSON `{path, entries: [{name, kind, size}]}`. The values of
/// the session's granted secrets read as `[REDACTED]` (whole in the range
/// read).
#[utoipa::path(get, path = "/v1/sessions/{id}/files/{path}", tag = "files",
    params(("id" = String, Path), ("path" = String, Path, description = "relative to the workspace"), ReadQuery),
    responses((status = 200, description = "file bytes (application/octet-stream) or a directory listing (application/json)"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, path)): Path<(String, String)>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let session = state.sessions.get(&owner.0, &id)?;
    let client = state.sessions.client(&session).await?;
    let stat = client.stat(&path).await.map_err(SessionError::from)?;
    if stat.kind == FileKind::Dir {
        let listing = client.list(&path).await.map_err(SessionError::from)?;
        return Ok(Json(listing).into_response());
    }
    let bytes = client
        .read_file(&path, query.offset, query.length)
        .await
        .map_err(SessionError::from)?;
    // Granted secrets (a credential's file, or a file a process wrote one
    // into) are the sandbox's, not the API's to hand out.
    let redactor = session.redactor();
    let bytes = if redactor.is_empty() {
        bytes
    } else {
        Bytes::from(redactor.redact(&bytes))
    };
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes),
    )
        .into_response())
}

/// Write a file atomically (readers see the old or the new content),
/// creating missing parent directories.
#[utoipa::path(put, path = "/v1/sessions/{id}/files/{path}", tag = "files",
    params(("id" = String, Path), ("path" = String, Path, description = "relative to the workspace")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "`{path, size}`"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn write(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, path)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let session = state.sessions.get(&owner.0, &id)?;
    let client = state.sessions.client(&session).await?;
    let written = client
        .write_file(&path, body, true)
        .await
        .map_err(SessionError::from)?;
    Ok(Json(written).into_response())
}

/// Remove a file, or a directory (`?recursive=true` when not empty).
#[utoipa::path(delete, path = "/v1/sessions/{id}/files/{path}", tag = "files",
    params(("id" = String, Path), ("path" = String, Path, description = "relative to the workspace"), RemoveQuery),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    owner: Owner,
    Path((id, path)): Path<(String, String)>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query?;
    let session = state.sessions.get(&owner.0, &id)?;
    let client = state.sessions.client(&session).await?;
    client
        .remove(&path, query.recursive)
        .await
        .map_err(SessionError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
