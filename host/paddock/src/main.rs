use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = paddock::cli::Cli::parse();
    // The host logs what it does; a one-shot command only what went wrong.
    let default_level = match cli.command {
        paddock::cli::Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PADDOCK_LOG")
                .unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // Secrets issued to live sessions are masked in every log line.
        .with_writer(paddock::secrets::logs::RedactingWriter::new(
            std::io::stderr,
        ))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paddock: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(paddock::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("paddock: {e:#}");
            ExitCode::FAILURE
        }
    }
}
