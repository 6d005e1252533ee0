//! Black-box tests of the `paddock` binary's plugin commands: what a plugin
//! author or an operator types.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn paddock(args: &[&str], stdin: Option<&[u8]>) -> Output {
    // One data dir for every test so compiled plugins are cached once.
    let data_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-data");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paddock"));
    cmd.arg("--data-dir")
        .arg(&data_dir)
        .args(args)
        .env_remove("PADDOCK_CONFIG")
        .env_remove("PADDOCK_PLUGINS_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the paddock binary runs");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    if let Some(bytes) = stdin {
        pipe.write_all(bytes).expect("writing stdin");
    }
    drop(pipe);
    child.wait_with_output().expect("paddock finishes")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "paddock failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn fixtures(agent: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/agents")
        .join(agent)
}

fn empty_plugins_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn plugin_list_shows_the_four_built_in_adapters() {
    let dir = empty_plugins_dir();
    let out = stdout(&paddock(
        &[
            "--plugins-dir",
            dir.path().to_str().unwrap(),
            "plugin",
            "list",
        ],
        None,
    ));
    for agent in ["claude-code", "codex", "gemini", "opencode"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(agent))
            .unwrap_or_else(|| panic!("{agent} missing:\n{out}"));
        assert!(row.contains("agent") && row.contains("built-in"), "{row}");
    }
}

#[test]
fn plugin_parse_prints_the_golden_events() {
    let dir = fixtures("claude-code");
    let file = dir.join("b_tool_bash.jsonl");
    let golden = std::fs::read_to_string(dir.join("b_tool_bash.golden.jsonl")).unwrap();
    let out = stdout(&paddock(
        &[
            "plugin",
            "parse",
            "--agent",
            "claude-code",
            file.to_str().unwrap(),
        ],
        None,
    ));
    assert_eq!(out, golden);
    // The same from stdin.
    let bytes = std::fs::read(&file).unwrap();
    let out = stdout(&paddock(
        &["plugin", "parse", "--agent", "claude-code", "-"],
        Some(&bytes),
    ));
    assert_eq!(out, golden);
}

#[test]
fn plugin_parse_synthesizes_the_result_from_the_exit() {
    let out = stdout(&paddock(
        &["plugin", "parse", "--agent", "gemini", "--signal", "2", "-"],
        Some(b""),
    ));
    let last: serde_json::Value =
        serde_json::from_str(out.lines().last().expect("one event")).unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["status"], "interrupted");
}

#[test]
fn an_unknown_agent_is_a_clear_error() {
    let out = paddock(&["plugin", "parse", "--agent", "nope", "-"], Some(b"{}\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no agent adapter named `nope`") && err.contains("claude-code"),
        "{err}"
    );
}

#[test]
fn build_exec_keeps_the_prompt_out_of_argv() {
    let spec = br#"{"prompt": "fix the flaky test", "model": "claude-sonnet-4-5", "workdir": "/workspace"}"#;
    let out = stdout(&paddock(
        &["plugin", "build-exec", "--agent", "claude-code"],
        Some(spec),
    ));
    let exec: serde_json::Value = serde_json::from_str(&out).unwrap();
    let argv: Vec<&str> = exec["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "claude");
    assert!(argv.iter().all(|a| !a.contains("flaky")), "{argv:?}");
    assert!(
        exec["stdin"]
            .as_str()
            .unwrap()
            .contains("fix the flaky test")
    );
}

#[test]
fn build_exec_refuses_a_malformed_spec() {
    let out = paddock(
        &["plugin", "build-exec", "--agent", "codex"],
        Some(br#"{"prompt": 3}"#),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run spec"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inspect_shows_world_version_and_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("faults.wasm");
    std::fs::copy(env!("PADDOCK_TEST_FAULTS_WASM"), &file).unwrap();
    let out = stdout(&paddock(
        &["plugin", "inspect", file.to_str().unwrap()],
        None,
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kind"], "agent");
    assert_eq!(report["wit_version"], "0.1.0");
    assert_eq!(report["manifest"]["name"], "test-faults");
    assert!(
        report["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "paddock:plugin/agent-adapter@0.1.0")
    );
}

#[test]
fn inspect_says_why_a_file_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junk.wasm");
    std::fs::write(&file, b"not wasm at all").unwrap();
    let out = paddock(&["plugin", "inspect", file.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid WebAssembly component"));
}

#[test]
fn a_plugins_dir_adds_plugins_to_every_command() {
    let dir = empty_plugins_dir();
    std::fs::copy(
        env!("PADDOCK_TEST_FAULTS_WASM"),
        dir.path().join("test-faults.wasm"),
    )
    .unwrap();
    let plugins_dir = dir.path().to_str().unwrap();
    let out = stdout(&paddock(
        &["--plugins-dir", plugins_dir, "plugin", "list"],
        None,
    ));
    assert!(
        out.lines()
            .any(|l| l.starts_with("test-faults") && l.contains("test-faults.wasm")),
        "{out}"
    );
    let out = stdout(&paddock(
        &[
            "--plugins-dir",
            plugins_dir,
            "plugin",
            "parse",
            "--agent",
            "test-faults",
            "-",
        ],
        Some(b"hi\n"),
    ));
    assert!(
        out.starts_with("{\"type\":\"raw\",\"line\":\"hi\"}\n"),
        "{out}"
    );
}
