//! Reaping the processes the provider spawned (runnerd, or its bwrap
//! launcher) without ever killing them.

use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;

/// How often exited children are looked for when no SIGCHLD arrives.
const REAP_FALLBACK_INTERVAL: Duration = Duration::from_secs(5);

/// Reaps the runnerd processes (or their bwrap launchers) this host
/// spawned, so an exited one does not stay a zombie while the host lives.
///
/// One task per provider, woken by SIGCHLD (and every few seconds in case
/// the signal cannot be had), polls its children with `try_wait`; it never
/// kills anything. Started on first use, inside the caller's runtime; when
/// that runtime is gone a new one is started in the next.
#[derive(Debug, Default)]
pub(super) struct Reaper {
    tx: Mutex<Option<mpsc::UnboundedSender<Child>>>,
}

impl Reaper {
    /// Hands `child` over to be reaped when it exits.
    pub fn reap(&self, child: Child) {
        let mut tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let child = match tx.as_ref() {
            Some(sender) => match sender.send(child) {
                Ok(()) => return,
                // The task is gone (its runtime shut down).
                Err(mpsc::error::SendError(child)) => child,
            },
            None => child,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (sender, receiver) = mpsc::unbounded_channel();
                runtime.spawn(reap_children(receiver));
                if let Err(mpsc::error::SendError(child)) = sender.send(child) {
                    wait_in_thread(child);
                }
                *tx = Some(sender);
            }
            Err(_) => wait_in_thread(child),
        }
    }
}

/// Outside a runtime: a thread of its own waits for the child.
fn wait_in_thread(mut child: Child) {
    let spawned = std::thread::Builder::new()
        .name("runnerd-reaper".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Err(err) = child.wait() {
                tracing::warn!(pid = child.id(), error = %err, "cannot reap runnerd");
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "cannot start a thread to reap runnerd; it may stay a zombie");
    }
}

async fn reap_children(mut rx: mpsc::UnboundedReceiver<Child>) {
    use tokio::signal::unix::{SignalKind, signal};

    let mut sigchld = match signal(SignalKind::child()) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::warn!(error = %err, "no SIGCHLD stream; exited runnerds are reaped every few seconds");
            None
        }
    };
    let mut children: Vec<Child> = Vec::new();
    let mut open = true;
    loop {
        children.retain_mut(|child| match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                tracing::debug!(pid = child.id(), %status, "runnerd process exited");
                false
            }
            Err(err) => {
                tracing::warn!(pid = child.id(), error = %err, "cannot reap a runnerd process");
                false
            }
        });
        if !open && children.is_empty() {
            return;
        }
        tokio::select! {
            received = rx.recv(), if open => match received {
                Some(child) => children.push(child),
                None => open = false,
            },
            delivered = async {
                match sigchld.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if delivered.is_none() {
                    sigchld = None;
                }
            }
            () = tokio::time::sleep(REAP_FALLBACK_INTERVAL) => {}
        }
    }
}
