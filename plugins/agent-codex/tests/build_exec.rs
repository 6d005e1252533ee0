//! The command line, environment and stdin the adapter builds.

use std::collections::BTreeMap;

use agent_codex::{Codex, OPTION_KEYS};
use paddock_sdk::agent::{
    AgentAdapter, ExecSpec, Gateway, InputKind, PluginError, RunSpec, features,
};
use paddock_sdk::testing;

fn spec() -> RunSpec {
    RunSpec {
        prompt: "Fix the failing test.".into(),
        workdir: "/workspace".into(),
        ..RunSpec::default()
    }
}

fn build(spec: RunSpec) -> ExecSpec {
    Codex::build_exec(spec).unwrap()
}

fn refused(spec: RunSpec) -> String {
    match Codex::build_exec(spec) {
        Err(PluginError::InvalidInput(message)) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// The value following `flag` in argv.
fn after<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).map(String::as_str)
}

/// The values of every `-c key=value` override, by key.
fn overrides(argv: &[String]) -> BTreeMap<&str, &str> {
    argv.windows(2)
        .filter(|w| w[0] == "-c")
        .filter_map(|w| w[1].split_once('='))
        .collect()
}

#[test]
fn the_prompt_never_reaches_argv() {
    testing::assert_prompt_not_in_argv::<Codex>();
}

#[test]
fn a_plain_run_reads_the_prompt_from_stdin_and_closes_it() {
    let exec = build(spec());
    assert_eq!(
        exec.argv,
        [
            "codex",
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "--cd",
            "/workspace",
            "-c",
            "analytics.enabled=false",
            "-c",
            "check_for_update_on_startup=false",
            "-",
        ]
    );
    assert_eq!(exec.stdin.as_deref(), Some("Fix the failing test."));
    assert!(
        !exec.keep_stdin_open,
        "codex reads stdin to EOF before it starts"
    );
    assert_eq!(exec.env.get("NO_COLOR").map(String::as_str), Some("1"));
    assert!(exec.env_from.is_empty());
    assert!(exec.files.is_empty());
}

#[test]
fn the_model_is_passed_with_model() {
    let exec = build(RunSpec {
        model: Some("gpt-5.5".into()),
        ..spec()
    });
    assert_eq!(after(&exec.argv, "--model"), Some("gpt-5.5"));
    assert_eq!(exec.argv.last().map(String::as_str), Some("-"));
}

#[test]
fn a_model_that_looks_like_a_flag_is_refused() {
    let message = refused(RunSpec {
        model: Some("--dangerous".into()),
        ..spec()
    });
    assert!(message.contains("model"), "{message}");
}

#[test]
fn resume_continues_the_thread_with_the_prompt_on_stdin() {
    let exec = build(RunSpec {
        resume: Some("01a202ee-b41d-7fa1-a26e-7a86414f8ac2".into()),
        ..spec()
    });
    let n = exec.argv.len();
    assert_eq!(
        exec.argv[n - 3..],
        ["resume", "01a202ee-b41d-7fa1-a26e-7a86414f8ac2", "-"]
    );
    // The flags before the subcommand still apply to it.
    assert_eq!(exec.argv[..3], ["codex", "exec", "--json"]);
    assert_eq!(exec.stdin.as_deref(), Some("Fix the failing test."));
}

#[test]
fn a_resume_id_that_is_not_an_id_is_refused() {
    for id in ["", "--last", "a b"] {
        let message = refused(RunSpec {
            resume: Some(id.into()),
            ..spec()
        });
        assert!(message.contains("resume"), "{message}");
    }
}

#[test]
fn max_turns_is_ignored_and_not_advertised() {
    // Codex has no turn limit; the spec's value changes nothing, and the
    // adapter does not claim the feature.
    let with = build(RunSpec {
        max_turns: Some(3),
        ..spec()
    });
    assert_eq!(with, build(spec()));
    assert!(
        !Codex::info()
            .features
            .iter()
            .any(|f| f == features::MAX_TURNS)
    );
}

#[test]
fn the_system_prompt_is_appended_as_developer_instructions() {
    let exec = build(RunSpec {
        system_prompt_append: Some("Be brief.\nSay \"done\" at the end; C:\\tmp".into()),
        ..spec()
    });
    assert_eq!(
        overrides(&exec.argv).get("developer_instructions"),
        Some(&r#""Be brief.\nSay \"done\" at the end; C:\\tmp""#)
    );
}

#[test]
fn the_gateway_is_a_model_provider_reading_the_token_env() {
    let exec = build(RunSpec {
        gateway: Some(Gateway {
            base_url: "http://10.0.0.1:8080/v1".into(),
            token_env: "PADDOCK_GATEWAY_TOKEN".into(),
        }),
        ..spec()
    });
    let config = overrides(&exec.argv);
    assert_eq!(config.get("model_provider"), Some(&r#""paddock""#));
    assert_eq!(
        config.get("model_providers.paddock"),
        Some(
            &r#"{name="Paddock gateway", base_url="http://10.0.0.1:8080/v1", env_key="PADDOCK_GATEWAY_TOKEN", wire_api="responses", supports_websockets=false}"#
        )
    );
    // Codex reads the key from the variable it is named; the adapter never
    // copies or sets it.
    assert!(exec.env_from.is_empty());
    assert!(!exec.env.contains_key("PADDOCK_GATEWAY_TOKEN"));
    assert!(!exec.env.contains_key("OPENAI_API_KEY"));
}

#[test]
fn a_broken_gateway_is_refused() {
    for (base_url, token_env, field) in [
        (
            "ftp://10.0.0.1/v1",
            "PADDOCK_GATEWAY_TOKEN",
            "gateway.base_url",
        ),
        (
            "http://10.0.0.1/ v1",
            "PADDOCK_GATEWAY_TOKEN",
            "gateway.base_url",
        ),
        ("http://10.0.0.1/v1", "NOT A NAME", "gateway.token_env"),
        ("http://10.0.0.1/v1", "1TOKEN", "gateway.token_env"),
        ("http://10.0.0.1/v1", "", "gateway.token_env"),
    ] {
        let message = refused(RunSpec {
            gateway: Some(Gateway {
                base_url: base_url.into(),
                token_env: token_env.into(),
            }),
            ..spec()
        });
        assert!(message.contains(field), "{message}");
    }
}

#[test]
fn a_gateway_url_cannot_inject_config() {
    let exec = build(RunSpec {
        gateway: Some(Gateway {
            base_url: r#"http://10.0.0.1/v1",env_key="OPENAI_API_KEY"#.into(),
            token_env: "PADDOCK_GATEWAY_TOKEN".into(),
        }),
        ..spec()
    });
    let provider = overrides(&exec.argv)["model_providers.paddock"];
    assert!(
        provider.contains(r#"base_url="http://10.0.0.1/v1\",env_key=\"OPENAI_API_KEY", env_key="PADDOCK_GATEWAY_TOKEN""#),
        "{provider}"
    );
}

#[test]
fn unknown_options_are_refused_naming_the_known_ones() {
    let message = refused(RunSpec {
        options: BTreeMap::from([("turbo".to_owned(), "yes".to_owned())]),
        ..spec()
    });
    assert!(message.contains("`turbo`"), "{message}");
    for key in OPTION_KEYS {
        assert!(message.contains(key), "{message} does not name {key}");
    }
}

#[test]
fn options_map_to_codex_flags_and_config() {
    let exec = build(RunSpec {
        options: BTreeMap::from([
            ("sandbox".to_owned(), "workspace-write".to_owned()),
            ("reasoning_effort".to_owned(), "high".to_owned()),
            ("reasoning_summary".to_owned(), "detailed".to_owned()),
            ("ephemeral".to_owned(), "true".to_owned()),
        ]),
        ..spec()
    });
    assert_eq!(after(&exec.argv, "--sandbox"), Some("workspace-write"));
    assert!(
        !exec
            .argv
            .iter()
            .any(|a| a == "--dangerously-bypass-approvals-and-sandbox"),
        "a chosen sandbox replaces the bypass"
    );
    assert!(exec.argv.iter().any(|a| a == "--ephemeral"));
    let config = overrides(&exec.argv);
    assert_eq!(config.get("model_reasoning_effort"), Some(&r#""high""#));
    assert_eq!(
        config.get("model_reasoning_summary"),
        Some(&r#""detailed""#)
    );
}

#[test]
fn option_values_are_checked() {
    for (key, value) in [
        ("sandbox", "none"),
        ("reasoning_effort", "max"),
        ("reasoning_summary", "\"; rm -rf /"),
        ("ephemeral", "yes"),
    ] {
        let message = refused(RunSpec {
            options: BTreeMap::from([(key.to_owned(), value.to_owned())]),
            ..spec()
        });
        assert!(message.contains(key), "{message}");
    }
}

#[test]
fn an_empty_prompt_is_refused() {
    let message = refused(RunSpec {
        prompt: " \n".into(),
        ..spec()
    });
    assert!(message.contains("prompt"), "{message}");
}

#[test]
fn codex_cannot_be_steered_through_stdin() {
    assert_eq!(
        Codex::encode_input(InputKind::Message, "and also this"),
        None
    );
    assert_eq!(Codex::encode_input(InputKind::Interrupt, ""), None);
    assert!(
        !Codex::info()
            .features
            .iter()
            .any(|f| f == features::STDIN_STEERING)
    );
}

#[test]
fn info_names_the_cli() {
    let info = Codex::info();
    assert_eq!(info.name, "codex");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.binaries, ["codex"]);
    for feature in [
        features::RESUME,
        features::THINKING,
        features::SYSTEM_PROMPT,
        features::GATEWAY_OPENAI,
    ] {
        assert!(info.features.iter().any(|f| f == feature), "{feature}");
    }
}
