//! An agent adapter that misbehaves on request, for the host's tests of fault
//! containment and capabilities. Each stdout line is a command:
//!
//! - `trap` panics (a wasm trap);
//! - `loop` spins forever (the epoch deadline must stop it);
//! - `alloc` allocates without bound (the memory cap must stop it);
//! - `env NAME` reports whether the plugin can read env var `NAME`;
//! - `read PATH` reports whether the plugin can read the file `PATH`;
//! - anything else is echoed as a `raw` event.
//!
//! Its `info().version` ends in [`BUILD_MARKER`]; hot-reload tests patch
//! those bytes in the `.wasm` to make distinguishable versions of one
//! plugin without building it twice.

use paddock_sdk::agent::*;

/// Eight bytes found once in the compiled plugin, for tests to patch.
pub const BUILD_MARKER: &str = "build.AAAAAAAA";

pub struct Faults;

impl AgentAdapter for Faults {
    type Parser = FaultParser;

    fn info() -> AgentInfo {
        AgentInfo {
            name: "test-faults".into(),
            display_name: "Test faults".into(),
            version: format!("1.0.0+{BUILD_MARKER}"),
            binaries: vec!["true".into()],
            features: vec![],
        }
    }

    fn build_exec(spec: RunSpec) -> Result<ExecSpec, PluginError> {
        if spec.prompt == "trap" {
            panic!("build_exec asked to trap");
        }
        Ok(ExecSpec {
            argv: vec!["cat".into()],
            stdin: Some(spec.prompt),
            ..ExecSpec::default()
        })
    }

    fn parser(_: ParseContext) -> FaultParser {
        FaultParser
    }
}

pub struct FaultParser;

impl Parser for FaultParser {
    fn line(&mut self, line: &[u8], out: &mut Vec<AgentEvent>) {
        let line = String::from_utf8_lossy(line);
        let (command, arg) = line.split_once(' ').unwrap_or((&line, ""));
        match command {
            "trap" => panic!("parser asked to trap"),
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "env" => out.push(raw(match std::env::var(arg) {
                Ok(value) => format!("env {arg}={value}"),
                Err(e) => format!("env {arg}: {e}"),
            })),
            "read" => out.push(raw(match std::fs::read_to_string(arg) {
                Ok(text) => format!("read {arg}: {} bytes", text.len()),
                Err(e) => format!("read {arg}: error: {e}"),
            })),
            _ => out.push(AgentEvent::raw(line.as_bytes())),
        }
    }
}

fn raw(line: String) -> AgentEvent {
    AgentEvent::Raw(Raw { line })
}

paddock_sdk::export_agent!(Faults);
