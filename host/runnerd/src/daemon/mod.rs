//! The daemon: startup, the shared state, serving, and shutdown.
//!
//! Startup: open the workspace, seed the env store, become the reaper of
//! orphans, probe cgroups, bind, then publish the address (stdout line and
//! `--addr-file`). Shutdown (SIGTERM or SIGINT): stop accepting, cancel the
//! running execs so each writes its `cancelled` terminal frame, let open
//! streams deliver it (bounded), exit.

mod body;
mod config;
mod env;
mod error;
mod exec;
mod files;
mod http;
mod process;

pub use config::{Config, ConfigError, Token};

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cap_std::fs::Dir;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use self::env::{EnvError, EnvLimits, EnvStore};
use self::error::ApiError;
use self::exec::{ExecSettings, Execs};
use self::process::{CgroupRoot, Reaper};
use crate::proto::{EnvPatch, EnvView, Listening};

/// How often cgroups left non-empty by background processes are retried.
const CGROUP_SWEEP: Duration = Duration::from_secs(5);

/// How long a client may take to send request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long open responses (frame streams) get to finish at shutdown, after
/// every exec has ended.
const CONNECTION_DRAIN: Duration = Duration::from_secs(2);

/// Why runnerd could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open workspace {path}: {source}")]
    Workspace { path: PathBuf, source: io::Error },
    #[error("cannot read env file {path}: {source}")]
    EnvFileRead { path: PathBuf, source: io::Error },
    #[error("env file {path} is not a JSON object of strings: {source}")]
    EnvFileJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("env file {path}: {source}")]
    EnvFileRefused { path: PathBuf, source: EnvError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
    #[error("cannot write the address file {path}: {source}")]
    AddrFile { path: PathBuf, source: io::Error },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: io::Error,
    },
    #[error("cannot write the listening line to stdout: {0}")]
    Stdout(io::Error),
}

/// The activity clock (unix ms) the host reaps idle sandboxes by.
#[derive(Debug)]
pub struct Activity(AtomicU64);

impl Activity {
    fn new() -> Self {
        Self(AtomicU64::new(unix_ms()))
    }

    /// Records activity now.
    pub fn touch(&self) {
        self.0.fetch_max(unix_ms(), Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub struct State {
    token: Token,
    workspace: Arc<Dir>,
    env: Mutex<EnvStore>,
    execs: Arc<Execs>,
    activity: Arc<Activity>,
    started: Instant,
}

impl State {
    fn env_vars(&self) -> BTreeMap<String, String> {
        self.env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .vars()
            .clone()
    }

    fn env_view(&self) -> EnvView {
        self.env.lock().unwrap_or_else(|p| p.into_inner()).view()
    }

    fn patch_env(&self, patch: &EnvPatch) -> Result<EnvView, ApiError> {
        Ok(self
            .env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .patch(patch)?)
    }
}

/// Milliseconds since the unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `bytes` random bytes as lowercase hex, for ids and temp-name suffixes
/// (never pid + time: those collided).
///
/// # Errors
///
/// The OS random source failed.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(format!("random source: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `contents` to `path` through a temp file with a random suffix in
/// the same directory and a rename, so readers never see a partial file.
fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("the path has no file name"))?
        .to_string_lossy();
    let temp = dir.join(format!(".{name}.{}.tmp", random_hex(8)?));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        // No fsync: the file describes this live process, which a machine
        // crash ends too; rename alone keeps readers from a torn file.
        file.write_all(contents)?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err()
        && let Err(err) = std::fs::remove_file(&temp)
        && err.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(temp = %temp.display(), error = %err, "cannot remove temp file");
    }
    result
}

fn load_env_seed(path: &Path) -> Result<BTreeMap<String, String>, RunError> {
    let text = std::fs::read(path).map_err(|source| RunError::EnvFileRead {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| RunError::EnvFileJson {
        path: path.to_owned(),
        source,
    })
}

/// Runs runnerd until SIGTERM or SIGINT.
///
/// # Errors
///
/// Startup failures ([`RunError`]); once serving, errors are per request.
pub async fn run(config: Config) -> Result<(), RunError> {
    let workspace = Dir::open_ambient_dir(&config.workspace, cap_std::ambient_authority())
        .map_err(|source| RunError::Workspace {
            path: config.workspace.clone(),
            source,
        })?;
    let seed = match &config.env_file {
        Some(path) => load_env_seed(path)?,
        None => BTreeMap::new(),
    };
    let env =
        EnvStore::new(seed, EnvLimits::default()).map_err(|source| RunError::EnvFileRefused {
            path: config.env_file.clone().unwrap_or_default(),
            source,
        })?;

    process::become_subreaper();
    let reaper = Reaper::new();
    reaper.start();
    let probe = format!(
        "runnerd-probe-{}",
        random_hex(6).unwrap_or_else(|_| std::process::id().to_string())
    );
    let cgroups = if config.cgroups {
        CgroupRoot::detect(&probe)
    } else {
        tracing::info!("--no-cgroups: execs are killed by process group and /proc tree only");
        None
    };

    let activity = Arc::new(Activity::new());
    let workspace = Arc::new(workspace);
    let execs = Execs::new(
        ExecSettings {
            ring_bytes: config.ring_bytes,
            keep_ended: config.keep_ended,
            max_running: config.max_running,
            drain: config.drain,
            stall: config.stall,
            home: config.home.clone(),
        },
        reaper,
        cgroups,
        Arc::clone(&workspace),
        Arc::clone(&activity),
    );
    let state = Arc::new(State {
        token: config.token.clone(),
        workspace,
        env: Mutex::new(env),
        execs: Arc::clone(&execs),
        activity,
        started: Instant::now(),
    });

    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| RunError::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| RunError::Signal {
        signal: "SIGINT",
        source,
    })?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| RunError::Bind {
        addr: config.listen,
        source,
    })?;
    let line = serde_json::to_string(&Listening {
        listening: addr.to_string(),
        pid: std::process::id(),
    })
    .map_err(|e| RunError::Stdout(io::Error::other(e)))?;
    if let Some(path) = &config.addr_file {
        write_atomically(path, line.as_bytes()).map_err(|source| RunError::AddrFile {
            path: path.clone(),
            source,
        })?;
    }
    {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").map_err(RunError::Stdout)?;
        stdout.flush().map_err(RunError::Stdout)?;
    }
    tracing::info!(%addr, workspace = %config.workspace.display(), pid = std::process::id(), "runnerd listening");

    let sweeper = {
        let execs = Arc::clone(&execs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CGROUP_SWEEP);
            loop {
                tick.tick().await;
                execs.sweep_cgroups();
            }
        })
    };

    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %err, "cannot set TCP_NODELAY");
                    }
                    let state = Arc::clone(&state);
                    let service = service_fn(move |request| http::handle(Arc::clone(&state), request));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(%peer, error = %err, "connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = sigint.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
        }
    }
    drop(listener);
    sweeper.abort();
    execs.shutdown(config.shutdown_grace).await;
    if tokio::time::timeout(CONNECTION_DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown drain; closing them");
    }
    tracing::info!("runnerd stopped");
    Ok(())
}
