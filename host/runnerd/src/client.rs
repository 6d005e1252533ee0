//! An async client for every runnerd endpoint, for the host (and the
//! tests). Connections are pooled (hyper-util's legacy client, HTTP/1).
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), paddock_runnerd::client::ClientError> {
//! use paddock_runnerd::client::Client;
//! use paddock_runnerd::proto::{ExecRequest, Frame};
//!
//! let client = Client::new("http://127.0.0.1:7070", "token");
//! let exec = client
//!     .create_exec(&ExecRequest { argv: vec!["echo".into(), "hi".into()], ..Default::default() })
//!     .await?;
//! let mut frames = client.frames(&exec.id, 0).await?;
//! while let Some(frame) = frames.next().await {
//!     if let Frame::Exit { exit, .. } = frame? {
//!         println!("{:?}", exit.reason);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::proto::{
    CancelRequest, DeadlineRequest, DirListing, EnvPatch, EnvView, ErrorBody, ExecCreated,
    ExecList, ExecRequest, ExecStatus, FileStat, FileWritten, Frame, FrameDecoder, FrameError,
    Health,
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built (bad base URL, bad header).
    #[error("invalid request: {0}")]
    Request(String),
    /// Connecting or sending failed.
    #[error("HTTP transport: {0}")]
    Transport(#[from] hyper_util::client::legacy::Error),
    /// Reading a response body failed.
    #[error("reading the response: {0}")]
    Body(#[from] hyper::Error),
    /// runnerd answered with an error body.
    #[error("runnerd answered {status} {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// A non-success answer without the JSON error shape.
    #[error("unexpected answer {status}: {body}")]
    Unexpected { status: StatusCode, body: String },
    /// A success answer whose JSON did not match.
    #[error("malformed JSON answer: {0}")]
    Json(#[from] serde_json::Error),
    /// A malformed frame stream.
    #[error("frame stream: {0}")]
    Frame(#[from] FrameError),
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable error code of an error answer (see README.md).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A runnerd client. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `base_url` (`http://HOST:PORT`, or with a path prefix
    /// that every request path is appended to, as a tunnel has).
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self::build(base_url.into(), Some(token.into()))
    }

    /// A client for `http://ADDR`, the address runnerd printed.
    pub fn for_addr(addr: SocketAddr, token: impl Into<String>) -> Self {
        Self::new(format!("http://{addr}"), token)
    }

    /// A client that sends no token; every call is refused with 401. For
    /// probing and tests.
    pub fn unauthenticated(base_url: impl Into<String>) -> Self {
        Self::build(base_url.into(), None)
    }

    fn build(base: String, token: Option<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            http: HyperClient::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Sends one request and returns the response, error statuses included.
    ///
    /// # Errors
    ///
    /// Building or sending the request.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<http::Response<Incoming>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base));
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| ClientError::Request(format!("token: {e}")))?;
            builder = builder.header(header::AUTHORIZATION, value);
        }
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, content_type);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| ClientError::Request(e.to_string()))?;
        Ok(self.http.request(request).await?)
    }

    /// Sends a request and returns status and body as they are, without
    /// interpreting either.
    ///
    /// # Errors
    ///
    /// Transport failures only.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.send(method, path_and_query, None, body).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    async fn call(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<Bytes, ClientError> {
        let response = self
            .send(method, path_and_query, content_type, body)
            .await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            Err(api_error(status, &body))
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path_and_query: &str,
        request: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let (content_type, body) = match request {
            Some(request) => (
                Some("application/json"),
                Bytes::from(serde_json::to_vec(request)?),
            ),
            None => (None, Bytes::new()),
        };
        let body = self
            .call(method, path_and_query, content_type, body)
            .await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `GET /v1/health`. Does not move the activity clock.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.json(Method::GET, "/v1/health", None::<&()>).await
    }

    /// `POST /v1/execs`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`]; a program that cannot start is an `Api` error
    /// (`command_not_found`, `not_executable`, `spawn_failed`).
    pub async fn create_exec(&self, request: &ExecRequest) -> Result<ExecCreated, ClientError> {
        self.json(Method::POST, "/v1/execs", Some(request)).await
    }

    /// `GET /v1/execs/{id}`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn exec(&self, id: &str) -> Result<ExecStatus, ClientError> {
        self.json(
            Method::GET,
            &format!("/v1/execs/{}", encode(id)),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/execs`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn execs(&self) -> Result<Vec<ExecStatus>, ClientError> {
        let list: ExecList = self.json(Method::GET, "/v1/execs", None::<&()>).await?;
        Ok(list.execs)
    }

    /// `GET /v1/execs/{id}/frames?since=SEQ`: every frame after `since`,
    /// then the live tail, ending after the terminal frame.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn frames(&self, id: &str, since: u64) -> Result<FrameStream, ClientError> {
        let response = self
            .send(
                Method::GET,
                &format!("/v1/execs/{}/frames?since={since}", encode(id)),
                None,
                Bytes::new(),
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.into_body().collect().await?.to_bytes();
            return Err(api_error(status, &body));
        }
        Ok(FrameStream {
            body: response.into_body(),
            decoder: FrameDecoder::new(),
            done: false,
        })
    }

    /// `POST /v1/execs/{id}/stdin[?close=true]`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`]; 409 `stdin_closed` / `exec_ended`.
    pub async fn write_stdin(
        &self,
        id: &str,
        data: impl Into<Bytes>,
        close: bool,
    ) -> Result<(), ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/execs/{}/stdin?close={close}", encode(id)),
            Some("application/octet-stream"),
            data.into(),
        )
        .await
        .map(drop)
    }

    /// `POST /v1/execs/{id}/cancel`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn cancel(&self, id: &str, grace_ms: Option<u64>) -> Result<ExecStatus, ClientError> {
        self.json(
            Method::POST,
            &format!("/v1/execs/{}/cancel", encode(id)),
            Some(&CancelRequest { grace_ms }),
        )
        .await
    }

    /// `POST /v1/execs/{id}/deadline`: time out `timeout_ms` from now.
    ///
    /// # Errors
    ///
    /// See [`ClientError`]; 409 `exec_ended`.
    pub async fn set_deadline(&self, id: &str, timeout_ms: u64) -> Result<ExecStatus, ClientError> {
        self.json(
            Method::POST,
            &format!("/v1/execs/{}/deadline", encode(id)),
            Some(&DeadlineRequest { timeout_ms }),
        )
        .await
    }

    /// `GET /v1/env`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn env(&self) -> Result<EnvView, ClientError> {
        self.json(Method::GET, "/v1/env", None::<&()>).await
    }

    /// `PATCH /v1/env`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`]; refused names and exceeded limits are 4xx.
    pub async fn patch_env(&self, patch: &EnvPatch) -> Result<EnvView, ClientError> {
        self.json(Method::PATCH, "/v1/env", Some(patch)).await
    }

    /// `GET /v1/files/{path}?op=stat`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn stat(&self, path: &str) -> Result<FileStat, ClientError> {
        self.json(Method::GET, &files_url(path, "op=stat"), None::<&()>)
            .await
    }

    /// `GET /v1/files/{path}?op=list`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn list(&self, path: &str) -> Result<DirListing, ClientError> {
        self.json(Method::GET, &files_url(path, "op=list"), None::<&()>)
            .await
    }

    /// `GET /v1/files/{path}?op=read`: `length` bytes (default: to the end)
    /// from `offset`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn read_file(
        &self,
        path: &str,
        offset: u64,
        length: Option<u64>,
    ) -> Result<Bytes, ClientError> {
        let mut query = format!("op=read&offset={offset}");
        if let Some(length) = length {
            query.push_str(&format!("&length={length}"));
        }
        self.call(Method::GET, &files_url(path, &query), None, Bytes::new())
            .await
    }

    /// `PUT /v1/files/{path}[?parents=true]`: atomic replace.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn write_file(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        parents: bool,
    ) -> Result<FileWritten, ClientError> {
        let body = self
            .call(
                Method::PUT,
                &files_url(path, &format!("parents={parents}")),
                Some("application/octet-stream"),
                data.into(),
            )
            .await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `POST /v1/files/{path}?op=mkdir[&parents=true]`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<FileStat, ClientError> {
        self.json(
            Method::POST,
            &files_url(path, &format!("op=mkdir&parents={parents}")),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /v1/files/{path}[?recursive=true]`.
    ///
    /// # Errors
    ///
    /// See [`ClientError`].
    pub async fn remove(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        self.call(
            Method::DELETE,
            &files_url(path, &format!("recursive={recursive}")),
            None,
            Bytes::new(),
        )
        .await
        .map(drop)
    }
}

/// The frames of one attachment, decoded as they arrive.
#[derive(Debug)]
pub struct FrameStream {
    body: Incoming,
    decoder: FrameDecoder,
    done: bool,
}

impl FrameStream {
    /// The next frame; `None` after the stream ended (normally right after
    /// the terminal frame).
    pub async fn next(&mut self) -> Option<Result<Frame, ClientError>> {
        if self.done {
            return None;
        }
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(err) => {
                    self.done = true;
                    return Some(Err(err.into()));
                }
            }
            match self.body.frame().await {
                Some(Ok(chunk)) => {
                    if let Ok(data) = chunk.into_data() {
                        self.decoder.extend(&data);
                    }
                }
                Some(Err(err)) => {
                    self.done = true;
                    return Some(Err(err.into()));
                }
                None => {
                    self.done = true;
                    return self.decoder.finish().err().map(|e| Err(e.into()));
                }
            }
        }
    }

    /// Reads the stream to its end.
    ///
    /// # Errors
    ///
    /// The first transport or decoding error.
    pub async fn collect(mut self) -> Result<Vec<Frame>, ClientError> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            frames.push(frame?);
        }
        Ok(frames)
    }
}

fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => ClientError::Api {
            status,
            code: error.error.code,
            message: error.error.message,
        },
        Err(_) => ClientError::Unexpected {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

fn files_url(path: &str, query: &str) -> String {
    format!("/v1/files/{}?{query}", encode_path(path))
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    encode_keep(text, false)
}

/// Percent-encodes a workspace path, keeping `/` separators (a leading `/`
/// is encoded too, so an absolute path reaches runnerd and is refused there
/// rather than silently becoming relative).
fn encode_path(path: &str) -> String {
    match path.strip_prefix('/') {
        Some(rest) => format!("%2F{}", encode_keep(rest, true)),
        None => encode_keep(path, true),
    }
}

fn encode_keep(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char);
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_paths() {
        assert_eq!(encode_path("a b/c%d.txt"), "a%20b/c%25d.txt");
        assert_eq!(encode_path("/etc/passwd"), "%2Fetc/passwd");
        assert_eq!(encode("ex-1/2"), "ex-1%2F2");
    }
}
