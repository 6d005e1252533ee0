//! A loopback HTTP endpoint per desktop sandbox, so that the host's runnerd
//! client (the same one every provider's sandboxes use) reaches a runnerd on
//! a user's desktop: `http://127.0.0.1:PORT/<link>/<sandbox>/v1/...` is
//! forwarded over the link's control connection as a signed request, and the
//! response streams back. Each sandbox has its own bearer token here; the
//! runnerd token stays on the desktop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt as _;
use subtle::ConstantTimeEq;

use super::connections::{Connections, TransportError};
use super::registry::LinkRegistry;
use super::wire::MAX_REQUEST_BODY;

/// Request headers passed on to the desktop's runnerd.
const FORWARDED: &[HeaderName] = &[header::CONTENT_TYPE, header::ACCEPT];

pub struct Tunnel {
    base: String,
    /// `<link>/<sandbox>` → its bearer token here.
    tokens: Mutex<HashMap<String, String>>,
    connections: Arc<Connections>,
    links: Arc<dyn LinkRegistry>,
}

impl Tunnel {
    /// Listens on an ephemeral loopback port and serves until the process
    /// ends.
    pub async fn start(
        connections: Arc<Connections>,
        links: Arc<dyn LinkRegistry>,
    ) -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let tunnel = Arc::new(Self {
            base: format!("http://{addr}"),
            tokens: Mutex::new(HashMap::new()),
            connections,
            links,
        });
        let router = Router::new()
            .route("/{link}/{sandbox}/{*rest}", axum::routing::any(forward))
            .with_state(tunnel.clone());
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY on the link tunnel");
            }
        });
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "the link tunnel stopped; desktop sessions cannot be reached");
            }
        });
        Ok(tunnel)
    }

    /// The runnerd base URL of a desktop sandbox, and its token here.
    pub fn open(&self, link_id: &str, sandbox: &str) -> Result<(String, String), getrandom::Error> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes)?;
        let token = hex::encode(bytes);
        let key = format!("{link_id}/{sandbox}");
        self.tokens().insert(key.clone(), token.clone());
        Ok((format!("{}/{key}", self.base), token))
    }

    pub fn close(&self, link_id: &str, sandbox: &str) {
        self.tokens().remove(&format!("{link_id}/{sandbox}"));
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn forward(
    State(tunnel): State<Arc<Tunnel>>,
    Path((link_id, sandbox, rest)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let key = format!("{link_id}/{sandbox}");
    let expected = tunnel.tokens().get(&key).cloned();
    let authorized = match (expected, bearer(request.headers())) {
        (Some(expected), Some(given)) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        _ => false,
    };
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            "unknown desktop sandbox or wrong token",
        )
            .into_response();
    }
    let Some(link) = tunnel.links.get(&link_id).await else {
        return (
            StatusCode::BAD_GATEWAY,
            "the desktop's link is no longer registered",
        )
            .into_response();
    };
    let method = request.method().as_str().to_owned();
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let path = format!("/sandboxes/{sandbox}/runnerd/{rest}{query}");
    let headers: Vec<(String, String)> = FORWARDED
        .iter()
        .filter_map(|name| {
            let value = request.headers().get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    let body = match axum::body::to_bytes(request.into_body(), MAX_REQUEST_BODY).await {
        Ok(body) => body,
        Err(e) => return (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()).into_response(),
    };
    match tunnel
        .connections
        .request(&link, &method, &path, headers, body)
        .await
    {
        Ok(answer) => {
            let mut response = Response::new(Body::from_stream(answer.body));
            *response.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(name.as_str()),
                    HeaderValue::try_from(value.as_str()),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
            response
        }
        Err(e @ TransportError::NotConnected(_)) | Err(e @ TransportError::Dropped(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
