//! `paddock session …`: an operator's client of a running host's API.
//!
//! Every command is one or a few HTTP calls; `exec` and `attach` follow
//! the exec's event stream (reconnecting across drops and host restarts)
//! and exit with the exec's exit status.

mod agent_print;
mod client;
mod exec;
mod exit;
mod follow;
mod human;
mod manage;
mod sse;
mod watch;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::config::Config;
use client::Api;

#[derive(Debug, Args)]
pub struct SessionArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: SessionCommand,
}

/// Where the host is and who we are to it.
#[derive(Debug, Args)]
struct Connection {
    /// The host's API.
    #[arg(
        long,
        global = true,
        env = "PADDOCK_HOST",
        default_value = "http://127.0.0.1:8420",
        value_name = "URL"
    )]
    host: String,
    /// The API token. Default: the one in `<data-dir>/api-token`, which
    /// `paddock serve` writes when no tokens are configured.
    #[arg(
        long,
        global = true,
        env = "PADDOCK_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SessionCommand {
    /// Create a session and print its id. Its sandbox is provisioned at its
    /// first exec.
    Create(CreateArgs),
    /// List your sessions.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a command (or with `--agent`, an agent run) in a session and
    /// stream its output. Exits with its status: 128+N if signal N killed
    /// it, 124 if it timed out, 130 if it was cancelled. Ctrl-C cancels it
    /// (a second Ctrl-C stops waiting).
    Exec(Box<ExecArgs>),
    /// Stream an exec's events from a point on, as `exec` does; Ctrl-C
    /// stops watching and leaves the exec running.
    Attach(AttachArgs),
    /// End sessions: their running execs are cancelled and their sandboxes
    /// destroyed.
    #[command(visible_alias = "delete")]
    Rm {
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// Hard lifetime in seconds (default and maximum from the host's config).
    #[arg(long, value_name = "SECS")]
    ttl: Option<u64>,
    /// Seconds without anything running or attached before the session is
    /// reaped; 0 disables.
    #[arg(long, value_name = "SECS")]
    idle: Option<u64>,
    /// A variable for every exec of the session (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// A label (repeatable).
    #[arg(long = "label", value_name = "K=V", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
    /// Outbound network of the sandbox.
    #[arg(long)]
    network: Option<Network>,
    /// The sandbox provider kind (default from the host's config).
    #[arg(long, value_name = "KIND")]
    provider: Option<String>,
    /// Print the whole session as JSON instead of its id.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Network {
    /// Full outbound access.
    Egress,
    /// Loopback only, where the provider can enforce it.
    None,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// The session.
    session: String,
    /// A variable for this exec, over the session's (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_pair)]
    env: Vec<(String, String)>,
    /// Working directory, relative to the workspace (an agent run's workdir).
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Deadline in seconds. It slides while a client (this one included)
    /// is attached, so it ends an exec nobody watches; a watched exec runs
    /// until it exits or is cancelled.
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Feed this file (`-`: our own stdin) to the command's stdin, then
    /// close it. Without it the command's stdin is empty.
    #[arg(long, value_name = "PATH|-", conflicts_with = "agent")]
    stdin_file: Option<PathBuf>,
    /// Print the exec's id and return at once; follow it later with
    /// `paddock session attach`.
    #[arg(short, long, conflicts_with = "stdin_file")]
    detach: bool,
    #[command(flatten)]
    agent: AgentRunArgs,
    #[command(flatten)]
    print: PrintArgs,
    /// The command and its arguments, after `--`.
    #[arg(
        last = true,
        value_name = "ARGV",
        required_unless_present = "agent",
        conflicts_with = "agent"
    )]
    argv: Vec<String>,
}

#[derive(Debug, Args)]
struct AgentRunArgs {
    /// Start an agent run with this adapter (e.g. `claude-code`) instead
    /// of a command.
    #[arg(long, value_name = "NAME")]
    agent: Option<String>,
    /// The prompt (without it, or with `-`: read from stdin).
    #[arg(long, value_name = "TEXT", requires = "agent")]
    prompt: Option<String>,
    /// The model (default: the agent CLI's own).
    #[arg(long, value_name = "MODEL", requires = "agent")]
    model: Option<String>,
    /// Continue an earlier agent session (the agent's own session id).
    #[arg(long, value_name = "ID", requires = "agent")]
    resume: Option<String>,
    /// Stop after this many turns.
    #[arg(long, value_name = "N", requires = "agent")]
    max_turns: Option<u32>,
    /// Text appended to the agent's system prompt.
    #[arg(long, value_name = "TEXT", requires = "agent")]
    system_prompt_append: Option<String>,
    /// An adapter-specific option (repeatable).
    #[arg(long = "option", value_name = "K=V", value_parser = parse_pair, requires = "agent")]
    options: Vec<(String, String)>,
}

impl AgentRunArgs {
    /// clap's `requires = "agent"` is not enforced when `argv` (which
    /// conflicts with `--agent`) is given, so this says it instead.
    fn check(&self) -> anyhow::Result<()> {
        let agent_only = self.prompt.is_some()
            || self.model.is_some()
            || self.resume.is_some()
            || self.max_turns.is_some()
            || self.system_prompt_append.is_some()
            || !self.options.is_empty();
        if self.agent.is_none() && agent_only {
            bail!(
                "--prompt, --model, --resume, --max-turns, --system-prompt-append and --option need --agent"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Args)]
struct PrintArgs {
    /// Print an agent run's events as JSON lines, as the API sends them.
    #[arg(long)]
    raw: bool,
    /// Also print an agent CLI's own stdout and stderr, and the lines its
    /// adapter did not understand.
    #[arg(long)]
    show_output: bool,
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// The session.
    session: String,
    /// The exec.
    exec: String,
    /// Start after this event (its sequence number); 0 replays all that the
    /// host still holds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    since: u64,
    #[command(flatten)]
    print: PrintArgs,
}

/// Runs `paddock session …`.
pub async fn run(config: Config, args: SessionArgs) -> anyhow::Result<ExitCode> {
    let token = token(args.connection.token, &config.data_dir())?;
    let api = Api::new(&args.connection.host, token)?;
    match args.command {
        SessionCommand::Create(create) => manage::create(&api, create).await,
        SessionCommand::List { json } => manage::list(&api, json).await,
        SessionCommand::Rm { ids } => manage::remove(&api, &ids).await,
        SessionCommand::Exec(args) => exec::exec(&api, *args).await,
        SessionCommand::Attach(args) => exec::attach(&api, args).await,
    }
}

/// The token from the flag or `PADDOCK_TOKEN`, else from the file a host
/// with no configured tokens generates.
fn token(given: Option<String>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(token) = given.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let path = data_dir.join("api-token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_owned()),
        Ok(_) => bail!(
            "{} is empty; pass --token or set PADDOCK_TOKEN",
            path.display()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "no API token: pass --token or set PADDOCK_TOKEN (a host with no tokens configured \
             writes one to {}; is --data-dir the host's?)",
            path.display()
        ),
        Err(err) => {
            Err(err).with_context(|| format!("reading the API token from {}", path.display()))
        }
    }
}

/// `K=V`, with a non-empty `K`.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<SessionArgs, clap::Error> {
        let cli = Cli::try_parse_from(["paddock", "session"].iter().chain(args))?;
        match cli.command {
            Command::Session(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn exec_takes_argv_after_double_dash_or_an_agent() {
        let args = parse(&["exec", "s-1", "--env", "A=b=c", "--", "sh", "-c", "echo hi"]).unwrap();
        let SessionCommand::Exec(exec) = args.command else {
            panic!()
        };
        assert_eq!(exec.argv, ["sh", "-c", "echo hi"]);
        assert_eq!(exec.env, [("A".to_owned(), "b=c".to_owned())]);

        let args = parse(&[
            "exec",
            "s-1",
            "--agent",
            "claude-code",
            "--prompt",
            "hi",
            "--option",
            "k=v",
        ])
        .unwrap();
        let SessionCommand::Exec(exec) = args.command else {
            panic!()
        };
        assert_eq!(exec.agent.agent.as_deref(), Some("claude-code"));

        assert!(parse(&["exec", "s-1"]).is_err(), "neither argv nor --agent");
        assert!(parse(&["exec", "s-1", "--agent", "x", "--prompt", "p", "--", "ls"]).is_err());
        let SessionCommand::Exec(exec) = parse(&["exec", "s-1", "--prompt", "p", "--", "ls"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert!(exec.agent.check().is_err(), "--prompt without --agent");
        assert!(parse(&["exec", "s-1", "--env", "=x", "--", "ls"]).is_err());
    }

    #[test]
    fn host_and_token_are_accepted_anywhere() {
        let args = parse(&["--host", "h:1", "list", "--token", "t"]).unwrap();
        assert_eq!(args.connection.host, "h:1");
        assert_eq!(args.connection.token.as_deref(), Some("t"));
    }

    #[test]
    fn the_token_falls_back_to_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(token(Some(" given ".into()), dir.path()).unwrap(), "given");
        let missing = token(None, dir.path()).unwrap_err().to_string();
        assert!(missing.contains("api-token"), "{missing}");
        std::fs::write(dir.path().join("api-token"), "pdk_abc\n").unwrap();
        assert_eq!(token(None, dir.path()).unwrap(), "pdk_abc");
        assert_eq!(token(Some("".into()), dir.path()).unwrap(), "pdk_abc");
    }
}
