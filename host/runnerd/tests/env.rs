//! The env store through the real binary: merge into execs, env_from,
//! refused names, limits (seed included).

mod common;

use std::collections::BTreeMap;

use common::{Runnerd, collect, exec};
use paddock_runnerd::proto::{EnvPatch, ExitReason};

fn set(pairs: &[(&str, &str)]) -> EnvPatch {
    EnvPatch {
        set: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        unset: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_is_merged_under_the_request_env() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    let view = client
        .patch_env(&set(&[("FOO", "from-store"), ("BAR", "store-bar")]))
        .await
        .expect("patch");
    assert_eq!(view.vars.len(), 2);
    let mut request = exec(&["sh", "-c", "echo $FOO $BAR $LANG; env"]);
    request.env = BTreeMap::from([("BAR".to_owned(), "request-bar".to_owned())]);
    let created = client.create_exec(&request).await.expect("create");
    let got = collect(client, &created.id, 0).await;
    let text = got.stdout_text();
    assert!(
        text.starts_with("from-store request-bar C.UTF-8\n"),
        "{text}"
    );
    assert!(
        !text.contains("RUNNERD_TOKEN") && !text.contains(common::TOKEN),
        "runnerd's token never reaches an exec: {text}"
    );

    let view = client
        .patch_env(&EnvPatch {
            set: BTreeMap::new(),
            unset: vec!["FOO".into()],
        })
        .await
        .expect("unset");
    assert_eq!(view.vars.keys().collect::<Vec<_>>(), ["BAR"]);
    assert_eq!(client.env().await.expect("get").vars, view.vars);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_from_hands_a_secret_over_under_another_name() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    client
        .patch_env(&set(&[("PADDOCK_GATEWAY_KEY", "sk-virtual-123")]))
        .await
        .expect("patch");
    let mut request = exec(&["sh", "-c", "echo $ANTHROPIC_API_KEY"]);
    request.env_from = BTreeMap::from([(
        "ANTHROPIC_API_KEY".to_owned(),
        "PADDOCK_GATEWAY_KEY".to_owned(),
    )]);
    let created = client.create_exec(&request).await.expect("create");
    let got = collect(client, &created.id, 0).await;
    assert_eq!(got.stdout_text(), "sk-virtual-123\n");
    let status = client.exec(&created.id).await.expect("status");
    assert!(!status.argv.concat().contains("sk-virtual"), "not in argv");

    request.env_from = BTreeMap::from([("X".to_owned(), "NOT_SET_ANYWHERE".to_owned())]);
    let err = client
        .create_exec(&request)
        .await
        .expect_err("missing source");
    assert_eq!(err.code(), Some("env_from_missing"));
    assert!(err.to_string().contains("NOT_SET_ANYWHERE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_variables_and_bad_names_are_refused() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    for name in [
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "LD_BIND_NOW",
        "DYLD_INSERT_LIBRARIES",
    ] {
        let err = client
            .patch_env(&set(&[("OK", "1"), (name, "/tmp/evil.so")]))
            .await
            .expect_err(name);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{name}");
        assert_eq!(err.code(), Some("env_name_refused"));
        assert!(
            err.to_string().contains(name),
            "the error names {name}: {err}"
        );
    }
    assert!(
        client.env().await.expect("get").vars.is_empty(),
        "refused patches left nothing"
    );

    for (name, value) in [
        ("", "x"),
        ("A=B", "x"),
        ("A\0B", "x"),
        ("GOOD", "nul\0value"),
    ] {
        let err = client
            .patch_env(&set(&[(name, value)]))
            .await
            .expect_err(name);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{name:?}");
    }

    let mut request = exec(&["true"]);
    request.env = BTreeMap::from([("LD_PRELOAD".to_owned(), "/tmp/evil.so".to_owned())]);
    let err = client.create_exec(&request).await.expect_err("exec env");
    assert_eq!(err.code(), Some("env_name_refused"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    let view = client.env().await.expect("get");
    assert_eq!((view.max_vars, view.max_bytes), (256, 256 * 1024));

    let many: BTreeMap<String, String> = (0..257).map(|i| (format!("V{i}"), "x".into())).collect();
    let err = client
        .patch_env(&EnvPatch {
            set: many,
            unset: Vec::new(),
        })
        .await
        .expect_err("too many");
    assert_eq!(err.code(), Some("env_limit_exceeded"));

    let big = "x".repeat(200 * 1024);
    client
        .patch_env(&set(&[("BIG1", &big)]))
        .await
        .expect("fits");
    let err = client
        .patch_env(&set(&[("BIG2", &big)]))
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Some("env_limit_exceeded"));
    assert_eq!(client.env().await.expect("get").vars.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_file_is_loaded_and_limited() {
    let seed = serde_json::json!({"SEEDED": "yes"});
    let runnerd = Runnerd::start_with(&[], Some(&seed));
    let client = &runnerd.client;
    assert_eq!(client.env().await.expect("get").vars["SEEDED"], "yes");
    let created = client
        .create_exec(&exec(&["sh", "-c", "echo $SEEDED"]))
        .await
        .expect("create");
    let got = collect(client, &created.id, 0).await;
    assert_eq!(got.stdout_text(), "yes\n");
    assert_eq!(got.exit().reason, ExitReason::Exited { code: 0 });

    let too_many: serde_json::Map<String, serde_json::Value> =
        (0..300).map(|i| (format!("V{i}"), "x".into())).collect();
    let stderr = Runnerd::try_start(&[], Some(&serde_json::Value::Object(too_many)))
        .err()
        .expect("refused to start");
    assert!(stderr.contains("300 variables"), "{stderr}");

    let refused = serde_json::json!({"LD_PRELOAD": "/x.so"});
    let stderr = Runnerd::try_start(&[], Some(&refused))
        .err()
        .expect("refused to start");
    assert!(stderr.contains("LD_PRELOAD"), "{stderr}");
}
