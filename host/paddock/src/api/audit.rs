//! `/v1/audit`: the secrets audit log, for operators.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Owner;
use super::error::{ApiError, ErrorBody};
use crate::secrets::{AuditFilter, AuditRecord};

/// `GET /v1/audit`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Oldest first; never a secret value.
    pub records: Vec<AuditRecord>,
}

/// Grants issued, denied and revoked: who, which session, which broker and
/// name, when, and how it went. Only for operators (`[auth] operators`).
#[utoipa::path(get, path = "/v1/audit", tag = "secrets", operation_id = "list_audit",
    params(AuditFilter),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody),
        (status = 403, description = "the caller is not an operator", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    owner: Owner,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<AuditPage>, ApiError> {
    if !state.operators.contains(&owner.0) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("owner {:?} is not an operator ([auth] operators)", owner.0),
        ));
    }
    let records = state
        .secrets
        .audit()
        .query(filter)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(AuditPage { records }))
}
