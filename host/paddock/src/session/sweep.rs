//! The sweeper: ends sessions past their TTL (a hard stop) or idle past
//! their idle timeout, and slides the deadlines of execs with a client
//! attached.
//!
//! Idleness is runnerd's activity clock (the last time anything ran or was
//! attached); a session without a sandbox uses the host's own clock of its
//! last operation. An unreachable runnerd is logged and left for the next
//! sweep: the TTL stays the backstop. A sandbox its provider saw die (the
//! cluster provider watches its pods) ends the session as `provider_lost`.

use std::sync::Arc;

use super::{EndReason, Session, Sessions, unix_ms};

pub(super) async fn run_once(sessions: &Sessions, all: &[Arc<Session>]) {
    let now = unix_ms();
    let retention_ms = sessions.config().ended_retention_secs * 1000;
    for session in all {
        if let Some(ended) = session.ended()
            && now.saturating_sub(ended.at_ms) >= retention_ms
        {
            sessions.forget(session);
        }
    }
    for session in all.iter().filter(|s| s.is_active()) {
        let (expires, idle_ms, client, host_activity) = {
            let state = session.lock();
            (
                state.record.expires_at_ms,
                state.record.idle_timeout_secs * 1000,
                state.runnerd.clone(),
                state.last_activity_ms,
            )
        };
        if now >= expires {
            sessions.end(session, EndReason::Ttl).await;
            continue;
        }
        // A provider that watches its sandboxes (pods) may know one died.
        if let Some(why) = session
            .sandbox()
            .and_then(|sandbox| sessions.lost(&sandbox))
        {
            tracing::warn!(session = %session.id, %why, "the sandbox died; session ended");
            sessions.end(session, EndReason::ProviderLost).await;
            continue;
        }
        let Some(client) = client else {
            if idle_ms > 0 && now.saturating_sub(host_activity) >= idle_ms {
                sessions.end(session, EndReason::Idle).await;
            }
            continue;
        };
        let health = match client.health().await {
            Ok(health) => health,
            Err(err) => {
                tracing::warn!(session = %session.id, error = %err, "runnerd unreachable in the sweep; the TTL stays the backstop");
                continue;
            }
        };
        let attached = session.execs().iter().any(|e| e.attached() > 0);
        let last = health.last_activity_ms.max(host_activity);
        if idle_ms > 0
            && health.running_execs == 0
            && !attached
            && now.saturating_sub(last) >= idle_ms
        {
            sessions.end(session, EndReason::Idle).await;
            continue;
        }
        slide_deadlines(sessions, session, &client).await;
    }
}

/// An exec's deadline slides while a client is attached: runnerd's
/// deadline (the asked timeout plus the grace) is kept at least a full
/// grace ahead, so it only passes once nobody watched for that long.
async fn slide_deadlines(
    sessions: &Sessions,
    session: &Session,
    client: &paddock_runnerd::client::Client,
) {
    let grace_ms = sessions.config().exec_attach_grace_secs * 1000;
    for exec in session.execs() {
        let record = exec.record();
        if record.exit.is_some() || record.timeout_ms.is_none() || exec.attached() == 0 {
            continue;
        }
        let slide = match client.exec(&record.id).await {
            Ok(status) => status
                .deadline_at_ms
                .is_some_and(|deadline| deadline < unix_ms() + grace_ms),
            Err(err) => {
                tracing::debug!(exec = %record.id, error = %err, "cannot read the deadline");
                false
            }
        };
        if slide && let Err(err) = client.set_deadline(&record.id, grace_ms).await {
            tracing::debug!(exec = %record.id, error = %err, "cannot slide the deadline");
        }
    }
}
