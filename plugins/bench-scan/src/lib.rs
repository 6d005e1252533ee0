//! The plugin bench's baseline adapter: its parser runs the bench's raw JSON
//! scan (`serde_json` into `IgnoredAny`) on each line and emits nothing but
//! the number of lines it read as JSON, in one `raw` event at the end
//! ([`summary`]).
//!
//! Built natively and as a wasm plugin, it shows what the engine itself costs
//! on this code, with no adapter logic, events or boundary copies involved:
//! the ceiling for the wasm-to-native ratio of any serde_json-based adapter.

use paddock_sdk::agent::*;
use serde::de::IgnoredAny;

pub struct Scan;

impl AgentAdapter for Scan {
    type Parser = ScanParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "bench-scan".into(),
            display_name: "Bench: raw JSON scan".into(),
            version: "1.0.0".into(),
            binaries: vec!["true".into()],
            features: vec![],
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        Ok(ExecSpec {
            argv: vec!["cat".into()],
            stdin: Some(spec.prompt),
            ..ExecSpec::default()
        })
    }

    fn parser(_: ParseContext) -> ScanParser {
        ScanParser { json_lines: 0 }
    }
}

pub struct ScanParser {
    json_lines: usize,
}

impl Parser for ScanParser {
    fn line(&mut self, line: &[u8], _: &mut Vec<AgentEvent>) {
        if serde_json::from_slice::<IgnoredAny>(line).is_ok() {
            self.json_lines += 1;
        }
    }

    fn finish(&mut self, _: ProcessEnd, out: &mut Vec<AgentEvent>) {
        out.push(AgentEvent::Raw(Raw {
            line: format!("{} {SUMMARY}", self.json_lines),
        }));
    }
}

const SUMMARY: &str = "JSON lines";

/// The number of JSON lines a run of this parser read, from the events its
/// `finish` returned.
pub fn summary(events: &[AgentEvent]) -> Option<usize> {
    events.iter().find_map(|event| match event {
        AgentEvent::Raw(Raw { line }) => line.strip_suffix(SUMMARY)?.trim_end().parse().ok(),
        _ => None,
    })
}

paddock_sdk::export_agent!(Scan);
