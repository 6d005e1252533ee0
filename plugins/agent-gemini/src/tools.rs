//! Gemini CLI's tools: their kinds, and the file changes and plans their
//! calls imply.

use paddock_sdk::agent::{FileChange, FileChangeKind, TodoItem, TodoStatus, ToolKind};
use serde_json::value::RawValue;

use crate::wire::{FileParams, TodoParams};

/// The kind of a Gemini CLI tool, by its wire name (0.61.0 offers
/// `list_directory, read_file, grep_search, glob, replace, write_file,
/// web_fetch, run_shell_command, list_background_processes,
/// read_background_output, google_web_search, write_todos,
/// enter_plan_mode, invoke_agent, activate_skill, update_topic`; older
/// names are kept).
pub fn kind(name: &str) -> ToolKind {
    match name {
        "run_shell_command" => ToolKind::Shell,
        "read_file" | "read_many_files" => ToolKind::Read,
        "replace" | "edit" => ToolKind::Edit,
        "write_file" => ToolKind::Write,
        "glob" | "grep_search" | "search_file_content" | "list_directory" => ToolKind::Search,
        "google_web_search" | "web_fetch" => ToolKind::WebSearch,
        "write_todos" => ToolKind::Todo,
        "invoke_agent" | "delegate_to_agent" | "codebase_investigator" => ToolKind::Subagent,
        // MCP tools are named `server__tool` when a name is taken twice, and
        // `mcp_…` in newer versions; a bare MCP tool name reads as `other`.
        _ if name.contains("__") || name.starts_with("mcp_") => ToolKind::Mcp,
        _ => ToolKind::Other,
    }
}

/// Whether a call of `name` changes a file, so its path is remembered until
/// the result says whether it succeeded (a cheap check on the hot path).
pub fn changes_files(name: &str) -> bool {
    matches!(name, "write_file" | "replace" | "edit")
}

/// The file change a successful `write_file` / `replace` call made, from its
/// parameters. The CLI does not say whether `write_file` created the file or
/// replaced it (its result has no output), so both are `modify`.
pub fn file_change(parameters: Option<&RawValue>) -> Option<FileChange> {
    let params: FileParams = serde_json::from_str(parameters?.get()).ok()?;
    let path = params.file_path.or(params.absolute_path)?;
    if path.is_empty() {
        return None;
    }
    Some(FileChange {
        path: path.into_owned(),
        kind: FileChangeKind::Modify,
        diff: None,
        old_path: None,
    })
}

/// The plan a `write_todos` call sets (it always sends the whole list).
pub fn todos(parameters: Option<&RawValue>) -> Option<Vec<TodoItem>> {
    let params: TodoParams = serde_json::from_str(parameters?.get()).ok()?;
    Some(
        params
            .todos
            .into_iter()
            .filter_map(|t| {
                Some(TodoItem {
                    text: t.description?.into_owned(),
                    status: match t.status.as_deref() {
                        Some("in_progress") => TodoStatus::InProgress,
                        Some("completed") => TodoStatus::Completed,
                        Some("cancelled") => TodoStatus::Cancelled,
                        _ => TodoStatus::Pending,
                    },
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn file_change_takes_the_path_from_the_call() {
        let p = raw(r#"{"file_path":"/w/a.txt","content":"x"}"#);
        let change = file_change(Some(&p)).unwrap();
        assert_eq!(change.path, "/w/a.txt");
        assert_eq!(change.kind, FileChangeKind::Modify);
        let p = raw(r#"{"absolute_path":"/w/b.txt"}"#);
        assert_eq!(file_change(Some(&p)).unwrap().path, "/w/b.txt");
        assert!(file_change(Some(&raw(r#"{"content":"x"}"#))).is_none());
        assert!(file_change(Some(&raw(r#"[1]"#))).is_none());
        assert!(file_change(None).is_none());
    }

    #[test]
    fn todo_statuses_map_and_items_without_text_are_left_out() {
        let p = raw(
            r#"{"todos":[{"description":"a","status":"completed"},{"description":"b","status":"in_progress"},{"status":"pending"},{"description":"c"}]}"#,
        );
        let items = todos(Some(&p)).unwrap();
        assert_eq!(
            items,
            vec![
                TodoItem {
                    text: "a".into(),
                    status: TodoStatus::Completed
                },
                TodoItem {
                    text: "b".into(),
                    status: TodoStatus::InProgress
                },
                TodoItem {
                    text: "c".into(),
                    status: TodoStatus::Pending
                },
            ]
        );
    }

    #[test]
    fn kinds() {
        assert_eq!(kind("run_shell_command"), ToolKind::Shell);
        assert_eq!(kind("write_file"), ToolKind::Write);
        assert_eq!(kind("replace"), ToolKind::Edit);
        assert_eq!(kind("grep_search"), ToolKind::Search);
        assert_eq!(kind("google_web_search"), ToolKind::WebSearch);
        assert_eq!(kind("invoke_agent"), ToolKind::Subagent);
        assert_eq!(kind("github__create_issue"), ToolKind::Mcp);
        assert_eq!(kind("update_topic"), ToolKind::Other);
    }
}
