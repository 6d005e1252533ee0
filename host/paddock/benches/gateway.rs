//! LLM gateway benchmark: what proxying through `/v1/gateway/` adds to a
//! streaming Anthropic Messages request, against calling the same loopback
//! upstream directly. Prints one table; every gateway number comes with the
//! direct baseline measured in the same run, as a ratio (the machine is
//! shared, so ratios mean more than absolute times).
//!
//! ```sh
//! cargo bench -p paddock --bench gateway
//! PADDOCK_BENCH_SAMPLES=2000 PADDOCK_BENCH_CLIENTS=32 PADDOCK_BENCH_STREAM_MB=256 \
//!   cargo bench -p paddock --bench gateway
//! ```
//!
//! The upstream is an axum server in this process that streams a recorded
//! Anthropic SSE answer (message_start, `PADDOCK_BENCH_EVENTS` text deltas,
//! default 200, message_delta, message_stop) one event per chunk, with no
//! delay: what is measured is the proxy's own cost, not a model's pace. The
//! gateway checks a real virtual key with an allowlist and a token budget,
//! reads the usage and stores it, as in production. Upstream, gateway and
//! clients share one two-worker runtime.
//!
//! 1. latency: sequential requests, direct and through the gateway
//!    interleaved; time to first byte (first body chunk) and to last byte,
//!    median and p99, the added time and the ratio;
//! 2. throughput: `PADDOCK_BENCH_CLIENTS` (default 16) concurrent clients
//!    for `PADDOCK_BENCH_SECS` (default 3) each way: requests/s;
//! 3. a large stream (`PADDOCK_BENCH_STREAM_MB`, default 64, in 16 KiB
//!    events): MB/s.
//!
//! `PADDOCK_BENCH_ONE_CHUNK=1` has the upstream send each answer as one
//! chunk instead of one per event, which shows how much of the cost is per
//! event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::routing::post;
use paddock::gateway::{Gateway, GatewayConfig, KeyLimits, LimitsConfig, Upstream, Wire};
use serde::Deserialize;

const KEY_ENV: &str = "PADDOCK_BENCH_GATEWAY_KEY";
const REAL_KEY: &str = "sk-ant-bench-real-key";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var(KEY_ENV, REAL_KEY) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

/// One way to reach the upstream: its URL and the key it is sent with.
#[derive(Clone)]
struct Route {
    url: String,
    key: String,
}

async fn run() -> anyhow::Result<()> {
    let samples = env("PADDOCK_BENCH_SAMPLES", 500);
    let events = env("PADDOCK_BENCH_EVENTS", 200);
    let clients = env("PADDOCK_BENCH_CLIENTS", 16);
    let secs = env("PADDOCK_BENCH_SECS", 3) as u64;
    let stream_mb = env("PADDOCK_BENCH_STREAM_MB", 64);

    let mut answer = anthropic_stream(events, 0);
    if env("PADDOCK_BENCH_ONE_CHUNK", 0) == 1 {
        answer = vec![Bytes::from(answer.concat())];
    }
    let answer = Arc::new(answer);
    let answer_bytes: usize = answer.iter().map(Bytes::len).sum();
    let answer_chunks = answer.len();
    let upstream = serve(upstream(answer)).await?;

    let dir = tempfile::tempdir()?;
    let mut config = GatewayConfig {
        limits: LimitsConfig {
            models: vec!["claude-sonnet-*".into()],
            budget_tokens: Some(u64::MAX / 2),
            budget_usd: None,
        },
        ..GatewayConfig::default()
    };
    config.upstreams.anthropic = Some(Upstream {
        base_url: upstream.clone(),
        api_key_env: KEY_ENV.into(),
    });
    let gateway = Gateway::open(config, dir.path())?;
    let gateway_url = serve(gateway.router()).await?;
    gateway.set_public_url(&gateway_url);
    let key: KeyLimits = gateway.default_limits(0);
    let key = gateway.mint("bench", "bench", key)?.key;
    let direct = Route {
        url: format!("{upstream}/v1/messages"),
        key: REAL_KEY.into(),
    };
    let proxied = Route {
        url: format!("{}/v1/messages", gateway.base_url(Wire::Anthropic)),
        key,
    };
    let http = reqwest::Client::new();

    println!(
        "gateway benchmark: Anthropic SSE answer of {} events ({answer_bytes} bytes) in {} chunks, loopback upstream\n",
        events + 4,
        answer_chunks
    );
    // Warm both paths (connections, allocators).
    for _ in 0..50 {
        request(&http, &direct, None).await?;
        request(&http, &proxied, None).await?;
    }

    // 1. Latency, interleaved.
    let (mut d_first, mut d_last, mut g_first, mut g_last) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        let (first, last) = request(&http, &direct, None).await?;
        d_first.push(first);
        d_last.push(last);
        let (first, last) = request(&http, &proxied, None).await?;
        g_first.push(first);
        g_last.push(last);
    }
    println!("1. latency per streaming request ({samples} sequential samples each way)");
    println!(
        "   {:<26} {:>10} {:>10} {:>10} {:>8}",
        "", "direct", "gateway", "added", "ratio"
    );
    for (name, direct, proxied) in [
        ("time to first byte", &mut d_first, &mut g_first),
        ("time to last byte", &mut d_last, &mut g_last),
    ] {
        for (label, q) in [("p50", 0.50), ("p99", 0.99)] {
            let (d, g) = (percentile(direct, q), percentile(proxied, q));
            println!(
                "   {:<26} {:>10} {:>10} {:>10} {:>7.2}x",
                format!("{name} {label}"),
                fmt(d),
                fmt(g),
                fmt(g.saturating_sub(d)),
                g.as_secs_f64() / d.as_secs_f64()
            );
        }
    }

    // 2. Throughput with concurrent clients.
    let d_rate = throughput(&direct, clients, secs).await?;
    let g_rate = throughput(&proxied, clients, secs).await?;
    println!("\n2. throughput, {clients} concurrent clients for {secs} s each way");
    println!(
        "   requests/s                 {:>10.0} {:>10.0} {:>10} {:>7.2}x",
        d_rate,
        g_rate,
        "",
        g_rate / d_rate
    );

    // 3. One large stream.
    let mb = |d: Duration| (stream_mb as f64) / d.as_secs_f64();
    let (mut d_big, mut g_big) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        d_big.push(request(&http, &direct, Some(stream_mb)).await?.1);
        g_big.push(request(&http, &proxied, Some(stream_mb)).await?.1);
    }
    let (d_big, g_big) = (percentile(&mut d_big, 0.5), percentile(&mut g_big, 0.5));
    println!("\n3. one {stream_mb} MB stream (median of 3)");
    println!(
        "   MB/s                       {:>10.0} {:>10.0} {:>10} {:>7.2}x",
        mb(d_big),
        mb(g_big),
        "",
        mb(g_big) / mb(d_big)
    );

    gateway.flush()?;
    let usage = gateway.usage("bench").unwrap_or_default();
    println!(
        "\n(ratio = gateway / direct; the gateway recorded {} requests, {} tokens)",
        usage.total.requests,
        usage.total.tokens()
    );
    Ok(())
}

/// The events of an Anthropic streaming answer: `deltas` text deltas of a
/// few words, or with `pad` > 0 deltas of `pad` bytes.
fn anthropic_stream(deltas: usize, pad: usize) -> Vec<Bytes> {
    let mut events = vec![Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":1200,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":30000,\"output_tokens\":1}}}\n\n",
    ), Bytes::from_static(
        b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    )];
    let text = if pad > 0 {
        "x".repeat(pad)
    } else {
        "the quick brown fox ".to_owned()
    };
    let delta = Bytes::from(format!(
        "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
    ));
    events.extend(std::iter::repeat_n(delta, deltas));
    events.push(Bytes::from(format!(
        "event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{}}}}}\n\n",
        deltas * 5
    )));
    events.push(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ));
    events
}

#[derive(Deserialize)]
struct Size {
    mb: Option<usize>,
}

/// The scripted upstream: the answer one event per chunk, or `?mb=N` of
/// 16 KiB deltas.
fn upstream(answer: Arc<Vec<Bytes>>) -> Router {
    Router::new().route(
        "/v1/messages",
        post(move |Query(size): Query<Size>| {
            let answer = answer.clone();
            async move {
                let events = match size.mb {
                    Some(mb) => anthropic_stream((mb << 20) / (16 << 10), 16 << 10),
                    None => answer.as_ref().clone(),
                };
                let chunks = events.into_iter().map(Ok::<_, std::io::Error>);
                (
                    [("content-type", "text/event-stream")],
                    Body::from_stream(futures_util::stream::iter(chunks)),
                )
            }
        }),
    )
}

/// Serves `router` on loopback with TCP_NODELAY, as `paddock serve` does
/// (without it a client's delayed ACK holds small SSE writes back 40 ms).
async fn serve(router: Router) -> anyhow::Result<String> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(format!("http://{addr}"))
}

const BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Write a story."}]}"#;

/// One streaming request read to its end: time to the first body chunk and
/// to the last.
async fn request(
    http: &reqwest::Client,
    route: &Route,
    mb: Option<usize>,
) -> anyhow::Result<(Duration, Duration)> {
    let url = match mb {
        Some(mb) => format!("{}?mb={mb}", route.url),
        None => route.url.clone(),
    };
    let started = Instant::now();
    let mut response = http
        .post(url)
        .header("x-api-key", &route.key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(BODY)
        .send()
        .await?
        .error_for_status()?;
    let mut first = None;
    while let Some(_chunk) = response.chunk().await? {
        first.get_or_insert_with(|| started.elapsed());
    }
    let last = started.elapsed();
    Ok((first.unwrap_or(last), last))
}

/// Requests per second of `clients` clients looping for `secs`.
async fn throughput(route: &Route, clients: usize, secs: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let route = route.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut done = 0u64;
            while Instant::now() < deadline {
                request(&http, &route, None).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(at).copied().unwrap_or_default()
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}
