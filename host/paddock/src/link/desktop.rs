//! The desktop's side of a link: it dials the host's control connection
//! (so it works behind NAT, with no inbound port), verifies the signature
//! of every request the host sends, and serves them with the same
//! local-process provider the host uses: make and destroy sandboxes, and
//! pass requests on to their runnerd (adding runnerd's token, which never
//! leaves the desktop). It reconnects with backoff; sandboxes and their
//! execs keep running while the connection is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::signing::{Signature, Verifier};
use super::wire::{self, Kind, RequestHead, ResponseHead};
use crate::clock::unix_ms;
use crate::provider::desktop::{DesktopSandbox, DesktopSandboxRequest};
use crate::provider::{LocalProcessProvider, Sandbox, SandboxProvider, SandboxSpec};

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Serves the host's requests on this desktop.
pub struct DesktopSide {
    provider: LocalProcessProvider,
    verifier: Verifier,
    sandboxes: Mutex<HashMap<String, Sandbox>>,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Reply {
    fn json(status: u16, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: Vec::new(),
        }
    }

    fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": { "code": "link_refused", "message": message.to_string() } }),
        )
    }
}

impl DesktopSide {
    /// `secret` is the link secret of this registration: requests signed
    /// with anything else are refused.
    pub fn new(provider: LocalProcessProvider, secret: &str) -> Self {
        Self {
            provider,
            verifier: Verifier::new(secret.as_bytes().to_vec()),
            sandboxes: Mutex::new(HashMap::new()),
            http: reqwest::Client::new(),
        }
    }

    fn sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sandbox>> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Destroys every sandbox this link made (on the way out).
    pub async fn destroy_all(&self) {
        let all: Vec<Sandbox> = self.sandboxes().drain().map(|(_, s)| s).collect();
        for sandbox in all {
            if let Err(e) = self.provider.destroy(&sandbox).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "cannot destroy a desktop sandbox");
            }
        }
    }

    /// Keeps the control connection up until the process ends.
    pub async fn connect_forever(self: Arc<Self>, host: String, link_id: String, secret: String) {
        let url = format!(
            "{}/v1/links/{link_id}/connect",
            host.replacen("http://", "ws://", 1)
                .replacen("https://", "wss://", 1)
        );
        let mut failures = 0u32;
        loop {
            match self.connect_once(&url, &secret).await {
                Ok(()) => {
                    failures = 0;
                    tracing::warn!(link = %link_id, "control connection closed; reconnecting");
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(link = %link_id, error = %e, "control connection failed; retrying");
                }
            }
            let wait = Duration::from_millis(200u64.saturating_mul(1 << failures.min(6)));
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
        }
    }

    async fn connect_once(self: &Arc<Self>, url: &str, secret: &str) -> Result<(), String> {
        let mut request = url.into_client_request().map_err(|e| e.to_string())?;
        request.headers_mut().insert(
            "x-link-secret",
            HeaderValue::from_str(secret).map_err(|e| e.to_string())?,
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!("control connection up");
        let (mut sink, mut incoming) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(Message::Binary(message.into())).await.is_err() {
                    break;
                }
            }
        });
        let mut running: HashMap<u32, AbortHandle> = HashMap::new();
        while let Some(message) = incoming.next().await {
            let bytes = match message {
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    writer.abort();
                    return Err(e.to_string());
                }
            };
            let (kind, stream, payload) = match wire::decode(&bytes) {
                Ok(decoded) => decoded,
                Err(e) => {
                    tracing::warn!(error = %e, "malformed message from the host; ignored");
                    continue;
                }
            };
            running.retain(|_, task| !task.is_finished());
            match kind {
                Kind::Request => {
                    let (head, body) = match wire::decode_request(payload) {
                        Ok((head, body)) => (head, body.to_vec()),
                        Err(e) => {
                            tracing::warn!(error = %e, "malformed request from the host; ignored");
                            continue;
                        }
                    };
                    let side = self.clone();
                    let out = out.clone();
                    let task = tokio::spawn(async move {
                        side.handle(stream, head, body, out).await;
                    });
                    running.insert(stream, task.abort_handle());
                }
                Kind::Cancel => {
                    if let Some(task) = running.remove(&stream) {
                        task.abort();
                    }
                }
                other => tracing::warn!(?other, "unexpected message kind from the host; ignored"),
            }
        }
        // The connection is gone: the host's readers saw it end; nobody is
        // waiting for these answers.
        for task in running.into_values() {
            task.abort();
        }
        writer.abort();
        Ok(())
    }

    /// Serves the control API over plain HTTP on `listener` (`paddock link
    /// --listen`): the host calls the link directly, with the same signed
    /// requests it would send over the connection.
    pub async fn listen(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let side = self.clone();
            async move { side.http(request).await }
        });
        axum::serve(listener, app).await
    }

    async fn http(self: Arc<Self>, request: axum::extract::Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let (parts, body) = request.into_parts();
        let body = match axum::body::to_bytes(body, wire::MAX_REQUEST_BODY).await {
            Ok(body) => body.to_vec(),
            Err(e) => {
                return (axum::http::StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response();
            }
        };
        let head = RequestHead {
            method: parts.method.as_str().to_owned(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
        };
        // The same handler as over the connection; its messages become the
        // HTTP answer.
        let (out, mut messages) = mpsc::unbounded_channel();
        tokio::spawn(async move { self.handle(0, head, body, out).await });
        let Some(first) = messages.recv().await else {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let head = match wire::decode(&first) {
            Ok((Kind::Head, _, payload)) => serde_json::from_slice::<ResponseHead>(payload).ok(),
            _ => None,
        };
        let Some(head) = head else {
            return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let chunks = futures_util::stream::unfold(messages, |mut messages| async move {
            let message = bytes::Bytes::from(messages.recv().await?);
            match wire::decode(&message) {
                Ok((Kind::Data, _, _)) => Some((Ok(message.slice(wire::HEADER_LEN..)), messages)),
                Ok((Kind::Error, _, payload)) => Some((
                    Err(std::io::Error::other(
                        String::from_utf8_lossy(payload).into_owned(),
                    )),
                    messages,
                )),
                _ => None,
            }
        });
        let mut response = axum::response::Response::new(axum::body::Body::from_stream(chunks));
        *response.status_mut() = axum::http::StatusCode::from_u16(head.status)
            .unwrap_or(axum::http::StatusCode::BAD_GATEWAY);
        for (name, value) in head.headers {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::try_from(name),
                axum::http::HeaderValue::try_from(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }

    /// Verifies and serves one request, streaming its answer.
    async fn handle(
        &self,
        stream: u32,
        head: RequestHead,
        body: Vec<u8>,
        out: mpsc::UnboundedSender<Vec<u8>>,
    ) {
        let header = |name: &str| {
            head.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let verified = Signature::from_headers(header).and_then(|signature| {
            self.verifier.verify(
                &head.method,
                &head.path,
                &body,
                &signature,
                unix_ms() / 1000,
            )
        });
        if let Err(e) = verified {
            tracing::warn!(method = %head.method, path = %head.path, error = %e, "refused a request that failed its signature check");
            send_reply(&out, stream, Reply::error(401, e));
            return;
        }
        let (path, query) = head
            .path
            .split_once('?')
            .map_or((head.path.as_str(), ""), |(p, q)| (p, q));
        let segments: Vec<&str> = path.trim_start_matches('/').splitn(4, '/').collect();
        let reply = match (head.method.as_str(), segments.as_slice()) {
            ("POST", ["sandboxes"]) => self.provision(&body).await,
            ("GET", ["sandboxes"]) => {
                let ids: Vec<String> = self.sandboxes().keys().cloned().collect();
                Reply::json(200, &ids)
            }
            ("DELETE", ["sandboxes", id]) => self.destroy(id).await,
            (_, ["sandboxes", id, "runnerd", rest]) => {
                return self.proxy(stream, &head, id, rest, query, body, &out).await;
            }
            _ => Reply::error(
                404,
                format!("no such control route: {} {path}", head.method),
            ),
        };
        send_reply(&out, stream, reply);
    }

    async fn provision(&self, body: &[u8]) -> Reply {
        let request: DesktopSandboxRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Reply::error(400, e),
        };
        // The user's own CLIs are what a desktop session is for: execs find
        // them on this daemon's PATH unless the session set its own.
        let mut env = request.env;
        if let Some(path) = std::env::var_os("PATH").and_then(|p| p.into_string().ok()) {
            env.entry("PATH".to_owned()).or_insert(path);
        }
        let spec = SandboxSpec {
            session_id: request.session_id,
            owner: request.owner,
            expires_at_ms: request.expires_at_ms,
            env,
            network: request.network,
            labels: request.labels,
            resources: request.resources,
            image: None,
            runtime_class: None,
            runnerd_stall_ms: request.runnerd_stall_ms,
        };
        match self.provider.provision(&spec).await {
            Ok(sandbox) => {
                let id = sandbox.id.clone();
                tracing::info!(sandbox = %id, session = %sandbox.session_id, "sandbox made for the host");
                self.sandboxes().insert(id.clone(), sandbox);
                Reply::json(201, &DesktopSandbox { id })
            }
            Err(e) => Reply::error(503, e),
        }
    }

    async fn destroy(&self, id: &str) -> Reply {
        let Some(sandbox) = self.sandboxes().remove(id) else {
            return Reply::empty(204);
        };
        match self.provider.destroy(&sandbox).await {
            Ok(()) => Reply::empty(204),
            Err(e) => {
                self.sandboxes().insert(id.to_owned(), sandbox);
                Reply::error(503, e)
            }
        }
    }

    /// Passes a request on to a sandbox's runnerd and streams its answer.
    #[allow(clippy::too_many_arguments)]
    async fn proxy(
        &self,
        stream: u32,
        head: &RequestHead,
        id: &str,
        rest: &str,
        query: &str,
        body: Vec<u8>,
        out: &mpsc::UnboundedSender<Vec<u8>>,
    ) {
        let Some(sandbox) = self.sandboxes().get(id).cloned() else {
            send_reply(
                out,
                stream,
                Reply::error(404, format!("no sandbox {id} here")),
            );
            return;
        };
        let url = if query.is_empty() {
            format!("{}/{rest}", sandbox.endpoint)
        } else {
            format!("{}/{rest}?{query}", sandbox.endpoint)
        };
        let method = match reqwest::Method::from_bytes(head.method.as_bytes()) {
            Ok(m) => m,
            Err(e) => return send_reply(out, stream, Reply::error(400, e)),
        };
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(&sandbox.token)
            .body(body);
        for (name, value) in &head.headers {
            if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("accept") {
                request = request.header(name, value);
            }
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return send_reply(out, stream, Reply::error(502, format!("runnerd: {e}")));
            }
        };
        let mut headers = Vec::new();
        if let Some(value) = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            headers.push(("content-type".to_owned(), value.to_owned()));
        }
        let head = ResponseHead {
            status: response.status().as_u16(),
            headers,
        };
        if out
            .send(wire::encode(
                Kind::Head,
                stream,
                &serde_json::to_vec(&head).unwrap_or_default(),
            ))
            .is_err()
        {
            return;
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let message = match chunk {
                Ok(bytes) => wire::encode(Kind::Data, stream, &bytes),
                Err(e) => {
                    let _ = out.send(wire::encode(Kind::Error, stream, e.to_string().as_bytes()));
                    return;
                }
            };
            if out.send(message).is_err() {
                return;
            }
        }
        let _ = out.send(wire::encode(Kind::End, stream, b""));
    }
}

fn send_reply(out: &mpsc::UnboundedSender<Vec<u8>>, stream: u32, reply: Reply) {
    let head = ResponseHead {
        status: reply.status,
        headers: vec![("content-type".to_owned(), reply.content_type.to_owned())],
    };
    // A closed channel means the connection is gone; the host's side has
    // already failed this request.
    let _ = out.send(wire::encode(
        Kind::Head,
        stream,
        &serde_json::to_vec(&head).unwrap_or_default(),
    ));
    if !reply.body.is_empty() {
        let _ = out.send(wire::encode(Kind::Data, stream, &reply.body));
    }
    let _ = out.send(wire::encode(Kind::End, stream, b""));
}
