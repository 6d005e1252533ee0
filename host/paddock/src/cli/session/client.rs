//! A small client of the host's HTTP API, for the `session` commands.
//!
//! Plain HTTP with a bearer token; every error answer of the API is JSON
//! `{"error": {"code", "message"}}` and comes back as [`ApiError::Status`]
//! with that code, so a command can tell "no such session" from "the host is
//! down" (which the event stream retries).

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// How long connecting to the host may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a plain API call may take (ending a session waits for its
/// execs to drain first).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Starting an exec provisions the sandbox if it was not yet, which for a
/// container provider can include pulling an image.
const START_EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The host answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Status {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The host could not be reached, or the connection broke.
    #[error("cannot reach the host: {}", root_cause(.0))]
    Transport(#[source] reqwest::Error),
    /// The host answered, but not with what this client expects.
    #[error("unexpected answer from the host: {0}")]
    Unexpected(String),
}

/// The innermost error: "connection refused" says more than "error sending
/// request", and the URL is the one the user gave.
fn root_cause(err: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if err.is_timeout() {
        return format!("timed out ({cause})");
    }
    cause.to_string()
}

impl ApiError {
    /// Whether trying again later may succeed: the host was unreachable,
    /// restarting, or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Transport(_) => true,
            ApiError::Unexpected(_) => false,
            ApiError::Status { status, .. } => matches!(
                *status,
                StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                    | StatusCode::TOO_MANY_REQUESTS
            ),
        }
    }
}

/// The host's API, as one owner (the token's) sees it.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Api {
    /// A client of the host at `host` (`http://HOST:PORT`, optionally with
    /// a path prefix; a bare `HOST:PORT` means plain HTTP).
    pub fn new(host: &str, token: String) -> anyhow::Result<Self> {
        let with_scheme = if host.contains("://") {
            host.to_owned()
        } else {
            format!("http://{host}")
        };
        let base =
            Url::parse(&with_scheme).with_context(|| format!("--host {host:?} is not a URL"))?;
        match base.scheme() {
            "http" => {}
            "https" => bail!(
                "--host {host}: this build of paddock speaks plain HTTP only; put a TLS proxy on the client side or use http://"
            ),
            other => bail!("--host {host}: unsupported scheme {other:?}; use http://HOST:PORT"),
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            bail!("--host {host:?} has no host name");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("paddock-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base, token })
    }

    /// `base` + the escaped `segments`.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `new` checked that the base can have a path.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http
            .request(method, self.url(segments))
            .bearer_auth(&self.token)
    }

    /// Sends `request` and decodes a JSON answer.
    async fn json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T, ApiError> {
        let response = checked(request.send().await.map_err(ApiError::Transport)?).await?;
        let body = response.bytes().await.map_err(ApiError::Transport)?;
        serde_json::from_slice(&body).map_err(|err| ApiError::Unexpected(err.to_string()))
    }

    /// Sends `request` and ignores the answer's body.
    async fn empty(request: RequestBuilder) -> Result<(), ApiError> {
        checked(request.send().await.map_err(ApiError::Transport)?).await?;
        Ok(())
    }

    /// `POST /v1/sessions` → the session view.
    pub async fn create_session(&self, body: &impl Serialize) -> Result<Value, ApiError> {
        Self::json(
            self.request(Method::POST, &["v1", "sessions"])
                .timeout(CALL_TIMEOUT)
                .json(body),
        )
        .await
    }

    /// `GET /v1/sessions` → `{sessions: [...]}`.
    pub async fn list_sessions(&self) -> Result<Value, ApiError> {
        Self::json(
            self.request(Method::GET, &["v1", "sessions"])
                .timeout(CALL_TIMEOUT),
        )
        .await
    }

    /// `DELETE /v1/sessions/{id}`.
    pub async fn delete_session(&self, id: &str) -> Result<(), ApiError> {
        Self::empty(
            self.request(Method::DELETE, &["v1", "sessions", id])
                .timeout(CALL_TIMEOUT),
        )
        .await
    }

    /// `POST /v1/sessions/{id}/execs` → the exec view.
    pub async fn start_exec(
        &self,
        session: &str,
        body: &impl Serialize,
    ) -> Result<Value, ApiError> {
        Self::json(
            self.request(Method::POST, &["v1", "sessions", session, "execs"])
                .timeout(START_EXEC_TIMEOUT)
                .json(body),
        )
        .await
    }

    /// `GET /v1/sessions/{id}/execs/{exec}` → the exec view.
    pub async fn exec(&self, session: &str, exec: &str) -> Result<Value, ApiError> {
        Self::json(
            self.request(Method::GET, &["v1", "sessions", session, "execs", exec])
                .timeout(CALL_TIMEOUT),
        )
        .await
    }

    /// `POST .../execs/{exec}/cancel`.
    pub async fn cancel(&self, session: &str, exec: &str) -> Result<(), ApiError> {
        Self::empty(
            self.request(
                Method::POST,
                &["v1", "sessions", session, "execs", exec, "cancel"],
            )
            .timeout(CALL_TIMEOUT),
        )
        .await
    }

    /// `POST .../execs/{exec}/stdin`: raw bytes, then stdin closed if `close`.
    pub async fn write_stdin(
        &self,
        session: &str,
        exec: &str,
        data: Bytes,
        close: bool,
    ) -> Result<(), ApiError> {
        let mut url = self.url(&["v1", "sessions", session, "execs", exec, "stdin"]);
        if close {
            url.query_pairs_mut().append_pair("close", "true");
        }
        let request = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .timeout(CALL_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(data);
        Self::empty(request).await
    }

    /// `GET .../execs/{exec}/events` with `Last-Event-ID: after`: the open
    /// stream (no timeout: it lives as long as the exec; the caller watches
    /// for silence instead).
    pub async fn events(
        &self,
        session: &str,
        exec: &str,
        after: u64,
    ) -> Result<Response, ApiError> {
        let request = self
            .request(
                Method::GET,
                &["v1", "sessions", session, "execs", exec, "events"],
            )
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .header("Last-Event-ID", after.to_string());
        checked(request.send().await.map_err(ApiError::Transport)?).await
    }
}

/// `response` if it is a success; otherwise its error, decoded.
async fn checked(response: Response) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    Err(decode_error(status, &body))
}

/// The API's `{"error": {"code", "message"}}`, or for anything else (a
/// proxy's page, say) the status and the start of the body.
fn decode_error(status: StatusCode, body: &[u8]) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(Body { error }) => ApiError::Status {
            status,
            code: error.code,
            message: error.message,
        },
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = match text.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None if text.is_empty() => {
                    status.canonical_reason().unwrap_or("no message").to_owned()
                }
                None => text.to_owned(),
            };
            ApiError::Status {
                status,
                code: "http_error".to_owned(),
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_their_code_and_message() {
        let err = decode_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"no session s-1"}}"#,
        );
        assert_eq!(
            err.to_string(),
            "no session s-1 (not_found, HTTP 404 Not Found)"
        );
        assert!(!err.is_transient());
        let err = decode_error(StatusCode::BAD_GATEWAY, b"<html>proxy</html>");
        assert!(err.to_string().contains("<html>proxy</html>"));
        assert!(err.is_transient());
    }

    #[test]
    fn ids_are_escaped_into_the_path() {
        let api = Api::new("127.0.0.1:8420/prefix/", "t".into()).unwrap();
        assert_eq!(
            api.url(&["v1", "sessions", "a/../b c"]).as_str(),
            "http://127.0.0.1:8420/prefix/v1/sessions/a%2F..%2Fb%20c"
        );
        assert!(Api::new("https://example.com", "t".into()).is_err());
        assert!(Api::new("ftp://example.com", "t".into()).is_err());
    }
}
