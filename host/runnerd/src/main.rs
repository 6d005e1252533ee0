//! `runnerd`: the daemon inside every Paddock sandbox. See README.md.

use std::process::ExitCode;

use paddock_runnerd::daemon::{self, Config, ConfigError};

fn main() -> ExitCode {
    let config = match Config::parse(std::env::args_os().skip(1), |name| std::env::var_os(name)) {
        Ok(config) => config,
        Err(ConfigError::Help) => {
            println!("{}", Config::usage());
            return ExitCode::SUCCESS;
        }
        Err(ConfigError::Version) => {
            println!("runnerd {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("runnerd: {err}\n\n{}", Config::usage());
            return ExitCode::from(2);
        }
    };
    init_tracing();
    // Two workers: enough that a blocking moment (a fork, a file operation
    // on the blocking pool) never stalls output streaming, lean enough for
    // a sandbox.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("runnerd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "runnerd failed");
            eprintln!("runnerd: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries the listening line); the level comes
/// from `RUNNERD_LOG`.
fn init_tracing() {
    let level = match std::env::var("RUNNERD_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .init();
}
