//! The command line of one Codex run.
//!
//! ```text
//! codex exec --json --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox \
//!   --cd <workdir> [--model <model>] [--ephemeral] \
//!   -c analytics.enabled=false -c check_for_update_on_startup=false \
//!   [-c developer_instructions="..."] [-c model_reasoning_effort="..."] \
//!   [-c model_provider="paddock" -c model_providers.paddock={...}] \
//!   [resume <thread id>] -
//! ```
//!
//! The final `-` makes Codex read the prompt from stdin (to EOF), so the
//! prompt never shows in argv.

use std::collections::BTreeMap;

use paddock_sdk::agent::{ExecSpec, Gateway, PluginError, RunSpec};

/// The `options` keys this adapter accepts (see the README).
pub const OPTION_KEYS: [&str; 4] = [
    "ephemeral",
    "reasoning_effort",
    "reasoning_summary",
    "sandbox",
];

/// Codex's `model_reasoning_effort` values.
const REASONING_EFFORTS: [&str; 6] = ["none", "minimal", "low", "medium", "high", "xhigh"];
/// Codex's `model_reasoning_summary` values.
const REASONING_SUMMARIES: [&str; 4] = ["auto", "concise", "detailed", "none"];
/// Codex's `--sandbox` modes.
const SANDBOX_MODES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

/// The provider id the gateway is configured under (`-c model_providers.<id>`).
const GATEWAY_PROVIDER: &str = "paddock";

pub fn build(spec: RunSpec) -> Result<ExecSpec, PluginError> {
    if spec.prompt.trim().is_empty() {
        // `codex exec -` with an empty stdin fails with "No prompt provided".
        return Err(invalid("the prompt is empty"));
    }
    let options = Options::parse(&spec.options)?;

    let mut argv: Vec<String> = ["codex", "exec", "--json", "--skip-git-repo-check"]
        .map(String::from)
        .to_vec();
    match options.sandbox {
        // Headless runs cannot answer approval prompts, and the run already
        // is in Paddock's sandbox (Codex's own bwrap sandbox needs user
        // namespaces a container rarely grants): the fixtures' flag.
        None => argv.push("--dangerously-bypass-approvals-and-sandbox".into()),
        Some(mode) => {
            argv.push("--sandbox".into());
            argv.push(mode.into());
        }
    }
    argv.push("--cd".into());
    argv.push(flag_value("workdir", &spec.workdir)?.into());
    if let Some(model) = &spec.model {
        argv.push("--model".into());
        argv.push(flag_value("model", model)?.into());
    }
    if options.ephemeral {
        argv.push("--ephemeral".into());
    }

    // Keep Codex from phoning home (both are in the fixtures' config).
    config(&mut argv, "analytics.enabled", "false");
    config(&mut argv, "check_for_update_on_startup", "false");
    if let Some(effort) = options.reasoning_effort {
        config(&mut argv, "model_reasoning_effort", &toml_string(effort));
    }
    if let Some(summary) = options.reasoning_summary {
        config(&mut argv, "model_reasoning_summary", &toml_string(summary));
    }
    // Codex adds `developer_instructions` as a developer message after its
    // own instructions: an append, where `model_instructions_file` would
    // replace them.
    if let Some(append) = &spec.system_prompt_append {
        config(&mut argv, "developer_instructions", &toml_string(append));
    }
    if let Some(gateway) = &spec.gateway {
        gateway_config(&mut argv, gateway)?;
    }
    // `max_turns` is not applied: Codex has no limit on the model requests
    // of a turn. It is accepted (not refused) because every host sends it
    // from the same run spec; the missing `max-turns` feature tells hosts.

    if let Some(thread) = &spec.resume {
        if thread.is_empty() || thread.starts_with('-') || thread.chars().any(char::is_whitespace) {
            return Err(invalid(&format!(
                "resume: `{thread}` is not a Codex thread id"
            )));
        }
        argv.push("resume".into());
        argv.push(thread.clone());
    }
    argv.push("-".into());

    Ok(ExecSpec {
        argv,
        env: BTreeMap::from([("NO_COLOR".to_owned(), "1".to_owned())]),
        env_from: BTreeMap::new(),
        stdin: Some(spec.prompt),
        // Codex reads stdin to EOF before it starts: it cannot be steered.
        keep_stdin_open: false,
        files: Vec::new(),
    })
}

/// Points Codex at the gateway: a model provider whose `env_key` names the
/// variable the host fills with the session's key. Codex reads the key from
/// that variable itself, so neither argv nor `env_from` carries it.
fn gateway_config(argv: &mut Vec<String>, gateway: &Gateway) -> Result<(), PluginError> {
    let url = &gateway.base_url;
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(&format!(
            "gateway.base_url: `{url}` is not an http(s) URL"
        )));
    }
    let var = &gateway.token_env;
    let valid_var = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_var {
        return Err(invalid(&format!(
            "gateway.token_env: `{var}` is not an environment variable name"
        )));
    }
    config(argv, "model_provider", &toml_string(GATEWAY_PROVIDER));
    // `wire_api = "responses"`: 0.169.0 refuses "chat". Plain HTTP: the
    // gateway speaks no websockets.
    config(
        argv,
        &format!("model_providers.{GATEWAY_PROVIDER}"),
        &format!(
            "{{name={}, base_url={}, env_key={}, wire_api=\"responses\", supports_websockets=false}}",
            toml_string("Paddock gateway"),
            toml_string(url),
            toml_string(var),
        ),
    );
    Ok(())
}

/// The adapter's `options`, validated.
#[derive(Debug, Default)]
struct Options<'a> {
    ephemeral: bool,
    reasoning_effort: Option<&'a str>,
    reasoning_summary: Option<&'a str>,
    sandbox: Option<&'a str>,
}

impl<'a> Options<'a> {
    fn parse(options: &'a BTreeMap<String, String>) -> Result<Self, PluginError> {
        let mut parsed = Options::default();
        for (key, value) in options {
            let value = value.as_str();
            match key.as_str() {
                "ephemeral" => {
                    parsed.ephemeral = match value {
                        "true" => true,
                        "false" => false,
                        _ => return Err(bad_value(key, value, &["true", "false"])),
                    }
                }
                "reasoning_effort" => {
                    parsed.reasoning_effort = Some(one_of(key, value, &REASONING_EFFORTS)?)
                }
                "reasoning_summary" => {
                    parsed.reasoning_summary = Some(one_of(key, value, &REASONING_SUMMARIES)?)
                }
                "sandbox" => parsed.sandbox = Some(one_of(key, value, &SANDBOX_MODES)?),
                _ => {
                    return Err(invalid(&format!(
                        "unknown option `{key}` for codex; known options: {}",
                        OPTION_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

fn one_of<'a>(key: &str, value: &'a str, allowed: &[&str]) -> Result<&'a str, PluginError> {
    if allowed.contains(&value) {
        Ok(value)
    } else {
        Err(bad_value(key, value, allowed))
    }
}

fn bad_value(key: &str, value: &str, allowed: &[&str]) -> PluginError {
    invalid(&format!(
        "option `{key}`: `{value}` is not one of {}",
        allowed.join(", ")
    ))
}

/// A value for a flag: one that starts with `-` would be read as a flag.
fn flag_value<'a>(what: &str, value: &'a str) -> Result<&'a str, PluginError> {
    if value.is_empty() || value.starts_with('-') || value.chars().any(char::is_control) {
        return Err(invalid(&format!("{what}: `{value}` is not a valid value")));
    }
    Ok(value)
}

/// `-c key=value`: Codex parses `value` as TOML.
fn config(argv: &mut Vec<String>, key: &str, value: &str) {
    argv.push("-c".into());
    argv.push(format!("{key}={value}"));
}

/// A TOML basic string. Not JSON's escaping: TOML also forbids a raw DEL.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invalid(message: &str) -> PluginError {
    PluginError::InvalidInput(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_what_toml_forbids() {
        assert_eq!(
            toml_string("a \"b\" \\ c\nd\u{7f}"),
            r#""a \"b\" \\ c\nd\u007F""#
        );
    }
}
