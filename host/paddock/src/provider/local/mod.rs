//! The local-process provider, the embedded default: one runnerd per
//! sandbox, run as a detached local process with a directory of its own
//! under the provider's root (layout in `layout.rs`).
//!
//! Where bubblewrap works, runnerd runs confined (`bwrap.rs`): the system
//! read-only, its sandbox directory read-write, its own pid namespace.
//! Where it does not, runnerd runs as a plain process of the host's user,
//! and the provider says so once at start.
//!
//! runnerd outlives the host on purpose: a state file written atomically
//! beside the workspace (`state.rs`) lets the next host process re-adopt
//! live sandboxes and clean up dead, expired or damaged ones
//! ([`SandboxProvider::adopt`]).
//!
//! # Limitations
//!
//! - `network: none` is not enforced: the host reaches runnerd over TCP on
//!   loopback, which a network namespace of its own would cut off. The
//!   policy is recorded in the state file and a warning is logged.
//! - Unconfined, a runnerd that ignores SIGTERM past the grace is killed,
//!   and exec trees it had not stopped yet may survive it (confined, the pid
//!   namespace takes them down with it).

mod adopt;
mod bwrap;
mod config;
mod launch;
mod layout;
mod process;
mod provision;
mod reaper;
mod state;
mod teardown;

use crate::provider::detached::{MakesSandboxes, provision_detached};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::bwrap::{BwrapMode, UnknownBwrapMode};
pub use self::config::{LocalProcessConfig, default_runnerd_path};

/// Whether sandboxes here can be confined with bubblewrap: it is installed
/// and actually starts runnerd (user namespaces may be disabled). Blocks
/// while it tries.
pub fn can_confine() -> bool {
    default_runnerd_path().is_some_and(|runnerd| self::bwrap::Bwrap::detect(&runnerd).is_ok())
}

use self::bwrap::Bwrap;
use self::config::{check_runnerd, choose_bwrap, create_root};
use self::layout::{SandboxDir, is_sandbox_id};
use self::reaper::Reaper;
use self::state::SandboxState;
use super::{NetworkPolicy, ProviderError, Sandbox, SandboxProvider, SandboxSpec};

/// The provider's kind name.
const KIND: &str = "local-process";

/// How long `destroy` waits after SIGTERM before SIGKILL: above runnerd's
/// own shutdown grace for its execs (see `launch.rs`).
const DESTROY_GRACE: Duration = Duration::from_secs(3);

/// How much of `runnerd.log` a provisioning error quotes.
const LOG_TAIL_BYTES: u64 = 2048;

/// Runs runnerd as a detached local process per sandbox.
///
/// Cheap to share: the state lives behind an `Arc`, so that work which must
/// not be cut short (a provision whose caller stopped waiting) can finish in
/// a task of its own.
#[derive(Debug)]
pub struct LocalProcessProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Absolute, so the paths given to runnerd (and matched on its command
    /// line) do not depend on any process's cwd.
    root: PathBuf,
    runnerd: PathBuf,
    bwrap: Option<Bwrap>,
    start_timeout: Duration,
    reaper: Reaper,
    /// Sandboxes being provisioned right now: `adopt` leaves them alone.
    provisioning: Mutex<HashSet<String>>,
    /// Whether the "network: none is not enforced" warning was logged.
    warned_network: AtomicBool,
}

impl LocalProcessProvider {
    /// Checks the runnerd binary, creates the root and settles on bwrap.
    ///
    /// # Errors
    ///
    /// [`ProviderError::Unavailable`] when runnerd is missing or not
    /// executable, or bwrap is required and does not work;
    /// [`ProviderError::Io`] when the root cannot be created.
    pub fn new(config: LocalProcessConfig) -> Result<Self, ProviderError> {
        let runnerd = check_runnerd(&config.runnerd)?;
        let root = create_root(&config.root)?;
        let bwrap = choose_bwrap(config.bwrap, &runnerd)?;
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                runnerd,
                bwrap,
                start_timeout: config.start_timeout,
                reaper: Reaper::default(),
                provisioning: Mutex::new(HashSet::new()),
                warned_network: AtomicBool::new(false),
            }),
        })
    }

    /// The (absolute) directory sandboxes are made in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Whether sandboxes run under bubblewrap.
    pub fn confined(&self) -> bool {
        self.inner.bwrap.is_some()
    }

    /// The directory of sandbox `id`; `None` for an id this provider never
    /// makes.
    pub fn sandbox_path(&self, id: &str) -> Option<PathBuf> {
        is_sandbox_id(id).then(|| self.inner.root.join(id))
    }
}

impl Inner {
    fn warn_network(&self, network: NetworkPolicy) {
        if network == NetworkPolicy::None && !self.warned_network.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "network policy `none` is not enforced by the local-process provider: the host \
                 reaches runnerd over loopback TCP, so sandboxes keep the host's network"
            );
        }
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        if !is_sandbox_id(&sandbox.id) {
            return Err(ProviderError::Io {
                context: format!("destroying sandbox {:?}", sandbox.id),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a local-process sandbox id",
                ),
            });
        }
        let dir = SandboxDir::new(&self.root, &sandbox.id);
        let state = match SandboxState::read(&dir.state()) {
            Ok(state) => Some(state),
            Err(err) if err.kind() == io::ErrorKind::NotFound && !dir.path().exists() => {
                tracing::debug!(sandbox = %sandbox.id, "sandbox already gone");
                return Ok(());
            }
            Err(err) => {
                tracing::warn!(sandbox = %sandbox.id, error = %err, "no readable state file; looking for its processes");
                None
            }
        };
        self.teardown(&dir, state.as_ref()).await?;
        tracing::info!(sandbox = %sandbox.id, session = %sandbox.session_id, "sandbox destroyed");
        Ok(())
    }
}

#[async_trait::async_trait]
impl SandboxProvider for LocalProcessProvider {
    fn kind(&self) -> &str {
        KIND
    }

    /// Runs in a task of its own: when the caller stops waiting (its
    /// request was cancelled), the provision still finishes and the sandbox
    /// is destroyed again, instead of a runnerd being left behind mid-way.
    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        if spec.image.is_some() || spec.runtime_class.is_some() {
            return Err(ProviderError::Provision {
                session_id: spec.session_id.clone(),
                message: "the local-process provider runs no images and has no runtime classes"
                    .to_owned(),
            });
        }
        provision_detached(Arc::clone(&self.inner), spec).await
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        self.inner.destroy(sandbox).await
    }

    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        adopt::adopt(&self.inner).await
    }

    /// Rewrites the expiry in the sandbox's state file (atomically).
    async fn extend(&self, sandbox: &Sandbox, expires_at_ms: u64) -> Result<(), ProviderError> {
        if !is_sandbox_id(&sandbox.id) {
            return Err(ProviderError::Io {
                context: format!("extending sandbox {:?}", sandbox.id),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a local-process sandbox id",
                ),
            });
        }
        let path = SandboxDir::new(&self.inner.root, &sandbox.id).state();
        let io_error = |source| ProviderError::Io {
            context: format!("recording the new expiry of sandbox {}", sandbox.id),
            source,
        };
        let mut state = SandboxState::read(&path).map_err(io_error)?;
        state.expires_at_ms = expires_at_ms;
        state.write(&path).map_err(io_error)
    }
}

/// The `Sandbox` a state file and its token describe.
fn sandbox_of(state: SandboxState, token: String) -> Sandbox {
    Sandbox {
        id: state.id,
        session_id: state.session_id,
        owner: state.owner,
        provider: KIND.to_owned(),
        endpoint: state.endpoint,
        token,
        created_at_ms: state.created_at_ms,
        expires_at_ms: state.expires_at_ms,
        labels: state.labels,
    }
}

impl MakesSandboxes for Inner {
    fn make(
        &self,
        spec: &SandboxSpec,
    ) -> impl Future<Output = Result<Sandbox, ProviderError>> + Send {
        self.provision(spec)
    }

    fn unmake(&self, sandbox: &Sandbox) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.destroy(sandbox)
    }
}
