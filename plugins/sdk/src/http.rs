//! Outgoing HTTP (`outgoing-http`): the only network a broker or provider
//! plugin gets. The host sends a request only if its host is on the
//! allowlist the operator configured for the plugin
//! (`[plugins.grants.<name>] allow_hosts`); anything else is
//! [`HttpError::Denied`].
//!
//! One call, whole bodies: plugins need request/response, not streams.
//!
//! ```ignore
//! use paddock_sdk::http::{self, Request};
//! let resp = http::send(&Request::get("https://pool.example/v1/health").bearer(&token))?;
//! if resp.is_success() { /* resp.json::<Health>() */ }
//! ```
//!
//! Natively (unit tests), [`send`] calls the installed mock host
//! ([`crate::testing::broker`] or [`crate::testing::provider`]).

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PluginError;

/// An HTTP request, body and all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Capped by the host's own limit for the plugin's call.
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, url: &str) -> Self {
        Self {
            method: method.to_owned(),
            url: url.to_owned(),
            ..Self::default()
        }
    }

    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    pub fn post(url: &str) -> Self {
        Self::new("POST", url)
    }

    pub fn put(url: &str) -> Self {
        Self::new("PUT", url)
    }

    pub fn delete(url: &str) -> Self {
        Self::new("DELETE", url)
    }

    /// Adds a header (headers may repeat).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `Authorization: Bearer TOKEN`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body and its `content-type`.
    pub fn json<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, PluginError> {
        let body = serde_json::to_vec(value)
            .map_err(|e| PluginError::Internal(format!("encoding a request body: {e}")))?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP response, body and all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A response with a JSON body (for tests' fake servers).
    pub fn json_body<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_default();
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        }
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum HttpError {
    /// The host is not on this plugin's allowlist.
    Denied(String),
    /// The request is malformed (a bad URL, method or header).
    InvalidRequest(String),
    Timeout,
    /// Connecting, TLS or the exchange failed.
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "denied by the host: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<HttpError> for PluginError {
    /// A refused host is the operator's policy (`denied`); a bad request is
    /// the plugin's bug (`internal`); a timeout or transport failure may pass
    /// (`unavailable`).
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => PluginError::Denied(format!("outgoing HTTP: {m}")),
            HttpError::InvalidRequest(m) => {
                PluginError::Internal(format!("outgoing HTTP: invalid request: {m}"))
            }
            HttpError::Timeout => PluginError::Unavailable("outgoing HTTP: timed out".into()),
            HttpError::Transport(m) => PluginError::Unavailable(format!("outgoing HTTP: {m}")),
        }
    }
}

/// Sends `req` through the host and waits for the whole response.
///
/// # Errors
///
/// [`HttpError`] when no response came; an HTTP error status is an `Ok`
/// response (check [`Response::is_success`]).
pub fn send(req: &Request) -> Result<Response, HttpError> {
    #[cfg(all(target_arch = "wasm32", any(feature = "broker", feature = "provider")))]
    return crate::glue::http_send(req);
    #[cfg(all(
        target_arch = "wasm32",
        not(any(feature = "broker", feature = "provider"))
    ))]
    return {
        let _ = req;
        Err(HttpError::InvalidRequest(
            "paddock-sdk was built without a world that imports outgoing-http (enable its `broker` or `provider` feature)".into(),
        ))
    };
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::http_send(req);
}
