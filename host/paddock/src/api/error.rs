//! API errors: every failure is JSON `{"error": {"code", "message"}}` with
//! the right status. Codes are stable and part of the API contract.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::plugin::PluginError;
use crate::provider::ProviderError;
use crate::secrets::SecretsError;
use crate::session::SessionError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_request`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, code = %self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        let message = err.to_string();
        let (status, code) = match &err {
            SessionError::NotFound(_) | SessionError::ExecNotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            SessionError::Ended(_) => (StatusCode::CONFLICT, "session_ended"),
            SessionError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            SessionError::Conflict { code, .. } => (StatusCode::CONFLICT, *code),
            SessionError::Provider(
                ProviderError::Unavailable { .. } | ProviderError::Plugin { .. },
            ) => (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable"),
            SessionError::Provider(ProviderError::Refused { .. }) => {
                (StatusCode::FORBIDDEN, "sandbox_refused")
            }
            SessionError::Provider(ProviderError::Provision { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "sandbox_start_failed")
            }
            SessionError::Provider(ProviderError::Io { .. }) | SessionError::Persist(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            SessionError::Runnerd(client) => match (client.status(), client.code()) {
                // runnerd's own client errors (a missing file, a refused env
                // name, a path escaping the workspace) are the caller's.
                (Some(status), Some(code)) if status.is_client_error() => {
                    return Self::new(
                        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST),
                        code,
                        client.to_string(),
                    );
                }
                (Some(_), _) => (StatusCode::BAD_GATEWAY, "sandbox_error"),
                (None, _) => (StatusCode::BAD_GATEWAY, "sandbox_unreachable"),
            },
            SessionError::Plugin(PluginError::Refused { .. }) => {
                (StatusCode::BAD_REQUEST, "agent_refused")
            }
            SessionError::Plugin(_) => (StatusCode::BAD_GATEWAY, "agent_adapter_failed"),
            SessionError::Secrets(SecretsError::Denied { .. }) => {
                (StatusCode::FORBIDDEN, "grant_denied")
            }
            SessionError::Secrets(SecretsError::Unusable { .. }) => {
                (StatusCode::BAD_GATEWAY, "grant_unusable")
            }
            SessionError::Secrets(SecretsError::Broker { .. }) => {
                (StatusCode::BAD_GATEWAY, "broker_failed")
            }
            SessionError::Secrets(SecretsError::Audit(_) | SecretsError::Redact(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            SessionError::Gateway(_) => (StatusCode::INTERNAL_SERVER_ERROR, "gateway_failed"),
        };
        Self::new(status, code, message)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}
