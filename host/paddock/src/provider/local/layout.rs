//! Where a local sandbox's files live, and how the directory is made and
//! removed.
//!
//! ```text
//! <root>/<id>/            0700; bound read-write into a confined sandbox
//!   workspace/            the exec cwd and the files API's root
//!   home/                 HOME of execs (agent CLIs write their config here)
//!   token                 0600, runnerd's bearer token (--token-file)
//!   env.json              0600, the env store's seed (--env-file)
//!   addr                  runnerd's listening line (--addr-file)
//!   runnerd.log           runnerd's stdout and stderr
//!   state.json            the record re-adoption reads (see state.rs)
//! ```

use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::state::random_hex;

/// Prefix of every sandbox id (and directory name) of this provider.
const ID_PREFIX: &str = "sbx-";

/// Hex digits after the prefix.
const ID_HEX_LEN: usize = 16;

/// A fresh sandbox id: `sbx-` and 16 random hex digits.
pub(super) fn new_sandbox_id() -> io::Result<String> {
    Ok(format!("{ID_PREFIX}{}", random_hex(ID_HEX_LEN / 2)?))
}

/// Whether `id` has the shape of an id this provider makes. Ids from
/// outside (a `Sandbox` handed to `destroy`, a directory name) are checked
/// before they become paths, so none can name anything but a sandbox
/// directory.
pub(super) fn is_sandbox_id(id: &str) -> bool {
    id.strip_prefix(ID_PREFIX).is_some_and(|hex| {
        hex.len() == ID_HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The paths of one sandbox directory.
#[derive(Debug, Clone)]
pub(super) struct SandboxDir {
    path: PathBuf,
}

impl SandboxDir {
    /// The directory of sandbox `id` under the provider's (absolute) root.
    pub fn new(root: &Path, id: &str) -> Self {
        Self {
            path: root.join(id),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn workspace(&self) -> PathBuf {
        self.path.join("workspace")
    }

    pub fn home(&self) -> PathBuf {
        self.path.join("home")
    }

    pub fn token(&self) -> PathBuf {
        self.path.join("token")
    }

    pub fn env(&self) -> PathBuf {
        self.path.join("env.json")
    }

    pub fn addr(&self) -> PathBuf {
        self.path.join("addr")
    }

    pub fn log(&self) -> PathBuf {
        self.path.join("runnerd.log")
    }

    pub fn state(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// Creates the directory (which must not exist yet: ids are random, a
    /// collision is an error rather than a shared sandbox) with its
    /// workspace and home.
    pub fn create(&self) -> io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.mode(0o700);
        builder.create(&self.path)?;
        builder.create(self.workspace())?;
        builder.create(self.home())
    }

    /// The last `max` bytes of runnerd's log, for error messages.
    pub fn log_tail(&self, max: u64) -> String {
        match read_tail(&self.log(), max) {
            Ok(tail) if tail.trim().is_empty() => "(runnerd.log is empty)".to_owned(),
            Ok(tail) => tail.trim().to_owned(),
            Err(err) => format!("(cannot read runnerd.log: {err})"),
        }
    }
}

fn read_tail(path: &Path, max: u64) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Removes a sandbox directory and everything in it; a directory that is
/// already gone is fine.
///
/// Workspaces hold whatever the execs made, read-only directories included
/// (Go's module cache, `chmod -w`): when a first attempt fails, every
/// directory in the tree is made writable by its owner and it is tried
/// again. Symlinks are never followed.
pub(super) async fn remove_tree(path: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || remove_tree_blocking(&path))
        .await
        .map_err(|e| io::Error::other(format!("removal task failed: {e}")))?
}

fn remove_tree_blocking(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound && !path.exists() => return Ok(()),
        Err(err) => {
            tracing::debug!(path = %path.display(), error = %err, "removal failed; making the tree writable and retrying");
        }
    }
    make_dirs_writable(path);
    match std::fs::remove_dir_all(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Adds `u+rwx` to `dir` and every directory below it. Best effort: what
/// cannot be changed shows up in the removal's error.
fn make_dirs_writable(dir: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700
        && let Err(err) =
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o700))
    {
        tracing::debug!(path = %dir.display(), error = %err, "cannot make a directory writable");
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_dirs_writable(&entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_become_paths() {
        let id = new_sandbox_id().expect("id");
        assert!(is_sandbox_id(&id), "{id}");
        for bad in [
            "",
            "sbx-",
            "sbx-0123456789abcdeg",
            "sbx-0123456789ABCDEF",
            "sbx-0123456789abcdef0",
            "../sbx-0123456789abcde",
            "sbx-../../../../etc/x",
        ] {
            assert!(!is_sandbox_id(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn removes_read_only_trees() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = SandboxDir::new(root.path(), "sbx-0123456789abcdef");
        dir.create().expect("create");
        let locked = dir.workspace().join("a/b");
        std::fs::create_dir_all(&locked).expect("mkdir");
        std::fs::write(locked.join("f"), b"x").expect("file");
        for p in [&locked, &dir.workspace().join("a")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o500)).expect("chmod");
        }
        remove_tree(dir.path().to_owned()).await.expect("remove");
        assert!(!dir.path().exists());
        // Gone already: still fine.
        remove_tree(dir.path().to_owned())
            .await
            .expect("remove again");
    }

    #[test]
    fn log_tail_keeps_the_end() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = SandboxDir::new(root.path(), "sbx-0123456789abcdef");
        dir.create().expect("create");
        assert!(dir.log_tail(10).contains("cannot read"));
        std::fs::write(dir.log(), b"first line\nlast line\n").expect("log");
        assert_eq!(dir.log_tail(10), "last line");
    }
}
