//! `build_exec`: what the adapter asks the host to start.

use std::collections::BTreeMap;

use agent_gemini::Gemini;
use agent_gemini::exec::{SETTINGS_FILE, SYSTEM_APPEND_FILE};
use paddock_sdk::agent::{
    AgentAdapter, ExecSpec, Gateway, InputKind, PluginError, RunSpec, features,
};
use paddock_sdk::testing;
use serde_json::Value;

fn spec() -> RunSpec {
    RunSpec {
        prompt: "fix the failing test".into(),
        workdir: "/workspace".into(),
        ..RunSpec::default()
    }
}

fn build(spec: RunSpec) -> ExecSpec {
    Gemini::build_exec(spec).unwrap()
}

fn refused(spec: RunSpec) -> String {
    match Gemini::build_exec(spec) {
        Err(PluginError::InvalidInput(message)) => message,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

fn file<'a>(exec: &'a ExecSpec, path: &str) -> Option<&'a str> {
    exec.files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.contents.as_str())
}

fn settings(exec: &ExecSpec) -> Value {
    serde_json::from_str(file(exec, SETTINGS_FILE).expect("a settings file")).unwrap()
}

fn with_options(pairs: &[(&str, &str)]) -> RunSpec {
    RunSpec {
        options: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..spec()
    }
}

#[test]
fn the_prompt_never_reaches_argv_or_env() {
    testing::assert_prompt_not_in_argv::<Gemini>();
}

#[test]
fn a_plain_run_is_headless_stream_json_with_the_prompt_on_a_closed_stdin() {
    let exec = build(spec());
    assert_eq!(
        exec.argv,
        [
            "gemini",
            "--output-format",
            "stream-json",
            "--skip-trust",
            "--yolo"
        ]
    );
    assert_eq!(exec.stdin.as_deref(), Some("fix the failing test"));
    assert!(!exec.keep_stdin_open, "Gemini reads its prompt until EOF");
    assert!(exec.env_from.is_empty());
    assert_eq!(exec.env.get("NO_COLOR").map(String::as_str), Some("1"));
    assert_eq!(
        exec.env.get("GEMINI_CLI_NO_RELAUNCH").map(String::as_str),
        Some("true")
    );
    assert!(!exec.env.contains_key("GOOGLE_GEMINI_BASE_URL"));
}

#[test]
fn the_settings_file_is_the_system_settings_and_keeps_usage_statistics_off() {
    let exec = build(spec());
    assert_eq!(
        exec.env
            .get("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
            .map(String::as_str),
        Some("/workspace/.paddock/gemini/settings.json")
    );
    let s = settings(&exec);
    assert_eq!(s["privacy"]["usageStatisticsEnabled"], false);
    assert_eq!(s["telemetry"]["enabled"], false);
    assert_eq!(s["general"]["disableAutoUpdate"], true);
    // Without a gateway the CLI's own auth (env, login) is left alone.
    assert!(s.get("security").is_none());
    assert!(s.get("model").is_none());
    assert!(s.get("context").is_none());
    // The directory is ignored by git, so an agent's `git add -A` skips it.
    assert_eq!(file(&exec, ".paddock/gemini/.gitignore"), Some("*\n"));
}

#[test]
fn a_relative_workdir_gives_a_path_relative_to_the_cli_cwd() {
    let exec = build(RunSpec {
        workdir: ".".into(),
        ..spec()
    });
    assert_eq!(
        exec.env
            .get("GEMINI_CLI_SYSTEM_SETTINGS_PATH")
            .map(String::as_str),
        Some(SETTINGS_FILE)
    );
}

#[test]
fn model_and_resume_become_flags() {
    let exec = build(RunSpec {
        model: Some("gemini-2.5-pro".into()),
        resume: Some("f6005801-a26d-4440-83b3-ca5371281c7f".into()),
        ..spec()
    });
    let argv = exec.argv.join(" ");
    assert!(argv.contains(" -m gemini-2.5-pro"), "{argv}");
    assert!(
        argv.contains(" --resume f6005801-a26d-4440-83b3-ca5371281c7f"),
        "{argv}"
    );
}

#[test]
fn values_that_would_read_as_flags_are_refused() {
    let message = refused(RunSpec {
        model: Some("--yolo".into()),
        ..spec()
    });
    assert!(message.contains("model"), "{message}");
    let message = refused(RunSpec {
        resume: Some(" ".into()),
        ..spec()
    });
    assert!(message.contains("resume"), "{message}");
}

#[test]
fn max_turns_goes_into_the_settings_and_zero_is_refused() {
    let exec = build(RunSpec {
        max_turns: Some(7),
        ..spec()
    });
    assert_eq!(settings(&exec)["model"]["maxSessionTurns"], 7);
    let message = refused(RunSpec {
        max_turns: Some(0),
        ..spec()
    });
    assert!(message.contains("max_turns"), "{message}");
}

#[test]
fn the_system_prompt_addition_is_a_context_file_the_settings_name() {
    let exec = build(RunSpec {
        system_prompt_append: Some("Always answer in French.".into()),
        ..spec()
    });
    assert_eq!(
        file(&exec, SYSTEM_APPEND_FILE),
        Some("Always answer in French.")
    );
    let names = &settings(&exec)["context"]["fileName"];
    assert_eq!(
        names[0], "GEMINI.md",
        "the project's own GEMINI.md still loads"
    );
    assert_eq!(names[1], SYSTEM_APPEND_FILE);
    assert!(!exec.argv.join(" ").contains("French"));
    assert!(!exec.env.values().any(|v| v.contains("French")));
}

#[test]
fn the_gateway_gets_the_base_url_and_the_key_by_reference_only() {
    let exec = build(RunSpec {
        gateway: Some(Gateway {
            base_url: "http://gw.internal:8080/gemini".into(),
            token_env: "PADDOCK_GATEWAY_TOKEN".into(),
        }),
        ..spec()
    });
    assert_eq!(
        exec.env.get("GOOGLE_GEMINI_BASE_URL").map(String::as_str),
        Some("http://gw.internal:8080/gemini")
    );
    assert_eq!(
        exec.env_from,
        BTreeMap::from([(
            "GEMINI_API_KEY".to_owned(),
            "PADDOCK_GATEWAY_TOKEN".to_owned()
        )])
    );
    // No key value anywhere: not in env, argv or files.
    assert!(!exec.env.contains_key("GEMINI_API_KEY"));
    assert!(
        !exec
            .argv
            .iter()
            .any(|a| a.contains("PADDOCK_GATEWAY_TOKEN"))
    );
    assert!(
        !exec
            .files
            .iter()
            .any(|f| f.contents.contains("PADDOCK_GATEWAY_TOKEN"))
    );
    // Without it Gemini picks the `gateway` auth type and exits 41.
    assert_eq!(
        settings(&exec)["security"]["auth"]["selectedType"],
        "gemini-api-key"
    );
}

#[test]
fn a_malformed_gateway_is_refused() {
    let message = refused(RunSpec {
        gateway: Some(Gateway {
            base_url: "http://gw".into(),
            token_env: "NOT A NAME".into(),
        }),
        ..spec()
    });
    assert!(message.contains("token_env"), "{message}");
}

#[test]
fn unknown_options_are_refused_naming_the_key_and_the_known_ones() {
    let message = refused(with_options(&[("temperature", "0.2")]));
    assert!(message.contains("temperature"), "{message}");
    for known in ["approval_mode", "include_directories", "extensions"] {
        assert!(message.contains(known), "{message}");
    }
}

#[test]
fn approval_mode_replaces_yolo() {
    let exec = build(with_options(&[("approval_mode", "auto_edit")]));
    assert!(!exec.argv.contains(&"--yolo".to_owned()));
    assert!(exec.argv.join(" ").ends_with("--approval-mode auto_edit"));
    let exec = build(with_options(&[("approval_mode", "yolo")]));
    assert!(exec.argv.contains(&"--yolo".to_owned()));
    let message = refused(with_options(&[("approval_mode", "always")]));
    assert!(message.contains("approval_mode"), "{message}");
}

#[test]
fn list_options_become_one_flag_per_item() {
    let exec = build(with_options(&[
        ("include_directories", "/data, /docs"),
        ("extensions", "none"),
    ]));
    let argv = exec.argv.join(" ");
    assert!(
        argv.contains("--include-directories /data --include-directories /docs"),
        "{argv}"
    );
    assert!(argv.contains("--extensions none"), "{argv}");
    let message = refused(with_options(&[("extensions", " , ")]));
    assert!(message.contains("extensions"), "{message}");
}

#[test]
fn prompts_the_cli_would_drop_or_cut_are_refused() {
    let message = refused(RunSpec {
        prompt: "  \n".into(),
        ..spec()
    });
    assert!(message.contains("empty"), "{message}");
    let message = refused(RunSpec {
        prompt: "x".repeat((8 << 20) + 1),
        ..spec()
    });
    assert!(message.contains("8388608"), "{message}");
}

#[test]
fn the_cli_cannot_be_steered_while_it_runs() {
    assert_eq!(Gemini::encode_input(InputKind::Message, "more"), None);
    assert_eq!(Gemini::encode_input(InputKind::Interrupt, ""), None);
    assert!(
        !Gemini::info()
            .features
            .contains(&features::STDIN_STEERING.to_owned())
    );
}

#[test]
fn info_names_the_adapter_and_its_binary() {
    let info = Gemini::info();
    assert_eq!(info.name, "gemini");
    assert_eq!(info.version, "0.1.0");
    assert_eq!(info.binaries, ["gemini"]);
    for feature in [
        features::RESUME,
        features::PARTIAL_TEXT,
        features::MAX_TURNS,
        features::SYSTEM_PROMPT,
    ] {
        assert!(info.features.contains(&feature.to_owned()), "{feature}");
    }
}
