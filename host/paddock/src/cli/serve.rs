//! `paddock serve`: the host process.

use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use crate::plugin::{PluginHost, watch};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub async fn run(config: Config, _args: ServeArgs) -> anyhow::Result<ExitCode> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let host = PluginHost::new(
        &config.plugins,
        Some(config.plugins_dir()),
        &data_dir.join("cache"),
    )
    .await?;
    for p in host.list() {
        tracing::info!(plugin = %p.name, kind = %p.kind, version = %p.version, source = %p.source, "plugin available");
    }
    let _watch = watch(host.clone());
    tracing::info!(data_dir = %data_dir.display(), plugins_dir = %config.plugins_dir().display(), "paddock is running; Ctrl-C stops it");
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
