//! Test helpers for adapter authors: run fixtures through a parser in many
//! chunkings, compare with reviewed golden files, check the prompt stays out
//! of argv. The host's tests use the same files against the wasm builds.
//!
//! A fixture directory holds, per case, `<case>.jsonl` (the CLI's stdout,
//! byte for byte), `<case>.golden.jsonl` (the expected events, one JSON
//! object per line, read by a person) and an entry in `cases.json`:
//!
//! ```json
//! { "a_text": { "end": { "exited": 0 }, "context": {} } }
//! ```
//!
//! Set `PADDOCK_UPDATE_GOLDEN=1` to rewrite the golden files, then read the
//! diff before committing it.

#[cfg(not(target_arch = "wasm32"))]
pub mod broker;
#[cfg(not(target_arch = "wasm32"))]
pub mod provider;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::agent::{
    AgentAdapter, AgentEvent, Gateway, ParseContext, ParserDriver, ProcessEnd, RunSpec, UsageTotals,
};

/// One fixture's facts that are not in its stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCase {
    /// How the CLI's process ended in the capture.
    pub end: ProcessEnd,
    #[serde(default)]
    pub context: ParseContext,
    /// What the case shows, for the reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The cases of a fixture directory, by name.
pub fn load_cases(dir: &Path) -> BTreeMap<String, FixtureCase> {
    let path = dir.join("cases.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Runs `A`'s parser over `stdout` in chunks of `chunk` bytes (the whole
/// input at once if `chunk` is 0) and finishes with `end`.
pub fn parse<A: AgentAdapter>(
    context: ParseContext,
    stdout: &[u8],
    chunk: usize,
    end: ProcessEnd,
) -> Vec<AgentEvent> {
    let mut driver = ParserDriver::new(A::parser(context));
    let mut events = Vec::new();
    if chunk == 0 {
        events.extend(driver.feed(stdout));
    } else {
        for piece in stdout.chunks(chunk) {
            events.extend(driver.feed(piece));
        }
    }
    events.extend(driver.finish(end));
    events
}

/// One JSON object per line, as `paddock plugin parse` prints.
pub fn to_jsonl(events: &[AgentEvent]) -> String {
    let mut out = String::new();
    for event in events {
        out.push_str(&serde_json::to_string(event).expect("events serialize"));
        out.push('\n');
    }
    out
}

/// Asserts that `events` match the golden file at `path`, or rewrites it when
/// `PADDOCK_UPDATE_GOLDEN` is set.
pub fn assert_golden(path: &Path, events: &[AgentEvent]) {
    let actual = to_jsonl(events);
    if std::env::var_os("PADDOCK_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &actual).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (run with PADDOCK_UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let (line, exp, act) = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .find(|(_, (e, a))| e != a)
            .map(|(i, (e, a))| (i + 1, e.to_owned(), a.to_owned()))
            .unwrap_or((
                expected.lines().count().min(actual.lines().count()) + 1,
                format!("{} lines", expected.lines().count()),
                format!("{} lines", actual.lines().count()),
            ));
        panic!(
            "{} differs at line {line}:\n  expected: {exp}\n  actual:   {act}\n(PADDOCK_UPDATE_GOLDEN=1 rewrites it)",
            path.display()
        );
    }
}

/// Chunk sizes every fixture is fed in: whole, tiny (every line split many
/// times), odd, and the host's 64 KiB reads.
pub const CHUNKINGS: [usize; 4] = [0, 7, 4093, 64 << 10];

/// Parses every case of `dir` in every chunking, asserts the chunkings agree
/// and match the golden files, and returns the events per case for further
/// checks.
pub fn check_fixtures<A: AgentAdapter>(dir: &Path) -> BTreeMap<String, Vec<AgentEvent>> {
    let mut all = BTreeMap::new();
    for (name, case) in load_cases(dir) {
        let stdout_path = dir.join(format!("{name}.jsonl"));
        let stdout = std::fs::read(&stdout_path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", stdout_path.display()));
        let whole = parse::<A>(case.context.clone(), &stdout, 0, case.end);
        for chunk in CHUNKINGS {
            let split = parse::<A>(case.context.clone(), &stdout, chunk, case.end);
            assert_eq!(
                split, whole,
                "{name}: {chunk}-byte chunks parse differently"
            );
        }
        assert_golden(&golden_path(dir, &name), &whole);
        all.insert(name, whole);
    }
    all
}

pub fn golden_path(dir: &Path, case: &str) -> PathBuf {
    dir.join(format!("{case}.golden.jsonl"))
}

/// The sum of every `usage` event.
pub fn sum_usage(events: &[AgentEvent]) -> UsageTotals {
    let mut total = UsageTotals::default();
    for event in events {
        if let AgentEvent::Usage(u) = event {
            total.add(u);
        }
    }
    total
}

/// A prompt no CLI flag or path would contain by chance.
pub const SECRET_PROMPT: &str = "PROMPT-7f3a9c: please refactor the payment module";

/// Run specs that exercise every field, each with [`SECRET_PROMPT`].
pub fn sample_run_specs() -> Vec<RunSpec> {
    let base = RunSpec {
        prompt: SECRET_PROMPT.to_owned(),
        workdir: "/workspace".to_owned(),
        ..RunSpec::default()
    };
    vec![
        base.clone(),
        RunSpec {
            model: Some("some-model".into()),
            resume: Some("session-123".into()),
            max_turns: Some(7),
            system_prompt_append: Some("Be brief.".into()),
            gateway: Some(Gateway {
                base_url: "http://127.0.0.1:9/v1/gateway".into(),
                token_env: "PADDOCK_GATEWAY_TOKEN".into(),
            }),
            ..base.clone()
        },
        RunSpec {
            prompt: format!(
                "{SECRET_PROMPT}\nwith a second line and \"quotes\" and $(shell) `ticks`"
            ),
            ..base
        },
    ]
}

/// Asserts that for every sample spec the prompt is delivered (stdin or a
/// file) and never appears in argv or in the environment.
pub fn assert_prompt_not_in_argv<A: AgentAdapter>() {
    for spec in sample_run_specs() {
        let exec = A::build_exec(spec.clone())
            .unwrap_or_else(|e| panic!("build_exec({spec:?}) failed: {e}"));
        for arg in &exec.argv {
            assert!(
                !arg.contains("PROMPT-7f3a9c"),
                "prompt leaked into argv: {:?}",
                exec.argv
            );
        }
        for (k, v) in &exec.env {
            assert!(!v.contains("PROMPT-7f3a9c"), "prompt leaked into env {k}");
        }
        let delivered = exec
            .stdin
            .as_deref()
            .is_some_and(|s| s.contains(&spec.prompt))
            || exec.files.iter().any(|f| f.contents.contains(&spec.prompt));
        assert!(
            delivered,
            "prompt is delivered neither on stdin nor in a file: {exec:?}"
        );
    }
}
