//! Where a broker's `secrets` import reads from: the operator's secrets,
//! never anything else of the host's.
//!
//! A broker reads secret `NAME` only if `[plugins.grants.<broker>] secrets`
//! lists it; an ungranted name is `denied` whether or not it exists, so a
//! broker cannot probe for secrets. The value comes from the host's
//! environment variable `PADDOCK_SECRET_NAME` first, then from the
//! operator's secrets file (`[plugins] secrets_file`, a TOML table of
//! `NAME = "value"`), re-read on every lookup so a rotated secret is picked
//! up without a restart. The file must not be readable by group or others.
//!
//! No error here ever contains a secret's value (a TOML parse error is
//! reported by line only, since its usual text quotes the offending line).

use std::path::{Path, PathBuf};

use super::PluginGrants;

/// The prefix of the host environment variables that hold secrets.
pub const SECRET_ENV_PREFIX: &str = "PADDOCK_SECRET_";

/// Why a secret cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret `{name}` is not granted to plugin `{plugin}` (see [plugins.grants.{plugin}] secrets)"
    )]
    NotGranted { plugin: String, name: String },

    #[error("secret name {0:?} is invalid: use letters, digits and `_`")]
    InvalidName(String),

    #[error(
        "secret `{name}` is granted but not set: set {SECRET_ENV_PREFIX}{name} or add it to the secrets file"
    )]
    NotFound { name: String },

    #[error("secrets file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// The value of secret `name` for `plugin`, if its grants allow it.
pub async fn read_secret(
    plugin: &str,
    grants: &PluginGrants,
    file: Option<&Path>,
    name: &str,
) -> Result<String, SecretError> {
    if !grants.grants_secret(name) {
        return Err(SecretError::NotGranted {
            plugin: plugin.to_owned(),
            name: name.to_owned(),
        });
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(SecretError::InvalidName(name.to_owned()));
    }
    if let Ok(value) = std::env::var(format!("{SECRET_ENV_PREFIX}{name}")) {
        return Ok(value);
    }
    match file {
        Some(path) => from_file(path, name).await,
        None => Err(SecretError::NotFound {
            name: name.to_owned(),
        }),
    }
}

async fn from_file(path: &Path, name: &str) -> Result<String, SecretError> {
    let fail = |reason: String| SecretError::File {
        path: path.to_owned(),
        reason,
    };
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    check_private(&meta).map_err(fail)?;
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |span| {
            text[..span.start.min(text.len())].lines().count().max(1)
        });
        fail(format!(
            "not a TOML table of NAME = \"value\" (error near line {line})"
        ))
    })?;
    match table.get(name) {
        Some(toml::Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(fail(format!("`{name}` is not a string"))),
        None => Err(SecretError::NotFound {
            name: name.to_owned(),
        }),
    }
}

/// Refuses a file that group or others may read or write: a secrets file
/// anyone on the machine can read has already leaked.
#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:03o} lets group or others read it; refusing it (chmod 600)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(names: &[&str]) -> PluginGrants {
        PluginGrants {
            secrets: names.iter().map(|n| n.to_string()).collect(),
            ..PluginGrants::default()
        }
    }

    fn secrets_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("secrets.toml");
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        path
    }

    #[tokio::test]
    async fn an_ungranted_name_is_refused_whether_or_not_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "DB = \"pw\"\n", 0o600);
        for name in ["DB", "MISSING"] {
            let err = read_secret("env", &granted(&["OTHER"]), Some(&file), name)
                .await
                .unwrap_err();
            assert!(matches!(err, SecretError::NotGranted { .. }), "{err}");
        }
    }

    #[tokio::test]
    async fn a_granted_name_reads_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "DB = \"pw\"\n", 0o600);
        let grants = granted(&["DB", "NOPE"]);
        assert_eq!(
            read_secret("env", &grants, Some(&file), "DB")
                .await
                .unwrap(),
            "pw"
        );
        let err = read_secret("env", &grants, Some(&file), "NOPE")
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("PADDOCK_SECRET_NOPE"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "DB = \"pw\"\n", 0o644);
        let err = read_secret("env", &granted(&["DB"]), Some(&file), "DB")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_file_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let file = secrets_file(dir.path(), "A = \"x\"\nDB = hunter2\n", 0o600);
        let err = read_secret("env", &granted(&["DB"]), Some(&file), "DB")
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn an_invalid_name_never_reaches_the_environment() {
        let err = read_secret("env", &granted(&["A=B"]), None, "A=B")
            .await
            .unwrap_err();
        assert!(matches!(err, SecretError::InvalidName(_)), "{err}");
    }
}
