//! Credential brokers in a real [`PluginHost`]: the shipped `env`,
//! `github-app` and `llm-gateway-litellm` built-ins against the host's
//! secrets and loopback servers, and the misbehaving `test-broker-faults`
//! (a trap, an endless loop, a host off its allowlist) failing only the
//! grant that hit it.
//!
//! `llm-gateway-litellm` runs against a loopback stand-in speaking
//! LiteLLM's `/key/generate` and `/key/delete`, not a real LiteLLM proxy:
//! `pip install 'litellm[proxy]'` works here, but the proxy's key store
//! needs Prisma, whose migration engine is downloaded at start from
//! binaries.prisma.sh, which this machine (and CI's) cannot reach (the
//! proxy stops with `getaddrinfo ENOTFOUND binaries.prisma.sh`). Without a
//! database LiteLLM refuses `/key/generate` altogether.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use paddock::config::PluginsConfig;
use paddock::plugin::{
    Credential, Grant, LimitsOverride, PluginError, PluginGrants, PluginHost, PluginKind,
};
use paddock_sdk::PluginError as WitError;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier;
use serde_json::{Value, json};

const FAULTS: &str = "test-broker-faults";
/// A throwaway key made for these tests (`openssl genrsa -traditional
/// 2048`); it signs nothing anywhere else.
const APP_KEY_PEM: &str = include_str!("fixtures/github-app-test-key.pem");
const APP_ID: &str = "31337";
const MASTER_KEY: &str = "sk-master-for-tests";

/// Compiled components are shared by every test (and every run).
fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache")
}

/// The host environment's secret for the `env` test, set once before any
/// host reads it.
const ENV_SECRET: &str = "BROKERS_TEST_FROM_ENV";
static SET_ENV: Once = Once::new();

fn set_env_secret() {
    SET_ENV.call_once(|| {
        // SAFETY: the only variable this test binary sets, once; the std
        // environment lock serializes it with every `std::env` read, and
        // nothing in this process reads the environment outside std.
        unsafe { std::env::set_var(format!("PADDOCK_SECRET_{ENV_SECRET}"), "from-env") };
    });
}

fn grant(name: &str, scope: Option<&str>) -> Grant {
    Grant {
        session_id: "sess-1".into(),
        owner: "alice".into(),
        name: name.into(),
        scope: scope.map(str::to_owned),
        ttl_secs: 600,
    }
}

fn env_value<'a>(credential: &'a Credential, key: &str) -> Option<&'a str> {
    credential
        .env
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_str())
}

/// A plugins config with `secrets` in a private secrets file under `dir`.
fn config_with_secrets(dir: &Path, secrets: &[(&str, &str)]) -> PluginsConfig {
    let table: toml::Table = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string())))
        .collect();
    let path = dir.join("secrets.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    set_mode(&path, 0o600);
    PluginsConfig {
        max_instances: Some(32),
        secrets_file: Some(path),
        ..PluginsConfig::default()
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn grants(config: &mut PluginsConfig, plugin: &str, secrets: &[&str], hosts: &[&str]) {
    config.grants.insert(
        plugin.into(),
        PluginGrants {
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            allow_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..PluginGrants::default()
        },
    );
}

fn plugin_config(config: &mut PluginsConfig, plugin: &str, pairs: &[(&str, &str)]) {
    config.config.insert(
        plugin.into(),
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
}

/// A host with the built-ins and `test-broker-faults` in its plugins dir.
async fn host_with(config: PluginsConfig) -> (tempfile::TempDir, Arc<PluginHost>) {
    set_env_secret();
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(env!("PADDOCK_TEST_BROKER_FAULTS_WASM"))
        .expect("the build script builds test-broker-faults");
    std::fs::write(dir.path().join("test-broker-faults.wasm"), wasm).unwrap();
    let host = PluginHost::new(&config, Some(dir.path().to_owned()), &shared_cache())
        .await
        .unwrap();
    (dir, host)
}

/// Serves `app` on a loopback port; the server lives as long as the test.
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn refused(error: &PluginError) -> (&str, &WitError) {
    match error {
        PluginError::Refused { plugin, error } => (plugin, error),
        other => panic!("expected a refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_issues_from_the_host_environment_and_the_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_secrets(dir.path(), &[("DB_PASSWORD", "from-file")]);
    grants(
        &mut config,
        "env",
        &[ENV_SECRET, "DB_PASSWORD", "UNSET"],
        &[],
    );
    let (_plugins, host) = host_with(config).await;
    let env = host.broker("env").unwrap();

    let credential = env.issue(&grant(ENV_SECRET, None)).await.unwrap();
    assert_eq!(env_value(&credential, ENV_SECRET), Some("from-env"));
    assert_eq!(credential.revocation_handle, None, "a static secret");
    let credential = env.issue(&grant("DB_PASSWORD", None)).await.unwrap();
    assert_eq!(env_value(&credential, "DB_PASSWORD"), Some("from-file"));
    assert!(
        !format!("{credential:?}").contains("from-file"),
        "Debug never shows a value: {credential:?}"
    );

    let error = env.issue(&grant("UNSET", None)).await.unwrap_err();
    let (plugin, why) = refused(&error);
    assert_eq!(plugin, "env");
    assert!(
        matches!(why, WitError::Unavailable(m) if m.contains("PADDOCK_SECRET_UNSET")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_not_granted_is_denied_whether_or_not_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_secrets(dir.path(), &[("DB_PASSWORD", "from-file")]);
    grants(&mut config, "env", &["OTHER"], &[]);
    let (_plugins, host) = host_with(config).await;
    let env = host.broker("env").unwrap();
    for name in ["DB_PASSWORD", ENV_SECRET, "NOWHERE"] {
        let error = env.issue(&grant(name, None)).await.unwrap_err();
        let (plugin, why) = refused(&error);
        assert_eq!(plugin, "env");
        assert!(
            matches!(why, WitError::Denied(m) if m.contains("not granted")),
            "{name}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secrets_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_secrets(dir.path(), &[("DB_PASSWORD", "from-file")]);
    set_mode(&dir.path().join("secrets.toml"), 0o644);
    grants(&mut config, "env", &["DB_PASSWORD"], &[]);
    let (_plugins, host) = host_with(config).await;
    let error = host
        .broker("env")
        .unwrap()
        .issue(&grant("DB_PASSWORD", None))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("env") && text.contains("chmod 600") && !text.contains("from-file"),
        "{text}"
    );
}

/// What the loopback GitHub saw.
#[derive(Default)]
struct GithubSeen {
    verified_jwts: usize,
    token_bodies: Vec<Value>,
    revoked: Vec<String>,
}

#[derive(Clone)]
struct FakeGithub {
    public: RsaPublicKey,
    seen: Arc<Mutex<GithubSeen>>,
}

impl FakeGithub {
    /// Checks the request's app JWT: RS256 with the app's public key, `iss`
    /// the app id, a lifetime of at most ten minutes that has not ended.
    /// On failure, why (the handlers answer 401 with it, as GitHub does).
    fn check_jwt(&self, headers: &HeaderMap) -> Result<(), String> {
        let deny = |why: &str| why.to_owned();
        let jwt = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| deny("no bearer token"))?;
        let (signing_input, signature) = jwt.rsplit_once('.').ok_or_else(|| deny("not a JWT"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|s| Signature::try_from(s.as_slice()).ok())
            .ok_or_else(|| deny("bad signature encoding"))?;
        VerifyingKey::<Sha256>::new(self.public.clone())
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| deny("JWT signature does not verify"))?;
        let claims = signing_input
            .split_once('.')
            .and_then(|(_, c)| URL_SAFE_NO_PAD.decode(c).ok())
            .and_then(|c| serde_json::from_slice::<Value>(&c).ok())
            .ok_or_else(|| deny("bad claims"))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
        let fresh = matches!((iat, exp), (Some(iat), Some(exp)) if iat <= now && exp > now && exp - iat <= 600);
        if claims["iss"] != APP_ID || !fresh {
            return Err(deny(&format!("bad claims {claims}")));
        }
        self.seen.lock().unwrap().verified_jwts += 1;
        Ok(())
    }
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "message": why })),
    )
        .into_response()
}

async fn gh_installation(
    State(gh): State<FakeGithub>,
    UrlPath((owner, repo)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(why) = gh.check_jwt(&headers) {
        return unauthorized(&why);
    }
    if (owner.as_str(), repo.as_str()) != ("acme", "widgets") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "Not Found" })),
        )
            .into_response();
    }
    axum::Json(json!({ "id": 77, "app_id": 31337 })).into_response()
}

async fn gh_access_token(
    State(gh): State<FakeGithub>,
    UrlPath(installation): UrlPath<u64>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if let Err(why) = gh.check_jwt(&headers) {
        return unauthorized(&why);
    }
    assert_eq!(installation, 77);
    gh.seen.lock().unwrap().token_bodies.push(body);
    (
        StatusCode::CREATED,
        axum::Json(json!({ "token": "ghs_loopback", "expires_at": "2030-01-01T00:00:00Z" })),
    )
        .into_response()
}

async fn gh_revoke(State(gh): State<FakeGithub>, headers: HeaderMap) -> StatusCode {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    gh.seen.lock().unwrap().revoked.push(token);
    StatusCode::NO_CONTENT
}

/// A loopback GitHub checking app JWTs against `public`, and a host whose
/// `github-app` (app [`APP_ID`], key [`APP_KEY_PEM`]) talks to it; the
/// temp dirs live as long as the caller keeps them.
async fn github_app_host(
    public: RsaPublicKey,
) -> (
    FakeGithub,
    tempfile::TempDir,
    tempfile::TempDir,
    Arc<PluginHost>,
) {
    let gh = FakeGithub {
        public,
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/repos/{owner}/{repo}/installation", get(gh_installation))
        .route(
            "/app/installations/{id}/access_tokens",
            post(gh_access_token),
        )
        .route("/installation/token", delete(gh_revoke))
        .with_state(gh.clone());
    let addr = serve(app).await;

    let secrets = tempfile::tempdir().unwrap();
    let mut config = config_with_secrets(secrets.path(), &[("GITHUB_APP_KEY", APP_KEY_PEM)]);
    grants(
        &mut config,
        "github-app",
        &["GITHUB_APP_KEY"],
        &["127.0.0.1"],
    );
    plugin_config(
        &mut config,
        "github-app",
        &[
            ("app_id", APP_ID),
            ("private_key_secret", "GITHUB_APP_KEY"),
            ("api_base_url", &format!("http://{addr}")),
        ],
    );
    let (plugins, host) = host_with(config).await;
    (gh, secrets, plugins, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_mints_a_token_from_a_server_that_verifies_its_jwt_and_revokes_it() {
    let public = rsa::RsaPrivateKey::from_pkcs1_pem(APP_KEY_PEM)
        .unwrap()
        .to_public_key();
    let (gh, _secrets, _plugins, host) = github_app_host(public).await;
    let broker = host.broker("github-app").unwrap();

    let credential = broker
        .issue(&grant("GITHUB_TOKEN", Some("acme/widgets")))
        .await
        .unwrap();
    assert_eq!(env_value(&credential, "GITHUB_TOKEN"), Some("ghs_loopback"));
    assert_eq!(env_value(&credential, "GH_TOKEN"), Some("ghs_loopback"));
    assert_eq!(credential.expires_at, Some(1_893_456_000));
    {
        let seen = gh.seen.lock().unwrap();
        assert_eq!(seen.verified_jwts, 2, "both calls carried a valid app JWT");
        assert_eq!(seen.token_bodies, [json!({ "repositories": ["widgets"] })]);
    }

    let handle = credential.revocation_handle.expect("revocable");
    broker.revoke(&handle).await.unwrap();
    assert_eq!(gh.seen.lock().unwrap().revoked, ["ghs_loopback"]);

    // Not installed there: GitHub's 404 is a clear refusal.
    let error = broker
        .issue(&grant("GITHUB_TOKEN", Some("acme/other")))
        .await
        .unwrap_err();
    let (plugin, why) = refused(&error);
    assert_eq!(plugin, "github-app");
    assert!(
        matches!(why, WitError::Denied(m) if m.contains("not installed on acme/other")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_app_with_a_key_github_does_not_know_is_refused() {
    // The server checks signatures against a different key than the one
    // the broker signs with.
    let other = rsa::RsaPrivateKey::from_pkcs1_pem(APP_KEY_PEM).unwrap();
    let wrong = RsaPublicKey::new(
        rsa::BigUint::from(3u32) * rsa::traits::PublicKeyParts::n(&other),
        rsa::BigUint::from(65_537u32),
    )
    .unwrap();
    let (_gh, _secrets, _plugins, host) = github_app_host(wrong).await;
    let error = host
        .broker("github-app")
        .unwrap()
        .issue(&grant("GITHUB_TOKEN", Some("acme/widgets")))
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("github-app") && text.contains("401") && text.contains("does not verify"),
        "{text}"
    );
}

/// A loopback stand-in for a LiteLLM proxy's key management (see the
/// module doc for why not the real one): `POST /key/generate` and
/// `POST /key/delete` with LiteLLM's fields, master-key auth, and the live
/// keys in memory.
#[derive(Clone, Default)]
struct FakeLitellm {
    keys: Arc<Mutex<BTreeMap<String, Value>>>,
}

fn master_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {MASTER_KEY}"))
}

async fn litellm_generate(
    State(gw): State<FakeLitellm>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !master_ok(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({ "error": { "message": "Authentication Error, invalid master key" } }),
            ),
        )
            .into_response();
    }
    let mut keys = gw.keys.lock().unwrap();
    let key = format!("sk-virtual-{}", keys.len() + 1);
    keys.insert(key.clone(), body.clone());
    axum::Json(json!({
        "key": key,
        "expires": "2030-01-01T00:00:00.000000",
        "models": body["models"],
        "max_budget": body["max_budget"],
        "metadata": body["metadata"],
    }))
    .into_response()
}

async fn litellm_delete(
    State(gw): State<FakeLitellm>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !master_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut keys = gw.keys.lock().unwrap();
    let mut deleted = Vec::new();
    for key in body["keys"].as_array().into_iter().flatten() {
        if let Some(key) = key.as_str().filter(|k| keys.remove(*k).is_some()) {
            deleted.push(key.to_owned());
        }
    }
    if deleted.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "detail": "key not found" })),
        )
            .into_response();
    }
    axum::Json(json!({ "deleted_keys": deleted })).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_gateway_litellm_generates_a_narrowed_key_and_deletes_it() {
    let gw = FakeLitellm::default();
    let app = Router::new()
        .route("/key/generate", post(litellm_generate))
        .route("/key/delete", post(litellm_delete))
        .with_state(gw.clone());
    let addr = serve(app).await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_secrets(dir.path(), &[("LITELLM_MASTER_KEY", MASTER_KEY)]);
    grants(
        &mut config,
        "llm-gateway-litellm",
        &["LITELLM_MASTER_KEY"],
        &["127.0.0.1"],
    );
    plugin_config(
        &mut config,
        "llm-gateway-litellm",
        &[
            ("base_url", &format!("http://{addr}")),
            ("gateway_url", "http://gateway.sandbox.internal:4000"),
            ("master_key_secret", "LITELLM_MASTER_KEY"),
            ("default_models", "small,large"),
            ("default_budget_usd", "5"),
            ("default_duration", "8h"),
        ],
    );
    let (_plugins, host) = host_with(config).await;
    let broker = host.broker("llm-gateway-litellm").unwrap();

    let credential = broker
        .issue(&grant(
            "LLM",
            Some(r#"{"models":["small"],"max_budget":1.5}"#),
        ))
        .await
        .unwrap();
    assert_eq!(
        env_value(&credential, "PADDOCK_GATEWAY_KEY"),
        Some("sk-virtual-1")
    );
    assert_eq!(
        env_value(&credential, "PADDOCK_GATEWAY_URL"),
        Some("http://gateway.sandbox.internal:4000")
    );
    assert!(credential.expires_at.is_some());
    let sent = gw.keys.lock().unwrap()["sk-virtual-1"].clone();
    assert_eq!(sent["models"], json!(["small"]));
    assert_eq!(sent["max_budget"], json!(1.5));
    assert_eq!(sent["duration"], "600s", "the grant's TTL beats 8h");
    assert_eq!(
        sent["metadata"],
        json!({ "paddock_session": "sess-1", "owner": "alice" })
    );

    let handle = credential.revocation_handle.expect("revocable");
    broker.revoke(&handle).await.unwrap();
    assert!(gw.keys.lock().unwrap().is_empty(), "the key was deleted");
    broker
        .revoke(&handle)
        .await
        .expect("revoking a deleted key again succeeds");

    let error = broker
        .issue(&grant("LLM", Some(r#"{"models":["huge"]}"#)))
        .await
        .unwrap_err();
    let (plugin, why) = refused(&error);
    assert_eq!(plugin, "llm-gateway-litellm");
    assert!(
        matches!(why, WitError::Denied(m) if m.contains("huge")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_traps_hangs_or_leaves_its_allowlist_fails_that_grant_only() {
    let revoked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = revoked.clone();
    let app = Router::new().route(
        "/revoked/{handle}",
        delete(move |UrlPath(handle): UrlPath<String>| async move {
            seen.lock().unwrap().push(handle);
            StatusCode::NO_CONTENT
        }),
    );
    let addr = serve(app).await;

    let mut config = PluginsConfig {
        max_instances: Some(32),
        ..PluginsConfig::default()
    };
    config.overrides.insert(
        FAULTS.into(),
        LimitsOverride {
            memory_mib: None,
            call_timeout_ms: Some(500),
        },
    );
    grants(&mut config, FAULTS, &[], &["127.0.0.1"]);
    plugin_config(
        &mut config,
        FAULTS,
        &[("record_url", &format!("http://{addr}/revoked"))],
    );
    let (_plugins, host) = host_with(config).await;
    let broker = host.broker(FAULTS).unwrap();
    let still_works = async || {
        let credential = broker.issue(&grant("ok", None)).await.unwrap();
        assert_eq!(env_value(&credential, "FAULTS_TOKEN"), Some("token-sess-1"));
    };

    let error = broker.issue(&grant("trap", None)).await.unwrap_err();
    assert!(
        matches!(&error, PluginError::Trap { plugin, .. } if plugin == FAULTS),
        "{error}"
    );
    still_works().await;

    let error = broker.issue(&grant("hang", None)).await.unwrap_err();
    assert!(
        matches!(&error, PluginError::Deadline { plugin, .. } if plugin == FAULTS),
        "{error}"
    );
    still_works().await;

    // 127.0.0.2 is loopback too, but not on the allowlist.
    let error = broker
        .issue(&grant(
            "offlist",
            Some(&format!("http://127.0.0.2:{}/", addr.port())),
        ))
        .await
        .unwrap_err();
    let (plugin, why) = refused(&error);
    assert_eq!(plugin, FAULTS);
    assert!(
        matches!(why, WitError::Denied(m) if m.contains("127.0.0.2") && m.contains("allow_hosts")),
        "{error}"
    );
    still_works().await;

    let error = broker.issue(&grant("refuse", None)).await.unwrap_err();
    assert!(matches!(refused(&error).1, WitError::Denied(_)), "{error}");

    broker.revoke("handle-sess-1").await.unwrap();
    assert_eq!(*revoked.lock().unwrap(), ["handle-sess-1"]);
    let error = broker.revoke("bad").await.unwrap_err();
    assert!(
        matches!(refused(&error).1, WitError::InvalidInput(_)),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_are_listed_and_an_unknown_one_names_those_loaded() {
    let (_plugins, host) = host_with(PluginsConfig {
        max_instances: Some(32),
        ..PluginsConfig::default()
    })
    .await;
    let mut brokers = host.names(PluginKind::Broker);
    brokers.sort();
    assert_eq!(
        brokers,
        ["env", "github-app", "llm-gateway-litellm", FAULTS]
    );
    let listed = host.list();
    let env = listed.iter().find(|p| p.name == "env").unwrap();
    assert_eq!(env.kind, PluginKind::Broker);
    let manifest = host.get("github-app").unwrap().manifest();
    assert_eq!(manifest["name"], "github-app");

    for name in ["vault", "claude-code"] {
        let error = host.broker(name).unwrap_err();
        let PluginError::UnknownBroker { available, .. } = &error else {
            panic!("{error}");
        };
        assert!(available.contains(&"env".to_owned()), "{error}");
        assert!(error.to_string().contains(name), "{error}");
    }
}
