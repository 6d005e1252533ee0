//! The provider's settings, where its runnerd binary comes from, and the
//! checks made once when it is constructed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::KIND;
use super::bwrap::{Bwrap, BwrapMode};
use crate::provider::ProviderError;

/// Settings of the local-process provider.
#[derive(Debug, Clone)]
pub struct LocalProcessConfig {
    /// Where sandbox directories are made (the host passes
    /// `<data_dir>/sandboxes`). Created if missing.
    pub root: PathBuf,
    /// The runnerd binary.
    pub runnerd: PathBuf,
    pub bwrap: BwrapMode,
    /// One budget for runnerd to start and answer `health`.
    pub start_timeout: Duration,
}

impl LocalProcessConfig {
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

    /// Defaults for everything but `root`: runnerd from
    /// [`default_runnerd_path`], bwrap [`BwrapMode::Auto`], a 10 s start
    /// timeout.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            runnerd: default_runnerd_path().unwrap_or_else(|| PathBuf::from("runnerd")),
            bwrap: BwrapMode::default(),
            start_timeout: Self::DEFAULT_START_TIMEOUT,
        }
    }
}

/// Where the runnerd binary is, in this order: the `PADDOCK_RUNNERD`
/// variable; the binary the build script built, if it still exists (a
/// development build); `runnerd` beside the running executable (an
/// installed one).
pub fn default_runnerd_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PADDOCK_RUNNERD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let built = PathBuf::from(env!("PADDOCK_RUNNERD_BIN"));
    if built.is_file() {
        return Some(built);
    }
    let beside = std::env::current_exe().ok()?.parent()?.join("runnerd");
    beside.is_file().then_some(beside)
}

/// Creates the root (owner-only: it holds runnerd tokens) and returns its
/// absolute path.
pub(super) fn create_root(root: &Path) -> Result<PathBuf, ProviderError> {
    use std::os::unix::fs::DirBuilderExt;

    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .and_then(|()| std::fs::canonicalize(root))
        .map_err(|source| ProviderError::Io {
            context: format!("creating the sandbox root {}", root.display()),
            source,
        })
}

/// Resolves and checks the runnerd binary.
pub(super) fn check_runnerd(path: &Path) -> Result<PathBuf, ProviderError> {
    use std::os::unix::fs::PermissionsExt;

    const HOW: &str = "build it with `cargo build -p paddock-runnerd --bin runnerd` and set \
                       PADDOCK_RUNNERD to its path, or install it beside the paddock binary";
    let unavailable = |problem: String| ProviderError::Unavailable {
        provider: KIND,
        message: format!("the runnerd binary {} {problem}; {HOW}", path.display()),
    };
    let resolved =
        std::fs::canonicalize(path).map_err(|e| unavailable(format!("cannot be found ({e})")))?;
    let meta =
        std::fs::metadata(&resolved).map_err(|e| unavailable(format!("cannot be read ({e})")))?;
    if !meta.is_file() {
        return Err(unavailable("is not a file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(unavailable("is not executable".into()));
    }
    Ok(resolved)
}

/// Settles on bwrap per `mode`, warning once when `Auto` finds none.
pub(super) fn choose_bwrap(
    mode: BwrapMode,
    runnerd: &Path,
) -> Result<Option<Bwrap>, ProviderError> {
    if mode == BwrapMode::Off {
        tracing::info!("bwrap is off: sandboxes run unconfined, as processes of the host's user");
        return Ok(None);
    }
    match Bwrap::detect(runnerd) {
        Ok(bwrap) => {
            tracing::info!(bwrap = %bwrap.path().display(), "sandboxes run confined by bubblewrap");
            Ok(Some(bwrap))
        }
        Err(reason) if mode == BwrapMode::Required => Err(ProviderError::Unavailable {
            provider: KIND,
            message: format!(
                "bwrap is required but cannot be used: {reason}; install bubblewrap or set the bwrap mode to auto"
            ),
        }),
        Err(reason) => {
            tracing::warn!(
                %reason,
                "sandboxes run UNCONFINED, as plain processes of the host's user: install bubblewrap to confine them"
            );
            Ok(None)
        }
    }
}
