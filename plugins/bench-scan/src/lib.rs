//! The plugin bench's baseline adapter: its parser runs the bench's raw JSON
//! scan (`serde_json` into `IgnoredAny`) on each line and emits nothing but
//! a count at the end.
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
    json_lines: u64,
}

impl Parser for ScanParser {
    fn line(&mut self, line: &[u8], _: &mut Vec<AgentEvent>) {
        if serde_json::from_slice::<IgnoredAny>(line).is_ok() {
            self.json_lines += 1;
        }
    }

    fn finish(&mut self, _: ProcessEnd, out: &mut Vec<AgentEvent>) {
        out.push(AgentEvent::Raw(Raw {
            line: format!("{} JSON lines", self.json_lines),
        }));
    }
}

paddock_sdk::export_agent!(Scan);
