//! `paddock serve`: the host process.
//!
//! Starts the plugin host, the sandbox provider and the sessions (re-adopting
//! what a previous process left running), then serves the HTTP API until
//! Ctrl-C or SIGTERM. Shutdown stops accepting, ends open event streams with
//! a `shutdown` event, and leaves sandboxes and their execs running for the
//! next start to re-adopt.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;

use crate::api::{self, AppState, Tokens};
use crate::config::Config;
use crate::config::PROVIDER_KINDS;
use crate::gateway::{Gateway, Wire};
use crate::link::connections::Connections;
use crate::link::tunnel::Tunnel;
use crate::link::{Dispatcher, LinkRegistry, MemoryRegistry};
use crate::plugin::PluginKind;
use crate::plugin::{PluginHost, watch};
use crate::provider::Providers;
use crate::provider::desktop::UserDesktopProvider;
use crate::provider::plugin::{EngineRuntime, PluginProvider};
use crate::provider::{
    ClusterProvider, DockerProvider, LocalProcessConfig, LocalProcessProvider, SandboxProvider,
};
use crate::secrets::{AuditLog, Secrets};
use crate::session::Sessions;
use crate::session::store::Store;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address of the HTTP API (default 127.0.0.1:8420, `PADDOCK_LISTEN`).
    #[arg(long)]
    pub listen: Option<String>,
}

/// The owner of the token generated when none is configured.
const GENERATED_OWNER: &str = "admin";

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(listen) = args.listen {
        config.server.listen = Some(listen);
    }
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let tokens = api_tokens(&config, &data_dir)?;
    // Provider keys stay on the host: sandboxes get session keys for this.
    // Opened first, so a missing key variable fails the start at once.
    let gateway =
        Gateway::open(config.gateway.clone(), &data_dir).context("opening the LLM gateway")?;
    let plugins = PluginHost::new(
        &config.plugins,
        Some(config.plugins_dir()),
        &data_dir.join("cache"),
    )
    .await?;
    for p in plugins.list() {
        tracing::info!(plugin = %p.name, kind = %p.kind, version = %p.version, source = %p.source, "plugin available");
    }
    let _watch = watch(plugins.clone());

    let provider = provider(&config, &data_dir, &plugins).await?;
    let store = Store::open(data_dir.join("sessions"))
        .with_context(|| format!("opening {}", data_dir.join("sessions").display()))?;
    let sweep_every = Duration::from_millis(config.sessions.sweep_interval_ms);
    // Sessions on users' desktops, through their links.
    let link_ttl = Duration::from_secs(config.links.ttl_secs);
    let links: Arc<dyn LinkRegistry> = Arc::new(MemoryRegistry::new(link_ttl));
    let connections = Connections::new();
    let tunnel = Tunnel::start(connections.clone(), links.clone())
        .await
        .context("starting the link tunnel")?;
    let desktop = UserDesktopProvider::new(links.clone(), connections.clone(), tunnel);
    let dispatcher = Arc::new(Dispatcher::new(
        links,
        plugins.clone(),
        config.provider_kind(),
    ));
    let providers = Providers::new(provider).with(Arc::new(desktop));
    let audit_path = data_dir.join("audit.db");
    let audit = AuditLog::open(&audit_path)
        .with_context(|| format!("opening the audit log {}", audit_path.display()))?;
    let secrets = Arc::new(Secrets::new(config.secrets.clone(), plugins.clone(), audit));
    let sessions = Sessions::open(
        config.sessions.clone(),
        providers,
        plugins,
        secrets.clone(),
        Some(gateway.clone()),
        store,
    )
    .await
    .context("re-adopting sessions")?;
    let sweeper = tokio::spawn(sweep(sessions.clone(), sweep_every));

    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (router, _) = api::router(AppState {
        dispatcher,
        connections,
        link_direct: config.links.allow_direct,
        link_ttl,
        sessions,
        secrets,
        operators: Arc::new(operators(&config, &tokens)),
        tokens: Arc::new(Tokens::new(&tokens)),
        shutdown: stopping,
    });
    let listener = tokio::net::TcpListener::bind(config.listen())
        .await
        .with_context(|| format!("listening on {}", config.listen()))?;
    let addr = listener.local_addr()?;
    gateway.set_public_url(&format!("http://{addr}"));
    let serves_any = [Wire::Anthropic, Wire::OpenAi]
        .into_iter()
        .any(|w| gateway.serves(w));
    if serves_any && config.gateway.public_url.is_none() && config.runtime_kind() != "local-process"
    {
        // Containers and pods do not reach the host's loopback address.
        tracing::warn!(
            runtime = config.runtime_kind(),
            url = %format!("http://{addr}"),
            "[gateway] public_url is not set: sandboxes are told to reach the LLM gateway at the listen address, which {} sandboxes usually cannot; set it to an address they reach",
            config.runtime_kind()
        );
    }
    let router = router.merge(gateway.router());
    let stop_signal = shutdown_signal()?;
    // One machine-readable line on stdout, for scripts and tests.
    println!(
        "{}",
        serde_json::json!({ "listening": format!("http://{addr}"), "pid": std::process::id() })
    );
    std::io::stdout().flush().ok();
    tracing::info!(%addr, data_dir = %data_dir.display(), plugins_dir = %config.plugins_dir().display(), "paddock is serving; Ctrl-C stops it");
    // Without TCP_NODELAY a client's delayed ACK held each SSE event back
    // by 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            stop_signal.await;
            tracing::info!("shutting down: no new requests; open streams get a shutdown event");
            stop.send_replace(true);
        })
        .await
        .context("serving the API")?;
    sweeper.abort();
    if let Err(err) = gateway.flush() {
        tracing::warn!(error = %err, "cannot store the gateway's usage");
    }
    tracing::info!("stopped; sandboxes keep running and are re-adopted at the next start");
    Ok(ExitCode::SUCCESS)
}

/// The configured provider: a built-in engine, or a provider plugin
/// launching on one.
async fn provider(
    config: &Config,
    data_dir: &Path,
    plugins: &Arc<PluginHost>,
) -> anyhow::Result<Arc<dyn SandboxProvider>> {
    let engine = engine(config.runtime_kind(), config, data_dir).await?;
    let kind = config.provider_kind();
    if PROVIDER_KINDS.contains(&kind) {
        return Ok(engine);
    }
    let loaded = plugins.names(PluginKind::Provider);
    if !loaded.iter().any(|name| name == kind) {
        anyhow::bail!(
            "sandbox provider {kind:?} is neither built in ({}) nor a loaded provider plugin ({})",
            PROVIDER_KINDS.join(", "),
            if loaded.is_empty() {
                "none loaded".to_owned()
            } else {
                loaded.join(", ")
            }
        );
    }
    let runtime = EngineRuntime::new(engine);
    plugins.set_container_runtime(runtime.clone());
    tracing::info!(
        provider = kind,
        runtime = runtime.kind(),
        "sandboxes come from a provider plugin"
    );
    Ok(Arc::new(PluginProvider::new(
        kind,
        plugins.clone(),
        runtime,
    )))
}

/// The built-in engine `kind`.
async fn engine(
    kind: &str,
    config: &Config,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn SandboxProvider>> {
    match kind {
        "local-process" => {
            let mut local = LocalProcessConfig::new(data_dir.join("sandboxes"));
            if let Some(path) = &config.sandbox.runnerd {
                local.runnerd = path.clone();
            }
            local.bwrap = config.bwrap_mode()?;
            Ok(Arc::new(LocalProcessProvider::new(local)?))
        }
        "local-docker" => Ok(Arc::new(
            DockerProvider::connect(config.sandbox.docker.clone()).await?,
        )),
        "cluster" => Ok(Arc::new(
            ClusterProvider::new(config.sandbox.cluster.clone()).await?,
        )),
        other => anyhow::bail!("sandbox provider {other:?} is not built into this host"),
    }
}

/// Runs the TTL and idle sweeps forever.
async fn sweep(sessions: Arc<Sessions>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sessions.sweep().await;
    }
}

/// The configured tokens, or with none a generated one for owner `admin`,
/// kept in `<data_dir>/api-token` (mode 0600) across restarts.
fn api_tokens(config: &Config, data_dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    if !config.auth.tokens.is_empty() {
        return Ok(config.auth.tokens.clone());
    }
    let path = data_dir.join("api-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to generate a new token",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 24];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            let token = format!("pdk_{}", hex::encode(bytes));
            write_private(&path, &token)
                .with_context(|| format!("storing the API token in {}", path.display()))?;
            token
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    eprintln!(
        "No API tokens are configured; owner `{GENERATED_OWNER}` uses the token in {}:\n  curl -H \"Authorization: Bearer $(cat {})\" http://{}/v1/sessions",
        path.display(),
        path.display(),
        config.listen()
    );
    Ok(BTreeMap::from([(GENERATED_OWNER.to_owned(), token)]))
}

/// `[auth] operators`, plus the generated `admin` when it is the only owner.
fn operators(config: &Config, tokens: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut operators: BTreeSet<String> = config.auth.operators.iter().cloned().collect();
    if config.auth.tokens.is_empty() && tokens.contains_key(GENERATED_OWNER) {
        operators.insert(GENERATED_OWNER.to_owned());
    }
    operators
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Resolves on Ctrl-C or SIGTERM.
/// SIGINT or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives right after a
/// process said it is ready is not lost (it would kill the process).
pub(crate) fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
