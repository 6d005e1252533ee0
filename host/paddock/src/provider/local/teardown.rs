//! Stopping a sandbox's processes and removing its directory: shared by
//! `destroy`, failed provisions and adoption's clean-ups.

use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use super::layout::{SandboxDir, remove_tree};
use super::process::{Ending, SandboxProcess, processes_of, terminate};
use super::state::SandboxState;
use super::{DESTROY_GRACE, Inner};
use crate::provider::ProviderError;

impl Inner {
    /// Stops a sandbox's runnerd (by its state, if there is one; by
    /// searching for processes naming its workspace if not, or if runnerd
    /// had to be killed) and removes its directory.
    pub(super) async fn teardown(
        &self,
        dir: &SandboxDir,
        state: Option<&SandboxState>,
    ) -> Result<(), ProviderError> {
        let workspace = dir.workspace();
        let mut search = state.is_none();
        if let Some(state) = state
            && let Some(runnerd) = SandboxProcess::find(state.pid, &workspace)
        {
            match terminate(&runnerd, DESTROY_GRACE).await {
                Ok(Ending::Exited) => {}
                Ok(Ending::Killed) => {
                    tracing::warn!(sandbox = %state.id, pid = state.pid, "runnerd did not stop within {DESTROY_GRACE:?} of SIGTERM; killed it");
                    search = true;
                }
                Err(source) => {
                    return Err(ProviderError::Io {
                        context: format!(
                            "stopping runnerd (pid {}) of sandbox {}",
                            state.pid, state.id
                        ),
                        source,
                    });
                }
            }
        }
        if search {
            kill_strays(workspace).await;
        }
        remove_tree(dir.path().to_owned())
            .await
            .map_err(|source| ProviderError::Io {
                context: format!("removing sandbox directory {}", dir.path().display()),
                source,
            })
    }

    /// After a failed start: kill what was started and remove the directory.
    pub(super) async fn abandon(&self, mut child: Child, dir: &SandboxDir) {
        if let Err(err) = child.kill() {
            tracing::debug!(error = %err, "cannot kill a runnerd that failed to start");
        }
        self.reaper.reap(child);
        // Confined, runnerd may outlive its bwrap launcher.
        kill_strays(dir.workspace()).await;
        if let Err(err) = remove_tree(dir.path().to_owned()).await {
            tracing::warn!(dir = %dir.path().display(), error = %err, "cannot remove the directory of a sandbox that failed to start");
        }
    }
}

/// SIGKILLs every process naming `workspace` on its command line.
async fn kill_strays(workspace: PathBuf) {
    let search = tokio::task::spawn_blocking(move || processes_of(&workspace)).await;
    let strays = match search {
        Ok(strays) => strays,
        Err(err) => {
            tracing::warn!(error = %err, "the search for a sandbox's processes failed");
            return;
        }
    };
    for stray in strays {
        tracing::warn!(pid = stray.pid(), "killing a leftover sandbox process");
        if let Err(err) = stray.signal(libc::SIGKILL) {
            tracing::warn!(pid = stray.pid(), error = %err, "cannot kill a leftover sandbox process");
        } else if !stray.wait_exit(Duration::from_secs(1)).await {
            tracing::warn!(
                pid = stray.pid(),
                "leftover sandbox process still running after SIGKILL"
            );
        }
    }
}
