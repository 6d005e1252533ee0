//! Codex reports failures as a bare `message` (no status, no error type), so
//! the kind is read from the text Codex 0.169.0 writes for each failure.

use paddock_sdk::agent::ErrorKind;

/// Whether an `error` line is Codex retrying on its own ("Reconnecting...
/// 1/5 (...)", or a transport fallback). Such a line is not a failure of
/// the run: the final error, if any, comes as its own line.
pub fn is_retry_notice(message: &str) -> bool {
    let m = message.trim_start();
    m.starts_with("Reconnecting...") || m.starts_with("Falling back from WebSockets")
}

/// The kind of a Codex error message and whether trying again may help.
pub fn classify(message: &str) -> (ErrorKind, bool) {
    let lower = message.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(needle);

    // Before the status: an HTTP 400 about the context is not a plain API
    // error.
    if has("context window") || has("context_length_exceeded") || has("maximum context length") {
        return (ErrorKind::ContextLength, false);
    }
    // The plan's usage limit resets ("Try again at 3:00 PM").
    if has("usage limit") {
        return (ErrorKind::RateLimit, true);
    }
    if has("quota exceeded") || has("insufficient_quota") || has("upgrade to plus") {
        return (ErrorKind::Budget, false);
    }
    // The provider's `env_key` variable (the gateway token) is not set.
    if has("missing environment variable") {
        return (ErrorKind::Auth, false);
    }
    if let Some(status) = http_status(&lower) {
        return match status {
            401 | 403 => (ErrorKind::Auth, false),
            408 => (ErrorKind::Timeout, true),
            413 => (ErrorKind::ContextLength, false),
            429 => (ErrorKind::RateLimit, true),
            529 => (ErrorKind::Overloaded, true),
            500..=599 => (ErrorKind::Api, true),
            _ => (ErrorKind::Api, false),
        };
    }
    // Codex's canned text for any HTTP 5xx (it ignores the body).
    if has("experiencing high demand") {
        return (ErrorKind::Api, true);
    }
    if has("rate limit") || has("too many requests") {
        return (ErrorKind::RateLimit, true);
    }
    if has("overloaded") || has("at capacity") {
        return (ErrorKind::Overloaded, true);
    }
    if has("timed out") || has("timeout") {
        return (ErrorKind::Timeout, true);
    }
    // Transport failures Codex already retried: a later attempt may work.
    if has("stream disconnected")
        || has("connection failed")
        || has("error while reading the server response")
    {
        return (ErrorKind::Api, true);
    }
    if has("unauthorized") || has("invalid_api_key") || has("invalid api key") {
        return (ErrorKind::Auth, false);
    }
    (ErrorKind::Other, false)
}

/// The HTTP status in "unexpected status 401 Unauthorized: ...", "exceeded
/// retry limit, last status: 429 ..." or "(status 403)".
fn http_status(lower: &str) -> Option<u16> {
    let mut rest = lower;
    while let Some(at) = rest.find("status") {
        rest = &rest[at + "status".len()..];
        let digits = rest.trim_start_matches([':', ' ']);
        let Some(code) = digits.get(..3) else {
            continue;
        };
        let after = digits[3..].chars().next();
        if code.bytes().all(|b| b.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit()) {
            return code.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_kinds() {
        let cases = [
            (
                "unexpected status 401 Unauthorized: Incorrect API key provided, url: http://127.0.0.1:1/v1/responses",
                ErrorKind::Auth,
                false,
            ),
            (
                "exceeded retry limit, last status: 429 Too Many Requests",
                ErrorKind::RateLimit,
                true,
            ),
            (
                "unexpected status 529 <unknown status code>: busy",
                ErrorKind::Overloaded,
                true,
            ),
            (
                "unexpected status 502 Bad Gateway: upstream",
                ErrorKind::Api,
                true,
            ),
            (
                "unexpected status 404 Not Found: no such model",
                ErrorKind::Api,
                false,
            ),
            (
                "Access blocked by Cloudflare. (status 403 Forbidden)",
                ErrorKind::Auth,
                false,
            ),
        ];
        for (message, kind, retryable) in cases {
            assert_eq!(classify(message), (kind, retryable), "{message}");
        }
    }

    #[test]
    fn codex_texts_map_to_kinds() {
        let cases = [
            (
                "We\u{2019}re currently experiencing high demand, which may cause temporary errors.",
                ErrorKind::Api,
                true,
            ),
            (
                "Codex ran out of room in the model's context window. Start a new conversation or clear earlier history before retrying.",
                ErrorKind::ContextLength,
                false,
            ),
            (
                "You've hit your usage limit. Try again later.",
                ErrorKind::RateLimit,
                true,
            ),
            (
                "Quota exceeded. Check your plan and billing details.",
                ErrorKind::Budget,
                false,
            ),
            (
                "Missing environment variable: `PADDOCK_GATEWAY_TOKEN`.",
                ErrorKind::Auth,
                false,
            ),
            (
                "stream disconnected before completion: The server had an error",
                ErrorKind::Api,
                true,
            ),
            ("Fatal error: something odd", ErrorKind::Other, false),
        ];
        for (message, kind, retryable) in cases {
            assert_eq!(classify(message), (kind, retryable), "{message}");
        }
    }

    #[test]
    fn retry_notices_are_recognised() {
        assert!(is_retry_notice(
            "Reconnecting... 1/1 (We\u{2019}re currently experiencing high demand, which may cause temporary errors.)"
        ));
        assert!(!is_retry_notice(
            "We\u{2019}re currently experiencing high demand, which may cause temporary errors."
        ));
    }
}
