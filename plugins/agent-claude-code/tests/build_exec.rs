//! The command line, environment and stdin built for a run, and steering.

use std::collections::BTreeMap;

use agent_claude_code::ClaudeCode;
use paddock_sdk::agent::{
    AgentAdapter, ExecSpec, Gateway, InputKind, PluginError, RunSpec, features,
};
use paddock_sdk::testing;
use serde_json::Value;

fn spec(prompt: &str) -> RunSpec {
    RunSpec {
        prompt: prompt.to_owned(),
        workdir: "/workspace".to_owned(),
        ..RunSpec::default()
    }
}

fn with_options(prompt: &str, options: &[(&str, &str)]) -> RunSpec {
    RunSpec {
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..spec(prompt)
    }
}

fn build(spec: RunSpec) -> ExecSpec {
    ClaudeCode::build_exec(spec).unwrap()
}

/// The value following `flag` in argv.
fn value_of<'a>(exec: &'a ExecSpec, flag: &str) -> Option<&'a str> {
    let at = exec.argv.iter().position(|a| a == flag)?;
    exec.argv.get(at + 1).map(String::as_str)
}

#[test]
fn the_prompt_never_reaches_argv_or_env() {
    testing::assert_prompt_not_in_argv::<ClaudeCode>();
}

#[test]
fn a_plain_run_pipes_the_prompt_and_closes_stdin() {
    let exec = build(spec("Fix the bug."));
    assert_eq!(
        exec.argv,
        [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            "--permission-mode",
            "bypassPermissions",
        ]
    );
    assert_eq!(exec.stdin.as_deref(), Some("Fix the bug."));
    assert!(
        !exec.keep_stdin_open,
        "claude -p waits for EOF before it starts"
    );
    for (k, v) in [
        ("DISABLE_TELEMETRY", "1"),
        ("DISABLE_ERROR_REPORTING", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("IS_SANDBOX", "1"),
    ] {
        assert_eq!(exec.env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(exec.env_from.is_empty());
    assert!(!exec.env.contains_key("ANTHROPIC_BASE_URL"));
}

#[test]
fn model_resume_turns_and_system_prompt_become_flags() {
    let exec = build(RunSpec {
        model: Some("claude-sonnet-4-5-20250929".into()),
        resume: Some("c657bfab-0499-416b-ab6b-d4ecdc8d94d6".into()),
        max_turns: Some(7),
        system_prompt_append: Some("- Be brief.".into()),
        ..spec("What did it print again?")
    });
    assert_eq!(
        value_of(&exec, "--model"),
        Some("claude-sonnet-4-5-20250929")
    );
    assert_eq!(
        value_of(&exec, "--resume"),
        Some("c657bfab-0499-416b-ab6b-d4ecdc8d94d6")
    );
    assert_eq!(value_of(&exec, "--max-turns"), Some("7"));
    assert_eq!(
        value_of(&exec, "--append-system-prompt"),
        Some("- Be brief.")
    );
}

#[test]
fn absent_settings_add_no_flags() {
    let exec = build(spec("x"));
    for flag in [
        "--model",
        "--resume",
        "--max-turns",
        "--append-system-prompt",
        "--input-format",
    ] {
        assert!(!exec.argv.iter().any(|a| a == flag), "{flag}");
    }
}

#[test]
fn zero_max_turns_and_empty_values_are_refused() {
    let refused =
        |s: RunSpec| matches!(ClaudeCode::build_exec(s), Err(PluginError::InvalidInput(_)));
    assert!(refused(RunSpec {
        max_turns: Some(0),
        ..spec("x")
    }));
    assert!(refused(RunSpec {
        model: Some(" ".into()),
        ..spec("x")
    }));
    assert!(refused(RunSpec {
        resume: Some(String::new()),
        ..spec("x")
    }));
    assert!(
        refused(spec("  \n")),
        "claude -p with empty stdin fails; say so before starting it"
    );
}

#[test]
fn the_gateway_gets_the_base_url_and_the_key_by_reference_only() {
    let exec = build(RunSpec {
        gateway: Some(Gateway {
            base_url: "http://127.0.0.1:9/v1/gateway".into(),
            token_env: "PADDOCK_GATEWAY_TOKEN".into(),
        }),
        ..spec("x")
    });
    assert_eq!(
        exec.env.get("ANTHROPIC_BASE_URL").map(String::as_str),
        Some("http://127.0.0.1:9/v1/gateway")
    );
    assert_eq!(
        exec.env_from,
        BTreeMap::from([(
            "ANTHROPIC_API_KEY".to_owned(),
            "PADDOCK_GATEWAY_TOKEN".to_owned()
        )])
    );
    assert!(
        !exec.env.contains_key("ANTHROPIC_API_KEY"),
        "the adapter never sets a key itself"
    );
    assert!(!exec.env.contains_key("ANTHROPIC_AUTH_TOKEN"));
    let everything = format!("{:?}{:?}", exec.argv, exec.env);
    assert!(
        !everything.contains("PADDOCK_GATEWAY_TOKEN"),
        "only env_from names the key's variable"
    );

    let bad = ClaudeCode::build_exec(RunSpec {
        gateway: Some(Gateway {
            base_url: "http://g".into(),
            token_env: "NOT A NAME".into(),
        }),
        ..spec("x")
    });
    assert!(matches!(bad, Err(PluginError::InvalidInput(_))));
}

#[test]
fn unknown_options_are_refused_naming_the_key_and_the_known_ones() {
    let Err(PluginError::InvalidInput(message)) =
        ClaudeCode::build_exec(with_options("x", &[("temperature", "0.2")]))
    else {
        panic!("accepted an unknown option");
    };
    assert!(message.contains("`temperature`"), "{message}");
    for known in agent_claude_code::OPTIONS {
        assert!(message.contains(known), "{message} lacks {known}");
    }
}

#[test]
fn option_values_are_checked() {
    for (k, v) in [
        ("steering", "yes"),
        ("partial_messages", "1"),
        ("permission_mode", "yolo"),
        ("max_retries", "-1"),
        ("allowed_tools", ""),
    ] {
        assert!(
            matches!(
                ClaudeCode::build_exec(with_options("x", &[(k, v)])),
                Err(PluginError::InvalidInput(_))
            ),
            "{k}={v} accepted"
        );
    }
}

#[test]
fn options_map_to_flags_and_env() {
    let exec = build(with_options(
        "x",
        &[
            ("partial_messages", "false"),
            ("permission_mode", "acceptEdits"),
            ("allowed_tools", "Read,Bash(git log:*)"),
            ("disallowed_tools", "WebFetch"),
            ("forward_subagent_text", "true"),
            ("max_retries", "2"),
        ],
    ));
    assert!(!exec.argv.iter().any(|a| a == "--include-partial-messages"));
    assert_eq!(value_of(&exec, "--permission-mode"), Some("acceptEdits"));
    assert_eq!(
        value_of(&exec, "--allowedTools"),
        Some("Read,Bash(git log:*)")
    );
    assert_eq!(value_of(&exec, "--disallowedTools"), Some("WebFetch"));
    assert!(exec.argv.iter().any(|a| a == "--forward-subagent-text"));
    assert_eq!(
        exec.env.get("CLAUDE_CODE_MAX_RETRIES").map(String::as_str),
        Some("2")
    );
}

fn stdin_lines(exec: &ExecSpec) -> Vec<Value> {
    let stdin = exec.stdin.as_deref().unwrap();
    assert!(
        stdin.ends_with('\n'),
        "every stream-json line is terminated"
    );
    stdin
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn steering_sends_stream_json_and_keeps_stdin_open() {
    let exec = build(with_options(
        "First \"task\"\nline two",
        &[("steering", "true")],
    ));
    assert_eq!(value_of(&exec, "--input-format"), Some("stream-json"));
    assert!(exec.keep_stdin_open);
    let lines = stdin_lines(&exec);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["type"], "control_request");
    assert_eq!(lines[0]["request"]["subtype"], "initialize");
    assert_eq!(lines[1]["type"], "user");
    assert_eq!(lines[1]["message"]["role"], "user");
    assert_eq!(
        lines[1]["message"]["content"][0]["text"],
        "First \"task\"\nline two"
    );

    // Steering without a first prompt waits for encode_input's messages.
    let idle = build(with_options("", &[("steering", "true")]));
    assert_eq!(stdin_lines(&idle).len(), 1);
}

#[test]
fn encode_input_writes_user_messages_and_interrupt_requests() {
    let message = ClaudeCode::encode_input(InputKind::Message, "Now add tests.\nThanks").unwrap();
    assert!(
        message.ends_with('\n') && message.matches('\n').count() == 1,
        "one line: {message:?}"
    );
    let v: Value = serde_json::from_str(message.trim_end()).unwrap();
    assert_eq!(v["type"], "user");
    assert_eq!(v["message"]["content"][0]["type"], "text");
    assert_eq!(v["message"]["content"][0]["text"], "Now add tests.\nThanks");

    let a = ClaudeCode::encode_input(InputKind::Interrupt, "").unwrap();
    let b = ClaudeCode::encode_input(InputKind::Interrupt, "").unwrap();
    let (a, b): (Value, Value) = (
        serde_json::from_str(a.trim_end()).unwrap(),
        serde_json::from_str(b.trim_end()).unwrap(),
    );
    assert_eq!(a["type"], "control_request");
    assert_eq!(a["request"]["subtype"], "interrupt");
    assert_ne!(
        a["request_id"], b["request_id"],
        "each request has its own id"
    );
}

#[test]
fn info_names_the_cli_and_its_features() {
    let info = ClaudeCode::info();
    assert_eq!(info.name, "claude-code");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.binaries, ["claude"]);
    for f in [
        features::RESUME,
        features::STDIN_STEERING,
        features::PARTIAL_TEXT,
        features::COST,
        features::MAX_TURNS,
        features::GATEWAY_ANTHROPIC,
    ] {
        assert!(info.features.iter().any(|x| x == f), "{f}");
    }
}
