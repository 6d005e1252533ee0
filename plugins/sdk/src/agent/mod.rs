//! Agent adapters: implement [`AgentAdapter`] and [`Parser`], then call
//! [`export_agent!`](crate::export_agent) once.
//!
//! ```ignore
//! use paddock_sdk::agent::*;
//!
//! struct Echo;
//! impl AgentAdapter for Echo {
//!     type Parser = EchoParser;
//!     fn info() -> AgentInfo { /* … */ }
//!     fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> { /* … */ }
//!     fn parser(_: ParseContext) -> EchoParser { EchoParser }
//! }
//! struct EchoParser;
//! impl Parser for EchoParser {
//!     fn line(&mut self, line: &[u8], out: &mut Vec<AgentEvent>) {
//!         out.push(AgentEvent::raw(line));
//!     }
//! }
//! paddock_sdk::export_agent!(Echo);
//! ```

pub mod ansi;
mod driver;
mod event;
pub mod lines;
mod spec;

pub use driver::{ParserDriver, synthesize_result};
pub use event::*;
pub use spec::*;

/// An agent adapter: one agent CLI's command line and output format.
///
/// The same implementation runs natively (tests, benchmarks) and as a
/// `wasm32-wasip2` component inside the host.
pub trait AgentAdapter: 'static {
    type Parser: Parser + 'static;

    fn info() -> AgentInfo;

    /// The command line, environment and stdin for `spec`. The prompt must
    /// not go into argv (argv shows in every process list): put it on stdin,
    /// or in an [`ExecFile`].
    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError>;

    /// What to write to stdin to steer the running CLI; `None` (the default)
    /// if it cannot be steered.
    fn encode_input(kind: InputKind, text: &str) -> Option<String> {
        let _ = (kind, text);
        None
    }

    /// A parser for one run.
    fn parser(context: ParseContext) -> Self::Parser;
}

/// Turns one CLI's stdout lines into [`AgentEvent`]s. Owned by one run.
pub trait Parser {
    /// One complete, non-blank line without its newline. It may not be JSON
    /// and may not be UTF-8: emit [`AgentEvent::raw`] for what you do not
    /// understand rather than dropping it.
    fn line(&mut self, line: &[u8], out: &mut Vec<AgentEvent>);

    /// The process ended. Emit what was held back (usage awaiting
    /// reconciliation, an unfinished message). The run's `result`, if the CLI
    /// wrote none, is synthesized by [`ParserDriver`] after this.
    fn finish(&mut self, end: ProcessEnd, out: &mut Vec<AgentEvent>) {
        let _ = (end, out);
    }
}
