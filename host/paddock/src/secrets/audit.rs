//! The append-only audit log of secrets: who was issued, denied or revoked
//! which credential, for which session, when, and how it went. Never the
//! secret itself.
//!
//! SQLite in the data dir (`audit.db`) is the embedded default: one file, no
//! service, and triggers make the table refuse `UPDATE` and `DELETE`, so a
//! bug in the host cannot rewrite history. Writes are synchronous (WAL,
//! `synchronous=FULL`): an issue is not handed out before its record is on
//! disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What happened to a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// The broker issued the credential.
    Issued,
    /// Policy refused the grant (an owner not allowed it, an unknown broker).
    Denied,
    /// The broker failed to issue (an error, a trap, a timeout).
    IssueFailed,
    /// The credential was revoked (or, for one that cannot be revoked at
    /// its broker, withdrawn with the sandbox).
    Revoked,
    /// The broker failed to revoke it.
    RevokeFailed,
}

impl AuditAction {
    fn as_str(self) -> &'static str {
        match self {
            AuditAction::Issued => "issued",
            AuditAction::Denied => "denied",
            AuditAction::IssueFailed => "issue_failed",
            AuditAction::Revoked => "revoked",
            AuditAction::RevokeFailed => "revoke_failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "issued" => AuditAction::Issued,
            "denied" => AuditAction::Denied,
            "issue_failed" => AuditAction::IssueFailed,
            "revoked" => AuditAction::Revoked,
            "revoke_failed" => AuditAction::RevokeFailed,
            _ => return None,
        })
    }
}

/// One record to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The owner the session belongs to (who asked).
    pub owner: String,
    pub session_id: String,
    pub broker: String,
    pub name: String,
    pub action: AuditAction,
    /// Why (a denial's reason, a failure's message); never a secret value.
    pub detail: Option<String>,
    /// When the issued credential expires (unix seconds).
    pub expires_at: Option<u64>,
}

/// `GET /v1/audit`: one record.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Increasing; pass the last one seen as `after` to page on.
    pub id: i64,
    pub at_ms: u64,
    pub owner: String,
    pub session_id: String,
    pub broker: String,
    pub name: String,
    pub action: AuditAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// `GET /v1/audit` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub session_id: Option<String>,
    pub owner: Option<String>,
    /// Only records with a larger id.
    pub after: Option<i64>,
    /// At most this many (default and maximum 1000), oldest first.
    pub limit: Option<u32>,
}

const MAX_PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("audit log: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("audit log task failed: {0}")]
    Task(String),
}

/// The audit log.
#[derive(Clone)]
pub struct AuditLog {
    conn: Arc<Mutex<Connection>>,
}

impl AuditLog {
    /// Opens (creating if needed) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Appends `entry`; returns once it is on disk.
    pub async fn record(&self, entry: AuditEntry) -> Result<(), AuditError> {
        let at_ms = crate::clock::unix_ms();
        self.blocking(move |conn| {
            conn.execute(
                "INSERT INTO audit (at_ms, owner, session_id, broker, name, action, detail, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    at_ms as i64,
                    entry.owner,
                    entry.session_id,
                    entry.broker,
                    entry.name,
                    entry.action.as_str(),
                    entry.detail,
                    entry.expires_at.map(|e| e as i64),
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Records matching `filter`, oldest first.
    pub async fn query(&self, filter: AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        self.blocking(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, at_ms, owner, session_id, broker, name, action, detail, expires_at
                 FROM audit
                 WHERE (?1 IS NULL OR session_id = ?1)
                   AND (?2 IS NULL OR owner = ?2)
                   AND id > ?3
                 ORDER BY id LIMIT ?4",
            )?;
            let limit = filter.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
            let rows = stmt.query_map(
                params![
                    filter.session_id,
                    filter.owner,
                    filter.after.unwrap_or(0),
                    limit
                ],
                |row| {
                    let action: String = row.get(6)?;
                    Ok(AuditRecord {
                        id: row.get(0)?,
                        at_ms: row.get::<_, i64>(1)? as u64,
                        owner: row.get(2)?,
                        session_id: row.get(3)?,
                        broker: row.get(4)?,
                        name: row.get(5)?,
                        action: AuditAction::parse(&action).ok_or_else(|| {
                            rusqlite::Error::InvalidColumnType(
                                6,
                                action.clone(),
                                rusqlite::types::Type::Text,
                            )
                        })?,
                        detail: row.get(7)?,
                        expires_at: row.get::<_, Option<i64>>(8)?.map(|e| e as u64),
                    })
                },
            )?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(AuditError::from)
        })
        .await
    }

    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, AuditError> + Send + 'static,
    ) -> Result<R, AuditError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| AuditError::Task(e.to_string()))?
    }
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    owner TEXT NOT NULL,
    session_id TEXT NOT NULL,
    broker TEXT NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT,
    expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id);
CREATE INDEX IF NOT EXISTS audit_owner ON audit (owner);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(session: &str, owner: &str, action: AuditAction) -> AuditEntry {
        AuditEntry {
            owner: owner.into(),
            session_id: session.into(),
            broker: "env".into(),
            name: "DB_PASSWORD".into(),
            action,
            detail: None,
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn records_survive_reopening_and_filter_by_session_and_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let log = AuditLog::open(&path).unwrap();
        log.record(entry("ses-a", "alice", AuditAction::Issued))
            .await
            .unwrap();
        log.record(entry("ses-b", "bob", AuditAction::Denied))
            .await
            .unwrap();
        log.record(entry("ses-a", "alice", AuditAction::Revoked))
            .await
            .unwrap();
        drop(log);

        let log = AuditLog::open(&path).unwrap();
        let a = log
            .query(AuditFilter {
                session_id: Some("ses-a".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let actions: Vec<_> = a.iter().map(|r| r.action).collect();
        assert_eq!(actions, [AuditAction::Issued, AuditAction::Revoked]);
        let bob = log
            .query(AuditFilter {
                owner: Some("bob".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(bob.len(), 1);
        assert_eq!(bob[0].action, AuditAction::Denied);
        let page = log
            .query(AuditFilter {
                after: Some(a[0].id),
                limit: Some(1),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].owner, "bob");
    }

    #[tokio::test]
    async fn the_table_refuses_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("audit.db")).unwrap();
        log.record(entry("ses-a", "alice", AuditAction::Issued))
            .await
            .unwrap();
        let conn = log.conn.lock().unwrap();
        let update = conn.execute("UPDATE audit SET action = 'revoked'", []);
        assert!(update.unwrap_err().to_string().contains("append-only"));
        let delete = conn.execute("DELETE FROM audit", []);
        assert!(delete.unwrap_err().to_string().contains("append-only"));
    }
}
