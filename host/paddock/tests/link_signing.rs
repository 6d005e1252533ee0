//! The link daemon refuses what a real host would never send: the real
//! `paddock link` process against a stand-in host written here, because
//! only a host that knows the link secret can forge the bad requests under
//! test (a replayed nonce, a tampered body, a stale timestamp, a wrong or
//! missing signature) and the real host only ever sends good ones.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use futures_util::StreamExt;
use paddock::link::signing::{self, Signature};
use paddock::link::wire::{self, Kind, RequestHead, ResponseHead};
use serde_json::json;
use tokio::sync::mpsc;

const SECRET: &str = "a-link-secret-only-this-test-knows";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A host that registers the link with [`SECRET`] and hands the test the
/// link's control connection.
async fn stand_in_host() -> (String, mpsc::Receiver<WebSocket>) {
    let (tx, rx) = mpsc::channel(4);
    let app = Router::new()
        .route(
            "/v1/links",
            post(|| async {
                (
                    StatusCode::CREATED,
                    axum::Json(json!({
                        "link_id": "lnk-test", "link_secret": SECRET,
                        "heartbeat_interval_secs": 1, "ttl_secs": 3
                    })),
                )
            }),
        )
        .route(
            "/v1/links/{id}/heartbeat",
            post(|| async { axum::Json(json!({})) }),
        )
        .route(
            "/v1/links/{id}",
            delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/v1/links/{id}/connect",
            get(move |upgrade: WebSocketUpgrade| {
                let tx = tx.clone();
                async move {
                    upgrade.on_upgrade(move |socket| async move {
                        let _ = tx.send(socket).await;
                    })
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

fn request(
    secret: &str,
    method: &str,
    path: &str,
    signed_body: &[u8],
    at: u64,
) -> (RequestHead, Signature) {
    let signature = signing::sign(secret.as_bytes(), method, path, signed_body, at);
    let head = RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        headers: signature
            .headers()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    (head, signature)
}

/// Sends one request on `stream` and returns the status the link answers.
async fn status_of(socket: &mut WebSocket, stream: u32, head: &RequestHead, body: &[u8]) -> u16 {
    socket
        .send(Message::Binary(
            wire::encode_request(stream, head, body).into(),
        ))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the link answers")
            .expect("the connection stays up")
            .unwrap();
        let Message::Binary(bytes) = message else {
            continue;
        };
        let (kind, id, payload) = wire::decode(&bytes).unwrap();
        if id == stream && kind == Kind::Head {
            let head: ResponseHead = serde_json::from_slice(payload).unwrap();
            return head.status;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_refuses_replayed_tampered_stale_and_foreign_requests() {
    let (url, mut sockets) = stand_in_host().await;
    let data = tempfile::tempdir().unwrap();
    let mut link = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["link", "--host", &url, "--token", "any-token"])
        .arg("--data-dir")
        .arg(data.path())
        .env("PADDOCK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(link.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut socket = tokio::time::timeout(Duration::from_secs(30), sockets.recv())
        .await
        .expect("the link dials the control connection")
        .unwrap();

    // A good request passes; the same bytes again are a replay.
    let (good, _) = request(SECRET, "GET", "/sandboxes", b"", now());
    assert_eq!(status_of(&mut socket, 1, &good, b"").await, 200);
    assert_eq!(status_of(&mut socket, 2, &good, b"").await, 401, "replay");

    // A body other than the one signed.
    let signed = br#"{"session_id":"s","owner":"alice"}"#;
    let (tampered, _) = request(SECRET, "POST", "/sandboxes", signed, now());
    let other = br#"{"session_id":"s","owner":"mallory"}"#;
    assert_eq!(
        status_of(&mut socket, 3, &tampered, other).await,
        401,
        "tampered"
    );

    // Outside the ±60 s window, either way.
    let (stale, _) = request(SECRET, "GET", "/sandboxes", b"", now() - 120);
    assert_eq!(status_of(&mut socket, 4, &stale, b"").await, 401, "stale");
    let (future, _) = request(SECRET, "GET", "/sandboxes", b"", now() + 120);
    assert_eq!(status_of(&mut socket, 5, &future, b"").await, 401, "future");

    // Signed with another secret, or not at all.
    let (foreign, _) = request("another-links-secret", "GET", "/sandboxes", b"", now());
    assert_eq!(
        status_of(&mut socket, 6, &foreign, b"").await,
        401,
        "wrong secret"
    );
    let unsigned = RequestHead {
        method: "GET".into(),
        path: "/sandboxes".into(),
        headers: Vec::new(),
    };
    assert_eq!(
        status_of(&mut socket, 7, &unsigned, b"").await,
        401,
        "unsigned"
    );

    // And it still serves good requests afterwards.
    let (again, _) = request(SECRET, "GET", "/sandboxes", b"", now());
    assert_eq!(status_of(&mut socket, 8, &again, b"").await, 200);

    link.kill().ok();
    link.wait().ok();
}
