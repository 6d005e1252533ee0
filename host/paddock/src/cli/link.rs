//! `paddock link`: the daemon a user runs on their desktop. It registers
//! with the host (the user's API token), heartbeats with the link secret it
//! got back (`X-Link-Secret`, never `Authorization`), reports which agent
//! CLIs and sandboxing the desktop has, and deregisters on SIGINT/SIGTERM.
//!
//! The secret lives only in this process's memory; there is no fallback
//! secret. If the host forgets the link (it restarted), the daemon
//! registers again.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::process::Command;

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::link::desktop::DesktopSide;
use crate::link::{AgentCli, Capabilities};
use crate::plugin::{PluginHost, PluginKind};
use crate::provider::{LocalProcessConfig, LocalProcessProvider};

/// The longest a CLI's `--version` may take during the probe.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Capabilities are probed again this often (a CLI installed meanwhile).
const REPROBE_EVERY: Duration = Duration::from_secs(60);
/// The longest wait between two tries when the host does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct LinkArgs {
    /// The host's base URL, e.g. `https://paddock.example.com`.
    #[arg(long, env = "PADDOCK_HOST")]
    pub host: String,
    /// The user's API token.
    #[arg(long, env = "PADDOCK_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Serve the control API on this address for the host to call
    /// (LANs, tests) instead of dialing the host; the host must allow it
    /// (`links.allow_direct`).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// No `Debug`: it holds the link secret, which must never reach a log.
#[derive(Deserialize)]
struct Registered {
    link_id: String,
    link_secret: String,
    heartbeat_interval_secs: u64,
}

/// One registration with the host.
struct Registration {
    id: String,
    secret: String,
    every: Duration,
}

struct Daemon {
    http: reqwest::Client,
    host: String,
    token: String,
    binaries: Vec<String>,
    /// Where the host calls this link (`--listen`); None: it dials in.
    endpoint: Option<String>,
}

pub async fn run(config: Config, args: LinkArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    // The CLIs to look for are the ones the adapters (built-in and in the
    // plugins directory) declare.
    let plugins = PluginHost::new(
        &config.plugins,
        Some(config.plugins_dir()),
        &data_dir.join("cache"),
    )
    .await?;
    let mut binaries: Vec<String> = plugins
        .names(PluginKind::Agent)
        .iter()
        .filter_map(|name| plugins.agent(name).ok())
        .flat_map(|agent| agent.info().binaries.clone())
        .collect();
    binaries.sort();
    binaries.dedup();

    // With --listen the host calls this address; bound before registering
    // so that the address registered is the one served.
    let listener = match args.listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("listening on {addr}"))?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
        None => None,
    };
    let endpoint = match &listener {
        Some(l) => Some(format!("http://{}", l.local_addr()?)),
        None => None,
    };
    let daemon = Daemon {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        host: args.host.trim_end_matches('/').to_owned(),
        token: args.token,
        binaries,
        endpoint,
    };
    let mut capabilities = daemon.probe().await;
    let mut registration = daemon.register_until_done(&capabilities).await?;
    let stop = super::serve::shutdown_signal()?;
    println!(
        "{}",
        serde_json::json!({ "link_id": registration.id, "pid": std::process::id() })
    );
    std::io::stdout().flush().ok();

    let sandboxes = data_dir.join("sandboxes");
    let mut local = LocalProcessConfig::new(&sandboxes);
    if let Some(path) = &config.sandbox.runnerd {
        local.runnerd = path.clone();
    }
    local.bwrap = config.bwrap_mode()?;
    let serve =
        |registration: &Registration| -> anyhow::Result<(Arc<DesktopSide>, JoinHandle<()>)> {
            let side = Arc::new(DesktopSide::new(
                LocalProcessProvider::new(local.clone())?,
                &registration.secret,
            ));
            let task = match &listener {
                Some(listener) => {
                    let listener = tokio::net::TcpListener::from_std(listener.try_clone()?)?;
                    let side = side.clone();
                    tokio::spawn(async move {
                        if let Err(e) = side.listen(listener).await {
                            tracing::error!(error = %e, "the control listener stopped");
                        }
                    })
                }
                None => tokio::spawn(side.clone().connect_forever(
                    daemon.host.clone(),
                    registration.id.clone(),
                    registration.secret.clone(),
                )),
            };
            Ok((side, task))
        };
    let (mut side, mut connection) = serve(&registration)?;

    let mut probed_at = tokio::time::Instant::now();
    let mut failures = 0u32;
    tokio::pin!(stop);
    loop {
        let wait = if failures == 0 {
            registration.every
        } else {
            backoff(failures)
        };
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(wait) => {}
        }
        let changed = if probed_at.elapsed() >= REPROBE_EVERY {
            probed_at = tokio::time::Instant::now();
            let now = daemon.probe().await;
            let changed = now != capabilities;
            capabilities = now;
            changed
        } else {
            false
        };
        match daemon
            .heartbeat(&registration, changed.then_some(&capabilities))
            .await
        {
            Ok(()) => failures = 0,
            Err(HeartbeatError::Forgotten) => {
                tracing::warn!(link = %registration.id, "the host no longer knows this link; registering again");
                registration = daemon.register_until_done(&capabilities).await?;
                tracing::info!(link = %registration.id, "registered again");
                // The host forgot the old link and its sessions.
                connection.abort();
                side.destroy_all().await;
                (side, connection) = serve(&registration)?;
                failures = 0;
            }
            Err(HeartbeatError::Failed(e)) => {
                failures += 1;
                tracing::warn!(link = %registration.id, error = %e, "heartbeat failed; retrying");
            }
        }
    }
    connection.abort();
    side.destroy_all().await;
    daemon.deregister(&registration).await;
    Ok(ExitCode::SUCCESS)
}

enum HeartbeatError {
    /// 401: unknown id or secret; the host restarted or replaced the link.
    Forgotten,
    Failed(String),
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6))).min(MAX_BACKOFF)
}

impl Daemon {
    /// Registers, retrying with backoff while the host is unreachable. A
    /// refused token is not retried: it will not start working.
    async fn register_until_done(
        &self,
        capabilities: &Capabilities,
    ) -> anyhow::Result<Registration> {
        let mut failures = 0;
        loop {
            let response = self
                .http
                .post(format!("{}/v1/links", self.host))
                .bearer_auth(&self.token)
                .json(
                    &serde_json::json!({ "capabilities": capabilities, "endpoint": self.endpoint }),
                )
                .send()
                .await;
            match response {
                Ok(r) if r.status() == StatusCode::CREATED => {
                    let registered: Registered =
                        r.json().await.context("reading the registration")?;
                    tracing::info!(link = %registered.link_id, host = %self.host, "link registered");
                    return Ok(Registration {
                        id: registered.link_id,
                        secret: registered.link_secret,
                        every: Duration::from_secs(registered.heartbeat_interval_secs.max(1)),
                    });
                }
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED => {
                    anyhow::bail!("the host refused the API token ({})", self.host)
                }
                Ok(r) if r.status() == StatusCode::FORBIDDEN => {
                    let body = r.text().await.unwrap_or_default();
                    anyhow::bail!("the host refused this link: {body}")
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    tracing::warn!(%status, %body, "registration failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(host = %self.host, error = %e, "host unreachable; retrying")
                }
            }
            failures += 1;
            tokio::time::sleep(backoff(failures)).await;
        }
    }

    async fn heartbeat(
        &self,
        registration: &Registration,
        capabilities: Option<&Capabilities>,
    ) -> Result<(), HeartbeatError> {
        let response = self
            .http
            .post(format!(
                "{}/v1/links/{}/heartbeat",
                self.host, registration.id
            ))
            .header("X-Link-Secret", &registration.secret)
            .json(&serde_json::json!({ "capabilities": capabilities }))
            .send()
            .await
            .map_err(|e| HeartbeatError::Failed(e.to_string()))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::UNAUTHORIZED => Err(HeartbeatError::Forgotten),
            s => Err(HeartbeatError::Failed(format!("the host answered {s}"))),
        }
    }

    async fn deregister(&self, registration: &Registration) {
        let result = self
            .http
            .delete(format!("{}/v1/links/{}", self.host, registration.id))
            .header("X-Link-Secret", &registration.secret)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(link = %registration.id, "link deregistered")
            }
            Ok(r) => {
                tracing::warn!(link = %registration.id, status = %r.status(), "deregistration refused; the link goes offline after its TTL")
            }
            Err(e) => {
                tracing::warn!(link = %registration.id, error = %e, "cannot deregister; the link goes offline after its TTL")
            }
        }
    }

    /// What this desktop has: the adapters' CLIs on PATH (with versions),
    /// working bubblewrap, a container engine.
    async fn probe(&self) -> Capabilities {
        let mut agents = Vec::new();
        for binary in &self.binaries {
            if let Some(version) = version_of(binary).await {
                agents.push(AgentCli {
                    binary: binary.clone(),
                    version: (!version.is_empty()).then_some(version),
                });
            }
        }
        let bubblewrap = tokio::task::spawn_blocking(crate::provider::local::can_confine)
            .await
            .unwrap_or(false);
        let mut container_engine = None;
        for engine in ["podman", "docker"] {
            if version_of(engine).await.is_some() {
                container_engine = Some(engine.to_owned());
                break;
            }
        }
        Capabilities {
            agents,
            bubblewrap,
            container_engine,
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
        }
    }
}

/// The first line `binary --version` prints, if the binary is on PATH and
/// answers (an empty string when it answers with nothing).
async fn version_of(binary: &str) -> Option<String> {
    let mut command = Command::new(binary);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(VERSION_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Ok(Err(e)) => {
            tracing::debug!(binary, error = %e, "cannot run for its version");
            return None;
        }
        Err(_) => {
            tracing::warn!(
                binary,
                "--version did not answer in time; counted as present"
            );
            return Some(String::new());
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next().unwrap_or_default().trim().to_owned())
}
