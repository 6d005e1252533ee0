//! The HTTP surface: authentication, routing, request parsing and response
//! building. Handlers are thin; the route families (`exec`, `env`, `files`)
//! own their logic and their error-to-status mapping.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::State;
use super::body::ChannelBody;
use super::error::ApiError;
use super::files::{self, FileError, PendingWrite};
use super::random_hex;
use crate::proto::{
    CancelRequest, DEFAULT_KILL_GRACE_MS, DeadlineRequest, EnvPatch, ExecList, ExecRequest,
    FRAME_CONTENT_TYPE, FileWritten, Health,
};

/// Every response body.
pub type ResponseBody = UnsyncBoxBody<Bytes, io::Error>;

/// Largest JSON request body. An exec request carries its stdin (an agent
/// prompt with attachments can be large); everything else is tiny.
const JSON_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Bytes per chunk of a file read.
const FILE_CHUNK: usize = 64 * 1024;

/// The service function: never fails, errors become JSON responses.
pub async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match route(&state, request).await {
        Ok(response) => Ok(response),
        Err(err) => {
            if err.status.is_server_error() {
                tracing::error!(%method, %path, status = %err.status, code = err.code, message = %err.message, "request failed");
            } else {
                tracing::debug!(%method, %path, status = %err.status, code = err.code, message = %err.message, "request refused");
            }
            Ok(error_response(&err))
        }
    }
}

fn error_response(err: &ApiError) -> Response<ResponseBody> {
    let mut response = bytes_response(err.status, "application/json", Bytes::from(err.body()));
    if err.status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<ResponseBody> {
    let mut response = Response::new(
        Full::new(body)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<ResponseBody>, ApiError> {
    let body = serde_json::to_vec(value).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(bytes_response(
        status,
        "application/json",
        Bytes::from(body),
    ))
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(
        Empty::new()
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

fn stream(content_type: &'static str, body: ChannelBody) -> Response<ResponseBody> {
    let mut response = Response::new(body.boxed_unsync());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Checks `Authorization: Bearer <token>` in constant time.
fn authorize(state: &State, request: &Request<Incoming>) -> Result<(), ApiError> {
    let unauthorized = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{why}: send Authorization: Bearer <token>"),
        )
    };
    let value = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing token"))?;
    let value = value.as_bytes();
    let presented = match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token,
        _ => return Err(unauthorized("not a bearer token")),
    };
    if bool::from(presented.ct_eq(state.token.as_bytes())) {
        Ok(())
    } else {
        Err(unauthorized("wrong token"))
    }
}

/// Parsed query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode_query(key)?, decode_query(value)?));
        }
        Ok(Self(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::bad_request("bad_query", format!("{key}={v:?} is not a number"))
                })
            })
            .transpose()
    }

    /// A flag: true/false, 1/0, yes/no (any case); absent is false.
    fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(false),
            Some("true" | "1" | "yes" | "") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(ApiError::bad_request(
                "bad_query",
                format!("{key}={other:?}: use true/false, 1/0 or yes/no"),
            )),
        }
    }
}

fn decode_query(text: &str) -> Result<String, ApiError> {
    percent_decode(&text.replace('+', " "))
}

/// Decodes `%XX` escapes; the result must be UTF-8.
fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_escape",
            format!("malformed percent-encoding in {text:?}"),
        )
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        ApiError::bad_request("bad_escape", format!("{text:?} does not decode to UTF-8"))
    })
}

async fn read_json<T: DeserializeOwned>(body: Incoming) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}

/// Like [`read_json`], but an empty body means the default.
async fn read_json_or_default<T: DeserializeOwned + Default>(
    body: Incoming,
) -> Result<T, ApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request("bad_json", e.to_string()))
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    Limited::new(body, JSON_BODY_LIMIT)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| {
            if err.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request body exceeds {JSON_BODY_LIMIT} bytes"),
                )
            } else {
                ApiError::bad_request("bad_body", format!("reading the request body: {err}"))
            }
        })
}

fn method_not_allowed(method: &Method, allowed: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed here (allowed: {allowed})"),
    )
}

async fn route(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    authorize(state, &request)?;
    let (parts, body) = request.into_parts();
    let method = parts.method;
    let path = parts.uri.path();
    let query = Query::parse(parts.uri.query())?;

    if let Some(rest) = path.strip_prefix("/v1/files")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        let file_path = percent_decode(rest.strip_prefix('/').unwrap_or(rest))?;
        return files_route(state, &method, file_path, &query, body).await;
    }

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["v1", "health"] => match method {
            Method::GET => health(state),
            _ => Err(method_not_allowed(&method, "GET")),
        },
        ["v1", "execs"] => match method {
            Method::GET => json(
                StatusCode::OK,
                &ExecList {
                    execs: state.execs.list(),
                },
            ),
            Method::POST => {
                let request: ExecRequest = read_json(body).await?;
                let store = state.env_vars();
                let created = state.execs.create(request, store).await?;
                json(StatusCode::CREATED, &created)
            }
            _ => Err(method_not_allowed(&method, "GET, POST")),
        },
        ["v1", "execs", id] => match method {
            Method::GET => json(StatusCode::OK, &state.execs.get(id)?.status()),
            _ => Err(method_not_allowed(&method, "GET")),
        },
        ["v1", "execs", id, action] => {
            let exec = state.execs.get(id)?;
            match (*action, &method) {
                ("frames", &Method::GET) => {
                    let since = query.u64("since")?.unwrap_or(0);
                    let body = exec.attach(since, Arc::clone(&state.activity))?;
                    Ok(stream(FRAME_CONTENT_TYPE, body))
                }
                ("stdin", &Method::POST) => {
                    let close = query.flag("close")?;
                    exec.write_stdin(body, close, &state.activity).await?;
                    Ok(empty(StatusCode::NO_CONTENT))
                }
                ("cancel", &Method::POST) => {
                    let request: CancelRequest = read_json_or_default(body).await?;
                    let grace =
                        Duration::from_millis(request.grace_ms.unwrap_or(DEFAULT_KILL_GRACE_MS));
                    exec.cancel(grace);
                    json(StatusCode::ACCEPTED, &exec.status())
                }
                ("deadline", &Method::POST) => {
                    let request: DeadlineRequest = read_json(body).await?;
                    let status = exec.set_deadline(Duration::from_millis(request.timeout_ms))?;
                    json(StatusCode::OK, &status)
                }
                ("frames", _) => Err(method_not_allowed(&method, "GET")),
                ("stdin" | "cancel" | "deadline", _) => Err(method_not_allowed(&method, "POST")),
                _ => Err(not_found(path)),
            }
        }
        ["v1", "env"] => match method {
            Method::GET => json(StatusCode::OK, &state.env_view()),
            Method::PATCH => {
                let patch: EnvPatch = read_json(body).await?;
                let view = state.patch_env(&patch)?;
                json(StatusCode::OK, &view)
            }
            _ => Err(method_not_allowed(&method, "GET, PATCH")),
        },
        _ => Err(not_found(path)),
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found("not_found", format!("no endpoint {path:?} (see README.md)"))
}

fn health(state: &State) -> Result<Response<ResponseBody>, ApiError> {
    // Reading health must not count as activity: the host reaps idle
    // sandboxes by `last_activity_ms`.
    json(
        StatusCode::OK,
        &Health {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_ms: state.started.elapsed().as_millis() as u64,
            last_activity_ms: state.activity.get(),
            running_execs: state.execs.running() as u32,
            cgroups: state.execs.cgroups_enabled(),
        },
    )
}

/// Runs a blocking file operation against the workspace.
async fn blocking<T: Send + 'static>(
    state: &State,
    op: impl FnOnce(&cap_std::fs::Dir) -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    let root = Arc::clone(&state.workspace);
    tokio::task::spawn_blocking(move || op(&root))
        .await
        .map_err(|e| ApiError::internal(format!("file task failed: {e}")))?
        .map_err(ApiError::from)
}

async fn files_route(
    state: &Arc<State>,
    method: &Method,
    path: String,
    query: &Query,
    body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    match *method {
        Method::GET => match query.get("op").unwrap_or("stat") {
            "stat" => json(
                StatusCode::OK,
                &blocking(state, move |root| files::stat(root, &path)).await?,
            ),
            "list" => json(
                StatusCode::OK,
                &blocking(state, move |root| files::list(root, &path)).await?,
            ),
            "read" => {
                read_file(
                    state,
                    path,
                    query.u64("offset")?.unwrap_or(0),
                    query.u64("length")?,
                )
                .await
            }
            other => Err(ApiError::bad_request(
                "bad_query",
                format!("op={other:?}: GET takes op=stat, op=list or op=read"),
            )),
        },
        Method::PUT => write_file(state, path, query.flag("parents")?, body).await,
        Method::POST => match query.get("op") {
            Some("mkdir") => {
                let parents = query.flag("parents")?;
                let stat = blocking(state, move |root| files::mkdir(root, &path, parents)).await?;
                json(StatusCode::CREATED, &stat)
            }
            other => Err(ApiError::bad_request(
                "bad_query",
                format!("op={other:?}: POST takes op=mkdir"),
            )),
        },
        Method::DELETE => {
            let recursive = query.flag("recursive")?;
            blocking(state, move |root| files::remove(root, &path, recursive)).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        _ => Err(method_not_allowed(method, "GET, PUT, POST, DELETE")),
    }
}

/// `op=read`: streams `length` bytes (default: to the end) from `offset`.
async fn read_file(
    state: &State,
    path: String,
    offset: u64,
    length: Option<u64>,
) -> Result<Response<ResponseBody>, ApiError> {
    let open_path = path.clone();
    let (file, size) = blocking(state, move |root| files::open_read(root, &open_path)).await?;
    let available = size.saturating_sub(offset);
    let length = length.map_or(available, |length| length.min(available));
    let mut file = tokio::fs::File::from_std(file);
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset))
            .await
            .map_err(|e| ApiError::from(FileError::from_io(&path, e)))?;
    }
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut reader = file.take(length);
        loop {
            let mut chunk = BytesMut::with_capacity(FILE_CHUNK);
            match reader.read_buf(&mut chunk).await {
                Ok(0) => return,
                Ok(_) => {
                    if tx.send(Ok(chunk.freeze())).await.is_err() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(path, error = %err, "file read failed mid-way");
                    // The body errors out; the client sees a broken
                    // transfer rather than a short file.
                    if tx.send(Err(err)).await.is_err() {
                        tracing::debug!("client gone before the read error could be sent");
                    }
                    return;
                }
            }
        }
    });
    let mut response = stream("application/octet-stream", ChannelBody::new(rx));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert("x-file-size", HeaderValue::from(size));
    Ok(response)
}

/// `PUT`: streams the body into a temp file and renames it into place.
async fn write_file(
    state: &State,
    path: String,
    parents: bool,
    mut body: Incoming,
) -> Result<Response<ResponseBody>, ApiError> {
    let suffix = random_hex(8).map_err(|e| ApiError::internal(e.to_string()))?;
    let begin_path = path.clone();
    let (pending, file) = blocking(state, move |root| {
        PendingWrite::begin(root, &begin_path, parents, &suffix)
    })
    .await?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    let written: Result<(), ApiError> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                ApiError::bad_request("bad_body", format!("reading the request body: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data)
                    .await
                    .map_err(|e| ApiError::from(FileError::from_io(&path, e)))?;
                size += data.len() as u64;
            }
        }
        file.flush()
            .await
            .map_err(|e| ApiError::from(FileError::from_io(&path, e)))?;
        file.sync_all()
            .await
            .map_err(|e| ApiError::from(FileError::from_io(&path, e)))?;
        Ok(())
    }
    .await;
    drop(file);
    match written {
        Ok(()) => {
            tokio::task::spawn_blocking(move || pending.commit())
                .await
                .map_err(|e| ApiError::internal(format!("file task failed: {e}")))??;
            json(StatusCode::OK, &FileWritten { path, size })
        }
        Err(err) => {
            if let Err(join) = tokio::task::spawn_blocking(move || pending.abort()).await {
                tracing::warn!(error = %join, "cleanup task failed");
            }
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_flags_accept_common_spellings() {
        let query = Query::parse(Some("a=true&b=0&c=YES&d=no&e&f=maybe")).expect("parse");
        assert!(query.flag("a").expect("a"));
        assert!(!query.flag("b").expect("b"));
        assert!(query.flag("c").expect("c"));
        assert!(!query.flag("d").expect("d"));
        assert!(query.flag("e").expect("bare key"));
        assert!(!query.flag("absent").expect("absent"));
        assert!(query.flag("f").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("a%20b/%2E%2E").ok().as_deref(),
            Some("a b/..")
        );
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err(), "not UTF-8");
        assert_eq!(decode_query("a+b%2B").ok().as_deref(), Some("a b+"));
    }
}
