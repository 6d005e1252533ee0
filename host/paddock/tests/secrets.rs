//! Tier-2 secrets end to end, through the real `paddock serve` and real
//! local-process sandboxes: a per-session grant reaches the exec's
//! environment (never argv), nothing reaches a session without one, every
//! issue, denial and revocation is audited, destroy and TTL reaping revoke,
//! a broker failure leaves nothing issued, and the value is masked in the
//! session's output even when the process splits it across two writes.
//!
//! The brokers are the shipped `env` and the test-only `test-broker-faults`
//! (a real plugin that traps or hangs on request and reports revocations to
//! a loopback server of this test).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::delete;
use common::{ALICE, BOB, Host, eventually, exit, stdout};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRET: &str = "pw-Zq8uV3xR7kT2mN5bH9";

/// Revocations the faults broker reported, by handle.
#[derive(Clone, Default)]
struct Revoked(Arc<Mutex<Vec<String>>>);

impl Revoked {
    async fn serve(&self) -> String {
        let app = Router::new()
            .route(
                "/revoked/{handle}",
                delete(
                    |State(r): State<Revoked>, Path(handle): Path<String>| async move {
                        r.0.lock().unwrap().push(handle);
                    },
                ),
            )
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/revoked")
    }

    fn handles(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A host whose policy lets alice (only) have `env:DB_PASSWORD` and any
/// name of the faults broker, and lets alice read the audit log.
async fn host(dir: &std::path::Path, revoked: &Revoked, extra: &str) -> Host {
    let data = dir.join("data");
    let plugins = data.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(
        env!("PADDOCK_TEST_BROKER_FAULTS_WASM"),
        plugins.join("test-broker-faults.wasm"),
    )
    .unwrap();
    let record_url = revoked.serve().await;
    let config = format!(
        r#"
[auth]
operators = ["alice"]

[secrets.policy.alice]
allow = ["env:DB_PASSWORD", "test-broker-faults:*"]

[plugins.grants.env]
secrets = ["DB_PASSWORD"]

[plugins.grants.test-broker-faults]
allow_hosts = ["127.0.0.1"]

[plugins.config.test-broker-faults]
record_url = "{record_url}"

[plugins.limits]
call_timeout_ms = 1000
{extra}
"#
    );
    Host::start_with_env(&data, &config, &[("PADDOCK_SECRET_DB_PASSWORD", SECRET)])
}

async fn run(host: &Host, session: &str, script: &str) -> (String, Value) {
    let exec = host
        .exec(ALICE, session, json!({"argv": ["sh", "-c", script]}))
        .await;
    let events = host.collect(ALICE, session, &exec).await;
    (stdout(&events), exit(&events).clone())
}

async fn audit(host: &Host, session: &str) -> Vec<(String, String, String)> {
    let (status, body) = host
        .call(
            "GET",
            &format!("/v1/audit?session_id={session}"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["broker"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
                r["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn rec(broker: &str, name: &str, action: &str) -> (String, String, String) {
    (broker.into(), name.into(), action.into())
}

/// Every process's command line on this machine, joined.
fn all_argv() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            all.push_str(&String::from_utf8_lossy(&cmdline).replace('\0', " "));
            all.push('\n');
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_secret_is_in_the_exec_env_never_in_argv_and_is_revoked_on_delete() {
    let dir = common::visible_tempdir();
    let revoked = Revoked::default();
    let host = host(dir.path(), &revoked, "").await;

    let granted = host
        .create_session(
            ALICE,
            json!({"grants": [{"broker": "env", "name": "DB_PASSWORD"}]}),
        )
        .await;
    // The exec sees the value: its hash is the secret's.
    let (out, exit) = run(&host, &granted, r#"printf %s "$DB_PASSWORD" | sha256sum"#).await;
    assert_eq!(exit["code"], 0, "{exit}");
    let expected = hex::encode(Sha256::digest(SECRET));
    assert!(out.starts_with(&expected), "{out}");

    // While a process of the session runs, no process list shows it.
    let exec = host
        .exec(
            ALICE,
            &granted,
            json!({"argv": ["sh", "-c", "echo ready; sleep 30"]}),
        )
        .await;
    let mut events = host.events(ALICE, &granted, &exec, None).await;
    let first = events.next().await.unwrap();
    assert!(first.data.to_string().contains("ready"), "{first:?}");
    assert!(
        !all_argv().contains(SECRET),
        "the secret is in a process's argv"
    );
    drop(events);

    // Printed, it is masked; split across two writes, too.
    let (out, _) = run(
        &host,
        &granted,
        r#"echo "whole=$DB_PASSWORD"; printf %s "$DB_PASSWORD" | head -c 7; sleep 0.3; printf '%s\n' "$(printf %s "$DB_PASSWORD" | tail -c +8)""#,
    )
    .await;
    assert_eq!(out, "whole=[REDACTED]\n[REDACTED]\n");

    // Nor does the files API, whether the file is the process's or not.
    run(
        &host,
        &granted,
        r#"printf 'pw: %s\n' "$DB_PASSWORD" > notes.txt"#,
    )
    .await;
    let response = host
        .request(
            reqwest::Method::GET,
            &format!("/v1/sessions/{granted}/files/notes.txt"),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "pw: [REDACTED]\n");

    // The env store's answer does not echo it.
    let (status, body) = host
        .call(
            "PATCH",
            &format!("/v1/sessions/{granted}/env"),
            ALICE,
            Some(json!({"set": {"OTHER": "x"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["vars"]["DB_PASSWORD"], "[REDACTED]", "{body}");

    // A session without the grant has no such variable.
    let plain = host.create_session(ALICE, json!({})).await;
    let (out, exit) = run(&host, &plain, r#"echo "[${DB_PASSWORD-unset}]""#).await;
    assert_eq!(out, "[unset]\n", "{exit}");

    // Deleting the session revokes and audits.
    let (status, body) = host
        .call("DELETE", &format!("/v1/sessions/{granted}"), ALICE, None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        audit(&host, &granted).await,
        [
            rec("env", "DB_PASSWORD", "issued"),
            rec("env", "DB_PASSWORD", "revoked")
        ]
    );
    let (status, body) = host.call("GET", "/v1/audit", ALICE, None).await;
    assert_eq!(status, 200);
    assert!(
        !body.to_string().contains(SECRET),
        "the audit log holds the secret: {body}"
    );
    // Only operators read the audit log.
    let (status, body) = host.call("GET", "/v1/audit", BOB, None).await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_outside_the_policy_or_of_unknown_brokers_are_denied_and_audited() {
    let dir = common::visible_tempdir();
    let host = host(dir.path(), &Revoked::default(), "").await;
    for (token, grant, reason) in [
        (
            ALICE,
            json!({"broker": "env", "name": "OTHER"}),
            "may not request env:OTHER",
        ),
        (
            BOB,
            json!({"broker": "env", "name": "DB_PASSWORD"}),
            "owner \"bob\" may not",
        ),
        (
            ALICE,
            json!({"broker": "vault", "name": "x"}),
            "may not request vault:x",
        ),
    ] {
        let (status, body) = host
            .call(
                "POST",
                "/v1/sessions",
                token,
                Some(json!({"grants": [grant]})),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["code"], "grant_denied", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(reason),
            "{body}"
        );
    }
    let (_, body) = host.call("GET", "/v1/audit", ALICE, None).await;
    let denied: Vec<(&str, &str)> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "denied")
        .map(|r| (r["owner"].as_str().unwrap(), r["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        denied,
        [("alice", "OTHER"), ("bob", "DB_PASSWORD"), ("alice", "x")]
    );
    // Nothing was created.
    let (_, list) = host.call("GET", "/v1/sessions", ALICE, None).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_broker_fails_creation_and_revokes_what_was_issued() {
    let dir = common::visible_tempdir();
    let revoked = Revoked::default();
    let host = host(dir.path(), &revoked, "").await;
    for (fault, message) in [
        ("trap", "trap"),
        ("hang", "deadline"),
        ("offlist", "not on this plugin's allow_hosts"),
    ] {
        let before = revoked.handles().len();
        let (status, body) = host
            .call(
                "POST",
                "/v1/sessions",
                ALICE,
                Some(json!({"grants": [
                    {"broker": "env", "name": "DB_PASSWORD"},
                    {"broker": "test-broker-faults", "name": "fine"},
                    {"broker": "test-broker-faults", "name": fault,
                     "scope": "http://192.0.2.1/"},
                ]})),
            )
            .await;
        assert_eq!(status, 502, "{fault}: {body}");
        assert_eq!(body["error"]["code"], "broker_failed", "{body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains("test-broker-faults"), "{text}");
        assert!(text.to_lowercase().contains(message), "{fault}: {text}");
        // The credential issued before the failure was revoked at its broker.
        let handles = revoked.handles();
        assert_eq!(handles.len(), before + 1, "{handles:?}");
        assert!(handles[before].starts_with("handle-ses-"), "{handles:?}");
    }
    let (_, list) = host.call("GET", "/v1/sessions", ALICE, None).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "{list}");
    // Each attempt: issued, issued, issue_failed, revoked, revoked.
    let (_, body) = host.call("GET", "/v1/audit", ALICE, None).await;
    let mut by_session: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in body["records"].as_array().unwrap() {
        by_session
            .entry(r["session_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(r["action"].as_str().unwrap().to_owned());
    }
    assert_eq!(by_session.len(), 3, "{body}");
    for actions in by_session.values() {
        assert_eq!(
            actions,
            &["issued", "issued", "issue_failed", "revoked", "revoked"],
            "{body}"
        );
    }
    // The host and the broker still work.
    let session = host
        .create_session(
            ALICE,
            json!({"grants": [{"broker": "test-broker-faults", "name": "fine"}]}),
        )
        .await;
    let (out, _) = run(&host, &session, r#"echo "${FAULTS_TOKEN#token-}""#).await;
    assert_eq!(out.trim(), session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_reaping_revokes_at_the_broker() {
    let dir = common::visible_tempdir();
    let revoked = Revoked::default();
    let host = host(
        dir.path(),
        &revoked,
        "[sessions]\nsweep_interval_ms = 100\n",
    )
    .await;
    let session = host
        .create_session(
            ALICE,
            json!({"ttl_secs": 1, "grants": [{"broker": "test-broker-faults", "name": "fine"}]}),
        )
        .await;
    let (out, _) = run(&host, &session, r#"echo "$FAULTS_TOKEN""#).await;
    assert_eq!(out.trim(), "[REDACTED]", "the token is masked in output");
    let handle = format!("handle-{session}");
    assert!(
        eventually(Duration::from_secs(10), async || revoked
            .handles()
            .contains(&handle))
        .await,
        "the broker saw no revocation: {:?}",
        revoked.handles()
    );
    // The reaper writes the audit record once the broker has answered, so
    // it may land just after the broker saw the revocation.
    let expected = [
        rec("test-broker-faults", "fine", "issued"),
        rec("test-broker-faults", "fine", "revoked"),
    ];
    let settled = eventually(Duration::from_secs(10), async || {
        audit(&host, &session).await == expected
    })
    .await;
    assert!(settled, "audit: {:?}", audit(&host, &session).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_host_crash_the_credentials_are_still_masked_and_revoked() {
    let dir = common::visible_tempdir();
    let revoked = Revoked::default();
    let mut host = host(dir.path(), &revoked, "").await;
    let session = host
        .create_session(
            ALICE,
            json!({"grants": [{"broker": "test-broker-faults", "name": "fine"}]}),
        )
        .await;
    let (out, _) = run(&host, &session, r#"echo "$FAULTS_TOKEN""#).await;
    assert_eq!(out.trim(), "[REDACTED]");
    host.kill9();

    let host = self::host(dir.path(), &revoked, "").await;
    let (out, _) = run(&host, &session, r#"echo "again $FAULTS_TOKEN""#).await;
    assert_eq!(out.trim(), "again [REDACTED]", "masked after the restart");
    let (status, view) = host
        .call("GET", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["grants"][0]["env"], json!(["FAULTS_TOKEN"]), "{view}");
    assert!(!view.to_string().contains("token-ses-"), "{view}");
    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(revoked.handles(), [format!("handle-{session}")]);
}
