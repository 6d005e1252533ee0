//! Gemini CLI's failures as normalized `error` events.
//!
//! The CLI reports API failures as a message with the provider's JSON body
//! embedded (`[API Error: {"error":{"code":500,"status":"INTERNAL",…}}]`),
//! and its own fatal conditions by error type, message or exit code. The
//! kind decides whether a platform retries, so it comes from the HTTP code
//! or the Google RPC status where there is one.

use paddock_sdk::agent::{AgentError, ErrorKind};

use crate::wire::ApiErrorBody;

/// What a `result.error` or an `error` line means.
pub enum Failure {
    /// The run was stopped by the user (Ctrl-C on a terminal): the result is
    /// `interrupted` and there is no `error` event.
    Interrupted,
    Error(AgentError),
}

/// Classifies a `result.error {type, message}`.
pub fn classify(kind: Option<&str>, message: &str) -> Failure {
    let kind = kind.unwrap_or("");
    if kind.contains("Cancel") || message.trim() == "Operation cancelled." {
        return Failure::Interrupted;
    }
    Failure::Error(error_event(kind, message))
}

/// The `error` event for a failure of type `kind` (Gemini's error class or
/// category, possibly empty) with `message`.
pub fn error_event(kind: &str, message: &str) -> AgentError {
    let api = api_error(message);
    let (kind, retryable) = category(kind, message, api.as_ref());
    AgentError {
        kind,
        message: api.map_or_else(|| message.to_owned(), |a| a.display),
        retryable,
    }
}

/// The error a Gemini exit code names when the CLI wrote no `result`
/// (Gemini's `ExitCodes`: it exits with these before streaming anything).
pub fn exit_code_error(code: i32) -> Option<AgentError> {
    let (kind, message) = match code {
        41 => (
            ErrorKind::Auth,
            "Gemini CLI could not authenticate (exit 41): check the auth settings and key",
        ),
        42 => (
            ErrorKind::Other,
            "Gemini CLI refused its input (exit 42): empty prompt, bad flag or unknown session to resume",
        ),
        52 => (
            ErrorKind::Other,
            "Gemini CLI refused its configuration (exit 52)",
        ),
        53 => (
            ErrorKind::MaxTurns,
            "Gemini CLI reached its maximum session turns (exit 53)",
        ),
        _ => return None,
    };
    Some(AgentError {
        kind,
        message: message.to_owned(),
        retryable: false,
    })
}

/// An API error found in a message: its HTTP code, RPC status and a
/// readable message.
struct ApiFailure {
    code: Option<u16>,
    status: Option<String>,
    display: String,
}

/// Reads the JSON body the CLI embeds in `[API Error: …]`; without one,
/// looks for an HTTP code or RPC status in the text.
fn api_error(message: &str) -> Option<ApiFailure> {
    if let (Some(start), Some(end)) = (message.find('{'), message.rfind('}'))
        && start < end
        && let Ok(body) = serde_json::from_str::<ApiErrorBody>(&message[start..=end])
        && let Some(error) = body.error
    {
        let code = error.code.and_then(|c| u16::try_from(c).ok());
        let status = error.status.map(|s| s.into_owned());
        let text = error.message.as_deref().unwrap_or("").trim();
        let mut display = String::from("API error");
        if let Some(code) = code {
            display.push_str(&format!(" {code}"));
        }
        if let Some(status) = &status {
            display.push_str(&format!(" {status}"));
        }
        if !text.is_empty() {
            display.push_str(": ");
            display.push_str(text);
        }
        return Some(ApiFailure {
            code,
            status,
            display,
        });
    }
    let code = http_code_in(message);
    let status = RPC_STATUSES
        .iter()
        .find(|s| message.contains(**s))
        .map(|s| (*s).to_owned());
    (code.is_some() || status.is_some()).then(|| ApiFailure {
        code,
        status,
        display: message.to_owned(),
    })
}

/// Google RPC statuses that say something about retrying.
const RPC_STATUSES: [&str; 9] = [
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
];

/// An HTTP error code written as `status 429`, `Status: 429` or `"code":429`.
fn http_code_in(message: &str) -> Option<u16> {
    let lower = message.to_ascii_lowercase();
    for keyword in ["status", "code"] {
        for (at, _) in lower.match_indices(keyword) {
            let rest = &lower[at + keyword.len()..];
            let digits = rest.trim_start_matches([' ', ':', '"', '=']);
            // Only a short separator counts, so "status of file 404.txt"
            // is not read as a code.
            if rest.len() - digits.len() > 3 {
                continue;
            }
            let number: String = digits.chars().take_while(char::is_ascii_digit).collect();
            if number.len() == 3
                && let Ok(code) = number.parse::<u16>()
                && (400..600).contains(&code)
            {
                return Some(code);
            }
        }
    }
    None
}

fn category(kind: &str, message: &str, api: Option<&ApiFailure>) -> (ErrorKind, bool) {
    let lower = message.to_ascii_lowercase();
    if kind.contains("TurnLimited")
        || lower.contains("max session turns")
        || lower.contains("maximum session turns")
    {
        return (ErrorKind::MaxTurns, false);
    }
    if is_context_length(&lower) {
        return (ErrorKind::ContextLength, false);
    }
    if let Some(api) = api {
        if let Some(found) = api.code.and_then(from_http) {
            return found;
        }
        if let Some(found) = api.status.as_deref().and_then(from_rpc_status) {
            return found;
        }
    }
    if kind.contains("Authentication") || lower.contains("api key not valid") {
        return (ErrorKind::Auth, false);
    }
    if lower.contains("overloaded") {
        return (ErrorKind::Overloaded, true);
    }
    // An empty or malformed model response (after the CLI's own retry):
    // asking again usually works.
    if lower.contains("empty response")
        || lower.contains("empty text response")
        || lower.contains("invalid stream")
    {
        return (ErrorKind::Api, true);
    }
    (ErrorKind::Other, false)
}

fn is_context_length(lower: &str) -> bool {
    lower.contains("token")
        && (lower.contains("exceeds the maximum")
            || lower.contains("context window")
            || lower.contains("context length")
            || lower.contains("too long"))
}

fn from_http(code: u16) -> Option<(ErrorKind, bool)> {
    Some(match code {
        401 | 403 => (ErrorKind::Auth, false),
        408 => (ErrorKind::Timeout, true),
        413 => (ErrorKind::ContextLength, false),
        429 => (ErrorKind::RateLimit, true),
        503 | 529 => (ErrorKind::Overloaded, true),
        504 => (ErrorKind::Timeout, true),
        500..=599 => (ErrorKind::Api, true),
        400..=499 => (ErrorKind::Api, false),
        _ => return None,
    })
}

fn from_rpc_status(status: &str) -> Option<(ErrorKind, bool)> {
    Some(match status {
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => (ErrorKind::Auth, false),
        "RESOURCE_EXHAUSTED" => (ErrorKind::RateLimit, true),
        "UNAVAILABLE" => (ErrorKind::Overloaded, true),
        "DEADLINE_EXCEEDED" => (ErrorKind::Timeout, true),
        "INTERNAL" => (ErrorKind::Api, true),
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "NOT_FOUND" => (ErrorKind::Api, false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(message: &str) -> AgentError {
        match classify(Some("unknown"), message) {
            Failure::Error(e) => e,
            Failure::Interrupted => panic!("not an interruption: {message}"),
        }
    }

    #[test]
    fn embedded_api_bodies_decide_the_kind() {
        let cases = [
            (500, "INTERNAL", ErrorKind::Api, true),
            (401, "UNAUTHENTICATED", ErrorKind::Auth, false),
            (403, "PERMISSION_DENIED", ErrorKind::Auth, false),
            (429, "RESOURCE_EXHAUSTED", ErrorKind::RateLimit, true),
            (503, "UNAVAILABLE", ErrorKind::Overloaded, true),
            (504, "DEADLINE_EXCEEDED", ErrorKind::Timeout, true),
            (400, "INVALID_ARGUMENT", ErrorKind::Api, false),
        ];
        for (code, status, kind, retryable) in cases {
            let message = format!(
                r#"[API Error: {{"error":{{"code":{code},"status":"{status}","message":"boom"}}}}]"#
            );
            let e = event(&message);
            assert_eq!((e.kind, e.retryable), (kind, retryable), "{message}");
            assert_eq!(e.message, format!("API error {code} {status}: boom"));
        }
    }

    #[test]
    fn plain_text_codes_and_statuses_are_found() {
        assert_eq!(
            event("[API Error: Quota exceeded (Status: 429)]").kind,
            ErrorKind::RateLimit
        );
        assert_eq!(
            event("got status 503 from upstream").kind,
            ErrorKind::Overloaded
        );
        assert_eq!(
            event("request failed: UNAUTHENTICATED").kind,
            ErrorKind::Auth
        );
        assert_eq!(
            event("could not read status of file 404.txt").kind,
            ErrorKind::Other
        );
    }

    #[test]
    fn context_length_wins_over_the_generic_400() {
        let e = event(
            r#"[API Error: {"error":{"code":400,"status":"INVALID_ARGUMENT","message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}}]"#,
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::ContextLength, false));
    }

    #[test]
    fn gemini_own_conditions() {
        assert!(matches!(
            classify(Some("FatalCancellationError"), "Operation cancelled."),
            Failure::Interrupted
        ));
        let e = event(
            "Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json.",
        );
        assert_eq!(e.kind, ErrorKind::MaxTurns);
        assert_eq!(
            error_event("", "Maximum session turns exceeded").kind,
            ErrorKind::MaxTurns
        );
        let e = error_event(
            "",
            "The model returned an empty text response. If your context window is near capacity, try using /compress.",
        );
        assert_eq!((e.kind, e.retryable), (ErrorKind::Api, true));
        assert_eq!(exit_code_error(41).map(|e| e.kind), Some(ErrorKind::Auth));
        assert!(exit_code_error(0).is_none());
        assert!(exit_code_error(1).is_none());
    }
}
