//! What a session leaves on disk so that a restarted host (even one killed
//! with SIGKILL) can pick it up again: one JSON file per session under
//! `<data_dir>/sessions/`, replaced atomically on every change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use paddock_runnerd::proto::ExitInfo;
use paddock_sdk::agent::{RunResult, UsageTotals};
use serde::{Deserialize, Serialize};

use crate::provider::{NetworkPolicy, Resources};
use crate::secrets::IssuedCredential;

use super::EndReason;

/// The variable of a granted gateway's base URL.
pub const GRANTED_GATEWAY_URL: &str = "PADDOCK_GATEWAY_URL";
/// The variable of a granted gateway's key.
pub const GRANTED_GATEWAY_KEY: &str = "PADDOCK_GATEWAY_KEY";

/// One session, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub owner: String,
    pub provider: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub idle_timeout_secs: u64,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub network: NetworkPolicy,
    /// The limits of the session's profile, fixed at creation.
    #[serde(default)]
    pub resources: Resources,
    /// The provider's id of the sandbox, once provisioned. The token is not
    /// kept here: the provider hands it back on re-adoption.
    #[serde(default)]
    pub sandbox_id: Option<String>,
    #[serde(default)]
    pub ended: Option<Ended>,
    #[serde(default)]
    pub execs: Vec<ExecRecord>,
    /// What the session's grants issued (values included: this file is
    /// 0600 in the host's data dir, and a restarted host must still revoke
    /// and mask them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<IssuedCredential>,
    /// The session's virtual key for the built-in LLM gateway, once an
    /// agent run needed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_key: Option<String>,
}

impl SessionRecord {
    /// The gateway the session's grants issued, if they did: an operator's
    /// own LLM gateway comes as credentials setting both
    /// [`GRANTED_GATEWAY_URL`] and [`GRANTED_GATEWAY_KEY`] (as the
    /// `llm-gateway-litellm` broker does). Agent runs use it before the
    /// built-in gateway.
    pub fn granted_gateway(&self) -> Option<paddock_sdk::agent::Gateway> {
        let var = |name: &str| {
            self.credentials
                .iter()
                .filter(|c| !c.revoked)
                .find_map(|c| c.env.get(name))
        };
        var(GRANTED_GATEWAY_KEY)?;
        var(GRANTED_GATEWAY_URL).map(|url| paddock_sdk::agent::Gateway {
            base_url: url.clone(),
            token_env: GRANTED_GATEWAY_KEY.to_owned(),
        })
    }

    /// Every secret value the session holds, for masking: as is, and as
    /// it reads inside a JSON string (agent CLIs print JSON lines, where a
    /// value with a quote, a backslash or a control character is escaped).
    pub fn secret_values(&self) -> Vec<Vec<u8>> {
        let values: Vec<Vec<u8>> = self
            .credentials
            .iter()
            .flat_map(IssuedCredential::values)
            .chain(self.gateway_key.iter().map(|k| k.as_bytes().to_vec()))
            .collect();
        let escaped: Vec<Vec<u8>> = values.iter().filter_map(|v| json_escaped(v)).collect();
        values.into_iter().chain(escaped).collect()
    }
}

/// `value` as it appears between the quotes of a JSON string, when that
/// differs from the value itself.
fn json_escaped(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let quoted = serde_json::to_string(text).ok()?;
    let inner = &quoted[1..quoted.len() - 1];
    (inner != text).then(|| inner.as_bytes().to_vec())
}

/// How and when a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub reason: EndReason,
    pub at_ms: u64,
}

/// One exec, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRecord {
    /// runnerd's id of the exec, which is also the API's.
    pub id: String,
    pub argv: Vec<String>,
    /// The adapter of an agent run.
    #[serde(default)]
    pub agent: Option<String>,
    pub created_at_ms: u64,
    /// The timeout asked for, if any.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub exit: Option<ExitInfo>,
    #[serde(default)]
    pub ended_at_ms: Option<u64>,
    #[serde(default)]
    pub run: AgentSummary,
}

/// What an agent run reported about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentSummary {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageTotals>,
    /// The agent CLI's own session id (the latest `run_started`), to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
}

/// The directory of session files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Replaces the session's file atomically (a reader or a killed host
    /// sees the old or the new content, never a torn one).
    ///
    /// Not fsynced: it is on the path of every session create and exec
    /// start (~1 ms each), and what it protects against is a host process
    /// killed, which the page cache survives. A machine crash also ends the
    /// local sandboxes it describes; a file lost then is re-adopted as a
    /// dead session or an orphaned sandbox, both cleaned up at start.
    pub fn save(&self, record: &SessionRecord) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(&json)?;
        file.persist(self.path(&record.id)).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable record; unreadable files are logged and set aside
    /// (renamed `*.corrupt`) rather than deleted, so nothing is lost.
    pub fn load_all(&self) -> std::io::Result<Vec<SessionRecord>> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match read_record(&path) {
                Ok(record) => records.push(record),
                Err(err) => {
                    tracing::error!(path = %path.display(), error = %err, "unreadable session file set aside");
                    let aside = path.with_extension("json.corrupt");
                    if let Err(err) = std::fs::rename(&path, &aside) {
                        tracing::error!(path = %path.display(), error = %err, "cannot set the session file aside");
                    }
                }
            }
        }
        records.sort_by_key(|r| r.created_at_ms);
        Ok(records)
    }
}

fn read_record(path: &Path) -> std::io::Result<SessionRecord> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Redactor;

    #[test]
    fn a_secret_is_masked_as_is_and_as_it_reads_inside_json() {
        let record = SessionRecord {
            id: "ses-1".into(),
            owner: "alice".into(),
            provider: "local-process".into(),
            created_at_ms: 0,
            expires_at_ms: 0,
            idle_timeout_secs: 0,
            env: BTreeMap::new(),
            labels: BTreeMap::new(),
            network: NetworkPolicy::default(),
            resources: Resources::default(),
            sandbox_id: None,
            ended: None,
            execs: Vec::new(),
            credentials: vec![IssuedCredential {
                broker: "env".into(),
                name: "DB_PASSWORD".into(),
                scope: None,
                env: [("DB_PASSWORD".to_owned(), r#"pa"ss\word-1"#.to_owned())].into(),
                files: Vec::new(),
                expires_at: None,
                handle: None,
                revoked: false,
            }],
            gateway_key: Some("pdk-gw-0123456789".into()),
        };
        let redactor = Redactor::new(record.secret_values()).unwrap();
        let line = format!(
            "{}\n",
            serde_json::json!({"text": r#"the password is pa"ss\word-1"#, "key": "pdk-gw-0123456789"})
        );
        assert_eq!(
            String::from_utf8(redactor.redact(line.as_bytes())).unwrap(),
            "{\"key\":\"[REDACTED]\",\"text\":\"the password is [REDACTED]\"}\n"
        );
        assert_eq!(redactor.redact(br#"raw pa"ss\word-1"#), b"raw [REDACTED]");
    }
}
