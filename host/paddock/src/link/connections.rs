//! The host's side of links' control connections: which links are
//! connected, and signed requests sent over their WebSocket with streamed
//! responses.
//!
//! A request in flight when its connection drops fails cleanly (its body
//! ends with an error); nothing is retried here, so the caller (the exec
//! pump re-attaching with the last sequence number it saw) decides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::registry::Link;
use super::signing;
use super::wire::{self, Kind, RequestHead, ResponseHead};
use crate::clock::unix_ms;

/// Chunks of one response buffered before the connection's reader waits.
const STREAM_BUFFER: usize = 64;

/// A response from a link: status, headers, and a body that arrives in
/// chunks (an `Err` chunk: the response broke off).
pub struct LinkResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyStream,
}

/// The body of a [`LinkResponse`]. Dropping it before its end tells the
/// link to stop sending.
pub struct BodyStream {
    rx: BodyChunks,
    cancel: Option<(Arc<Conn>, u32)>,
}

impl futures_util::Stream for BodyStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(None) => {
                self.cancel = None;
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Some(item)) => {
                std::task::Poll::Ready(Some(item.map_err(std::io::Error::other)))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl Drop for BodyStream {
    fn drop(&mut self) {
        if let Some((conn, stream)) = self.cancel.take()
            && conn.streams().remove(&stream).is_some()
        {
            conn.send(wire::encode(Kind::Cancel, stream, b""));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("link {0} is not connected")]
    NotConnected(String),
    #[error("the connection to link {0} dropped before it answered")]
    Dropped(String),
    #[error("link {link} answered with a broken response: {message}")]
    Broken { link: String, message: String },
}

/// Chunks of a response body; an `Err` ends it broken.
type BodyChunks = mpsc::Receiver<Result<Bytes, String>>;

enum Pending {
    /// Waiting for the head.
    Head(oneshot::Sender<Result<(ResponseHead, BodyChunks), String>>),
    /// Streaming the body.
    Body(mpsc::Sender<Result<Bytes, String>>),
}

struct Conn {
    generation: u64,
    tx: mpsc::UnboundedSender<Vec<u8>>,
    next: AtomicU32,
    streams: Mutex<HashMap<u32, Pending>>,
}

impl Conn {
    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Pending>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, message: Vec<u8>) -> bool {
        self.tx.send(message).is_ok()
    }
}

/// The connected links of this host.
#[derive(Default)]
pub struct Connections {
    links: Mutex<HashMap<String, Arc<Conn>>>,
    generations: AtomicU64,
}

impl Connections {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether requests can reach `link` now: over its connection, or
    /// directly at the address it registered.
    pub fn reachable(&self, link: &Link) -> bool {
        link.endpoint.is_some() || self.links().contains_key(&link.id)
    }

    /// Serves one link's connection until it closes. A newer connection of
    /// the same link replaces this one.
    pub async fn serve(&self, link_id: String, socket: WebSocket) {
        let (mut sink, mut incoming) = socket.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let conn = Arc::new(Conn {
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
            tx,
            next: AtomicU32::new(1),
            streams: Mutex::new(HashMap::new()),
        });
        if let Some(old) = self.links().insert(link_id.clone(), conn.clone()) {
            fail_all(&old, "the link connected again");
        }
        tracing::info!(link = %link_id, "link connected");
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(Message::Binary(message.into())).await.is_err() {
                    break;
                }
            }
        });
        while let Some(message) = incoming.next().await {
            let bytes = match message {
                Ok(Message::Binary(bytes)) => bytes,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            if let Err(e) = dispatch(&conn, bytes).await {
                tracing::warn!(link = %link_id, error = %e, "dropping the link's connection");
                break;
            }
        }
        writer.abort();
        {
            let mut links = self.links();
            if links
                .get(&link_id)
                .is_some_and(|c| c.generation == conn.generation)
            {
                links.remove(&link_id);
            }
        }
        fail_all(&conn, "the link disconnected");
        tracing::info!(link = %link_id, "link disconnected");
    }

    /// Sends a request signed with the link's secret; returns once the
    /// link answered with a status (the body streams after).
    pub async fn request(
        &self,
        link: &Link,
        method: &str,
        path: &str,
        headers: Vec<(String, String)>,
        body: Bytes,
    ) -> Result<LinkResponse, TransportError> {
        let signature = signing::sign(
            link.secret.as_bytes(),
            method,
            path,
            &body,
            unix_ms() / 1000,
        );
        let mut all_headers = headers;
        all_headers.extend(
            signature
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        let conn = self.links().get(&link.id).cloned();
        let conn = match (conn, &link.endpoint) {
            (Some(conn), _) => conn,
            (None, Some(endpoint)) => {
                return direct(&link.id, endpoint, method, path, all_headers, body).await;
            }
            (None, None) => return Err(TransportError::NotConnected(link.id.clone())),
        };
        let head = RequestHead {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: all_headers,
        };
        let stream = conn.next.fetch_add(1, Ordering::Relaxed);
        let (head_tx, head_rx) = oneshot::channel();
        conn.streams().insert(stream, Pending::Head(head_tx));
        if !conn.send(wire::encode_request(stream, &head, &body)) {
            conn.streams().remove(&stream);
            return Err(TransportError::Dropped(link.id.clone()));
        }
        match head_rx.await {
            Ok(Ok((head, rx))) => Ok(LinkResponse {
                status: head.status,
                headers: head.headers,
                body: BodyStream {
                    rx,
                    cancel: Some((conn, stream)),
                },
            }),
            Ok(Err(message)) => Err(TransportError::Broken {
                link: link.id.clone(),
                message,
            }),
            Err(_) => Err(TransportError::Dropped(link.id.clone())),
        }
    }
}

/// A request sent straight to a link's own address (`--listen`).
async fn direct(
    link_id: &str,
    endpoint: &str,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Bytes,
) -> Result<LinkResponse, TransportError> {
    // No redirects: a link's address must not send the host elsewhere.
    static CLIENT: std::sync::LazyLock<Result<reqwest::Client, String>> =
        std::sync::LazyLock::new(|| {
            reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        });
    let broken = |message: String| TransportError::Broken {
        link: link_id.to_owned(),
        message,
    };
    let client = CLIENT
        .as_ref()
        .map_err(|e| broken(format!("no HTTP client: {e}")))?;
    let method =
        reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| broken(e.to_string()))?;
    let mut request = client
        .request(method, format!("{}{path}", endpoint.trim_end_matches('/')))
        .body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|_| TransportError::NotConnected(link_id.to_owned()))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![("content-type".to_owned(), v.to_owned())])
        .unwrap_or_default();
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let item = chunk.map_err(|e| e.to_string());
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    });
    Ok(LinkResponse {
        status,
        headers,
        body: BodyStream { rx, cancel: None },
    })
}

/// Routes one message from the link to its stream.
async fn dispatch(conn: &Conn, message: Bytes) -> Result<(), wire::WireError> {
    let (kind, stream, payload) = wire::decode(&message)?;
    match kind {
        Kind::Head => {
            let head: ResponseHead = serde_json::from_slice(payload)
                .map_err(|e| wire::WireError(format!("response head: {e}")))?;
            let pending = conn.streams().remove(&stream);
            if let Some(Pending::Head(tx)) = pending {
                let (body_tx, body_rx) = mpsc::channel(STREAM_BUFFER);
                if tx.send(Ok((head, body_rx))).is_ok() {
                    conn.streams().insert(stream, Pending::Body(body_tx));
                }
            }
        }
        Kind::Data => {
            let sender = match conn.streams().get(&stream) {
                Some(Pending::Body(tx)) => Some(tx.clone()),
                _ => None,
            };
            // A reader that went away is not an error: its cancel is on
            // the way to the link.
            if let Some(tx) = sender
                // The body chunk is the message's own bytes: no copy.
                && tx.send(Ok(message.slice(wire::HEADER_LEN..))).await.is_err()
            {
                conn.streams().remove(&stream);
            }
        }
        Kind::End => {
            conn.streams().remove(&stream);
        }
        Kind::Error => {
            let message = String::from_utf8_lossy(payload).into_owned();
            match conn.streams().remove(&stream) {
                Some(Pending::Head(tx)) => {
                    let _ = tx.send(Err(message));
                }
                Some(Pending::Body(tx)) => break_off(tx, message),
                None => {}
            }
        }
        Kind::Request | Kind::Cancel => {
            return Err(wire::WireError(format!(
                "a link sent a {kind:?} message, which only the host sends"
            )));
        }
    }
    Ok(())
}

fn fail_all(conn: &Conn, why: &str) {
    for (_, pending) in conn.streams().drain() {
        match pending {
            Pending::Head(tx) => {
                let _ = tx.send(Err(why.to_owned()));
            }
            Pending::Body(tx) => break_off(tx, why.to_owned()),
        }
    }
}

/// Ends a body with an error, waiting for room if the reader is behind:
/// a body that just stopped would read as complete.
fn break_off(tx: mpsc::Sender<Result<Bytes, String>>, why: String) {
    tokio::spawn(async move {
        // The reader may be gone already; then nobody needs the error.
        let _ = tx.send(Err(why)).await;
    });
}
