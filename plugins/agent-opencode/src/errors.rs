//! OpenCode's session errors mapped onto the normalized error kinds.
//!
//! OpenCode retries retryable API failures (429, 5xx, 529, `overloaded_error`
//! in the stream) on its own, without limit and without printing anything,
//! so an `error` line is the end of the turn: mostly `APIError` with the
//! provider's HTTP status, `ProviderAuthError`, `MessageOutputLengthError`,
//! `ContextOverflowError`, `MessageAbortedError` or `UnknownError`.

use paddock_sdk::agent::ErrorKind;

use crate::wire::{ErrorBody, Loose};

/// What an `error` line means for the run.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The turn was aborted (`MessageAbortedError`): a cancellation, not a
    /// failure of the model or the provider.
    Aborted,
    Error {
        kind: ErrorKind,
        message: String,
        retryable: bool,
    },
}

pub fn classify(error: &ErrorBody<'_>) -> Failure {
    let name = error.name.as_ref().and_then(Loose::as_str).unwrap_or("");
    let data = error.data.as_ref();
    let status = data
        .and_then(|d| d.status_code.as_ref())
        .and_then(Loose::as_i64);
    let body = data
        .and_then(|d| d.response_body.as_ref())
        .and_then(Loose::as_str)
        .unwrap_or("");
    let text = data
        .and_then(|d| d.message.as_ref())
        .and_then(Loose::as_str)
        .or_else(|| error.message.as_ref().and_then(Loose::as_str))
        .filter(|m| !m.is_empty());
    if name == "MessageAbortedError" {
        return Failure::Aborted;
    }
    let mut message = text
        .or((!name.is_empty()).then_some(name))
        .unwrap_or("unknown error")
        .to_owned();
    if let Some(status) = status {
        message.push_str(&format!(" (HTTP {status})"));
    }
    let lower = format!("{} {}", text.unwrap_or(""), body).to_ascii_lowercase();
    let kind = match name {
        "ProviderAuthError" => ErrorKind::Auth,
        "ContextOverflowError" => ErrorKind::ContextLength,
        _ if mentions_context_overflow(&lower) => ErrorKind::ContextLength,
        _ if body.contains("authentication_error") || body.contains("permission_error") => {
            ErrorKind::Auth
        }
        _ if body.contains("rate_limit_error") => ErrorKind::RateLimit,
        _ if body.contains("overloaded_error") => ErrorKind::Overloaded,
        _ => match status {
            Some(401 | 403) => ErrorKind::Auth,
            Some(429) => ErrorKind::RateLimit,
            Some(529) => ErrorKind::Overloaded,
            Some(408 | 504) => ErrorKind::Timeout,
            Some(400..=599) => ErrorKind::Api,
            _ if name == "APIError" => ErrorKind::Api,
            _ => ErrorKind::Other,
        },
    };
    let retryable = match kind {
        ErrorKind::RateLimit | ErrorKind::Overloaded | ErrorKind::Timeout => true,
        ErrorKind::Api => status.is_none_or(|s| s >= 500),
        _ => false,
    } || (kind != ErrorKind::Auth
        && kind != ErrorKind::ContextLength
        && data
            .and_then(|d| d.is_retryable.as_ref())
            .and_then(Loose::as_bool)
            == Some(true));
    Failure::Error {
        kind,
        message,
        retryable,
    }
}

fn mentions_context_overflow(text: &str) -> bool {
    [
        "prompt is too long",
        "context length",
        "context window",
        "maximum context",
        "context_length_exceeded",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_json(json: &str) -> Failure {
        let body: ErrorBody = serde_json::from_str(json).unwrap();
        classify(&body)
    }

    fn kind_and_retry(json: &str) -> (ErrorKind, bool) {
        match classify_json(json) {
            Failure::Error {
                kind, retryable, ..
            } => (kind, retryable),
            Failure::Aborted => panic!("aborted"),
        }
    }

    #[test]
    fn http_statuses_map_to_kinds() {
        let api = |status: u16| {
            kind_and_retry(&format!(
                r#"{{"name":"APIError","data":{{"message":"m","statusCode":{status},"isRetryable":false}}}}"#
            ))
        };
        assert_eq!(api(401), (ErrorKind::Auth, false));
        assert_eq!(api(403), (ErrorKind::Auth, false));
        assert_eq!(api(429), (ErrorKind::RateLimit, true));
        assert_eq!(api(529), (ErrorKind::Overloaded, true));
        assert_eq!(api(500), (ErrorKind::Api, true));
        assert_eq!(api(400), (ErrorKind::Api, false));
        assert_eq!(api(504), (ErrorKind::Timeout, true));
    }

    #[test]
    fn provider_error_types_and_names_win_over_the_status() {
        assert_eq!(
            kind_and_retry(
                r#"{"name":"APIError","data":{"message":"prompt is too long: 210000 tokens > 200000 maximum","statusCode":400}}"#
            ),
            (ErrorKind::ContextLength, false)
        );
        assert_eq!(
            kind_and_retry(
                r#"{"name":"APIError","data":{"message":"x","statusCode":500,"responseBody":"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}"}}"#
            ),
            (ErrorKind::Overloaded, true)
        );
        assert_eq!(
            kind_and_retry(
                r#"{"name":"ProviderAuthError","data":{"providerID":"anthropic","message":"no key"}}"#
            ),
            (ErrorKind::Auth, false)
        );
        assert_eq!(
            kind_and_retry(r#"{"name":"UnknownError","data":{"message":"boom"}}"#),
            (ErrorKind::Other, false)
        );
        assert_eq!(
            classify_json(r#"{"name":"MessageAbortedError","data":{"message":"Aborted"}}"#),
            Failure::Aborted
        );
    }

    #[test]
    fn the_message_names_the_http_status() {
        let Failure::Error { message, .. } = classify_json(
            r#"{"name":"APIError","data":{"message":"invalid x-api-key","statusCode":401}}"#,
        ) else {
            panic!("not an error")
        };
        assert_eq!(message, "invalid x-api-key (HTTP 401)");
        let Failure::Error { message, .. } = classify_json(r#"{"name":"Weird"}"#) else {
            panic!("not an error")
        };
        assert_eq!(message, "Weird");
    }
}
