//! The gateway's errors: [`GatewayError`] for the host calling its API, and
//! [`Refusal`], every way a proxied request is answered by the gateway
//! itself, rendered in the wire format of the CLI that sent it so the CLI
//! reports it as it would the provider's own error.
//!
//! Statuses are chosen for what the CLIs do with them: 429 and 5xx are
//! retried with backoff, so a refusal that retrying cannot fix is a 4xx the
//! CLIs give up on at once.
//!
//! - Over budget: 402. Anthropic body type `billing_error` (Claude Code's
//!   adapter maps 402 to error kind `budget`); OpenAI body type and code
//!   `insufficient_quota` with a message starting `Quota exceeded` (Codex
//!   prints the status and message; its adapter maps "quota exceeded" to
//!   `budget` before looking at the status). Not 429: both CLIs retry it.
//! - Model off the allowlist: 403 `permission_error` (OpenAI: code
//!   `model_not_allowed`), the adapters' kind `auth`: the key is not
//!   permitted, and a retry will not change that.
//! - Unknown, revoked or expired key: 401 `authentication_error` (OpenAI:
//!   `invalid_api_key`).

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Wire;
use super::limits::Exhausted;

/// A failure of the gateway's API (opening, minting, revoking).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "[gateway.upstreams.{wire}] api_key_env: environment variable {var} is not set (the gateway has no other key to use)"
    )]
    MissingKey { wire: Wire, var: String },
    #[error("[gateway.upstreams.{wire}] base_url: `{url}` is not an http(s) URL")]
    BadUpstream { wire: Wire, url: String },
    #[error("gateway key store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gateway key store {path} is not readable JSON: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the gateway key of session {0} was revoked; a revoked session gets no new key")]
    Revoked(String),
    #[error("no randomness for a gateway key: {0}")]
    Random(String),
    #[error("building the gateway's HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// A proxied request the gateway answers itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No key, or one that is unknown, revoked or expired.
    Unauthenticated,
    /// The requested model is not on the key's allowlist.
    ModelNotAllowed { model: String, allowed: Vec<String> },
    /// The key has a dollar budget and the model has no price to count it.
    Unpriced { model: String },
    /// The body names no model.
    MissingModel,
    /// The body is not a JSON object.
    BadJson(String),
    /// The body broke off before its end.
    Unreadable(String),
    /// The key's budget is used up.
    OverBudget(Exhausted),
    /// The body is over the gateway's cap (bytes).
    TooLarge(usize),
    /// No upstream is configured for this wire format.
    NotConfigured(Wire),
    /// The upstream could not be reached or broke off before answering.
    Unreachable,
    /// No such route under `/v1/gateway/`.
    NotFound(String),
}

impl Refusal {
    /// The status, the error type and the OpenAI `code`.
    fn kind(&self, wire: Wire) -> (StatusCode, &'static str, Option<&'static str>) {
        let openai = wire == Wire::OpenAi;
        match self {
            Refusal::Unauthenticated if openai => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            Refusal::Unauthenticated => (StatusCode::UNAUTHORIZED, "authentication_error", None),
            Refusal::ModelNotAllowed { .. } | Refusal::Unpriced { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("model_not_allowed"),
            ),
            Refusal::MissingModel | Refusal::BadJson(_) | Refusal::Unreadable(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_request"),
            ),
            Refusal::OverBudget(_) if openai => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            Refusal::OverBudget(_) => (StatusCode::PAYMENT_REQUIRED, "billing_error", None),
            Refusal::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                if openai {
                    "invalid_request_error"
                } else {
                    "request_too_large"
                },
                Some("request_too_large"),
            ),
            Refusal::NotConfigured(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                Some("gateway_not_configured"),
            ),
            Refusal::Unreachable => (
                StatusCode::BAD_GATEWAY,
                "api_error",
                Some("upstream_unreachable"),
            ),
            Refusal::NotFound(_) => (StatusCode::NOT_FOUND, "not_found_error", Some("not_found")),
        }
    }

    fn message(&self, wire: Wire) -> String {
        match self {
            Refusal::Unauthenticated => {
                "invalid gateway key: unknown, revoked (the session ended) or expired".to_owned()
            }
            Refusal::ModelNotAllowed { model, allowed } => format!(
                "model `{model}` is not allowed for this session; allowed: {}",
                allowed.join(", ")
            ),
            Refusal::Unpriced { model } => format!(
                "model `{model}` has no price in [gateway.prices], so this session's dollar budget cannot be counted"
            ),
            Refusal::MissingModel => "the request body names no `model`".to_owned(),
            Refusal::BadJson(err) => format!("the request body is not a JSON object: {err}"),
            Refusal::Unreadable(err) => format!("the request body could not be read: {err}"),
            Refusal::OverBudget(why) => format!(
                "Quota exceeded: this session's gateway budget is used up ({why}); it will not reset for this session"
            ),
            Refusal::TooLarge(cap) => format!("the request body is over the gateway's {cap} bytes"),
            Refusal::NotConfigured(_) => format!(
                "the Paddock gateway has no upstream for the {wire} API ([gateway.upstreams.{wire}] is not configured)"
            ),
            Refusal::Unreachable => "the gateway could not reach the upstream provider".to_owned(),
            Refusal::NotFound(path) => format!("no gateway route {path}"),
        }
    }

    /// A short name of the refusal, for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::ModelNotAllowed { .. } => "model_not_allowed",
            Refusal::Unpriced { .. } => "unpriced",
            Refusal::MissingModel | Refusal::BadJson(_) | Refusal::Unreadable(_) => "bad_request",
            Refusal::OverBudget(_) => "over_budget",
            Refusal::TooLarge(_) => "too_large",
            Refusal::NotConfigured(_) => "not_configured",
            Refusal::Unreachable => "unreachable",
            Refusal::NotFound(_) => "not_found",
        }
    }

    /// The refusal as the provider of `wire` would word an error.
    pub fn response(&self, wire: Wire) -> Response {
        let (status, kind, code) = self.kind(wire);
        let message = self.message(wire);
        let body = match wire {
            Wire::Anthropic => json!({
                "type": "error",
                "error": { "type": kind, "message": message },
            }),
            Wire::OpenAi => json!({
                "error": { "message": message, "type": kind, "param": null, "code": code },
            }),
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(refusal: Refusal, wire: Wire) -> (StatusCode, serde_json::Value) {
        let response = refusal.response(wire);
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn budget_refusals_are_not_retried_and_read_as_budget() {
        let why = Exhausted::Tokens {
            used: 10,
            budget: 10,
        };
        let (status, anthropic) = body(Refusal::OverBudget(why.clone()), Wire::Anthropic).await;
        assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
        assert_eq!(anthropic["type"], "error");
        assert_eq!(anthropic["error"]["type"], "billing_error");
        let (_, openai) = body(Refusal::OverBudget(why), Wire::OpenAi).await;
        assert_eq!(openai["error"]["code"], "insufficient_quota");
        assert!(
            openai["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Quota exceeded")
        );
    }

    #[tokio::test]
    async fn model_refusals_name_the_model_and_the_allowed_ones() {
        let refusal = Refusal::ModelNotAllowed {
            model: "claude-opus-4".into(),
            allowed: vec!["claude-sonnet-*".into()],
        };
        let (status, value) = body(refusal, Wire::Anthropic).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let message = value["error"]["message"].as_str().unwrap();
        assert!(message.contains("claude-opus-4") && message.contains("claude-sonnet-*"));
    }
}
