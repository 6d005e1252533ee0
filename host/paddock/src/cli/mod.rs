//! The `paddock` command line.

mod link;
mod plugin;
mod serve;
mod session;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(
    name = "paddock",
    version,
    about = "Runs coding agents in sandboxes on behalf of a platform"
)]
pub struct Cli {
    /// The TOML configuration file.
    #[arg(long, global = true, env = "PADDOCK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the host keeps its state (default `./.paddock`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// The directory of `.wasm` plugins (default `<data-dir>/plugins`).
    #[arg(long, global = true)]
    pub plugins_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host.
    Serve(serve::ServeArgs),
    /// Inspect and try plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Create sessions and run commands and agents in them, through a
    /// running host's API.
    Session(session::SessionArgs),
    /// Link this desktop to a host, so that sessions can run here.
    Link(link::LinkArgs),
}

impl Cli {
    /// The configuration: file, then `PADDOCK_*` variables, then flags.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let mut config = Config::load(self.config.as_deref(), |k| std::env::var(k).ok())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir = Some(dir.clone());
        }
        if let Some(dir) = &self.plugins_dir {
            config.plugins.dir = Some(dir.clone());
        }
        Ok(config)
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = cli.load_config()?;
    match cli.command {
        Command::Serve(args) => serve::run(config, args).await,
        Command::Plugin(command) => plugin::run(config, command).await,
        Command::Session(args) => session::run(config, args).await,
        Command::Link(args) => link::run(config, args).await,
    }
}
