//! The lease protocol against a fake pool of runnerds behind the SDK's mock
//! host's HTTP.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use paddock_sdk::http::{HttpError, Request, Response};
use paddock_sdk::testing::provider::{Mock, MockHost};

use super::*;

const TOKEN: &str = "pool-secret";

#[derive(Default)]
struct FakeRunnerd {
    down: bool,
    files: BTreeMap<String, Vec<u8>>,
    /// (id, running)
    execs: Vec<(String, bool)>,
}

type Pool = Rc<RefCell<BTreeMap<String, FakeRunnerd>>>;

fn pool(endpoints: &[&str]) -> Pool {
    Rc::new(RefCell::new(
        endpoints
            .iter()
            .map(|e| ((*e).to_owned(), FakeRunnerd::default()))
            .collect(),
    ))
}

/// runnerd's API, as much as the plugin uses.
fn serve(pool: &Pool, req: &Request) -> Result<Response, HttpError> {
    let mut pool = pool.borrow_mut();
    let Some((base, runnerd)) = pool
        .iter_mut()
        .find(|(base, _)| req.url.starts_with(base.as_str()))
    else {
        return Err(HttpError::Denied(format!("{} is not allowlisted", req.url)));
    };
    if runnerd.down {
        return Err(HttpError::Transport("connection refused".into()));
    }
    if req.header_value("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Ok(Response::new(401, "unauthorized"));
    }
    let rest = &req.url[base.len()..];
    let (path, _query) = rest.split_once('?').unwrap_or((rest, ""));
    Ok(match (req.method.as_str(), path) {
        ("GET", "/v1/health") => Response::json_body(200, &serde_json::json!({"version": "x"})),
        ("GET", "/v1/execs") => Response::json_body(
            200,
            &serde_json::json!({"execs": runnerd.execs.iter().map(|(id, running)| {
                serde_json::json!({"id": id, "state": if *running { "running" } else { "ended" }})
            }).collect::<Vec<_>>()}),
        ),
        ("POST", p) if p.starts_with("/v1/execs/") && p.ends_with("/cancel") => {
            let id = &p["/v1/execs/".len()..p.len() - "/cancel".len()];
            for exec in runnerd.execs.iter_mut().filter(|(e, _)| e == id) {
                exec.1 = false;
            }
            Response::json_body(200, &serde_json::json!({}))
        }
        (method, p) if p.starts_with("/v1/files/") => {
            let file = p["/v1/files/".len()..].to_owned();
            match method {
                "GET" => match runnerd.files.get(&file) {
                    Some(body) => Response::new(200, body.clone()),
                    None => Response::new(404, r#"{"error":{"code":"file_not_found"}}"#),
                },
                "PUT" => {
                    runnerd.files.insert(file, req.body.clone());
                    Response::new(200, "{}")
                }
                "DELETE" => match runnerd.files.remove(&file) {
                    Some(_) => Response::new(200, "{}"),
                    None => Response::new(404, "{}"),
                },
                _ => Response::new(405, ""),
            }
        }
        _ => Response::new(404, "no endpoint"),
    })
}

fn install(pool: &Pool) -> Mock {
    let endpoints: Vec<String> = pool.borrow().keys().cloned().collect();
    let served = pool.clone();
    MockHost::new()
        .config("endpoints", &endpoints.join(", "))
        .env(DEFAULT_TOKEN_ENV, TOKEN)
        .on_http(move |req| serve(&served, req))
        .install()
}

fn request(session: &str) -> ProvisionRequest {
    ProvisionRequest {
        session_id: session.into(),
        owner: "alice".into(),
        ttl_secs: 600,
        ..ProvisionRequest::default()
    }
}

fn lease_on(pool: &Pool, endpoint: &str) -> Option<Lease> {
    let pool = pool.borrow();
    let bytes = pool.get(endpoint)?.files.get(LEASE_FILE)?;
    serde_json::from_slice(bytes).ok()
}

#[test]
fn provision_leases_a_free_endpoint_and_returns_the_pool_token() {
    let pool = pool(&["http://a.pool:7070", "http://b.pool:7070"]);
    let mock = install(&pool);
    let handle = RemoteRunnerd::provision(request("s-1")).expect("provisions");
    assert!(handle.url == "http://a.pool:7070" || handle.url == "http://b.pool:7070");
    assert_eq!(handle.token.as_deref(), Some(TOKEN));
    assert_eq!(handle.labels[OWNER_LABEL], "alice");
    assert_eq!(handle.labels[SESSION_LABEL], "s-1");
    let lease = lease_on(&pool, &handle.url).expect("lease written");
    assert_eq!(lease.id, handle.id);
    assert_eq!(lease.session_id, "s-1");
    assert_eq!(Some(lease.expires_at), handle.expires_at);
    assert_eq!(lease.expires_at - lease.leased_at, 600);
    // Every request carried the token.
    assert!(
        mock.requests()
            .iter()
            .all(|r| r.header_value("authorization") == Some("Bearer pool-secret"))
    );
}

#[test]
fn a_leased_or_unhealthy_endpoint_is_skipped_and_a_full_pool_is_unavailable() {
    let pool = pool(&["http://a.pool", "http://b.pool", "http://c.pool"]);
    pool.borrow_mut().get_mut("http://b.pool").expect("b").down = true;
    let _mock = install(&pool);
    let first = RemoteRunnerd::provision(request("s-1")).expect("first");
    let second = RemoteRunnerd::provision(request("s-2")).expect("second");
    assert_eq!(first.url, "http://a.pool");
    assert_eq!(second.url, "http://c.pool");
    match RemoteRunnerd::provision(request("s-3")) {
        Err(PluginError::Unavailable(m)) => {
            assert!(m.contains("2 leased") && m.contains("1 unhealthy"), "{m}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn an_expired_lease_is_free_again() {
    let pool = pool(&["http://a.pool"]);
    let stale = Lease {
        id: lease_id("http://a.pool", "old", 1),
        session_id: "old".into(),
        owner: "bob".into(),
        expires_at: 2,
        leased_at: 1,
    };
    pool.borrow_mut()
        .get_mut("http://a.pool")
        .expect("a")
        .files
        .insert(LEASE_FILE.into(), serde_json::to_vec(&stale).expect("json"));
    let _mock = install(&pool);
    assert!(RemoteRunnerd::list().expect("lists").is_empty());
    assert_eq!(RemoteRunnerd::inspect(&stale.id), Ok(None));
    let handle = RemoteRunnerd::provision(request("s-1")).expect("provisions");
    assert_eq!(
        lease_on(&pool, "http://a.pool").expect("lease").session_id,
        "s-1"
    );
    assert_ne!(handle.id, stale.id);
}

#[test]
fn destroy_cancels_running_execs_and_removes_the_lease() {
    let pool = pool(&["http://a.pool"]);
    let mock = install(&pool);
    let handle = RemoteRunnerd::provision(request("s-1")).expect("provisions");
    pool.borrow_mut().get_mut("http://a.pool").expect("a").execs =
        vec![("e1".into(), true), ("e2".into(), false)];

    assert_eq!(RemoteRunnerd::list().expect("lists"), vec![handle.clone()]);
    assert_eq!(RemoteRunnerd::inspect(&handle.id), Ok(Some(handle.clone())));

    mock.clear_calls();
    RemoteRunnerd::destroy(&handle.id).expect("destroys");
    let cancels: Vec<String> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.url)
        .collect();
    assert_eq!(cancels, vec!["http://a.pool/v1/execs/e1/cancel".to_owned()]);
    assert!(lease_on(&pool, "http://a.pool").is_none());
    assert!(RemoteRunnerd::list().expect("lists").is_empty());
    assert_eq!(RemoteRunnerd::inspect(&handle.id), Ok(None));

    // Again, and an id from nowhere: not errors.
    RemoteRunnerd::destroy(&handle.id).expect("idempotent");
    RemoteRunnerd::destroy("rr-nope").expect("unknown id");
}

#[test]
fn destroy_of_an_old_lease_leaves_the_new_one_alone() {
    let pool = pool(&["http://a.pool"]);
    let mock = install(&pool);
    let stale = Lease {
        id: lease_id("http://a.pool", "old", 1),
        session_id: "old".into(),
        owner: "bob".into(),
        expires_at: 2,
        leased_at: 1,
    };
    let current = RemoteRunnerd::provision(request("s-1")).expect("provisions");
    pool.borrow_mut().get_mut("http://a.pool").expect("a").execs = vec![("e1".into(), true)];
    mock.clear_calls();
    RemoteRunnerd::destroy(&stale.id).expect("not an error");
    assert!(mock.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(
        lease_on(&pool, "http://a.pool").map(|l| l.id),
        Some(current.id)
    );
}

#[test]
fn the_token_comes_from_the_configured_env_var_only() {
    let pool = pool(&["http://a.pool"]);
    let served = pool.clone();
    let _mock = MockHost::new()
        .config("endpoints", "http://a.pool/")
        .config("token_env", "MY_POOL_TOKEN")
        .env(DEFAULT_TOKEN_ENV, "wrong")
        .env("MY_POOL_TOKEN", TOKEN)
        .on_http(move |req| serve(&served, req))
        .install();
    let handle = RemoteRunnerd::provision(request("s-1")).expect("provisions");
    assert_eq!(handle.url, "http://a.pool");
    assert_eq!(handle.token.as_deref(), Some(TOKEN));
}

#[test]
fn a_missing_token_names_the_variable_and_the_grant() {
    let _mock = MockHost::new()
        .config("endpoints", "http://a.pool")
        .install();
    match RemoteRunnerd::provision(request("s-1")) {
        Err(PluginError::Unavailable(m)) => assert!(
            m.contains(DEFAULT_TOKEN_ENV) && m.contains("[plugins.grants.remote-runnerd]"),
            "{m}"
        ),
        other => panic!("expected unavailable, got {other:?}"),
    }
}

#[test]
fn bad_endpoints_are_invalid_input() {
    let _mock = MockHost::new().env(DEFAULT_TOKEN_ENV, TOKEN).install();
    assert!(matches!(
        RemoteRunnerd::provision(request("s")),
        Err(PluginError::InvalidInput(m)) if m.contains("endpoints")
    ));
    let _mock = MockHost::new()
        .config("endpoints", "a.pool:7070")
        .env(DEFAULT_TOKEN_ENV, TOKEN)
        .install();
    assert!(matches!(
        RemoteRunnerd::provision(request("s")),
        Err(PluginError::InvalidInput(m)) if m.contains("a.pool:7070")
    ));
}

#[test]
fn a_wrong_token_is_denied_and_a_corrupt_lease_is_skipped() {
    let pool = pool(&["http://a.pool"]);
    let served = pool.clone();
    {
        let _mock = MockHost::new()
            .config("endpoints", "http://a.pool")
            .env(DEFAULT_TOKEN_ENV, "wrong")
            .on_http(move |req| serve(&served, req))
            .install();
        // Health fails with 401 → unhealthy; list surfaces nothing, and
        // inspect says why.
        assert!(RemoteRunnerd::provision(request("s")).is_err());
        let id = lease_id("http://a.pool", "s", 1);
        assert!(matches!(
            RemoteRunnerd::inspect(&id),
            Err(PluginError::Denied(_))
        ));
    }
    pool.borrow_mut()
        .get_mut("http://a.pool")
        .expect("a")
        .files
        .insert(LEASE_FILE.into(), b"not json".to_vec());
    let _mock = install(&pool);
    assert!(matches!(
        RemoteRunnerd::provision(request("s")),
        Err(PluginError::Unavailable(m)) if m.contains("1 failing")
    ));
}

#[test]
fn ids_are_stable_per_endpoint_and_lease() {
    let a = lease_id("http://a.pool", "s", 10);
    assert_eq!(a, lease_id("http://a.pool", "s", 10));
    assert_ne!(a, lease_id("http://a.pool", "s", 11));
    assert_ne!(a, lease_id("http://b.pool", "s", 10));
}
