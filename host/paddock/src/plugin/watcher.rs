//! Hot reload: the plugins directory is watched and rescanned shortly after
//! anything in it changes.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::registry::PluginHost;

/// How long to wait after a change before rescanning, so a file being copied
/// in is read once it is whole (and a burst of events makes one rescan).
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// Rescan interval when the OS cannot notify us (no inotify watches left,
/// an unsupported filesystem).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps the directory watched while alive.
pub struct WatchHandle {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `host`'s plugins directory until the handle is dropped. Returns
/// `None` if the host has no plugins directory.
pub fn watch(host: Arc<PluginHost>) -> Option<WatchHandle> {
    let dir = host.plugins_dir()?.to_owned();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            // A full channel already means "rescan soon".
            Ok(_) => drop(tx.try_send(())),
            Err(e) => tracing::warn!(error = %e, "plugins directory watcher error"),
        })
        .and_then(|mut w| w.watch(&dir, RecursiveMode::NonRecursive).map(|()| w));
    let watcher = match watcher {
        Ok(w) => {
            tracing::info!(dir = %dir.display(), "watching the plugins directory");
            Some(w)
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, interval = ?POLL_INTERVAL, "cannot watch the plugins directory; polling it instead");
            None
        }
    };
    let polling = watcher.is_none();
    let task = tokio::spawn(async move {
        loop {
            if polling {
                tokio::time::sleep(POLL_INTERVAL).await;
            } else {
                if rx.recv().await.is_none() {
                    return;
                }
                tokio::time::sleep(DEBOUNCE).await;
                while rx.try_recv().is_ok() {}
            }
            host.rescan().await;
        }
    });
    Some(WatchHandle {
        _watcher: watcher,
        task,
    })
}
