//! The routes under `/v1/gateway/`: check the virtual key, the model and
//! the budget, forward with the real key, stream the answer back as it
//! comes and count its usage on the way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::BytesMut;
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::config::Price;
use super::errors::Refusal;
use super::keys::{Caller, KeyStore};
use super::usage::{Dialect, UsageScanner};
use super::{Gateway, Wire};

/// The largest request body forwarded (bytes): generous for long agent
/// transcripts with images, and a bound on what one request holds in memory.
pub const MAX_BODY_BYTES: usize = 32 << 20;

/// The provider operations the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Messages,
    CountTokens,
    Responses,
    ChatCompletions,
}

impl Api {
    fn wire(self) -> Wire {
        match self {
            Api::Messages | Api::CountTokens => Wire::Anthropic,
            Api::Responses | Api::ChatCompletions => Wire::OpenAi,
        }
    }

    /// Where usage sits in its answers; None: the answer uses no tokens.
    fn dialect(self) -> Option<Dialect> {
        match self {
            Api::Messages => Some(Dialect::Anthropic),
            Api::CountTokens => None,
            Api::Responses => Some(Dialect::Responses),
            Api::ChatCompletions => Some(Dialect::Chat),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Api::Messages => "/v1/messages",
            Api::CountTokens => "/v1/messages/count_tokens",
            Api::Responses => "/v1/responses",
            Api::ChatCompletions => "/v1/chat/completions",
        }
    }
}

/// The forwarded operations, the model lists, and a provider-style 404 for
/// anything else under a wire's prefix (no fallback: the host's router has
/// its own).
pub(super) fn router(gateway: Arc<Gateway>) -> Router {
    let mut router = Router::new();
    for api in [
        Api::Messages,
        Api::CountTokens,
        Api::Responses,
        Api::ChatCompletions,
    ] {
        router = router.route(
            &format!("/v1/gateway/{}{}", api.wire(), api.path()),
            post(move |s: State<Arc<Gateway>>, r: Request| forward(s, r, api)),
        );
    }
    for wire in [Wire::Anthropic, Wire::OpenAi] {
        router = router
            .route(
                &format!("/v1/gateway/{wire}/v1/models"),
                get(move |s: State<Arc<Gateway>>, h: HeaderMap| models(s, h, wire)),
            )
            .route(
                &format!("/v1/gateway/{wire}/{{*rest}}"),
                any(move |r: Request| not_found(r, wire)),
            );
    }
    router.with_state(gateway)
}

async fn not_found(request: Request, wire: Wire) -> Response {
    Refusal::NotFound(format!("{} {}", request.method(), request.uri().path())).response(wire)
}

/// The fields of a request body the gateway reads; the rest is forwarded
/// as sent.
#[derive(Deserialize)]
struct Head {
    model: Option<String>,
    #[serde(default)]
    stream: bool,
}

async fn forward(State(gateway): State<Arc<Gateway>>, request: Request, api: Api) -> Response {
    let wire = api.wire();
    match admit(&gateway, request, api).await {
        Ok(admitted) => send(&gateway, admitted, api)
            .await
            .unwrap_or_else(|refusal| refusal.response(wire)),
        Err((session, refusal)) => {
            tracing::info!(
                session = session.as_deref().unwrap_or("-"),
                ?api,
                refusal = refusal.reason(),
                "gateway request refused"
            );
            refusal.response(wire)
        }
    }
}

/// A request that passed every check, ready to forward.
struct Admitted {
    caller: Caller,
    model: String,
    price: Option<Price>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

type Rejected = (Option<String>, Refusal);

/// The checks, in order: key, upstream, body, model, budget.
async fn admit(gateway: &Gateway, request: Request, api: Api) -> Result<Admitted, Rejected> {
    let (parts, body) = request.into_parts();
    let caller = authenticate(gateway, &parts.headers).ok_or((None, Refusal::Unauthenticated))?;
    let session = Some(caller.session_id.clone());
    if !gateway.serves(api.wire()) {
        return Err((session, Refusal::NotConfigured(api.wire())));
    }
    let body = read_capped(&parts.headers, body)
        .await
        .map_err(|r| (session.clone(), r))?;
    let head: Head = serde_json::from_slice(&body)
        .map_err(|e| (session.clone(), Refusal::BadJson(e.to_string())))?;
    let model = head.model.ok_or((session.clone(), Refusal::MissingModel))?;
    if !caller.limits.allows(&model) {
        let allowed = caller.limits.models.clone();
        return Err((session, Refusal::ModelNotAllowed { model, allowed }));
    }
    let price = gateway.config.price(&model);
    if api.dialect().is_some() {
        if caller.limits.budget_usd.is_some() && price.is_none() {
            return Err((session, Refusal::Unpriced { model }));
        }
        if let Some(why) = caller.limits.exhausted(&caller.used) {
            return Err((session, Refusal::OverBudget(why)));
        }
    }
    let body = if api == Api::ChatCompletions && head.stream {
        include_usage(&body).map_err(|e| (session.clone(), Refusal::BadJson(e.to_string())))?
    } else {
        body
    };
    Ok(Admitted {
        caller,
        model,
        price,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    })
}

/// The virtual key from `x-api-key` (Anthropic clients) or
/// `Authorization: Bearer` (OpenAI clients), checked against the store.
fn authenticate(gateway: &Gateway, headers: &HeaderMap) -> Option<Caller> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })?;
    gateway
        .keys
        .authenticate(key.trim(), crate::clock::unix_ms())
}

/// The whole body, or [`Refusal::TooLarge`] past [`MAX_BODY_BYTES`] (a body
/// of exactly the cap passes).
async fn read_capped(headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(Refusal::TooLarge(MAX_BODY_BYTES));
    }
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Refusal::Unreadable(e.to_string()))?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Refusal::TooLarge(MAX_BODY_BYTES));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

/// A streaming Chat Completions body with `stream_options.include_usage`
/// set, so the last chunk carries the usage the budget needs.
fn include_usage(body: &[u8]) -> Result<Bytes, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(body)?;
    if let Some(object) = value.as_object_mut() {
        let options = object
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Default::default()));
        if !options.is_object() {
            *options = Value::Object(Default::default());
        }
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_owned(), Value::Bool(true));
        }
    }
    serde_json::to_vec(&value).map(Bytes::from)
}

/// Hop-by-hop headers, never passed on either way.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers never forwarded besides hop-by-hop ones: the client's
/// auth (the real key replaces it), the host, the length (recomputed), and
/// `accept-encoding` so the answer comes uncompressed and its usage can be
/// read.
const DROPPED_REQUEST: &[&str] = &[
    "authorization",
    "x-api-key",
    "proxy-authorization",
    "cookie",
    "host",
    "content-length",
    "accept-encoding",
];

/// Response headers never passed back besides hop-by-hop ones: the length
/// (the body is re-framed as it streams).
const DROPPED_RESPONSE: &[&str] = &["content-length"];

/// `headers` without hop-by-hop ones, `dropped`, and what their
/// `Connection` names.
fn filtered(headers: &HeaderMap, dropped: &[&str]) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if !HOP_BY_HOP.contains(&n) && !dropped.contains(&n) && !named.iter().any(|c| c == n) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

fn auth_header(wire: Wire) -> HeaderName {
    match wire {
        Wire::Anthropic => HeaderName::from_static("x-api-key"),
        Wire::OpenAi => header::AUTHORIZATION,
    }
}

/// Forwards an admitted request and streams the answer back.
async fn send(gateway: &Gateway, admitted: Admitted, api: Api) -> Result<Response, Refusal> {
    let wire = api.wire();
    let upstream = gateway.upstream(wire).ok_or(Refusal::NotConfigured(wire))?;
    let mut url = format!("{}{}", upstream.base_url, api.path());
    if let Some(query) = &admitted.query {
        url.push('?');
        url.push_str(query);
    }
    let mut headers = filtered(&admitted.headers, DROPPED_REQUEST);
    headers.insert(auth_header(wire), upstream.auth.clone());
    let session = admitted.caller.session_id.as_str();
    let answer = gateway
        .http
        .request(Method::POST, url)
        .headers(headers)
        .body(admitted.body)
        .send()
        .await
        .map_err(|err| {
            tracing::warn!(session, ?api, error = %err.without_url(), "gateway upstream unreachable");
            Refusal::Unreachable
        })?;
    let status = answer.status();
    tracing::debug!(session, ?api, model = %admitted.model, %status, "gateway request forwarded");
    let headers = filtered(answer.headers(), DROPPED_RESPONSE);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = answer.bytes_stream();
    let body = match api.dialect() {
        Some(dialect) if status.is_success() => Body::from_stream(Metered::new(
            Box::pin(body),
            UsageScanner::new(dialect, &content_type),
            Recorder {
                keys: gateway.keys.clone(),
                session_id: admitted.caller.session_id,
                model: admitted.model,
                price: admitted.price,
            },
        )),
        _ => Body::from_stream(body),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Where one answer's usage is recorded, once.
struct Recorder {
    keys: Arc<KeyStore>,
    session_id: String,
    model: String,
    price: Option<Price>,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The most bytes of the upstream's body passed on as one chunk.
const COALESCE_BYTES: usize = 64 << 10;

/// The upstream's body, passed on as it arrives while its usage is read.
/// Usage is recorded at the end of the body, or when the client goes away
/// first (what was seen by then still counts).
///
/// Each SSE event comes from the upstream connection's task as a chunk of
/// its own, and each chunk handed on alone costs a write to the client.
/// When the next chunk is not there yet, the stream yields once to let
/// that task run, and passes on everything that arrived meanwhile: a burst
/// of events goes out in one write, while a paced stream (a model
/// generating) waits one scheduler turn, microseconds, per event.
struct Metered {
    inner: ByteStream,
    scanner: UsageScanner,
    record: Option<Recorder>,
    /// Bytes taken from the upstream, not yet passed on.
    held: BytesMut,
    /// Whether the stream already yielded once for `held`.
    yielded: bool,
    /// How the upstream's body ended (an error, or None at its end), to be
    /// passed on after `held`.
    end: Option<Option<reqwest::Error>>,
}

impl Metered {
    fn new(inner: ByteStream, scanner: UsageScanner, record: Recorder) -> Self {
        Self {
            inner,
            scanner,
            record: Some(record),
            held: BytesMut::new(),
            yielded: false,
            end: None,
        }
    }

    fn record(&mut self) {
        let Some(recorder) = self.record.take() else {
            return;
        };
        let usage = self.scanner.finish().unwrap_or_default();
        recorder.keys.record(
            &recorder.session_id,
            &recorder.model,
            &usage,
            recorder.price.as_ref(),
        );
    }
}

impl Stream for Metered {
    type Item = reqwest::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        while this.end.is_none() && this.held.len() < COALESCE_BYTES {
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.scanner.feed(&chunk);
                    this.held.extend_from_slice(&chunk);
                }
                Poll::Ready(Some(Err(err))) => {
                    this.record();
                    this.end = Some(Some(err));
                }
                Poll::Ready(None) => {
                    this.record();
                    this.end = Some(None);
                }
                Poll::Pending if this.held.is_empty() => return Poll::Pending,
                Poll::Pending if !this.yielded => {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => break,
            }
        }
        this.yielded = false;
        if !this.held.is_empty() {
            return Poll::Ready(Some(Ok(this.held.split().freeze())));
        }
        match this.end.as_mut().and_then(Option::take) {
            Some(err) => Poll::Ready(Some(Err(err))),
            None => Poll::Ready(None),
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.record();
    }
}

/// The upstream's model list, cut to the key's allowlist.
async fn models(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, wire: Wire) -> Response {
    let Some(caller) = authenticate(&gateway, &headers) else {
        return Refusal::Unauthenticated.response(wire);
    };
    let Some(upstream) = gateway.upstream(wire) else {
        return Refusal::NotConfigured(wire).response(wire);
    };
    let mut forwarded = filtered(&headers, DROPPED_REQUEST);
    forwarded.insert(auth_header(wire), upstream.auth.clone());
    let answer = gateway
        .http
        .get(format!("{}/v1/models", upstream.base_url))
        .headers(forwarded)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(session = %caller.session_id, error = %err.without_url(), "gateway upstream unreachable");
            return Refusal::Unreachable.response(wire);
        }
    };
    let status = answer.status();
    let Ok(mut list) = answer.json::<Value>().await else {
        return Refusal::Unreachable.response(wire);
    };
    if let Some(data) = list.get_mut("data").and_then(Value::as_array_mut) {
        data.retain(|model| {
            model
                .get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| caller.limits.allows(id))
        });
    }
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        list.to_string(),
    )
        .into_response()
}
