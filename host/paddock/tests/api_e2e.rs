//! End-to-end tests of the host API: the real `paddock` and `runnerd`
//! binaries, over HTTP on loopback.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{ALICE, BOB, Host, Provider, Sse, SseEvent, eventually, exit, json_body, stdout};
use serde_json::{Value, json};

/// Fast sweeps, so TTL and idle tests take seconds.
const CONFIG: &str = "[sessions]\nsweep_interval_ms = 200\n";

fn host(dir: &tempfile::TempDir) -> Host {
    host_with(dir, CONFIG)
}

fn host_with(dir: &tempfile::TempDir, config: &str) -> Host {
    Host::start(&dir.path().join("data"), config)
}

/// The tests about sandboxes, once per provider (`local_process::NAME`,
/// `local_docker::NAME`): each is an `async fn(Provider)` below.
macro_rules! per_provider {
    ($($test:ident),* $(,)?) => {
        mod local_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Provider::LocalProcess).await
                }
            )*
        }
        mod local_docker {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Provider::LocalDocker).await
                }
            )*
        }
    };
}

per_provider!(
    a_command_streams_its_output_and_exit_code,
    stdin_goes_in_and_comes_back_out,
    cancel_kills_the_whole_tree_with_one_terminal_event,
    a_reconnecting_client_gets_no_gap_and_no_duplicate,
    an_evicted_range_is_an_explicit_gap,
    a_killed_host_re_adopts_its_sessions_and_running_execs,
    ttl_and_idle_reap_sessions,
    env_patches_reach_later_execs_and_loader_variables_are_refused,
    a_stopping_host_ends_open_streams_and_the_exec_survives,
    a_deadline_slides_while_attached_and_reaps_when_nobody_is,
    an_attached_client_gets_a_fast_writer_whole,
);

/// A session running `echo FIRST; sleep 2; echo SECOND`, attached until its
/// first line arrived: for tests that stop the host in between.
async fn two_step_exec(host: &Host, first: &str, second: &str) -> (String, String, Sse, SseEvent) {
    let session = host.create_session(ALICE, json!({})).await;
    let script = format!("echo {first}; sleep 2; echo {second}");
    let exec = host
        .exec(ALICE, &session, json_body(&["sh", "-c", &script]))
        .await;
    let mut sse = host.events(ALICE, &session, &exec, None).await;
    let seen = sse.next().await.expect("the first line");
    assert_eq!(seen.data["text"], format!("{first}\n"));
    (session, exec, sse, seen)
}

async fn a_command_streams_its_output_and_exit_code(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let session = host.create_session(ALICE, json!({})).await;
    let (_, view) = host
        .call("GET", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(
        view["provisioned"], false,
        "creating a session provisions nothing"
    );

    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&["sh", "-c", "echo out; echo err >&2; pwd; exit 3"]),
        )
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    let out = stdout(&events);
    assert!(out.starts_with("out\n"), "{out:?}");
    assert!(
        out.trim_end().ends_with("/workspace"),
        "runs in the workspace: {out:?}"
    );
    assert_eq!(common::text_of(&events, "stderr"), "err\n");
    assert_eq!(exit(&events)["reason"], "exited");
    assert_eq!(exit(&events)["code"], 3);
    let ids: Vec<u64> = events.iter().filter_map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids are 1, 2, 3, ..."
    );

    let (status, view) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/execs/{exec}"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(view["state"], "ended");
    assert_eq!(view["exit"]["code"], 3);
}

async fn stdin_goes_in_and_comes_back_out(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let session = host.create_session(ALICE, json!({})).await;
    let exec = host
        .exec(
            ALICE,
            &session,
            json!({"argv": ["cat"], "stdin": "first\n", "keep_stdin_open": true}),
        )
        .await;
    let path = format!("/v1/sessions/{session}/execs/{exec}/stdin?close=true");
    let response = host
        .request(reqwest::Method::POST, &path, ALICE)
        .header("content-type", "application/octet-stream")
        .body("second\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let events = host.collect(ALICE, &session, &exec).await;
    assert_eq!(stdout(&events), "first\nsecond\n");
    assert_eq!(exit(&events)["code"], 0);

    // A command cannot be steered like an agent.
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs/{exec}/stdin"),
            ALICE,
            Some(json!({"kind": "message", "text": "hi"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_an_agent_run");
}

/// A stand-in `claude` on the session's PATH replays a captured transcript
/// line by line (the real CLI needs an LLM API; `claude_code_real.rs` runs
/// it against a scripted one); the stream must carry exactly the adapter's
/// normalized events, and the exec record the run's totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_streams_normalized_events_and_records_totals() {
    let fixtures =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/claude-code");
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);
    // The stand-in and its transcript live in the workspace, which a
    // confined (bubblewrap) sandbox sees at the same path.
    let session = host.create_session(ALICE, json!({})).await;
    let exec = host.exec(ALICE, &session, json_body(&["pwd"])).await;
    let workspace = stdout(&host.collect(ALICE, &session, &exec).await)
        .trim()
        .to_owned();
    let transcript = std::fs::read(fixtures.join("b_tool_bash.jsonl")).unwrap();
    let put = |path: &str, body: Vec<u8>| {
        host.request(
            reqwest::Method::PUT,
            &format!("/v1/sessions/{session}/files/{path}"),
            ALICE,
        )
        .body(body)
        .send()
    };
    assert_eq!(
        put(".stand-in/transcript.jsonl", transcript)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let script = "#!/bin/sh\ncat >/dev/null\nwhile IFS= read -r line; do printf '%s\\n' \"$line\"; sleep 0.02; done < \"$(dirname \"$0\")/transcript.jsonl\"\n";
    assert_eq!(
        put(".stand-in/claude", script.into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let chmod = host
        .exec(
            ALICE,
            &session,
            json_body(&["chmod", "+x", ".stand-in/claude"]),
        )
        .await;
    host.collect(ALICE, &session, &chmod).await;
    let (status, _) = host
        .call(
            "PATCH",
            &format!("/v1/sessions/{session}/env"),
            ALICE,
            Some(json!({"set": {"PATH": format!("{workspace}/.stand-in:/usr/bin:/bin")}})),
        )
        .await;
    assert_eq!(status, 200);
    let exec = host
        .exec(
            ALICE,
            &session,
            json!({"agent": "claude-code", "run": {"prompt": "run echo hello"}}),
        )
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    let golden = common::assert_claude_golden(&events, "b_tool_bash");
    assert!(
        stdout(&events).contains("\"type\":\"result\""),
        "raw stdout rides along"
    );
    assert_eq!(exit(&events)["code"], 0);

    let (_, view) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/execs/{exec}"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(view["kind"], "agent");
    assert_eq!(view["agent_session_id"], golden[0]["session_id"]);
    assert_eq!(view["result"]["status"], "success");
    let sum = |key: &str| -> u64 {
        golden
            .iter()
            .filter(|e| e["type"] == "usage")
            .map(|e| e[key].as_u64().unwrap_or(0))
            .sum()
    };
    assert_eq!(view["usage"]["input_tokens"], sum("input_tokens"));
    assert_eq!(view["usage"]["output_tokens"], sum("output_tokens"));
    assert_eq!(view["usage"]["cache_read_tokens"], sum("cache_read_tokens"));

    // Steering an adapter that supports it needs a run started for it; an
    // unknown agent is a clear 400.
    let (status, body) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs"),
            ALICE,
            Some(json!({"agent": "nope", "run": {"prompt": "x"}})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-code"),
        "{body}"
    );
}

async fn cancel_kills_the_whole_tree_with_one_terminal_event(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let session = host.create_session(ALICE, json!({})).await;
    // The grandchild escapes the shell's process group with setsid where
    // available; the cgroup (or the tree walk) must still get it.
    // A unique argument finds the grandchild from outside, whether or not
    // the sandbox has its own pid namespace (unique per provider too: the
    // variants run at once in this process).
    let marker = format!(
        "{}.{}{}",
        1000 + std::process::id() % 1000,
        std::process::id(),
        provider as u8
    );
    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&["sh", "-c", &format!("sleep {marker} & echo started; wait")]),
        )
        .await;
    let mut sse = host.events(ALICE, &session, &exec, None).await;
    let first = sse.next().await.expect("started");
    assert_eq!(first.data["text"], "started\n");
    let grandchild = || common::pids_with_arg(&marker);
    // `echo` may win the race against the fork's exec of `sleep`.
    assert!(
        eventually(Duration::from_secs(5), async || grandchild().len() == 1).await,
        "the grandchild runs: {:?}",
        grandchild()
    );
    let (status, _) = host
        .call(
            "POST",
            &format!("/v1/sessions/{session}/execs/{exec}/cancel"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 202);
    let mut rest = vec![first];
    rest.extend(
        tokio::time::timeout(Duration::from_secs(30), sse.collect())
            .await
            .unwrap(),
    );
    assert_eq!(exit(&rest)["reason"], "cancelled");
    assert!(
        eventually(Duration::from_secs(10), async || grandchild().is_empty()).await,
        "the grandchild died too"
    );
}

async fn a_reconnecting_client_gets_no_gap_and_no_duplicate(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let session = host.create_session(ALICE, json!({})).await;
    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&[
                "sh",
                "-c",
                "for i in $(seq 1 40); do echo line$i; sleep 0.01; done",
            ]),
        )
        .await;
    let mut sse = host.events(ALICE, &session, &exec, None).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(sse.next().await.unwrap());
    }
    drop(sse);
    let last = seen.last().unwrap().id.unwrap();
    let rest = host
        .events(ALICE, &session, &exec, Some(last))
        .await
        .collect()
        .await;
    assert_eq!(
        rest[0].id,
        Some(last + 1),
        "resumes right after the last seen event"
    );
    seen.extend(rest);
    let ids: Vec<u64> = seen.iter().filter_map(|e| e.id).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let text = stdout(&seen);
    let expected: String = (1..=40).map(|i| format!("line{i}\n")).collect();
    assert_eq!(text, expected);
    exit(&seen);

    // `?since=` works like Last-Event-ID, and a future id is refused.
    let (status, _) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/execs/{exec}/events?since=100000"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(status, 400);
}

async fn an_evicted_range_is_an_explicit_gap(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider
        .host(
            &dir.path().join("data"),
            "[sessions]\nreplay_max_events = 8\n",
        )
        .await;
    let session = host.create_session(ALICE, json!({})).await;
    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&[
                "sh",
                "-c",
                "for i in $(seq 1 30); do echo $i; sleep 0.005; done",
            ]),
        )
        .await;
    assert!(
        eventually(Duration::from_secs(20), async || {
            host.call(
                "GET",
                &format!("/v1/sessions/{session}/execs/{exec}"),
                ALICE,
                None,
            )
            .await
            .1["state"]
                == "ended"
        })
        .await
    );
    let events = host
        .events(ALICE, &session, &exec, Some(0))
        .await
        .collect()
        .await;
    assert_eq!(events[0].event, "gap", "{events:?}");
    let to = events[0].data["to"].as_u64().unwrap();
    assert_eq!(events[0].data["from"], 1);
    assert_eq!(events[1].id, Some(to + 1), "then everything after the gap");
    exit(&events);
}

async fn a_killed_host_re_adopts_its_sessions_and_running_execs(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut host = provider.host(&data, CONFIG).await;
    let (session, exec, _sse, seen) = two_step_exec(&host, "before", "after").await;
    host.kill9();

    let host = provider.host(&data, CONFIG).await;
    let (status, view) = host
        .call("GET", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "active");
    // The client resumes with the id it saw from the dead host: ids are
    // rebuilt identically from runnerd's frames.
    let rest = host
        .events(ALICE, &session, &exec, seen.id)
        .await
        .collect()
        .await;
    assert_eq!(stdout(&rest), "after\n");
    assert_eq!(exit(&rest)["code"], 0, "the exec finished normally");
    let events = host.collect(ALICE, &session, &exec).await;
    assert_eq!(stdout(&events), "before\nafter\n");
}

async fn ttl_and_idle_reap_sessions(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let ttl = host.create_session(ALICE, json!({"ttl_secs": 1})).await;
    let idle = host
        .create_session(ALICE, json!({"idle_timeout_secs": 1}))
        .await;
    let exec = host.exec(ALICE, &idle, json_body(&["true"])).await;
    host.collect(ALICE, &idle, &exec).await;
    let busy = host
        .create_session(ALICE, json!({"idle_timeout_secs": 1}))
        .await;
    host.exec(ALICE, &busy, json_body(&["sleep", "4"])).await;

    let reason = async |id: &str| {
        host.call("GET", &format!("/v1/sessions/{id}"), ALICE, None)
            .await
            .1["end_reason"]
            .clone()
    };
    assert!(
        eventually(Duration::from_secs(10), async || reason(&ttl).await
            == "ttl")
        .await
    );
    assert!(
        eventually(Duration::from_secs(10), async || reason(&idle).await
            == "idle")
        .await
    );
    assert_eq!(
        reason(&busy).await,
        Value::Null,
        "a running exec is not idle"
    );
    // Reaped sandboxes are destroyed (the session shows its end first).
    assert!(
        eventually(Duration::from_secs(10), async || host.sandbox_count() <= 1).await,
        "only the busy session's sandbox is left: {}",
        host.sandbox_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_are_isolated_and_paths_cannot_escape() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);
    let session = host.create_session(ALICE, json!({})).await;
    for (method, path) in [
        ("GET", format!("/v1/sessions/{session}")),
        ("DELETE", format!("/v1/sessions/{session}")),
        ("GET", format!("/v1/sessions/{session}/execs")),
        ("GET", format!("/v1/sessions/{session}/files/a.txt")),
    ] {
        let (status, body) = host.call(method, &path, BOB, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = host.call("GET", "/v1/sessions", "wrong-token", None).await;
    assert_eq!(status, 401);

    let put = host
        .request(
            reqwest::Method::PUT,
            &format!("/v1/sessions/{session}/files/dir/a.txt"),
            ALICE,
        )
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let got = host
        .request(
            reqwest::Method::GET,
            &format!("/v1/sessions/{session}/files/dir/a.txt"),
            ALICE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(got.text().await.unwrap(), "hello");
    let (_, listing) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/files/dir"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(listing["entries"][0]["name"], "a.txt");
    // Encoded, so that the HTTP client does not normalize them away.
    for escape in [
        "..%2F..%2Fetc%2Fpasswd",
        "dir%2F..%2F..%2Fx",
        "%2Fetc%2Fpasswd",
    ] {
        let (status, body) = host
            .call(
                "GET",
                &format!("/v1/sessions/{session}/files/{escape}"),
                ALICE,
                None,
            )
            .await;
        assert!(status == 400 || status == 403, "{escape}: {status} {body}");
    }
    // A symlink pointing out of the workspace is not followed.
    let exec = host
        .exec(ALICE, &session, json_body(&["ln", "-s", "/etc", "out"]))
        .await;
    host.collect(ALICE, &session, &exec).await;
    let (status, body) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/files/out/passwd"),
            ALICE,
            None,
        )
        .await;
    assert!((400..500).contains(&status), "{status} {body}");

    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = host
        .call("DELETE", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(status, 204, "delete is idempotent");
    let (_, view) = host
        .call("GET", &format!("/v1/sessions/{session}"), ALICE, None)
        .await;
    assert_eq!(view["end_reason"], "deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_sessions_are_forgotten_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(
        &dir,
        "[sessions]\nsweep_interval_ms = 100\nended_retention_secs = 1\n",
    );
    let session = host.create_session(ALICE, json!({})).await;
    let path = format!("/v1/sessions/{session}");
    host.call("DELETE", &path, ALICE, None).await;
    assert_eq!(
        host.call("GET", &path, ALICE, None).await.0,
        200,
        "readable for a while"
    );
    assert!(
        eventually(Duration::from_secs(10), async || host
            .call("GET", &path, ALICE, None)
            .await
            .0
            == 404)
        .await
    );
    let file = host.data.join("sessions").join(format!("{session}.json"));
    assert!(!file.exists(), "its file is gone too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);
    let cases = [
        ("/v1/sessions", json!({"ttl_secs": 0})),
        ("/v1/sessions", json!({"env": {"LD_PRELOAD": "/x.so"}})),
        ("/v1/sessions", json!({"provider": "vm"})),
        ("/v1/sessions", json!({"bogus": 1})),
        ("/v1/sessions", json!([1, 2])),
    ];
    for (path, body) in cases {
        let (status, answer) = host.call("POST", path, ALICE, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    let session = host.create_session(ALICE, json!({})).await;
    for body in [
        json!({}),
        json!({"argv": []}),
        json!({"argv": ["x"], "agent": "claude-code"}),
        json!({"agent": "claude-code"}),
    ] {
        let (status, answer) = host
            .call(
                "POST",
                &format!("/v1/sessions/{session}/execs"),
                ALICE,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let host = host(&dir);
    let (status, doc) = host.call("GET", "/openapi.json", ALICE, None).await;
    assert_eq!(status, 200);
    let expected = [
        ("post", "/v1/sessions"),
        ("get", "/v1/sessions"),
        ("get", "/v1/sessions/{id}"),
        ("delete", "/v1/sessions/{id}"),
        ("post", "/v1/sessions/{id}/extend"),
        ("patch", "/v1/sessions/{id}/env"),
        ("post", "/v1/sessions/{id}/execs"),
        ("get", "/v1/sessions/{id}/execs"),
        ("get", "/v1/sessions/{id}/execs/{exec}"),
        ("get", "/v1/sessions/{id}/execs/{exec}/events"),
        ("post", "/v1/sessions/{id}/execs/{exec}/stdin"),
        ("post", "/v1/sessions/{id}/execs/{exec}/cancel"),
        ("get", "/v1/sessions/{id}/files/{path}"),
        ("put", "/v1/sessions/{id}/files/{path}"),
        ("delete", "/v1/sessions/{id}/files/{path}"),
        ("get", "/v1/plugins"),
        ("get", "/v1/audit"),
        ("get", "/v1/sessions/{id}/gateway"),
        ("post", "/v1/links"),
        ("post", "/v1/links/{id}/heartbeat"),
        ("delete", "/v1/links/{id}"),
        ("get", "/v1/links/me"),
        ("post", "/v1/dispatch/resolve"),
    ];
    let paths = doc["paths"].as_object().unwrap();
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        expected.len(),
        "no undocumented extra: {paths:#?}"
    );
    for (method, path) in expected {
        assert!(
            paths[path].get(method).is_some(),
            "{method} {path} is documented"
        );
        // And served: unauthenticated it is a 401, not a 404.
        let concrete = path
            .replace("{id}", "s")
            .replace("{exec}", "e")
            .replace("{path}", "p");
        let response = reqwest::Client::new()
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{concrete}", host.url),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{method} {path} is routed");
    }
}

async fn env_patches_reach_later_execs_and_loader_variables_are_refused(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider.host(&dir.path().join("data"), CONFIG).await;
    let session = host
        .create_session(ALICE, json!({"env": {"SEEDED": "1"}}))
        .await;
    let (status, view) = host
        .call(
            "PATCH",
            &format!("/v1/sessions/{session}/env"),
            ALICE,
            Some(json!({"set": {"ADDED": "2"}})),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let (status, body) = host
        .call(
            "PATCH",
            &format!("/v1/sessions/{session}/env"),
            ALICE,
            Some(json!({"set": {"LD_PRELOAD": "/x.so"}})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let exec = host
        .exec(
            ALICE,
            &session,
            json_body(&["sh", "-c", "echo $SEEDED$ADDED"]),
        )
        .await;
    assert_eq!(stdout(&host.collect(ALICE, &session, &exec).await), "12\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_sessions_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let host = std::sync::Arc::new(host(&dir));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let session = host.create_session(ALICE, json!({})).await;
            let exec = host
                .exec(
                    ALICE,
                    &session,
                    json_body(&["sh", "-c", &format!("echo session {i}")]),
                )
                .await;
            let events = host.collect(ALICE, &session, &exec).await;
            assert_eq!(stdout(&events), format!("session {i}\n"));
            assert_eq!(exit(&events)["code"], 0);
            host.call("DELETE", &format!("/v1/sessions/{session}"), ALICE, None)
                .await;
        }));
    }
    for task in tasks {
        task.await.expect("every stream completed");
    }
}

async fn a_stopping_host_ends_open_streams_and_the_exec_survives(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut host = provider.host(&data, CONFIG).await;
    let (session, exec, sse, first) = two_step_exec(&host, "up", "done").await;
    let status = host.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    let last = tokio::time::timeout(Duration::from_secs(10), sse.collect())
        .await
        .expect("the stream ended when the host stopped");
    assert_eq!(
        last.last().map(|e| e.event.as_str()),
        Some("shutdown"),
        "{last:?}"
    );

    // The exec kept running in its sandbox; a new host picks the stream up
    // where the client left it.
    let host = provider.host(&data, CONFIG).await;
    let rest = host
        .events(ALICE, &session, &exec, first.id)
        .await
        .collect()
        .await;
    assert_eq!(stdout(&rest), "done\n");
    assert_eq!(exit(&rest)["code"], 0);
}

async fn a_deadline_slides_while_attached_and_reaps_when_nobody_is(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    let host = provider
        .host(
            &dir.path().join("data"),
            "[sessions]\nsweep_interval_ms = 100\nexec_attach_grace_secs = 1\n",
        )
        .await;
    let session = host.create_session(ALICE, json!({})).await;
    // Nobody attached: the timeout plus the grace ends it.
    let lonely = host
        .exec(
            ALICE,
            &session,
            json!({"argv": ["sleep", "30"], "timeout_ms": 200}),
        )
        .await;
    // Attached throughout: it runs to its natural end, well past both.
    let watched = host
        .exec(
            ALICE,
            &session,
            json!({"argv": ["sleep", "3"], "timeout_ms": 200}),
        )
        .await;
    let watched_events = host.collect(ALICE, &session, &watched).await;
    assert_eq!(
        exit(&watched_events)["reason"],
        "exited",
        "{watched_events:?}"
    );
    let (_, view) = host
        .call(
            "GET",
            &format!("/v1/sessions/{session}/execs/{lonely}"),
            ALICE,
            None,
        )
        .await;
    assert_eq!(view["exit"]["reason"], "timed_out", "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_moves_the_ttl_up_to_the_maximum_and_reading_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_with(
        &dir,
        "[sessions]\ndefault_ttl_secs = 60\nmax_ttl_secs = 100\n",
    );
    let session = host.create_session(ALICE, json!({})).await;
    let path = format!("/v1/sessions/{session}");
    let (_, before) = host.call("GET", &path, ALICE, None).await;
    let created = before["created_at_ms"].as_u64().unwrap();
    assert_eq!(before["expires_at_ms"].as_u64().unwrap(), created + 60_000);
    let (_, again) = host.call("GET", &path, ALICE, None).await;
    assert_eq!(
        again["expires_at_ms"], before["expires_at_ms"],
        "reading never extends"
    );
    let (status, extended) = host
        .call(
            "POST",
            &format!("{path}/extend"),
            ALICE,
            Some(json!({"by_secs": 30})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        extended["expires_at_ms"].as_u64().unwrap(),
        created + 90_000
    );
    let (_, capped) = host
        .call(
            "POST",
            &format!("{path}/extend"),
            ALICE,
            Some(json!({"by_secs": 3600})),
        )
        .await;
    assert_eq!(
        capped["expires_at_ms"].as_u64().unwrap(),
        created + 100_000,
        "capped at max_ttl_secs"
    );
}

async fn an_attached_client_gets_a_fast_writer_whole(provider: Provider) {
    let dir = tempfile::tempdir().unwrap();
    // A replay ring far smaller than the output: without back-pressure from
    // the attached client most of it would become a gap.
    let host = provider
        .host(
            &dir.path().join("data"),
            // The reader here is this test, on a machine that may be
            // running everything else at once: give it a stall far longer
            // than any scheduling hiccup, so only missing back-pressure
            // (not a slow test) can make a gap.
            "[sessions]\nreplay_max_bytes = 262144\nattach_stall_ms = 30000\n",
        )
        .await;
    let session = host.create_session(ALICE, json!({})).await;
    let exec = host
        .exec(ALICE, &session, json_body(&["seq", "1", "300000"]))
        .await;
    let events = host.collect(ALICE, &session, &exec).await;
    let gaps: Vec<_> = events
        .iter()
        .filter(|e| e.event == "gap" || e.event == "output_gap")
        .collect();
    assert!(gaps.is_empty(), "no gap: {gaps:?}");
    let out = stdout(&events);
    assert_eq!(out.lines().count(), 300_000);
    assert_eq!(out.lines().last(), Some("300000"));
    assert_eq!(exit(&events)["code"], 0);
}
