//! API failures as Claude Code reports them → `error` kinds.

use paddock_sdk::agent::ErrorKind;

/// The kind and retryability of an API failure, from the HTTP status when
/// the CLI gives one, else from its error type (`api_error_type`, or the
/// short `error` of a synthetic message: `overloaded`, `server_error`,
/// `authentication_failed`, …), else from the message text.
pub fn classify(status: Option<u64>, types: &[Option<&str>], message: &str) -> (ErrorKind, bool) {
    let too_long = mentions_context_length(message);
    if let Some(status) = status {
        return match status {
            401 | 403 => (ErrorKind::Auth, false),
            402 => (ErrorKind::Budget, false),
            408 | 504 => (ErrorKind::Timeout, true),
            413 => (ErrorKind::ContextLength, false),
            429 => (ErrorKind::RateLimit, true),
            529 => (ErrorKind::Overloaded, true),
            500..=599 => (ErrorKind::Api, true),
            _ if too_long => (ErrorKind::ContextLength, false),
            _ => (ErrorKind::Api, false),
        };
    }
    for kind in types.iter().flatten() {
        let kind = kind.to_ascii_lowercase();
        let found = if kind.contains("auth") || kind.contains("permission") {
            Some((ErrorKind::Auth, false))
        } else if kind.contains("rate_limit") {
            Some((ErrorKind::RateLimit, true))
        } else if kind.contains("overloaded") {
            Some((ErrorKind::Overloaded, true))
        } else if kind.contains("billing") || kind.contains("credit") {
            Some((ErrorKind::Budget, false))
        } else if kind.contains("timeout") {
            Some((ErrorKind::Timeout, true))
        } else if kind.contains("server_error") || kind == "api_error" {
            Some((ErrorKind::Api, true))
        } else if kind.contains("invalid_request") || kind.contains("not_found") {
            Some(if too_long {
                (ErrorKind::ContextLength, false)
            } else {
                (ErrorKind::Api, false)
            })
        } else {
            None
        };
        if let Some(found) = found {
            return found;
        }
    }
    if too_long {
        (ErrorKind::ContextLength, false)
    } else {
        (ErrorKind::Other, false)
    }
}

fn mentions_context_length(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prompt is too long") || m.contains("context length") || m.contains("context window")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_win_over_types() {
        assert_eq!(
            classify(Some(401), &[Some("api_error")], ""),
            (ErrorKind::Auth, false)
        );
        assert_eq!(classify(Some(429), &[], ""), (ErrorKind::RateLimit, true));
        assert_eq!(classify(Some(529), &[], ""), (ErrorKind::Overloaded, true));
        assert_eq!(classify(Some(503), &[], ""), (ErrorKind::Api, true));
        assert_eq!(
            classify(
                Some(400),
                &[],
                "prompt is too long: 210000 tokens > 200000 maximum"
            ),
            (ErrorKind::ContextLength, false)
        );
        assert_eq!(classify(Some(400), &[], "bad"), (ErrorKind::Api, false));
    }

    #[test]
    fn types_and_text_without_a_status() {
        assert_eq!(
            classify(None, &[Some("overloaded")], ""),
            (ErrorKind::Overloaded, true)
        );
        assert_eq!(
            classify(None, &[None, Some("authentication_failed")], ""),
            (ErrorKind::Auth, false)
        );
        assert_eq!(
            classify(None, &[Some("server_error")], ""),
            (ErrorKind::Api, true)
        );
        assert_eq!(
            classify(None, &[Some("something_new")], "?"),
            (ErrorKind::Other, false)
        );
    }
}
