//! OpenCode's tools: their kinds, and the file changes and task lists their
//! completed calls imply.

use paddock_sdk::agent::{FileChange, FileChangeKind, TodoItem, TodoStatus, ToolKind};
use serde_json::value::RawValue;

use crate::wire::{FileDiff, FileInput, Metadata, PatchFile, TodoInput};

/// The kind of an OpenCode tool, by its id. MCP tools are named
/// `<server>_<tool>` like plugin tools, so they cannot be told apart and are
/// `other`.
pub fn kind(name: &str) -> ToolKind {
    match name {
        "bash" | "shell" => ToolKind::Shell,
        "read" => ToolKind::Read,
        "edit" | "multiedit" | "apply_patch" | "patch" => ToolKind::Edit,
        "write" => ToolKind::Write,
        "glob" | "grep" | "list" | "ls" => ToolKind::Search,
        "webfetch" | "websearch" | "codesearch" => ToolKind::WebSearch,
        "task" => ToolKind::Subagent,
        "todowrite" | "todoread" => ToolKind::Todo,
        _ => ToolKind::Other,
    }
}

/// The files a completed tool call changed, where the CLI tells the path.
pub fn file_changes(
    name: &str,
    input: Option<&RawValue>,
    metadata: &Metadata<'_>,
) -> Vec<FileChange> {
    match name {
        "write" => write_change(input, metadata).into_iter().collect(),
        "edit" | "multiedit" => edit_change(input, metadata).into_iter().collect(),
        "apply_patch" | "patch" => patch_changes(metadata),
        _ => Vec::new(),
    }
}

/// `write`: `metadata.exists` says whether the file was there before; a new
/// file's diff is built from the written content.
fn write_change(input: Option<&RawValue>, metadata: &Metadata<'_>) -> Option<FileChange> {
    let input = input.and_then(|raw| serde_json::from_str::<FileInput>(raw.get()).ok());
    let path = metadata
        .filepath
        .as_ref()
        .and_then(|p| p.as_str())
        .map(str::to_owned)
        .or_else(|| input.as_ref()?.file_path.as_deref().map(str::to_owned))?;
    let created = metadata.exists.as_ref().and_then(|e| e.as_bool()) == Some(false);
    let diff = match (&input, created) {
        (
            Some(FileInput {
                content: Some(content),
                ..
            }),
            true,
        ) => Some(creation_diff(&path, content)),
        _ => None,
    };
    Some(FileChange {
        kind: if created {
            FileChangeKind::Add
        } else {
            FileChangeKind::Modify
        },
        path,
        diff,
        old_path: None,
    })
}

/// `edit`: the diff is in `metadata.diff` (and `metadata.filediff.patch`).
fn edit_change(input: Option<&RawValue>, metadata: &Metadata<'_>) -> Option<FileChange> {
    let filediff = metadata
        .filediff
        .and_then(|raw| serde_json::from_str::<FileDiff>(raw.get()).ok());
    let path = match filediff.as_ref().and_then(|d| d.file.as_deref()) {
        Some(file) => file.to_owned(),
        None => {
            let input = serde_json::from_str::<FileInput>(input?.get()).ok()?;
            input.file_path?.into_owned()
        }
    };
    let diff = metadata
        .diff
        .as_ref()
        .and_then(|d| d.as_str())
        .or_else(|| filediff.as_ref()?.patch.as_deref())
        .map(str::to_owned);
    Some(FileChange {
        path,
        kind: FileChangeKind::Modify,
        diff,
        old_path: None,
    })
}

/// `apply_patch` (GPT models): one entry per file in `metadata.files`, with
/// `type` add / update / delete / move.
fn patch_changes(metadata: &Metadata<'_>) -> Vec<FileChange> {
    let Some(files) = metadata
        .files
        .and_then(|raw| serde_json::from_str::<Vec<PatchFile>>(raw.get()).ok())
    else {
        return Vec::new();
    };
    files
        .into_iter()
        .filter_map(|file| {
            let path = file.file_path?.into_owned();
            let diff = file.patch.map(|p| p.into_owned());
            let change = match (file.kind.as_deref(), file.move_path) {
                (Some("move"), Some(to)) => FileChange {
                    path: to.into_owned(),
                    kind: FileChangeKind::Rename,
                    diff,
                    old_path: Some(path),
                },
                (Some("add"), _) => FileChange {
                    path,
                    kind: FileChangeKind::Add,
                    diff,
                    old_path: None,
                },
                (Some("delete"), _) => FileChange {
                    path,
                    kind: FileChangeKind::Delete,
                    diff,
                    old_path: None,
                },
                _ => FileChange {
                    path,
                    kind: FileChangeKind::Modify,
                    diff,
                    old_path: None,
                },
            };
            Some(change)
        })
        .collect()
}

/// A unified diff that creates `path` with `content`.
fn creation_diff(path: &str, content: &str) -> String {
    let mut out = format!("--- /dev/null\n+++ {path}\n");
    if content.is_empty() {
        return out;
    }
    let (body, newline_at_end) = match content.strip_suffix('\n') {
        Some(body) => (body, true),
        None => (content, false),
    };
    let lines = body.split('\n').count();
    out.push_str(&format!("@@ -0,0 +1,{lines} @@\n"));
    for line in body.split('\n') {
        out.push('+');
        out.push_str(line);
        out.push('\n');
    }
    if !newline_at_end {
        out.push_str("\\ No newline at end of file\n");
    }
    out
}

/// The list a `todowrite` call set: it always sends the whole list.
pub fn todos(input: Option<&RawValue>) -> Option<Vec<TodoItem>> {
    let input = serde_json::from_str::<TodoInput>(input?.get()).ok()?;
    let items = input
        .todos?
        .into_iter()
        .map(|entry| TodoItem {
            text: entry.content.map(|c| c.into_owned()).unwrap_or_default(),
            status: match entry.status.as_deref() {
                Some("in_progress" | "in-progress") => TodoStatus::InProgress,
                Some("completed") => TodoStatus::Completed,
                Some("cancelled" | "canceled") => TodoStatus::Cancelled,
                _ => TodoStatus::Pending,
            },
        })
        .collect();
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn creation_diff_counts_lines_and_marks_a_missing_final_newline() {
        assert_eq!(
            creation_diff("/w/a", "x\ny"),
            "--- /dev/null\n+++ /w/a\n@@ -0,0 +1,2 @@\n+x\n+y\n\\ No newline at end of file\n"
        );
        assert_eq!(
            creation_diff("/w/a", "x\n"),
            "--- /dev/null\n+++ /w/a\n@@ -0,0 +1,1 @@\n+x\n"
        );
        assert_eq!(creation_diff("/w/a", ""), "--- /dev/null\n+++ /w/a\n");
    }

    #[test]
    fn apply_patch_files_become_adds_updates_deletes_and_renames() {
        let files = raw(r#"[{"filePath":"/w/new","type":"add","patch":"p1"},
                {"filePath":"/w/old","type":"update","patch":"p2"},
                {"filePath":"/w/gone","type":"delete"},
                {"filePath":"/w/a","type":"move","movePath":"/w/b","patch":"p3"},
                {"type":"add"}]"#);
        let metadata = Metadata {
            files: Some(&files),
            ..Metadata::default()
        };
        let changes = file_changes("apply_patch", None, &metadata);
        let summary: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.kind,
                    c.old_path.as_deref(),
                    c.diff.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/w/new", FileChangeKind::Add, None, Some("p1")),
                ("/w/old", FileChangeKind::Modify, None, Some("p2")),
                ("/w/gone", FileChangeKind::Delete, None, None),
                ("/w/b", FileChangeKind::Rename, Some("/w/a"), Some("p3")),
            ],
            "a file without a path is left out"
        );
    }

    #[test]
    fn todowrite_statuses_map_and_unknown_ones_stay_pending() {
        let input = raw(
            r#"{"todos":[{"content":"a","status":"in_progress","priority":"high"},
                          {"content":"b","status":"completed"},
                          {"content":"c","status":"cancelled"},
                          {"content":"d","status":"later"}]}"#,
        );
        let items = todos(Some(&input)).unwrap();
        let statuses: Vec<_> = items.iter().map(|i| (i.text.as_str(), i.status)).collect();
        assert_eq!(
            statuses,
            vec![
                ("a", TodoStatus::InProgress),
                ("b", TodoStatus::Completed),
                ("c", TodoStatus::Cancelled),
                ("d", TodoStatus::Pending),
            ]
        );
        assert!(todos(Some(&raw(r#""not an object""#))).is_none());
    }
}
