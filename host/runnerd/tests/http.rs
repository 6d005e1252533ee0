//! Authentication, health and the activity clock, errors, and startup
//! through the real binary.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Runnerd, collect, exec};
use http::{Method, StatusCode};
use paddock_runnerd::client::Client;
use paddock_runnerd::proto::ErrorBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_needs_the_token() {
    let runnerd = Runnerd::start();
    let anonymous = Client::unauthenticated(runnerd.base.clone());
    let wrong = Client::new(runnerd.base.clone(), "wrong-token");
    let prefix = Client::new(runnerd.base.clone(), &common::TOKEN[..5]);
    for client in [&anonymous, &wrong, &prefix] {
        for (method, path) in [
            (Method::GET, "/v1/health"),
            (Method::GET, "/v1/execs"),
            (Method::POST, "/v1/execs"),
            (Method::GET, "/v1/env"),
            (Method::GET, "/v1/files/?op=list"),
            (Method::GET, "/v1/nowhere"),
        ] {
            let (status, body) = client
                .raw(method.clone(), path, Default::default())
                .await
                .expect("raw");
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
            let error: ErrorBody = serde_json::from_slice(&body).expect("JSON error");
            assert_eq!(error.error.code, "unauthorized");
        }
    }
    // A non-bearer scheme is refused too.
    let response = runnerd
        .client
        .raw(Method::GET, "/v1/health", Default::default())
        .await
        .expect("raw");
    assert_eq!(
        response.0,
        StatusCode::OK,
        "the token alone is enough for health"
    );
    let health = runnerd.client.health().await.expect("health");
    assert_eq!(health.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(health.running_execs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_clock_moves_on_exec_not_on_health() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    let before = client.health().await.expect("health").last_activity_ms;
    tokio::time::sleep(Duration::from_millis(30)).await;
    for _ in 0..3 {
        let health = client.health().await.expect("health");
        assert_eq!(
            health.last_activity_ms, before,
            "health reads are not activity"
        );
    }
    client.env().await.expect("env");
    client.list("").await.expect("list");
    assert_eq!(
        client.health().await.expect("health").last_activity_ms,
        before
    );

    let created = client
        .create_exec(&exec(&["sleep", "0.3"]))
        .await
        .expect("create");
    let during = client.health().await.expect("health");
    assert!(
        during.last_activity_ms > before,
        "an exec start is activity"
    );
    assert_eq!(during.running_execs, 1);
    collect(client, &created.id, 0).await;
    assert_eq!(client.health().await.expect("health").running_execs, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    let cases: [(Method, &str, &[u8], StatusCode, &str); 7] = [
        (
            Method::GET,
            "/v1/nowhere",
            b"",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::DELETE,
            "/v1/health",
            b"",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            Method::GET,
            "/v1/execs/ex-nope",
            b"",
            StatusCode::NOT_FOUND,
            "exec_not_found",
        ),
        (
            Method::POST,
            "/v1/execs",
            b"{not json",
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            Method::POST,
            "/v1/execs",
            br#"{"argv":["true"],"bogus":1}"#,
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            Method::GET,
            "/v1/files/x?op=explode",
            b"",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
        (
            Method::GET,
            "/v1/files/x?op=read&offset=-1",
            b"",
            StatusCode::BAD_REQUEST,
            "bad_query",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let (got, bytes) = client
            .raw(method.clone(), path, bytes::Bytes::from_static(body))
            .await
            .expect("raw");
        assert_eq!(got, status, "{method} {path}");
        let error: ErrorBody = serde_json::from_slice(&bytes).expect("JSON error body");
        assert_eq!(
            error.error.code, code,
            "{method} {path}: {}",
            error.error.message
        );
        assert!(!error.error.message.is_empty());
    }
}

#[test]
fn refuses_to_start_without_a_token() {
    let workspace = tempfile::tempdir().expect("workspace");
    let output = Command::new(env!("CARGO_BIN_EXE_runnerd"))
        .arg("--workspace")
        .arg(workspace.path())
        .env_remove("RUNNERD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("RUNNERD_TOKEN"), "{stderr}");
    assert!(output.stdout.is_empty(), "never announced an address");

    let token_file = workspace.path().join("token");
    std::fs::write(&token_file, "\n").expect("empty token file");
    let output = Command::new(env!("CARGO_BIN_EXE_runnerd"))
        .arg("--workspace")
        .arg(workspace.path())
        .arg("--token-file")
        .arg(&token_file)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_works() {
    let dir = tempfile::tempdir().expect("dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").expect("token file");
    let runnerd = Runnerd::start_with(&["--token-file", token_file.to_str().expect("utf8")], None);
    // The file wins over RUNNERD_TOKEN (which the harness also sets).
    let client = Client::new(runnerd.base.clone(), "file-token");
    client.health().await.expect("file token accepted");
    let err = runnerd
        .client
        .health()
        .await
        .expect_err("env token ignored");
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
}
