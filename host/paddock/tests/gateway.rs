//! The LLM gateway over real HTTP on loopback: its router on a listener of
//! its own (no full host needed), in front of a scripted upstream.
//!
//! The upstream is an axum server in this file that answers like the
//! providers do (recorded Anthropic Messages, OpenAI Responses and Chat
//! Completions streams, split into small chunks), because the real providers
//! are not reachable from the machines the tests run on. It records every
//! request it gets, so the tests can check what left the host.

use std::sync::{Arc, Mutex, Once};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{StreamExt, stream};
use paddock::gateway::{Gateway, GatewayConfig, KeyLimits, LimitsConfig, Upstream, Wire};
use serde_json::{Value, json};

const ANTHROPIC_KEY_ENV: &str = "PADDOCK_TEST_GATEWAY_ANTHROPIC_KEY";
const OPENAI_KEY_ENV: &str = "PADDOCK_TEST_GATEWAY_OPENAI_KEY";
const ANTHROPIC_KEY: &str = "sk-ant-real-0123456789";
const OPENAI_KEY: &str = "sk-openai-real-0123456789";

fn real_keys() {
    static ONCE: Once = Once::new();
    // SAFETY: set once, before any gateway of this binary reads them; the
    // variables are unique to this test binary.
    ONCE.call_once(|| unsafe {
        std::env::set_var(ANTHROPIC_KEY_ENV, ANTHROPIC_KEY);
        std::env::set_var(OPENAI_KEY_ENV, OPENAI_KEY);
    });
}

const ANTHROPIC_SSE: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":7,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

const RESPONSES_SSE: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"usage\":{\"input_tokens\":300,\"input_tokens_details\":{\"cached_tokens\":200},\"output_tokens\":50,\"output_tokens_details\":{\"reasoning_tokens\":20},\"total_tokens\":350}}}\n\n",
);

const CHAT_SSE: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n";
const CHAT_USAGE_SSE: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":9,\"total_tokens\":49,\"prompt_tokens_details\":{\"cached_tokens\":32}}}\n\n";

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Scripted {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Holds a paced answer (`x-test-paced`) after its first event.
    gate: Arc<tokio::sync::Notify>,
}

impl Scripted {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// `text` as an SSE response in 7-byte chunks, so events arrive split.
fn sse(text: String) -> Response {
    let chunks: Vec<Result<Bytes, std::io::Error>> = text
        .into_bytes()
        .chunks(7)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream::iter(chunks)),
    )
        .into_response()
}

async fn answer(State(scripted): State<Scripted>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap();
    let path = parts.uri.path().to_owned();
    let paced = parts.headers.contains_key("x-test-paced");
    scripted.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: body.clone(),
    });
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if paced {
        // The first event, then the rest only once the client has it.
        let split = ANTHROPIC_SSE.find("\n\n").unwrap() + 2;
        let gate = scripted.gate.clone();
        let first = stream::once(async move {
            Ok::<_, std::io::Error>(Bytes::from_static(&ANTHROPIC_SSE.as_bytes()[..split]))
        });
        let rest = stream::once(async move {
            gate.notified().await;
            Ok(Bytes::from_static(&ANTHROPIC_SSE.as_bytes()[split..]))
        });
        return (
            [(header::CONTENT_TYPE, "text/event-stream")],
            Body::from_stream(first.chain(rest)),
        )
            .into_response();
    }
    match path.as_str() {
        "/v1/messages" if request["stream"] == true => sse(ANTHROPIC_SSE.to_owned()),
        "/v1/messages" => axum::Json(json!({
            "id": "msg_2", "type": "message", "role": "assistant", "content": [],
            "usage": { "input_tokens": 3, "output_tokens": 4 }
        }))
        .into_response(),
        "/v1/messages/count_tokens" => axum::Json(json!({ "input_tokens": 42 })).into_response(),
        "/v1/responses" => sse(RESPONSES_SSE.to_owned()),
        "/v1/chat/completions" => {
            let mut text = CHAT_SSE.to_owned();
            // As OpenAI: the usage chunk only when asked for.
            if request["stream_options"]["include_usage"] == true {
                text.push_str(CHAT_USAGE_SSE);
            }
            text.push_str("data: [DONE]\n\n");
            sse(text)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn model_list() -> axum::Json<Value> {
    axum::Json(json!({
        "object": "list",
        "data": [
            { "id": "gpt-5", "object": "model" },
            { "id": "gpt-5-mini", "object": "model" },
            { "id": "o3", "object": "model" },
        ]
    }))
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn scripted_upstream() -> (String, Scripted) {
    let scripted = Scripted::default();
    let router = Router::new()
        .route("/v1/models", get(model_list))
        .route("/v1/{*rest}", post(answer))
        .with_state(scripted.clone());
    (serve(router).await, scripted)
}

struct Harness {
    gateway: Arc<Gateway>,
    upstream: Scripted,
    upstream_url: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

fn config(upstream_url: &str, limits: LimitsConfig) -> GatewayConfig {
    let mut config = GatewayConfig {
        limits,
        ..GatewayConfig::default()
    };
    config.upstreams.anthropic = Some(Upstream {
        base_url: upstream_url.to_owned(),
        api_key_env: ANTHROPIC_KEY_ENV.to_owned(),
    });
    config.upstreams.openai = Some(Upstream {
        base_url: format!("{upstream_url}/"),
        api_key_env: OPENAI_KEY_ENV.to_owned(),
    });
    config
}

/// A gateway in front of a fresh scripted upstream.
async fn harness(limits: LimitsConfig) -> Harness {
    real_keys();
    let (upstream_url, upstream) = scripted_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Gateway::open(config(&upstream_url, limits), dir.path()).unwrap();
    let url = serve(gateway.router()).await;
    gateway.set_public_url(&url);
    Harness {
        gateway,
        upstream,
        upstream_url,
        dir,
        http: reqwest::Client::new(),
    }
}

impl Harness {
    fn mint(&self, session: &str) -> String {
        self.gateway
            .mint(session, "alice", self.gateway.default_limits(0))
            .unwrap()
            .key
    }

    /// Anthropic style: `x-api-key`.
    async fn messages(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!(
                "{}/v1/messages?beta=true",
                self.gateway.base_url(Wire::Anthropic)
            ))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "prompt-caching-2024-07-31")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A whole Anthropic exchange: its status once the body has been read
    /// (usage is recorded as the body ends).
    async fn exchange(&self, key: &str, body: Value) -> StatusCode {
        let response = self.messages(key, body).await;
        let status = response.status();
        response.bytes().await.unwrap();
        status
    }

    /// An OpenAI Responses request for `gpt-5`.
    async fn responses(&self, key: &str, stream: bool) -> reqwest::Response {
        let body = json!({ "model": "gpt-5", "stream": stream, "input": "hi" });
        self.openai(key, "/responses", body).await
    }

    /// OpenAI style: `Authorization: Bearer`.
    async fn openai(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.gateway.base_url(Wire::OpenAi)))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn sonnet(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{ "role": "user", "content": "hello" }],
    })
}

fn limits(models: &[&str], budget_tokens: Option<u64>) -> LimitsConfig {
    LimitsConfig {
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        budget_tokens,
        budget_usd: None,
    }
}

/// Every header value and the body, as text, for "does it appear" checks.
fn everything(headers: &HeaderMap, body: &[u8]) -> String {
    let mut all: String = headers
        .iter()
        .map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes())))
        .collect();
    all.push_str(&String::from_utf8_lossy(body));
    all
}

#[tokio::test]
async fn an_anthropic_stream_is_proxied_byte_exact_with_only_the_real_key_upstream() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    let response = h.messages(&key, sonnet(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    assert_eq!(body, ANTHROPIC_SSE.as_bytes());
    // The client never sees the real key.
    assert!(!everything(&headers, &body).contains(ANTHROPIC_KEY));

    let usage = h.gateway.usage("s1").unwrap();
    let total = &usage.total;
    assert_eq!(
        (
            total.requests,
            total.input_tokens,
            total.output_tokens,
            total.cache_read_tokens,
            total.cache_write_tokens
        ),
        (1, 25, 15, 100, 7)
    );
    assert_eq!(usage.models["claude-sonnet-4-5"], *total);

    let seen = h.upstream.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.query.as_deref(), Some("beta=true"));
    assert_eq!(seen.headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["anthropic-beta"], "prompt-caching-2024-07-31");
    assert!(seen.headers.get(header::AUTHORIZATION).is_none());
    assert_ne!(
        seen.headers[header::HOST],
        h.gateway.base_url(Wire::Anthropic)["http://".len()..]
            .split('/')
            .next()
            .unwrap()
    );
    assert!(!everything(&seen.headers, &seen.body).contains(&key));
    assert_eq!(
        serde_json::from_slice::<Value>(&seen.body).unwrap(),
        sonnet(true)
    );
}

#[tokio::test]
async fn events_are_passed_on_as_they_come_not_buffered() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    let mut response = h
        .http
        .post(format!(
            "{}/v1/messages",
            h.gateway.base_url(Wire::Anthropic)
        ))
        .header("x-api-key", &key)
        .header("x-test-paced", "1")
        .json(&sonnet(true))
        .send()
        .await
        .unwrap();
    // The upstream sends the rest only after the client got the first event.
    let mut got = Vec::new();
    while !got.ends_with(b"\n\n") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), response.chunk())
            .await
            .expect("the first event was held back")
            .unwrap()
            .unwrap();
        got.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("event: message_start"));
    h.upstream.gate.notify_one();
    while let Some(chunk) = response.chunk().await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, ANTHROPIC_SSE.as_bytes());
    assert_eq!(h.gateway.usage("s1").unwrap().total.output_tokens, 15);
}

#[tokio::test]
async fn openai_requests_carry_the_real_key_as_bearer_and_never_the_virtual_one() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    let response = h.responses(&key, true).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    assert_eq!(body, RESPONSES_SSE.as_bytes());
    assert!(!everything(&headers, &body).contains(OPENAI_KEY));
    let seen = &h.upstream.seen()[0];
    assert_eq!(seen.path, "/v1/responses");
    assert_eq!(
        seen.headers[header::AUTHORIZATION],
        format!("Bearer {OPENAI_KEY}").as_str()
    );
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(!everything(&seen.headers, &seen.body).contains(&key));
}

#[tokio::test]
async fn a_model_off_the_list_is_refused_provider_style_and_never_forwarded() {
    let h = harness(limits(&["claude-sonnet-*", "gpt-5"], None)).await;
    let key = h.mint("s1");
    let mut body = sonnet(true);
    body["model"] = json!("claude-opus-4-1");
    let response = h.messages(&key, body).await;
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "permission_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("claude-opus-4-1") && message.contains("claude-sonnet-*"),
        "{message}"
    );

    let response = h
        .openai(
            &key,
            "/chat/completions",
            json!({ "model": "gpt-4o", "messages": [] }),
        )
        .await;
    assert_eq!(response.status(), 403);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_allowed");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o")
    );

    assert!(h.upstream.seen().is_empty());
    assert_eq!(h.gateway.usage("s1").unwrap().total.requests, 0);
}

#[tokio::test]
async fn a_spent_budget_refuses_the_next_request_provider_style() {
    // The first answer uses 147 tokens: it crosses the budget and completes.
    let h = harness(limits(&[], Some(100))).await;
    let key = h.mint("s1");
    assert_eq!(h.exchange(&key, sonnet(true)).await, 200);

    let response = h.messages(&key, sonnet(true)).await;
    assert_eq!(response.status(), 402);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "billing_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("147 of its 100 tokens")
    );

    let response = h.responses(&key, false).await;
    assert_eq!(response.status(), 402);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "insufficient_quota");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Quota exceeded")
    );
    assert_eq!(h.upstream.seen().len(), 1);

    // Counting tokens uses none, so it is not refused.
    let response = h
        .http
        .post(format!(
            "{}/v1/messages/count_tokens",
            h.gateway.base_url(Wire::Anthropic)
        ))
        .header("x-api-key", &key)
        .json(&sonnet(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.gateway.usage("s1").unwrap().total.requests, 1);
}

#[tokio::test]
async fn revoked_unknown_and_missing_keys_get_401() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    assert_eq!(h.exchange(&key, sonnet(false)).await, 200);
    h.gateway.revoke("s1").unwrap();
    h.gateway.revoke("s1").unwrap();

    for key in [key.as_str(), "pdk-gw-unknown", ""] {
        let response = h.messages(key, sonnet(false)).await;
        assert_eq!(response.status(), 401, "{key:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "authentication_error");
    }
    let response = h.responses(&key, false).await;
    assert_eq!(response.status(), 401);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_api_key");
    assert_eq!(h.upstream.seen().len(), 1);
}

#[tokio::test]
async fn openai_responses_and_chat_streams_record_usage() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    let response = h.responses(&key, true).await;
    assert_eq!(response.bytes().await.unwrap(), RESPONSES_SSE.as_bytes());
    let gpt5 = h.gateway.usage("s1").unwrap().models["gpt-5"].clone();
    assert_eq!(
        (
            gpt5.input_tokens,
            gpt5.cache_read_tokens,
            gpt5.output_tokens,
            gpt5.reasoning_tokens
        ),
        (100, 200, 50, 20)
    );

    let request = json!({
        "model": "gpt-4.1",
        "stream": true,
        "messages": [{ "role": "user", "content": "hi" }],
    });
    let response = h.openai(&key, "/chat/completions", request).await;
    let body = response.text().await.unwrap();
    assert!(body.contains("\"prompt_tokens\":40"), "{body}");
    let seen: Value = serde_json::from_slice(&h.upstream.seen()[1].body).unwrap();
    assert_eq!(seen["stream_options"]["include_usage"], true);
    assert_eq!(seen["messages"][0]["content"], "hi");
    let usage = h.gateway.usage("s1").unwrap();
    let chat = &usage.models["gpt-4.1"];
    assert_eq!(
        (
            chat.input_tokens,
            chat.cache_read_tokens,
            chat.output_tokens
        ),
        (8, 32, 9)
    );
    assert_eq!(usage.total.requests, 2);
}

#[tokio::test]
async fn keys_and_usage_survive_reopening_the_store() {
    let h = harness(limits(&["claude-*"], Some(1_000))).await;
    let key = h.mint("s1");
    assert_eq!(h.exchange(&key, sonnet(true)).await, 200);
    h.gateway.flush().unwrap();
    let before = h.gateway.usage("s1").unwrap();

    let reopened = Gateway::open(
        config(&h.upstream_url, LimitsConfig::default()),
        h.dir.path(),
    )
    .unwrap();
    assert_eq!(reopened.usage("s1").unwrap(), before);
    let url = serve(reopened.router()).await;
    let response = h
        .http
        .post(format!("{url}/v1/gateway/anthropic/v1/messages"))
        .header("x-api-key", &key)
        .json(&sonnet(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    assert_eq!(reopened.usage("s1").unwrap().total.requests, 2);
    // The limits came back with the key.
    let mint = reopened.mint("s1", "alice", KeyLimits::default()).unwrap();
    assert_eq!(mint.limits.models, vec!["claude-*".to_owned()]);
    assert_eq!(mint.limits.budget_tokens, Some(1_000));
}

#[tokio::test]
async fn an_unconfigured_wire_is_503_and_an_unreachable_upstream_502() {
    real_keys();
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then closed.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut config = config(&closed, LimitsConfig::default());
    config.upstreams.openai = None;
    let gateway = Gateway::open(config, dir.path()).unwrap();
    assert!(gateway.serves(Wire::Anthropic) && !gateway.serves(Wire::OpenAi));
    let url = serve(gateway.router()).await;
    gateway.set_public_url(&url);
    let key = gateway
        .mint("s1", "alice", KeyLimits::default())
        .unwrap()
        .key;
    let http = reqwest::Client::new();

    let response = http
        .post(format!("{}/responses", gateway.base_url(Wire::OpenAi)))
        .bearer_auth(&key)
        .json(&json!({ "model": "gpt-5" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[gateway.upstreams.openai]")
    );

    let response = http
        .post(format!("{}/v1/messages", gateway.base_url(Wire::Anthropic)))
        .header("x-api-key", &key)
        .json(&sonnet(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "api_error");
}

#[tokio::test]
async fn an_unset_key_variable_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GatewayConfig::default();
    config.upstreams.anthropic = Some(Upstream {
        base_url: "https://api.anthropic.com".into(),
        api_key_env: "PADDOCK_TEST_GATEWAY_NEVER_SET".into(),
    });
    let err = Gateway::open(config, dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("PADDOCK_TEST_GATEWAY_NEVER_SET"),
        "{err}"
    );
}

#[tokio::test]
async fn the_body_cap_is_exact() {
    let h = harness(LimitsConfig::default()).await;
    let key = h.mint("s1");
    const CAP: usize = 32 << 20;
    let frame = br#"{"model":"claude-sonnet-4-5","pad":""}"#.len();
    let body = |len: usize| {
        format!(
            r#"{{"model":"claude-sonnet-4-5","pad":"{}"}}"#,
            "x".repeat(len - frame)
        )
    };
    let post = |text: String| {
        h.http
            .post(format!(
                "{}/v1/messages",
                h.gateway.base_url(Wire::Anthropic)
            ))
            .header("x-api-key", &key)
            .header(header::CONTENT_TYPE, "application/json")
            .body(text)
            .send()
    };
    let response = post(body(CAP + 1)).await.unwrap();
    assert_eq!(response.status(), 413);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "request_too_large");
    assert_eq!(post(body(CAP)).await.unwrap().status(), 200);
    assert_eq!(h.upstream.seen()[0].body.len(), CAP);
}

#[tokio::test]
async fn the_model_list_is_cut_to_the_allowlist() {
    let h = harness(limits(&["gpt-5*"], None)).await;
    let key = h.mint("s1");
    let list: Value = h
        .http
        .get(format!("{}/models", h.gateway.base_url(Wire::OpenAi)))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gpt-5", "gpt-5-mini"]);
    assert_eq!(
        h.upstream.seen().len(),
        0,
        "GET /v1/models is not a recorded POST"
    );
}
