//! Tier-2 secrets: per-session grants, issued by credential-broker plugins,
//! audited, redacted, and revoked when the session ends.
//!
//! The flow of a grant: the owner's policy ([`SecretsConfig`]) allows it or
//! it is denied (403, audited) → its broker issues a credential (audited) →
//! the credential's env vars and files enter the session's sandbox → its
//! values are masked in the session's output and the host's logs
//! ([`redact`], [`logs`]) → it is revoked when the session ends, however it
//! ends (audited). A session whose grants cannot all be issued is not
//! created, and what was issued for it is revoked first.

pub mod audit;
mod credential;
pub mod logs;
mod policy;
pub mod redact;

use std::sync::Arc;

pub use audit::{AuditAction, AuditEntry, AuditFilter, AuditLog, AuditRecord};
pub use credential::{GrantRequest, IssuedCredential, SecretFile};
pub use policy::{OwnerPolicy, SecretsConfig};
pub use redact::{Redactor, StreamRedactor};

use crate::plugin::{Grant, PluginError, PluginHost};

/// Why a session's grants could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Policy refused a grant, or its broker is not loaded.
    #[error("grant {broker}:{name} denied: {reason}")]
    Denied {
        broker: String,
        name: String,
        reason: String,
    },
    /// The broker failed to issue (error, trap, timeout, refused host).
    #[error("broker {broker} could not issue {name}: {source}")]
    Broker {
        broker: String,
        name: String,
        source: PluginError,
    },
    /// What a broker issued cannot be used (a bad env var name, two grants
    /// setting one variable).
    #[error("grant {broker}:{name}: {reason}")]
    Unusable {
        broker: String,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Redact(#[from] redact::RedactError),
}

/// The secrets side of the host.
pub struct Secrets {
    config: SecretsConfig,
    plugins: Arc<PluginHost>,
    audit: AuditLog,
}

impl Secrets {
    pub fn new(config: SecretsConfig, plugins: Arc<PluginHost>, audit: AuditLog) -> Self {
        Self {
            config,
            plugins,
            audit,
        }
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Issues every grant of a new session, or none: all are checked
    /// against policy first (a denial issues nothing), then issued in order;
    /// a failure revokes what was already issued. `ttl_secs` is the
    /// session's TTL (credentials are asked to live no longer).
    pub async fn issue_all(
        &self,
        session_id: &str,
        owner: &str,
        grants: &[GrantRequest],
        ttl_secs: u64,
    ) -> Result<Vec<IssuedCredential>, SecretsError> {
        for grant in grants {
            if let Err(reason) = self.allowed(owner, grant) {
                self.record(
                    session_id,
                    owner,
                    &grant.broker,
                    &grant.name,
                    AuditAction::Denied,
                    Some(reason.clone()),
                    None,
                )
                .await?;
                tracing::warn!(session = session_id, owner, broker = %grant.broker, name = %grant.name, %reason, "grant denied");
                return Err(SecretsError::Denied {
                    broker: grant.broker.clone(),
                    name: grant.name.clone(),
                    reason,
                });
            }
        }
        let ttl_secs = ttl_secs.min(self.config.max_credential_ttl_secs);
        let mut issued: Vec<IssuedCredential> = Vec::with_capacity(grants.len());
        for grant in grants {
            match self
                .issue_one(session_id, owner, grant, ttl_secs, &issued)
                .await
            {
                Ok(credential) => issued.push(credential),
                Err(err) => {
                    self.revoke_all(session_id, owner, &mut issued).await;
                    return Err(err);
                }
            }
        }
        Ok(issued)
    }

    /// Policy, then whether the broker is loaded.
    fn allowed(&self, owner: &str, grant: &GrantRequest) -> Result<(), String> {
        self.config.check(owner, &grant.broker, &grant.name)?;
        self.plugins
            .broker(&grant.broker)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    async fn issue_one(
        &self,
        session_id: &str,
        owner: &str,
        grant: &GrantRequest,
        ttl_secs: u64,
        before: &[IssuedCredential],
    ) -> Result<IssuedCredential, SecretsError> {
        let failed = async |reason: String, err: SecretsError| {
            self.record(
                session_id,
                owner,
                &grant.broker,
                &grant.name,
                AuditAction::IssueFailed,
                Some(reason),
                None,
            )
            .await?;
            Err(err)
        };
        let request = Grant {
            session_id: session_id.to_owned(),
            owner: owner.to_owned(),
            name: grant.name.clone(),
            scope: grant.scope.clone(),
            ttl_secs,
        };
        let issued = match self.plugins.broker(&grant.broker) {
            Ok(broker) => broker.issue(&request).await,
            Err(err) => Err(err),
        };
        let mut credential = match issued {
            Ok(credential) => IssuedCredential::from_broker(grant, credential),
            Err(source) => {
                tracing::error!(session = session_id, broker = %grant.broker, name = %grant.name, error = %source, "broker could not issue");
                let reason = source.to_string();
                let err = SecretsError::Broker {
                    broker: grant.broker.clone(),
                    name: grant.name.clone(),
                    source,
                };
                return failed(reason, err).await;
            }
        };
        // From here on the credential exists at its broker: anything that
        // goes wrong revokes it.
        let checked = credential.check(before).and_then(|()| {
            logs::LIVE
                .add(session_id, credential.values())
                .map_err(|e| e.to_string())
        });
        if let Err(reason) = checked {
            let err = SecretsError::Unusable {
                broker: grant.broker.clone(),
                name: grant.name.clone(),
                reason: reason.clone(),
            };
            self.revoke_all(session_id, owner, std::slice::from_mut(&mut credential))
                .await;
            return failed(reason, err).await;
        }
        if let Err(err) = self
            .record(
                session_id,
                owner,
                &grant.broker,
                &grant.name,
                AuditAction::Issued,
                None,
                credential.expires_at,
            )
            .await
        {
            // Not audited, not handed out.
            self.revoke_all(session_id, owner, std::slice::from_mut(&mut credential))
                .await;
            return Err(err);
        }
        tracing::info!(session = session_id, owner, broker = %grant.broker, name = %grant.name, "credential issued");
        Ok(credential)
    }

    /// Revokes every credential not revoked yet, marking each revoked (a
    /// failed revocation is audited and logged, and marked too: retrying a
    /// broker that refuses would only repeat the failure at every start).
    pub async fn revoke_all(
        &self,
        session_id: &str,
        owner: &str,
        credentials: &mut [IssuedCredential],
    ) {
        for credential in credentials.iter_mut().filter(|c| !c.revoked) {
            let (action, detail) = match &credential.handle {
                None => (
                    AuditAction::Revoked,
                    Some("static secret: withdrawn with the sandbox".to_owned()),
                ),
                Some(handle) => match self.plugins.broker(&credential.broker) {
                    Err(err) => (AuditAction::RevokeFailed, Some(err.to_string())),
                    Ok(broker) => match broker.revoke(handle).await {
                        Ok(()) => (AuditAction::Revoked, None),
                        Err(err) => (AuditAction::RevokeFailed, Some(err.to_string())),
                    },
                },
            };
            if action == AuditAction::RevokeFailed {
                tracing::error!(session = session_id, broker = %credential.broker, name = %credential.name, error = detail.as_deref().unwrap_or(""), "cannot revoke a credential");
            }
            credential.revoked = true;
            if let Err(err) = self
                .record(
                    session_id,
                    owner,
                    &credential.broker,
                    &credential.name,
                    action,
                    detail,
                    None,
                )
                .await
            {
                tracing::error!(session = session_id, error = %err, "cannot audit a revocation");
            }
        }
        logs::LIVE.remove(session_id);
    }

    /// Audits a credential the host itself handed out (the built-in
    /// gateway's virtual key).
    pub async fn record_builtin(
        &self,
        session_id: &str,
        owner: &str,
        name: &str,
        action: AuditAction,
        expires_at: Option<u64>,
    ) -> Result<(), SecretsError> {
        self.record(session_id, owner, "gateway", name, action, None, expires_at)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        session_id: &str,
        owner: &str,
        broker: &str,
        name: &str,
        action: AuditAction,
        detail: Option<String>,
        expires_at: Option<u64>,
    ) -> Result<(), SecretsError> {
        // A broker's error message is its own text: mask whatever is live.
        let detail = detail.map(|d| logs::LIVE.redactor().redact_str(&d).into_owned());
        self.audit
            .record(AuditEntry {
                owner: owner.to_owned(),
                session_id: session_id.to_owned(),
                broker: broker.to_owned(),
                name: name.to_owned(),
                action,
                detail,
                expires_at,
            })
            .await
            .map_err(SecretsError::from)
    }
}
