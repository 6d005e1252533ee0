//! The links API and dispatch, over HTTP against the real `paddock` binary:
//! registration, heartbeats authenticated by the link secret, the TTL
//! deciding "online", and dispatch's typed 409s.

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Host, eventually};
use serde_json::{Value, json};

fn host(dir: &tempfile::TempDir) -> Host {
    Host::start_with_env(
        &dir.path().join("data"),
        "",
        &[("PADDOCK_LINK_TTL_SECS", "2")],
    )
}

async fn register(host: &Host, token: &str, binaries: &[&str]) -> (String, String) {
    let agents: Vec<Value> = binaries
        .iter()
        .map(|b| json!({ "binary": b, "version": "1.0.0" }))
        .collect();
    let (status, body) = host
        .call(
            "POST",
            "/v1/links",
            token,
            Some(json!({ "capabilities": { "agents": agents, "bubblewrap": true } })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ttl_secs"], 2);
    (
        body["link_id"].as_str().unwrap().to_owned(),
        body["link_secret"].as_str().unwrap().to_owned(),
    )
}

async fn heartbeat(host: &Host, id: &str, secret: &str) -> u16 {
    host.request(
        reqwest::Method::POST,
        &format!("/v1/links/{id}/heartbeat"),
        "unused",
    )
    .header("X-Link-Secret", secret)
    .json(&json!({}))
    .send()
    .await
    .unwrap()
    .status()
    .as_u16()
}

async fn resolve(host: &Host, token: &str, body: Value) -> (u16, Value) {
    host.call("POST", "/v1/dispatch/resolve", token, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_is_online_while_it_heartbeats_and_dispatch_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);

    // No link yet: the desktop is offline; the cluster is always there.
    let (status, body) = resolve(&host, ALICE, json!({ "preference": "user-desktop" })).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "user_desktop_link_offline");
    let (status, body) = resolve(&host, ALICE, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["runs_in"], "cluster");
    assert_eq!(body["provider"], "local-process");

    let (id, secret) = register(&host, ALICE, &["claude"]).await;
    let (status, me) = host.call("GET", "/v1/links/me", ALICE, None).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["online"], true);
    assert_eq!(
        me["connected"], false,
        "it never opened its control connection"
    );
    assert!(me.get("link_secret").is_none() && !me.to_string().contains(&secret));
    let (status, _) = host.call("GET", "/v1/links/me", BOB, None).await;
    assert_eq!(status, 404, "a link is its owner's only");

    let (status, body) = resolve(
        &host,
        ALICE,
        json!({ "preference": "user-desktop", "agent": "claude-code" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["runs_in"], "user-desktop");
    assert_eq!(body["link_id"], id.as_str());

    // An agent whose CLI the desktop lacks.
    let (status, body) = resolve(
        &host,
        ALICE,
        json!({ "preference": "user-desktop", "agent": "codex" }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["error"]["code"],
        "user_desktop_link_capability_missing"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("codex"));

    // Heartbeats need the link's own secret, not an API token.
    assert_eq!(heartbeat(&host, &id, "not-the-secret").await, 401);
    assert_eq!(heartbeat(&host, &id, ALICE).await, 401);
    assert_eq!(heartbeat(&host, &id, &secret).await, 200);

    // Heartbeats stop: offline after the TTL.
    let offline = eventually(Duration::from_secs(6), async || {
        let (status, body) = resolve(&host, ALICE, json!({ "preference": "user-desktop" })).await;
        status == 409 && body["error"]["code"] == "user_desktop_link_offline"
    })
    .await;
    assert!(offline, "the link went offline after its TTL");
    let (_, me) = host.call("GET", "/v1/links/me", ALICE, None).await;
    assert_eq!(me["online"], false);

    // A heartbeat brings it back.
    assert_eq!(heartbeat(&host, &id, &secret).await, 200);
    let (status, _) = resolve(&host, ALICE, json!({ "preference": "user-desktop" })).await;
    assert_eq!(status, 200);

    // Deregistration needs the secret too.
    let status = host
        .request(reqwest::Method::DELETE, &format!("/v1/links/{id}"), ALICE)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 401);
    let status = host
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/links/{id}"),
            "unused",
        )
        .header("X-Link-Secret", &secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 204);
    let (status, _) = host.call("GET", "/v1/links/me", ALICE, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_session_cannot_move_and_registration_needs_an_api_token() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);
    let (status, body) = resolve(
        &host,
        ALICE,
        json!({ "preference": "user-desktop", "pins": { "provider": "local-process" } }),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "dispatch_pinned");
    let (status, body) = resolve(
        &host,
        ALICE,
        json!({ "agent": "codex", "pins": { "agent": "claude-code" } }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "dispatch_pinned");

    let (status, _) = host
        .call("POST", "/v1/links", "not-a-token", Some(json!({})))
        .await;
    assert_eq!(status, 401);
}
