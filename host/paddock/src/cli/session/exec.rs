//! `session exec` (start an exec and watch it) and `session attach` (watch
//! one that runs already).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use bytes::Bytes;
use paddock_sdk::agent::RunSpec;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

use super::client::{Api, ApiError};
use super::follow::Target;
use super::watch::{Mode, OnInterrupt, watch};
use super::{AttachArgs, ExecArgs, PrintArgs};

/// Bytes per `POST .../stdin`.
const STDIN_CHUNK: usize = 64 << 10;

/// `POST /v1/sessions/{id}/execs`.
#[derive(Debug, Default, Serialize)]
struct NewExec {
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keep_stdin_open: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<RunSpec>,
}

pub async fn exec(api: &Api, args: ExecArgs) -> anyhow::Result<ExitCode> {
    // From here on Ctrl-C cancels the exec instead of killing us, so an
    // exec cannot be left running by a Ctrl-C that lands while it starts.
    args.agent.check()?;
    let interrupts = interrupts()?;
    let stdin = args
        .stdin_file
        .as_deref()
        .map(StdinSource::open)
        .transpose()?;
    let timeout_ms = args.timeout.map(|secs| secs.saturating_mul(1_000));
    let env: BTreeMap<String, String> = args.env.into_iter().collect();
    let (mode, body) = match args.agent.agent {
        Some(agent) => {
            let prompt = match args.agent.prompt.as_deref() {
                Some("-") | None => read_prompt().await?,
                Some(prompt) => prompt.to_owned(),
            };
            let run = RunSpec {
                prompt,
                model: args.agent.model,
                resume: args.agent.resume,
                max_turns: args.agent.max_turns,
                system_prompt_append: args.agent.system_prompt_append,
                workdir: args.cwd.unwrap_or_else(|| ".".to_owned()),
                options: args.agent.options.into_iter().collect(),
                ..RunSpec::default()
            };
            let body = NewExec {
                env,
                timeout_ms,
                agent: Some(agent),
                run: Some(run),
                ..NewExec::default()
            };
            (mode(&args.print, true), body)
        }
        None => {
            let body = NewExec {
                argv: Some(args.argv),
                env,
                cwd: args.cwd,
                keep_stdin_open: stdin.is_some(),
                timeout_ms,
                ..NewExec::default()
            };
            (Mode::Command, body)
        }
    };
    let view = api
        .start_exec(&args.session, &body)
        .await
        .with_context(|| format!("starting an exec in session {}", args.session))?;
    let exec = view
        .get("id")
        .and_then(Value::as_str)
        .context("the host's answer has no exec id")?
        .to_owned();
    tracing::info!(session = %args.session, %exec, "exec started");
    if args.detach {
        writeln!(std::io::stdout().lock(), "{exec}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = Target {
        session: args.session,
        exec,
    };
    if let Some(stdin) = stdin {
        tokio::spawn(stdin.pump(api.clone(), target.clone()));
    }
    watch(api, target, 0, mode, OnInterrupt::Cancel, interrupts).await
}

pub async fn attach(api: &Api, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let interrupts = interrupts()?;
    let view = api
        .exec(&args.session, &args.exec)
        .await
        .with_context(|| format!("looking up exec {} in session {}", args.exec, args.session))?;
    let is_agent = view.get("kind").and_then(Value::as_str) == Some("agent");
    let target = Target {
        session: args.session,
        exec: args.exec,
    };
    let mode = mode(&args.print, is_agent);
    watch(
        api,
        target,
        args.since,
        mode,
        OnInterrupt::Detach,
        interrupts,
    )
    .await
}

fn mode(print: &PrintArgs, is_agent: bool) -> Mode {
    if is_agent {
        Mode::Agent {
            raw: print.raw,
            show_output: print.show_output,
        }
    } else {
        Mode::Command
    }
}

fn interrupts() -> anyhow::Result<Signal> {
    signal(SignalKind::interrupt()).context("listening for Ctrl-C")
}

/// The prompt from our stdin (`--prompt -`, or no `--prompt`), unless
/// that is a terminal nobody is going to type a whole prompt into.
async fn read_prompt() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        anyhow::bail!("give the prompt with --prompt TEXT, or pipe it on stdin");
    }
    let prompt = tokio::task::spawn_blocking(|| std::io::read_to_string(std::io::stdin()))
        .await
        .context("reading the prompt from stdin")?
        .context("reading the prompt from stdin")?;
    if prompt.trim().is_empty() {
        anyhow::bail!("the prompt read from stdin is empty");
    }
    Ok(prompt)
}

/// What `--stdin-file` feeds to the exec.
struct StdinSource {
    reader: Box<dyn Read + Send>,
    name: String,
}

impl StdinSource {
    /// Opens the file now, so a wrong path fails before the exec starts.
    fn open(path: &Path) -> anyhow::Result<Self> {
        if path == Path::new("-") {
            return Ok(Self {
                reader: Box::new(std::io::stdin()),
                name: "stdin".to_owned(),
            });
        }
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Self {
            reader: Box::new(file),
            name: path.display().to_string(),
        })
    }

    /// Sends everything to the exec's stdin, then closes it.
    ///
    /// Reading happens on a plain thread: a blocking read (of a terminal,
    /// say) cannot be cancelled, and on the runtime's blocking pool it would
    /// hold up our exit after the exec ended.
    async fn pump(self, api: Api, target: Target) {
        let (tx, mut rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
        let Self { mut reader, name } = self;
        let spawned = std::thread::Builder::new()
            .name("paddock-stdin".to_owned())
            .spawn(move || {
                let mut buf = vec![0; STDIN_CHUNK];
                loop {
                    let chunk = match reader.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                        Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(err) => Err(err),
                    };
                    let failed = chunk.is_err();
                    if tx.blocking_send(chunk).is_err() || failed {
                        return;
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start reading {name}; the exec's stdin is closed");
        }
        while let Some(chunk) = rx.recv().await {
            let data = match chunk {
                Ok(data) => data,
                Err(err) => {
                    tracing::warn!(error = %err, "reading {name} failed; the exec's stdin is closed");
                    break;
                }
            };
            if let Err(err) = api
                .write_stdin(&target.session, &target.exec, data, false)
                .await
            {
                stdin_refused(&err);
                return;
            }
        }
        if let Err(err) = api
            .write_stdin(&target.session, &target.exec, Bytes::new(), true)
            .await
        {
            stdin_refused(&err);
        }
    }
}

/// A write to an exec that has ended is expected (it did not read all of
/// its input, as `head` does not); anything else is worth a warning.
fn stdin_refused(err: &ApiError) {
    match err {
        ApiError::Status { status, .. } if *status == StatusCode::CONFLICT => {
            tracing::debug!(error = %err, "the exec no longer takes stdin");
        }
        _ => tracing::warn!(error = %err, "cannot write the exec's stdin"),
    }
}
