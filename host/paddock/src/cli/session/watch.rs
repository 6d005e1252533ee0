//! Watching an exec: print its events as they arrive, handle Ctrl-C, and
//! turn its terminal event into this process's exit status.
//!
//! A command's stdout and stderr go to ours, byte for byte as text; an
//! agent run prints its normalized events ([`AgentPrinter`]) and keeps the
//! CLI's own output out of the way unless asked for. Notes from paddock
//! itself (gaps, reconnects, how the exec ended) go to stderr, prefixed
//! `paddock:`.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::Signal;

use super::agent_print::AgentPrinter;
use super::client::Api;
use super::exit::{self, Outcome};
use super::follow::{self, StreamEvent, Target};
use super::human::Style;

/// How an exec's events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A command: its stdout and stderr, as they are.
    Command,
    /// An agent run.
    Agent {
        /// Print the agent events as the JSON the API sends.
        raw: bool,
        /// Also print the CLI's own stdout and stderr, and `raw` events.
        show_output: bool,
    },
}

/// What Ctrl-C does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    /// The first cancels the exec and keeps streaming to its exit event;
    /// the second stops waiting.
    Cancel,
    /// Stop watching; the exec keeps running.
    Detach,
}

/// Watches `target` from event `after` to its end; returns the exit status
/// the exec's end maps to ([`exit`]). `interrupts` is SIGINT, registered by
/// the caller before it started anything Ctrl-C should not orphan.
pub async fn watch(
    api: &Api,
    target: Target,
    after: u64,
    mode: Mode,
    on_interrupt: OnInterrupt,
    mut interrupts: Signal,
) -> anyhow::Result<ExitCode> {
    let mut events = follow::spawn(api.clone(), target.clone(), after);
    let mut printer = Printer::new(mode);
    let mut last_seq = after;
    let mut cancelling = false;
    loop {
        tokio::select! {
            delivered = events.recv() => {
                let Some(delivered) = delivered else {
                    anyhow::bail!("the event stream of exec {} ended without an exit event", target.exec);
                };
                let delivered = delivered?;
                last_seq = delivered.seq;
                match printer.event(delivered.event) {
                    Ok(Some(outcome)) => return Ok(ExitCode::from(outcome.code)),
                    Ok(None) => {}
                    Err(err) => {
                        // Whoever read our output is gone (`| head`, say):
                        // like SIGPIPE would a local process, stop the exec.
                        if on_interrupt == OnInterrupt::Cancel
                            && let Err(cancel) = api.cancel(&target.session, &target.exec).await
                        {
                            tracing::warn!(exec = %target.exec, error = %cancel, "cannot cancel the exec");
                        }
                        if err.kind() == io::ErrorKind::BrokenPipe {
                            // Quietly, with the status a shell reports for a
                            // process SIGPIPE killed.
                            return Ok(ExitCode::from(128 + libc::SIGPIPE as u8));
                        }
                        return Err(err).context("writing the exec's output");
                    }
                }
            }
            Some(()) = interrupts.recv() => {
                if on_interrupt == OnInterrupt::Cancel && !cancelling {
                    cancelling = true;
                    note(&format!("cancelling exec {} (Ctrl-C again to stop waiting)", target.exec));
                    tokio::spawn(cancel(api.clone(), target.clone()));
                    continue;
                }
                note(&format!(
                    "stopped watching; exec {exec} may still be running: paddock session attach {session} {exec} --since {last_seq}",
                    exec = target.exec,
                    session = target.session,
                ));
                return Ok(ExitCode::from(exit::CANCELLED));
            }
        }
    }
}

/// Asks the host to cancel; the exit event reports the result.
async fn cancel(api: Api, target: Target) {
    if let Err(err) = api.cancel(&target.session, &target.exec).await {
        note(&format!("cannot cancel exec {}: {err}", target.exec));
    }
}

/// A line from paddock itself on stderr. A closed stderr is no reason to
/// stop streaming, so a failed write is dropped.
pub fn note(message: &str) {
    let _ = writeln!(io::stderr().lock(), "paddock: {message}");
}

/// Bytes of an agent CLI's stderr kept to explain a failed run.
const STDERR_TAIL: usize = 4096;

/// Prints one exec's events.
struct Printer {
    mode: Mode,
    agent: AgentPrinter,
    /// The end of an agent CLI's hidden stderr.
    stderr_tail: String,
}

impl Printer {
    fn new(mode: Mode) -> Self {
        let show_raw = matches!(
            mode,
            Mode::Agent {
                show_output: true,
                ..
            }
        );
        Self {
            mode,
            agent: AgentPrinter::new(Style::for_terminal(&io::stdout()), show_raw),
            stderr_tail: String::new(),
        }
    }

    fn shows_output(&self) -> bool {
        matches!(
            self.mode,
            Mode::Command
                | Mode::Agent {
                    show_output: true,
                    ..
                }
        )
    }

    /// Prints `event`; for the exit event, returns the outcome. Fails only
    /// when stdout cannot be written.
    fn event(&mut self, event: StreamEvent) -> io::Result<Option<Outcome>> {
        let stdout = io::stdout();
        let mut out = stdout.lock();
        match event {
            StreamEvent::Stdout(text) => {
                if self.shows_output() {
                    self.agent.break_line(&mut out)?;
                    out.write_all(text.as_bytes())?;
                }
            }
            StreamEvent::Stderr(text) => {
                if self.shows_output() {
                    self.agent.break_line(&mut out)?;
                    out.flush()?;
                    let _ = io::stderr().lock().write_all(text.as_bytes());
                } else {
                    self.keep_stderr(&text);
                }
            }
            StreamEvent::Agent { json, event } => match (self.mode, event) {
                (Mode::Agent { raw: true, .. }, _) => writeln!(out, "{json}")?,
                (_, Some(event)) => self.agent.print(&event, &mut out)?,
                (_, None) => self.agent.print_unknown(&json, &mut out)?,
            },
            StreamEvent::OutputGap { frames } => {
                self.agent.break_line(&mut out)?;
                out.flush()?;
                note(&format!(
                    "{frames} output frame(s) lost: the host could not fetch them from the sandbox in time"
                ));
            }
            StreamEvent::Gap { from, to } => {
                self.agent.break_line(&mut out)?;
                out.flush()?;
                note(&format!(
                    "events {from}..={to} were evicted from the host's replay ring before they were read"
                ));
            }
            StreamEvent::Exit { json, info } => {
                self.agent.break_line(&mut out)?;
                out.flush()?;
                let outcome = info
                    .as_ref()
                    .map_or_else(|| exit::unreadable(&json), exit::outcome);
                self.explain(&outcome);
                return Ok(Some(outcome));
            }
        }
        out.flush()?;
        Ok(None)
    }

    fn keep_stderr(&mut self, text: &str) {
        self.stderr_tail.push_str(text);
        if self.stderr_tail.len() > STDERR_TAIL {
            let mut cut = self.stderr_tail.len() - STDERR_TAIL;
            while !self.stderr_tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.stderr_tail.drain(..cut);
        }
    }

    /// Says on stderr how the exec ended, when it did not simply exit; for
    /// an agent run that failed without a result, shows the end of the
    /// CLI's stderr, which usually says why.
    fn explain(&self, outcome: &Outcome) {
        if let Some(message) = &outcome.message {
            note(message);
        }
        let silent_failure = outcome.code != 0 && !self.agent.saw_result();
        if matches!(self.mode, Mode::Agent { .. }) && silent_failure {
            let tail = self.stderr_tail.trim();
            if !tail.is_empty() {
                note(&format!(
                    "the agent CLI ended without a result; its stderr ended with:\n{tail}"
                ));
            } else if outcome.message.is_none() {
                note(&format!(
                    "the agent CLI exited with status {} without a result",
                    outcome.code
                ));
            }
        }
    }
}
