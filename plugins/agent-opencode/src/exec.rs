//! The `opencode run` command line for a run spec:
//!
//! ```text
//! opencode run --format json --thinking [--auto] [--model <provider/model>] \
//!   [--session <id> [--fork]] [--agent <name>] [--variant <variant>]   < prompt
//! ```
//!
//! The prompt goes to stdin, which is then closed: `opencode run` reads
//! stdin to EOF when it is not a TTY and uses it as the message when argv
//! has none. Everything else that has no flag (gateway, max turns, system
//! prompt, no phoning home) goes into `OPENCODE_CONFIG_CONTENT`, the inline
//! config OpenCode merges over every config file.

use std::collections::BTreeMap;

use paddock_sdk::agent::{ExecFile, ExecSpec, PluginError, RunSpec};
use serde_json::{Map, Value, json};

pub const BINARY: &str = "opencode";

/// Where a system-prompt append is written (relative to the workdir) for
/// OpenCode's `instructions` to pick up.
pub const SYSTEM_PROMPT_FILE: &str = ".paddock/opencode-system-prompt.md";

/// The agent `opencode run` uses unless `--agent` names another.
const DEFAULT_AGENT: &str = "build";

/// Keys of `RunSpec.options`.
pub const OPTIONS: [&str; 5] = ["agent", "variant", "auto_approve", "fork", "config"];

/// Keeps OpenCode from reaching anything but the model's provider.
const QUIET_ENV: [(&str, &str); 5] = [
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_SHARE", "1"),
    ("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1"),
    ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
];

/// The key variable each well-known provider reads by default. The gateway
/// key is copied there as well as named in the provider's `env` config.
const PROVIDER_KEY_ENV: [(&str, &str); 4] = [
    ("anthropic", "ANTHROPIC_API_KEY"),
    ("openai", "OPENAI_API_KEY"),
    ("google", "GOOGLE_GENERATIVE_AI_API_KEY"),
    ("openrouter", "OPENROUTER_API_KEY"),
];

/// The provider a run without a model is pointed at (the one the fixtures
/// were captured with).
const DEFAULT_PROVIDER: &str = "anthropic";

#[derive(Debug, Default)]
struct Options {
    agent: Option<String>,
    variant: Option<String>,
    auto_approve: bool,
    fork: bool,
    config: Map<String, Value>,
}

impl Options {
    fn parse(options: &BTreeMap<String, String>) -> Result<Self, PluginError> {
        let mut parsed = Options {
            auto_approve: true,
            ..Options::default()
        };
        for (key, value) in options {
            match key.as_str() {
                "agent" => parsed.agent = Some(flag_value(key, value)?),
                "variant" => parsed.variant = Some(flag_value(key, value)?),
                "auto_approve" => parsed.auto_approve = boolean(key, value)?,
                "fork" => parsed.fork = boolean(key, value)?,
                "config" => match serde_json::from_str(value) {
                    Ok(Value::Object(map)) => parsed.config = map,
                    _ => {
                        return Err(PluginError::InvalidInput(format!(
                            "option `config` must be a JSON object (OpenCode config), got {value:?}"
                        )));
                    }
                },
                _ => {
                    return Err(PluginError::InvalidInput(format!(
                        "unknown option `{key}` for opencode; known options: {}",
                        OPTIONS.join(", ")
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

/// A value that becomes a flag's argument: a leading `-` would be read as
/// another flag.
fn flag_value(what: &str, value: &str) -> Result<String, PluginError> {
    if value.is_empty() || value.starts_with('-') {
        return Err(PluginError::InvalidInput(format!(
            "{what} {value:?} is not valid: it must be non-empty and not start with '-'"
        )));
    }
    Ok(value.to_owned())
}

fn boolean(key: &str, value: &str) -> Result<bool, PluginError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PluginError::InvalidInput(format!(
            "option `{key}` must be \"true\" or \"false\", got {value:?}"
        ))),
    }
}

/// An environment variable name: the provider's `env` list and `env_from`
/// must name exactly one variable.
fn env_name(value: &str) -> Result<&str, PluginError> {
    let mut chars = value.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
    if valid {
        Ok(value)
    } else {
        Err(PluginError::InvalidInput(format!(
            "gateway token_env {value:?} is not an environment variable name"
        )))
    }
}

/// Sets `value` at `path` in `config`, replacing whatever is in the way:
/// the adapter's settings win over the `config` option.
fn set(config: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = config;
    for key in parents {
        let entry = node
            .entry((*key).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(map) = entry else {
            return;
        };
        node = map;
    }
    node.insert((*last).to_owned(), value);
}

pub fn build(spec: RunSpec) -> Result<ExecSpec, PluginError> {
    if spec.prompt.trim().is_empty() {
        return Err(PluginError::InvalidInput(
            "the prompt is empty: `opencode run` needs a message".to_owned(),
        ));
    }
    let options = Options::parse(&spec.options)?;
    let mut argv: Vec<String> = [BINARY, "run", "--format", "json", "--thinking"]
        .map(str::to_owned)
        .to_vec();
    if options.auto_approve {
        // `run` auto-rejects every permission that would ask, and the run
        // then stops quietly: headless runs approve (denials still hold).
        argv.push("--auto".to_owned());
    }
    let mut provider = DEFAULT_PROVIDER.to_owned();
    if let Some(model) = &spec.model {
        let model = flag_value("model", model)?;
        // OpenCode wants `provider/model`; a bare model name is taken to be
        // one of the default provider's (the one the gateway is set up for).
        let model = match model.split_once('/') {
            Some((p, m)) if !p.is_empty() && !m.is_empty() => {
                provider = p.to_owned();
                model
            }
            Some(_) => {
                return Err(PluginError::InvalidInput(format!(
                    "model {model:?} must be `provider/model` (e.g. anthropic/claude-sonnet-4-5)"
                )));
            }
            None => format!("{DEFAULT_PROVIDER}/{model}"),
        };
        argv.extend(["--model".to_owned(), model]);
    }
    match &spec.resume {
        Some(session) => {
            argv.extend([
                "--session".to_owned(),
                flag_value("resume session id", session)?,
            ]);
            if options.fork {
                argv.push("--fork".to_owned());
            }
        }
        None if options.fork => {
            return Err(PluginError::InvalidInput(
                "option `fork` needs `resume`: it forks the resumed session".to_owned(),
            ));
        }
        None => {}
    }
    if let Some(agent) = &options.agent {
        argv.extend(["--agent".to_owned(), agent.clone()]);
    }
    if let Some(variant) = &options.variant {
        argv.extend(["--variant".to_owned(), variant.clone()]);
    }

    let mut config = options.config;
    set(&mut config, &["autoupdate"], json!(false));
    set(&mut config, &["share"], json!("disabled"));
    if let Some(turns) = spec.max_turns {
        if turns == 0 {
            return Err(PluginError::InvalidInput(
                "max_turns must be at least 1".to_owned(),
            ));
        }
        let agent = options.agent.as_deref().unwrap_or(DEFAULT_AGENT);
        set(&mut config, &["agent", agent, "steps"], json!(turns));
    }
    let mut files = Vec::new();
    if let Some(append) = spec
        .system_prompt_append
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        files.push(ExecFile {
            path: SYSTEM_PROMPT_FILE.to_owned(),
            contents: append.to_owned(),
        });
        let path = if spec.workdir.starts_with('/') {
            format!(
                "{}/{SYSTEM_PROMPT_FILE}",
                spec.workdir.trim_end_matches('/')
            )
        } else {
            SYSTEM_PROMPT_FILE.to_owned()
        };
        let mut instructions = match config.remove("instructions") {
            Some(Value::Array(list)) => list,
            _ => Vec::new(),
        };
        instructions.push(json!(path));
        config.insert("instructions".to_owned(), Value::Array(instructions));
    }
    let mut env_from = BTreeMap::new();
    if let Some(gateway) = &spec.gateway {
        let token_env = env_name(&gateway.token_env)?;
        set(
            &mut config,
            &["provider", &provider, "options", "baseURL"],
            json!(gateway.base_url),
        );
        // OpenCode looks the provider's key up in the variables its `env`
        // lists: the session's variable itself, so the key never has to
        // be copied into config.
        set(
            &mut config,
            &["provider", &provider, "env"],
            json!([token_env]),
        );
        if let Some((_, var)) = PROVIDER_KEY_ENV.iter().find(|(p, _)| *p == provider) {
            env_from.insert((*var).to_owned(), token_env.to_owned());
        }
    }

    let mut env: BTreeMap<String, String> = QUIET_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.insert(
        "OPENCODE_CONFIG_CONTENT".to_owned(),
        Value::Object(config).to_string(),
    );
    Ok(ExecSpec {
        argv,
        env,
        env_from,
        stdin: Some(spec.prompt),
        keep_stdin_open: false,
        files,
    })
}
