//! The `claude` command line for a run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use paddock_sdk::agent::{ExecSpec, PluginError, RunSpec};
use serde_json::json;

/// Every key of `RunSpec.options` this adapter accepts (README.md documents
/// each).
pub const OPTIONS: [&str; 7] = [
    "allowed_tools",
    "disallowed_tools",
    "forward_subagent_text",
    "max_retries",
    "partial_messages",
    "permission_mode",
    "steering",
];

/// Permission modes `--permission-mode` accepts.
const PERMISSION_MODES: [&str; 5] = [
    "acceptEdits",
    "bypassPermissions",
    "default",
    "dontAsk",
    "plan",
];

/// Keep the CLI from phoning home (telemetry, error reports, update checks,
/// the connectivity probe); with these, the fixture runs sent nothing but
/// `POST /v1/messages`. `IS_SANDBOX=1` lets `bypassPermissions` run as root.
const QUIET_ENV: [(&str, &str); 5] = [
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_AUTOUPDATER", "1"),
    ("DISABLE_ERROR_REPORTING", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("IS_SANDBOX", "1"),
];

pub fn build(spec: RunSpec) -> Result<ExecSpec, PluginError> {
    if let Some(key) = spec.options.keys().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown option `{key}` for claude-code; known options: {}",
            OPTIONS.join(", ")
        )));
    }
    let options = &spec.options;
    let steering = flag(options, "steering", false)?;
    let partial = flag(options, "partial_messages", true)?;
    let forward = flag(options, "forward_subagent_text", false)?;
    let permission_mode = options
        .get("permission_mode")
        .map_or("bypassPermissions", String::as_str);
    if !PERMISSION_MODES.contains(&permission_mode) {
        return Err(invalid(format!(
            "option permission_mode: `{permission_mode}` is not one of {}",
            PERMISSION_MODES.join(", ")
        )));
    }
    if !steering && spec.prompt.trim().is_empty() {
        return Err(invalid("the prompt is empty".into()));
    }

    let mut argv: Vec<String> = [
        "claude",
        "-p",
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    .map(String::from)
    .to_vec();
    let mut arg = |a: &str| argv.push(a.to_owned());
    if steering {
        arg("--input-format");
        arg("stream-json");
    }
    if partial {
        arg("--include-partial-messages");
    }
    arg("--permission-mode");
    arg(permission_mode);
    if let Some(model) = &spec.model {
        arg("--model");
        arg(non_empty("model", model)?);
    }
    if let Some(session) = &spec.resume {
        arg("--resume");
        arg(non_empty("resume", session)?);
    }
    if let Some(turns) = spec.max_turns {
        if turns == 0 {
            return Err(invalid("max_turns must be at least 1".into()));
        }
        arg("--max-turns");
        arg(&turns.to_string());
    }
    if let Some(text) = spec
        .system_prompt_append
        .as_deref()
        .filter(|t| !t.is_empty())
    {
        arg("--append-system-prompt");
        arg(text);
    }
    if let Some(tools) = options.get("allowed_tools") {
        arg("--allowedTools");
        arg(non_empty("allowed_tools", tools)?);
    }
    if let Some(tools) = options.get("disallowed_tools") {
        arg("--disallowedTools");
        arg(non_empty("disallowed_tools", tools)?);
    }
    if forward {
        arg("--forward-subagent-text");
    }

    let mut env: BTreeMap<String, String> = QUIET_ENV
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    if let Some(retries) = options.get("max_retries") {
        let n: u32 = retries.trim().parse().map_err(|_| {
            invalid(format!(
                "option max_retries: `{retries}` is not a whole number"
            ))
        })?;
        env.insert("CLAUDE_CODE_MAX_RETRIES".into(), n.to_string());
    }
    let mut env_from = BTreeMap::new();
    if let Some(gateway) = &spec.gateway {
        if gateway.base_url.trim().is_empty() {
            return Err(invalid("gateway.base_url is empty".into()));
        }
        if gateway.token_env.is_empty()
            || !gateway
                .token_env
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid(format!(
                "gateway.token_env `{}` is not an environment variable name",
                gateway.token_env
            )));
        }
        env.insert("ANTHROPIC_BASE_URL".into(), gateway.base_url.clone());
        // The CLI sends ANTHROPIC_API_KEY as `x-api-key`; the host copies
        // the session's key into it at spawn.
        env_from.insert("ANTHROPIC_API_KEY".into(), gateway.token_env.clone());
    }

    let stdin = if steering {
        // The SDK's handshake first (the h_stream_json_interrupt fixture
        // sent it before interrupting), then the prompt as the first user
        // message; later messages come from `encode_input`.
        let mut stdin = json!({
            "type": "control_request",
            "request_id": "paddock-initialize",
            "request": {"subtype": "initialize"},
        })
        .to_string();
        stdin.push('\n');
        if !spec.prompt.trim().is_empty() {
            stdin.push_str(&user_message(&spec.prompt));
        }
        stdin
    } else {
        spec.prompt
    };

    Ok(ExecSpec {
        argv,
        env,
        env_from,
        stdin: Some(stdin),
        keep_stdin_open: steering,
        files: Vec::new(),
    })
}

/// A stream-json user message line.
pub fn user_message(text: &str) -> String {
    let mut line = json!({
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string();
    line.push('\n');
    line
}

/// A stream-json `interrupt` control request; request ids only need to be
/// unique within the process's stdin.
pub fn interrupt_request() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut line = json!({
        "type": "control_request",
        "request_id": format!("paddock-interrupt-{n}"),
        "request": {"subtype": "interrupt"},
    })
    .to_string();
    line.push('\n');
    line
}

fn flag(options: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool, PluginError> {
    match options.get(key).map(|v| v.trim()) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(invalid(format!(
            "option {key}: `{other}` is neither true nor false"
        ))),
    }
}

fn non_empty<'a>(what: &str, value: &'a str) -> Result<&'a str, PluginError> {
    if value.trim().is_empty() {
        Err(invalid(format!("{what} is empty")))
    } else {
        Ok(value)
    }
}

fn invalid(message: String) -> PluginError {
    PluginError::InvalidInput(message)
}
