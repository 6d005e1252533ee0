//! The command line, environment and files of one Gemini CLI run:
//!
//! ```text
//! gemini --output-format stream-json --skip-trust --yolo \
//!   [-m <model>] [--resume <session>] \
//!   [--include-directories <dir>]… [--extensions <name>]…   < prompt
//! ```
//!
//! The prompt goes on stdin alone: without `-p` (or a positional prompt)
//! and with stdin not a terminal, Gemini CLI runs headless and takes all of
//! stdin as the prompt. Settings the CLI has no flag for (gateway auth,
//! max turns, privacy, the system-prompt addition) go into a settings file
//! that `GEMINI_CLI_SYSTEM_SETTINGS_PATH` points at; system settings take
//! precedence over the user's and the project's.

use std::collections::BTreeMap;

use paddock_sdk::agent::{ExecFile, ExecSpec, PluginError, RunSpec};
use serde_json::json;

/// Gemini CLI reads at most 8 MiB of stdin and silently cuts the rest.
pub const PROMPT_LIMIT_BYTES: usize = 8 << 20;

/// Where the adapter's files go, relative to the workdir; ignored by git.
pub const FILES_DIR: &str = ".paddock/gemini";
/// The system settings file of the run.
pub const SETTINGS_FILE: &str = ".paddock/gemini/settings.json";
/// The text appended to the system prompt, loaded as a context file.
pub const SYSTEM_APPEND_FILE: &str = ".paddock/gemini/system-append.md";
const GITIGNORE_FILE: &str = ".paddock/gemini/.gitignore";

/// The keys of `RunSpec.options`.
pub const OPTION_KEYS: [&str; 3] = ["approval_mode", "include_directories", "extensions"];

/// Gemini CLI's `--approval-mode` values. Headless, anything but `yolo`
/// refuses the tool calls that would need a confirmation.
pub const APPROVAL_MODES: [&str; 4] = ["yolo", "auto_edit", "default", "plan"];

/// `RunSpec` → `ExecSpec`. Refuses what the CLI would misread or ignore.
pub fn build(spec: RunSpec) -> Result<ExecSpec, PluginError> {
    let options = Options::parse(&spec.options)?;
    if spec.prompt.trim().is_empty() {
        return Err(invalid(
            "the prompt is empty: Gemini CLI exits (code 42) when stdin has no input",
        ));
    }
    if spec.prompt.len() > PROMPT_LIMIT_BYTES {
        return Err(invalid(format!(
            "the prompt is {} bytes: Gemini CLI reads at most {PROMPT_LIMIT_BYTES} bytes of stdin and cuts the rest",
            spec.prompt.len()
        )));
    }

    let mut argv: Vec<String> = ["gemini", "--output-format", "stream-json", "--skip-trust"]
        .map(String::from)
        .to_vec();
    match options.approval_mode {
        None | Some("yolo") => argv.push("--yolo".into()),
        Some(mode) => argv.extend(["--approval-mode".into(), mode.to_owned()]),
    }
    if let Some(model) = &spec.model {
        argv.extend(["-m".into(), flag_value("model", model)?]);
    }
    if let Some(session) = &spec.resume {
        argv.extend(["--resume".into(), flag_value("resume", session)?]);
    }
    for dir in options.include_directories {
        argv.extend(["--include-directories".into(), dir.to_owned()]);
    }
    for extension in options.extensions {
        argv.extend(["--extensions".into(), extension.to_owned()]);
    }

    let mut settings = json!({
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
        "general": { "disableAutoUpdate": true, "disableUpdateNag": true },
    });
    let mut env = BTreeMap::from([
        ("NO_COLOR".to_owned(), "1".to_owned()),
        // One process instead of a launcher that ignores SIGINT/SIGTERM and
        // does not forward them: a signal to the CLI's pid then stops it.
        ("GEMINI_CLI_NO_RELAUNCH".to_owned(), "true".to_owned()),
        (
            "GEMINI_CLI_SYSTEM_SETTINGS_PATH".to_owned(),
            in_workdir(&spec.workdir, SETTINGS_FILE),
        ),
    ]);
    let mut env_from = BTreeMap::new();
    if let Some(gateway) = &spec.gateway {
        if gateway.base_url.trim().is_empty() {
            return Err(invalid("gateway.base_url is empty"));
        }
        if !is_env_name(&gateway.token_env) {
            return Err(invalid(format!(
                "gateway.token_env {:?} is not an environment variable name",
                gateway.token_env
            )));
        }
        env.insert(
            "GOOGLE_GEMINI_BASE_URL".to_owned(),
            gateway.base_url.clone(),
        );
        env_from.insert("GEMINI_API_KEY".to_owned(), gateway.token_env.clone());
        // With only the base URL set, Gemini CLI picks its `gateway` auth
        // type, which headless runs refuse (exit 41); the API-key type
        // still sends requests to GOOGLE_GEMINI_BASE_URL.
        settings["security"] = json!({ "auth": { "selectedType": "gemini-api-key" } });
    }
    if let Some(turns) = spec.max_turns {
        if turns == 0 {
            return Err(invalid("max_turns must be at least 1"));
        }
        settings["model"] = json!({ "maxSessionTurns": turns });
    }

    let mut files = vec![ExecFile {
        path: GITIGNORE_FILE.to_owned(),
        contents: "*\n".to_owned(),
    }];
    if let Some(append) = spec.system_prompt_append.as_deref()
        && !append.trim().is_empty()
    {
        // Gemini appends its context files (GEMINI.md) to the system
        // prompt; a name with a directory is looked up under the workdir.
        settings["context"] = json!({ "fileName": ["GEMINI.md", SYSTEM_APPEND_FILE] });
        files.push(ExecFile {
            path: SYSTEM_APPEND_FILE.to_owned(),
            contents: append.to_owned(),
        });
    }
    files.push(ExecFile {
        path: SETTINGS_FILE.to_owned(),
        contents: format!("{settings:#}\n"),
    });

    Ok(ExecSpec {
        argv,
        env,
        env_from,
        stdin: Some(spec.prompt),
        keep_stdin_open: false,
        files,
    })
}

/// The adapter's options, checked.
#[derive(Default)]
struct Options<'a> {
    approval_mode: Option<&'a str>,
    include_directories: Vec<&'a str>,
    extensions: Vec<&'a str>,
}

impl<'a> Options<'a> {
    fn parse(options: &'a BTreeMap<String, String>) -> Result<Self, PluginError> {
        let mut parsed = Options::default();
        for (key, value) in options {
            match key.as_str() {
                "approval_mode" => {
                    let mode = value.trim();
                    if !APPROVAL_MODES.contains(&mode) {
                        return Err(invalid(format!(
                            "option approval_mode: {value:?} is not one of {}",
                            APPROVAL_MODES.join(", ")
                        )));
                    }
                    parsed.approval_mode = Some(mode);
                }
                "include_directories" => parsed.include_directories = list(key, value)?,
                "extensions" => parsed.extensions = list(key, value)?,
                _ => {
                    return Err(invalid(format!(
                        "unknown option {key:?} for gemini; known options: {}",
                        OPTION_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(parsed)
    }
}

/// A comma-separated option value, each item usable as a flag's value.
fn list<'a>(key: &str, value: &'a str) -> Result<Vec<&'a str>, PluginError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(invalid(format!("option {key} is empty")));
    }
    for item in &items {
        check_flag_value(key, item)?;
    }
    Ok(items)
}

/// A value the CLI's argument parser takes as the value of the flag before
/// it, not as a flag of its own.
fn flag_value(what: &str, value: &str) -> Result<String, PluginError> {
    let value = value.trim();
    check_flag_value(what, value)?;
    Ok(value.to_owned())
}

fn check_flag_value(what: &str, value: &str) -> Result<(), PluginError> {
    if value.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if value.starts_with('-') {
        return Err(invalid(format!(
            "{what} {value:?} starts with '-', which Gemini CLI would read as a flag"
        )));
    }
    if value.contains('\0') {
        return Err(invalid(format!("{what} contains a NUL byte")));
    }
    Ok(())
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `relative` under `workdir`, for the CLI, which resolves relative paths
/// against its cwd (the workdir).
fn in_workdir(workdir: &str, relative: &str) -> String {
    let base = workdir.trim_end_matches('/');
    if base.is_empty() && workdir.starts_with('/') {
        format!("/{relative}")
    } else if base.is_empty() || base == "." {
        relative.to_owned()
    } else {
        format!("{base}/{relative}")
    }
}

fn invalid(message: impl Into<String>) -> PluginError {
    PluginError::InvalidInput(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_under_the_workdir() {
        assert_eq!(in_workdir("/workspace", "a/b"), "/workspace/a/b");
        assert_eq!(in_workdir("/workspace/", "a/b"), "/workspace/a/b");
        assert_eq!(in_workdir("/", "a/b"), "/a/b");
        assert_eq!(in_workdir(".", "a/b"), "a/b");
        assert_eq!(in_workdir("", "a/b"), "a/b");
        assert_eq!(in_workdir("proj", "a/b"), "proj/a/b");
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("PADDOCK_GATEWAY_TOKEN"));
        assert!(!is_env_name(""));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A=B"));
        assert!(!is_env_name("$X"));
    }
}
