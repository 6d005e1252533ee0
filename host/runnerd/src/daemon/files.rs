//! The workspace's files, reached only through a `cap_std` directory handle:
//! `..`, absolute paths and symlinks cannot lead outside it, whatever the
//! request says. Every function here blocks; callers run them on the
//! blocking pool.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path};
use std::time::UNIX_EPOCH;

use cap_std::fs::{Dir, Metadata, OpenOptions, PermissionsExt};
use http::StatusCode;

use super::error::ApiError;
use crate::proto::{DirEntry, DirListing, FileKind, FileStat};

/// Why a file operation failed; the path is always named.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("path {0:?} is absolute: paths are relative to the workspace")]
    Absolute(String),
    #[error("path {path:?} is invalid: {why}")]
    Invalid { path: String, why: &'static str },
    #[error("path {0:?} leads outside the workspace")]
    Escape(String),
    #[error("{0:?} does not exist")]
    NotFound(String),
    #[error("{0:?}: permission denied")]
    PermissionDenied(String),
    #[error("{0:?} already exists")]
    AlreadyExists(String),
    #[error("{0:?} is a directory")]
    IsDir(String),
    #[error("{0:?} is not a directory")]
    NotDir(String),
    #[error("directory {0:?} is not empty (use recursive=true)")]
    NotEmpty(String),
    #[error("refusing to remove the workspace root")]
    Root,
    #[error("{path:?}: {source}")]
    Io { path: String, source: io::Error },
}

impl From<FileError> for ApiError {
    fn from(err: FileError) -> Self {
        let (status, code) = match &err {
            FileError::Absolute(_) => (StatusCode::BAD_REQUEST, "absolute_path"),
            FileError::Invalid { .. } => (StatusCode::BAD_REQUEST, "invalid_path"),
            FileError::Escape(_) => (StatusCode::FORBIDDEN, "path_escape"),
            FileError::NotFound(_) => (StatusCode::NOT_FOUND, "file_not_found"),
            FileError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            FileError::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
            FileError::IsDir(_) => (StatusCode::CONFLICT, "is_a_directory"),
            FileError::NotDir(_) => (StatusCode::CONFLICT, "not_a_directory"),
            FileError::NotEmpty(_) => (StatusCode::CONFLICT, "directory_not_empty"),
            FileError::Root => (StatusCode::BAD_REQUEST, "root_refused"),
            FileError::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "io_error"),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl FileError {
    /// Classifies an I/O error from `cap_std` on `path`.
    pub fn from_io(path: &str, err: io::Error) -> Self {
        let path = path.to_owned();
        // cap-std reports an escape as PermissionDenied without an OS errno
        // ("a path led outside of the filesystem").
        if err.kind() == io::ErrorKind::PermissionDenied && err.raw_os_error().is_none() {
            return Self::Escape(path);
        }
        match err.raw_os_error() {
            Some(libc::ENOTDIR) => return Self::NotDir(path),
            Some(libc::EISDIR) => return Self::IsDir(path),
            Some(libc::ENOTEMPTY) => return Self::NotEmpty(path),
            Some(libc::EXDEV) => return Self::Escape(path),
            Some(libc::ELOOP) => {
                return Self::Invalid {
                    path,
                    why: "too many levels of symbolic links",
                };
            }
            _ => {}
        }
        match err.kind() {
            io::ErrorKind::NotFound => Self::NotFound(path),
            io::ErrorKind::PermissionDenied => Self::PermissionDenied(path),
            io::ErrorKind::AlreadyExists => Self::AlreadyExists(path),
            _ => Self::Io { path, source: err },
        }
    }
}

/// Checks a request path and returns it as a workspace-relative path (`.`
/// for the root). Lexical escapes (`a/../../x`) are refused here; escapes
/// through symlinks are left to `cap_std`, which refuses them when the path
/// is used.
///
/// # Errors
///
/// [`FileError::Absolute`] or [`FileError::Invalid`].
pub fn relative(path: &str) -> Result<&Path, FileError> {
    if path.contains('\0') {
        return Err(FileError::Invalid {
            path: path.to_owned(),
            why: "it contains a NUL byte",
        });
    }
    if path.starts_with('/') {
        return Err(FileError::Absolute(path.to_owned()));
    }
    if path.is_empty() {
        return Ok(Path::new("."));
    }
    // A path that climbs above the root on its own is refused up front, so
    // the answer does not depend on whether its first parts exist.
    let mut depth = 0usize;
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::ParentDir => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| FileError::Escape(path.to_owned()))?;
            }
            _ => {}
        }
    }
    Ok(Path::new(path))
}

fn is_root(path: &Path) -> bool {
    path.components().all(|c| matches!(c, Component::CurDir))
}

fn kind_of(file_type: cap_std::fs::FileType) -> FileKind {
    if file_type.is_file() {
        FileKind::File
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

fn stat_of(path: &str, meta: &Metadata) -> FileStat {
    FileStat {
        path: path.to_owned(),
        kind: kind_of(meta.file_type()),
        size: meta.len(),
        mode: meta.permissions().mode() & 0o7777,
        modified_ms: meta
            .modified()
            .ok()
            .and_then(|time| time.into_std().duration_since(UNIX_EPOCH).ok())
            .map(|since| since.as_millis() as u64),
    }
}

/// `op=stat`: follows symlinks that stay inside the workspace.
///
/// # Errors
///
/// See [`FileError`].
pub fn stat(root: &Dir, path: &str) -> Result<FileStat, FileError> {
    let rel = relative(path)?;
    let meta = root
        .metadata(rel)
        .map_err(|e| FileError::from_io(path, e))?;
    Ok(stat_of(path, &meta))
}

/// `op=list`: entries sorted by name; symlinks are listed, not followed.
///
/// # Errors
///
/// See [`FileError`].
pub fn list(root: &Dir, path: &str) -> Result<DirListing, FileError> {
    let rel = relative(path)?;
    let entries = root
        .read_dir(rel)
        .map_err(|e| FileError::from_io(path, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileError::from_io(path, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // An entry removed while listing is skipped, not an error.
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        out.push(DirEntry {
            name,
            kind: kind_of(meta.file_type()),
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(DirListing {
        path: path.to_owned(),
        entries: out,
    })
}

/// Opens a regular file for `op=read`; returns it with its size.
///
/// # Errors
///
/// See [`FileError`]; a directory is [`FileError::IsDir`].
pub fn open_read(root: &Dir, path: &str) -> Result<(std::fs::File, u64), FileError> {
    let rel = relative(path)?;
    let file = root.open(rel).map_err(|e| FileError::from_io(path, e))?;
    let meta = file.metadata().map_err(|e| FileError::from_io(path, e))?;
    if meta.is_dir() {
        return Err(FileError::IsDir(path.to_owned()));
    }
    Ok((file.into_std(), meta.len()))
}

/// `op=mkdir`, with missing parents when `parents`.
///
/// # Errors
///
/// See [`FileError`]; an existing path is [`FileError::AlreadyExists`]
/// unless `parents` and it is a directory.
pub fn mkdir(root: &Dir, path: &str, parents: bool) -> Result<FileStat, FileError> {
    let rel = relative(path)?;
    let made = if parents {
        root.create_dir_all(rel)
    } else {
        root.create_dir(rel)
    };
    made.map_err(|e| FileError::from_io(path, e))?;
    stat(root, path)
}

/// `DELETE`: a file or symlink, an empty directory, or with `recursive` a
/// whole tree (symlinks inside are removed, never followed).
///
/// # Errors
///
/// See [`FileError`]; the workspace root is refused.
pub fn remove(root: &Dir, path: &str, recursive: bool) -> Result<(), FileError> {
    let rel = relative(path)?;
    if is_root(rel) {
        return Err(FileError::Root);
    }
    let meta = root
        .symlink_metadata(rel)
        .map_err(|e| FileError::from_io(path, e))?;
    let removed = if meta.is_dir() {
        if recursive {
            root.remove_dir_all(rel)
        } else {
            root.remove_dir(rel)
        }
    } else {
        root.remove_file(rel)
    };
    removed.map_err(|e| FileError::from_io(path, e))
}

/// A write in progress: the bytes go to a temp file with a random suffix
/// beside the target, renamed over it by [`PendingWrite::commit`], so
/// readers never see a torn file.
#[derive(Debug)]
pub struct PendingWrite {
    parent: Dir,
    temp: String,
    name: OsString,
    path: String,
}

impl PendingWrite {
    /// Creates the temp file (with the target's permissions if it exists)
    /// and returns it for writing.
    ///
    /// # Errors
    ///
    /// See [`FileError`]; a path without a file name is invalid.
    pub fn begin(
        root: &Dir,
        path: &str,
        parents: bool,
        suffix: &str,
    ) -> Result<(Self, std::fs::File), FileError> {
        let rel = relative(path)?;
        let invalid = |why| FileError::Invalid {
            path: path.to_owned(),
            why,
        };
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) => name.to_owned(),
            _ => return Err(invalid("it does not end in a file name")),
        };
        let parent_rel = rel.parent().filter(|p| !p.as_os_str().is_empty());
        let parent = match parent_rel {
            Some(parent_rel) => {
                if parents {
                    root.create_dir_all(parent_rel)
                        .map_err(|e| FileError::from_io(path, e))?;
                }
                root.open_dir(parent_rel)
                    .map_err(|e| FileError::from_io(path, e))?
            }
            None => root.try_clone().map_err(|e| FileError::from_io(path, e))?,
        };
        if let Ok(meta) = parent.metadata(&name)
            && meta.is_dir()
        {
            return Err(FileError::IsDir(path.to_owned()));
        }
        // Keep the temp name within NAME_MAX whatever the target's length.
        let lossy = name.to_string_lossy();
        let mut stem: String = String::new();
        for c in lossy.chars() {
            if stem.len() + c.len_utf8() > 200 {
                break;
            }
            stem.push(c);
        }
        let temp = format!(".{stem}.runnerd-{suffix}.tmp");
        let file = parent
            .open_with(&temp, OpenOptions::new().write(true).create_new(true))
            .map_err(|e| FileError::from_io(path, e))?;
        if let Ok(meta) = parent.metadata(&name)
            && let Err(err) = file.set_permissions(meta.permissions())
        {
            tracing::warn!(path, error = %err, "cannot copy permissions to the new file");
        }
        Ok((
            Self {
                parent,
                temp,
                name,
                path: path.to_owned(),
            },
            file.into_std(),
        ))
    }

    /// Renames the temp file over the target.
    ///
    /// # Errors
    ///
    /// The rename; the temp file is removed then.
    pub fn commit(self) -> Result<(), FileError> {
        match self.parent.rename(&self.temp, &self.parent, &self.name) {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = FileError::from_io(&self.path, err);
                self.abort();
                Err(err)
            }
        }
    }

    /// Removes the temp file (after a failed upload).
    pub fn abort(self) {
        if let Err(err) = self.parent.remove_file(&self.temp) {
            tracing::warn!(path = %self.path, temp = %self.temp, error = %err, "cannot remove temp file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn workspace() -> (tempfile::TempDir, Dir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root =
            Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).expect("open root");
        (dir, root)
    }

    #[test]
    fn escapes_are_refused() {
        let (tmp, root) = workspace();
        std::os::unix::fs::symlink("/etc", tmp.path().join("out")).expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("pw")).expect("symlink");
        assert!(matches!(stat(&root, "../x"), Err(FileError::Escape(_))));
        assert!(matches!(
            stat(&root, "nope/../../x"),
            Err(FileError::Escape(_))
        ));
        assert!(relative("a/../b").is_ok());
        assert!(matches!(
            stat(&root, "/etc/passwd"),
            Err(FileError::Absolute(_))
        ));
        assert!(matches!(
            stat(&root, "out/passwd"),
            Err(FileError::Escape(_))
        ));
        assert!(matches!(open_read(&root, "pw"), Err(FileError::Escape(_))));
        assert!(matches!(list(&root, "out"), Err(FileError::Escape(_))));
        assert!(matches!(
            PendingWrite::begin(&root, "out/x", false, "s"),
            Err(FileError::Escape(_))
        ));
        // Removing the link itself is fine and leaves the target alone.
        remove(&root, "out", false).expect("remove link");
        assert!(Path::new("/etc/passwd").exists());
        assert!(matches!(remove(&root, "", true), Err(FileError::Root)));
    }

    #[test]
    fn atomic_write_keeps_mode_and_leaves_no_temp() {
        let (tmp, root) = workspace();
        let (pending, mut file) =
            PendingWrite::begin(&root, "a/b/run.sh", true, "abc").expect("begin");
        file.write_all(b"#!/bin/sh\n").expect("write");
        drop(file);
        pending.commit().expect("commit");
        let mut perms = std::fs::metadata(tmp.path().join("a/b/run.sh"))
            .expect("written")
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(tmp.path().join("a/b/run.sh"), perms).expect("chmod");

        let (pending, mut file) =
            PendingWrite::begin(&root, "a/b/run.sh", false, "def").expect("begin");
        file.write_all(b"echo\n").expect("write");
        drop(file);
        pending.commit().expect("commit");
        let stat = stat(&root, "a/b/run.sh").expect("stat");
        assert_eq!((stat.size, stat.mode), (5, 0o755));
        let names: Vec<String> = list(&root, "a/b")
            .expect("list")
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["run.sh"]);
    }
}
