//! The command line, environment and stdin `build_exec` produces.

use std::collections::BTreeMap;

use agent_opencode::{OPTIONS, OpenCode, SYSTEM_PROMPT_FILE};
use paddock_sdk::agent::{AgentAdapter, ExecSpec, Gateway, InputKind, PluginError, RunSpec};
use paddock_sdk::testing::assert_prompt_not_in_argv;
use serde_json::Value;

fn spec() -> RunSpec {
    RunSpec {
        prompt: "Fix the failing test.".into(),
        workdir: "/workspace".into(),
        ..RunSpec::default()
    }
}

fn build(spec: RunSpec) -> ExecSpec {
    OpenCode::build_exec(spec).unwrap()
}

fn config(exec: &ExecSpec) -> Value {
    serde_json::from_str(&exec.env["OPENCODE_CONFIG_CONTENT"]).unwrap()
}

fn with_options(options: &[(&str, &str)]) -> RunSpec {
    RunSpec {
        options: options
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        ..spec()
    }
}

fn invalid(spec: RunSpec) -> String {
    match OpenCode::build_exec(spec) {
        Err(PluginError::InvalidInput(message)) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn the_prompt_is_never_in_argv() {
    assert_prompt_not_in_argv::<OpenCode>();
}

#[test]
fn a_plain_run_is_headless_json_with_the_prompt_on_a_closed_stdin() {
    let exec = build(spec());
    assert_eq!(
        exec.argv,
        [
            "opencode",
            "run",
            "--format",
            "json",
            "--thinking",
            "--auto"
        ]
    );
    assert_eq!(exec.stdin.as_deref(), Some("Fix the failing test."));
    assert!(
        !exec.keep_stdin_open,
        "opencode reads stdin to EOF before it starts"
    );
    for var in [
        "OPENCODE_DISABLE_AUTOUPDATE",
        "OPENCODE_DISABLE_MODELS_FETCH",
        "OPENCODE_DISABLE_SHARE",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS",
        "OPENCODE_DISABLE_LSP_DOWNLOAD",
    ] {
        assert_eq!(exec.env.get(var).map(String::as_str), Some("1"), "{var}");
    }
    assert_eq!(
        config(&exec),
        serde_json::json!({"autoupdate": false, "share": "disabled"})
    );
    assert!(exec.files.is_empty() && exec.env_from.is_empty());
    assert_eq!(OpenCode::encode_input(InputKind::Message, "more"), None);
}

#[test]
fn model_and_resume_become_flags() {
    let exec = build(RunSpec {
        model: Some("anthropic/claude-sonnet-4-5-20250929".into()),
        resume: Some("ses_dfd0242c7ffePtOHP42QwJlWwq".into()),
        ..spec()
    });
    let argv = exec.argv.join(" ");
    assert!(
        argv.ends_with(
            "--model anthropic/claude-sonnet-4-5-20250929 --session ses_dfd0242c7ffePtOHP42QwJlWwq"
        ),
        "{argv}"
    );
    let exec = build(RunSpec {
        model: Some("claude-sonnet-4-5".into()),
        ..spec()
    });
    assert!(
        exec.argv
            .windows(2)
            .any(|w| w == ["--model", "anthropic/claude-sonnet-4-5"]),
        "a bare model is the default provider's: {:?}",
        exec.argv
    );
    assert!(
        invalid(RunSpec {
            model: Some("openai/".into()),
            ..spec()
        })
        .contains("provider/model")
    );
    assert!(
        invalid(RunSpec {
            resume: Some("--continue".into()),
            ..spec()
        })
        .contains("'-'")
    );
}

#[test]
fn max_turns_limits_the_agents_steps() {
    let exec = build(RunSpec {
        max_turns: Some(7),
        ..spec()
    });
    assert_eq!(config(&exec)["agent"]["build"]["steps"], 7);
    let exec = build(RunSpec {
        max_turns: Some(3),
        ..with_options(&[("agent", "plan")])
    });
    assert_eq!(config(&exec)["agent"]["plan"]["steps"], 3);
    assert!(exec.argv.windows(2).any(|w| w == ["--agent", "plan"]));
    assert!(
        invalid(RunSpec {
            max_turns: Some(0),
            ..spec()
        })
        .contains("max_turns")
    );
}

#[test]
fn the_system_prompt_append_is_an_instructions_file() {
    let exec = build(RunSpec {
        system_prompt_append: Some("Always answer in French.".into()),
        ..with_options(&[("config", r#"{"instructions": ["CONTRIBUTING.md"]}"#)])
    });
    assert_eq!(exec.files.len(), 1);
    assert_eq!(exec.files[0].path, SYSTEM_PROMPT_FILE);
    assert_eq!(exec.files[0].contents, "Always answer in French.");
    assert_eq!(
        config(&exec)["instructions"],
        serde_json::json!([
            "CONTRIBUTING.md",
            format!("/workspace/{SYSTEM_PROMPT_FILE}")
        ])
    );
    assert!(!exec.env["OPENCODE_CONFIG_CONTENT"].contains("French"));
    // A relative workdir: OpenCode finds relative instructions from its cwd.
    let exec = build(RunSpec {
        system_prompt_append: Some("x".into()),
        workdir: ".".into(),
        ..spec()
    });
    assert_eq!(
        config(&exec)["instructions"],
        serde_json::json!([SYSTEM_PROMPT_FILE])
    );
}

#[test]
fn the_gateway_is_the_providers_base_url_and_key_variable() {
    let gateway = Gateway {
        base_url: "http://10.0.0.1:8080/v1".into(),
        token_env: "PADDOCK_GATEWAY_TOKEN".into(),
    };
    let exec = build(RunSpec {
        model: Some("anthropic/claude-sonnet-4-5-20250929".into()),
        gateway: Some(gateway.clone()),
        ..spec()
    });
    let config = config(&exec);
    assert_eq!(
        config["provider"]["anthropic"],
        serde_json::json!({"options": {"baseURL": "http://10.0.0.1:8080/v1"}, "env": ["PADDOCK_GATEWAY_TOKEN"]})
    );
    assert_eq!(
        exec.env_from,
        BTreeMap::from([(
            "ANTHROPIC_API_KEY".to_owned(),
            "PADDOCK_GATEWAY_TOKEN".to_owned()
        )])
    );
    // No key anywhere: only the variable's name.
    assert!(!exec.env.contains_key("ANTHROPIC_API_KEY"));
    assert!(!exec.env.contains_key("PADDOCK_GATEWAY_TOKEN"));
    assert!(
        !exec
            .argv
            .iter()
            .any(|a| a.contains("10.0.0.1") || a.contains("TOKEN"))
    );

    // Another provider's model points that provider at the gateway.
    let exec = build(RunSpec {
        model: Some("myproxy/some-model".into()),
        gateway: Some(gateway),
        ..spec()
    });
    assert_eq!(
        self::config(&exec)["provider"]["myproxy"]["options"]["baseURL"],
        "http://10.0.0.1:8080/v1"
    );
    assert!(
        exec.env_from.is_empty(),
        "no well-known variable for an unknown provider"
    );

    let bad = RunSpec {
        gateway: Some(Gateway {
            base_url: "http://x".into(),
            token_env: "A}B".into(),
        }),
        ..spec()
    };
    assert!(invalid(bad).contains("token_env"));
}

#[test]
fn options_are_checked_and_applied() {
    let exec = build(with_options(&[
        ("variant", "high"),
        ("auto_approve", "false"),
        (
            "config",
            r#"{"permission": {"bash": "deny"}, "autoupdate": true}"#,
        ),
    ]));
    assert!(!exec.argv.contains(&"--auto".to_owned()));
    assert!(exec.argv.windows(2).any(|w| w == ["--variant", "high"]));
    let config = config(&exec);
    assert_eq!(config["permission"]["bash"], "deny");
    assert_eq!(config["autoupdate"], false, "the adapter's settings win");

    let exec = build(RunSpec {
        resume: Some("ses_1".into()),
        ..with_options(&[("fork", "true")])
    });
    assert!(
        exec.argv
            .ends_with(&["--session".into(), "ses_1".into(), "--fork".into()])
    );
    assert!(invalid(with_options(&[("fork", "true")])).contains("resume"));

    let message = invalid(with_options(&[("temperature", "0.2")]));
    assert!(message.contains("temperature"), "{message}");
    for known in OPTIONS {
        assert!(message.contains(known), "{message} names {known}");
    }
    assert!(invalid(with_options(&[("auto_approve", "yes")])).contains("auto_approve"));
    assert!(invalid(with_options(&[("config", "[1]")])).contains("JSON object"));
    assert!(invalid(with_options(&[("agent", "")])).contains("agent"));
}

#[test]
fn an_empty_prompt_is_refused() {
    assert!(
        invalid(RunSpec {
            prompt: " \n".into(),
            ..spec()
        })
        .contains("prompt")
    );
}

#[test]
fn info_names_the_cli() {
    let info = OpenCode::info();
    assert_eq!(info.name, "opencode");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.binaries, ["opencode"]);
    for feature in ["resume", "max-turns", "system-prompt", "thinking", "cost"] {
        assert!(info.features.iter().any(|f| f == feature), "{feature}");
    }
    assert!(
        !info
            .features
            .iter()
            .any(|f| f == "stdin-steering" || f == "partial-text"),
        "opencode run can neither be steered nor streams text"
    );
}
