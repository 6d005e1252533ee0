//! Claude Code's tools: their kinds, and the file changes and task lists
//! their calls imply.

use std::fmt::Write as _;

use paddock_sdk::agent::{FileChange, FileChangeKind, TodoItem, TodoStatus, ToolKind};

use crate::wire::{FileResult, Hunk, MaybeStr, TodoInput};

/// The kind of a Claude Code tool, by its wire name.
pub fn kind(name: &str) -> ToolKind {
    match name {
        "Bash" | "BashOutput" | "KillShell" | "KillBash" => ToolKind::Shell,
        "Read" | "NotebookRead" => ToolKind::Read,
        "Edit" | "MultiEdit" | "NotebookEdit" => ToolKind::Edit,
        "Write" => ToolKind::Write,
        "Glob" | "Grep" | "LS" => ToolKind::Search,
        "WebSearch" | "WebFetch" => ToolKind::WebSearch,
        // `Agent` on the wire; `Task` in `system/init` and in older versions.
        "Agent" | "Task" => ToolKind::Subagent,
        "TodoWrite" | "TodoRead" | "TaskCreate" | "TaskUpdate" | "TaskList" | "TaskGet" => {
            ToolKind::Todo
        }
        _ if name.starts_with("mcp__") => ToolKind::Mcp,
        _ => ToolKind::Other,
    }
}

/// What a tool call needs remembered until its result arrives.
#[derive(Debug)]
pub enum Pending {
    /// Write / Edit / MultiEdit / NotebookEdit: a file change once it succeeded.
    File { write: bool, path: Option<String> },
    /// TaskCreate: a new task once the CLI gave it an id.
    TaskCreate { subject: Option<String> },
    /// TaskUpdate: a task's new status or subject once it succeeded.
    TaskUpdate {
        task_id: Option<String>,
        status: Option<String>,
        subject: Option<String>,
    },
}

/// Whether calls of `name` are remembered until their result (cheap check on
/// the hot path: most calls are not).
pub fn needs_result(name: &str) -> bool {
    matches!(
        name,
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" | "TaskCreate" | "TaskUpdate"
    )
}

/// The file change of a successful Write / Edit call. `result` is the
/// `tool_use_result` side channel: Write says `create` or `update`, edits
/// carry a `structuredPatch`.
pub fn file_change(
    write: bool,
    input_path: Option<String>,
    result: Option<FileResult>,
) -> Option<FileChange> {
    let (kind, path, diff) = match result {
        Some(r) => {
            let path = r.file_path.map(|p| p.into_owned()).or(input_path)?;
            let created = r.kind.as_deref() == Some("create");
            let kind = if write && created {
                FileChangeKind::Add
            } else {
                FileChangeKind::Modify
            };
            let diff = match (&r.structured_patch, created, &r.content) {
                (Some(hunks), _, _) if !hunks.is_empty() => Some(patch_diff(&path, hunks)),
                (_, true, Some(content)) => Some(creation_diff(&path, content)),
                _ => None,
            };
            (kind, path, diff)
        }
        // Without the side channel the path still comes from the call; a
        // Write may then have created or replaced the file.
        None => (FileChangeKind::Modify, input_path?, None),
    };
    Some(FileChange {
        path,
        kind,
        diff,
        old_path: None,
    })
}

/// A unified diff from Claude Code's `structuredPatch` hunks.
fn patch_diff(path: &str, hunks: &[Hunk]) -> String {
    let mut out = format!("--- {path}\n+++ {path}\n");
    for h in hunks {
        let _ = writeln!(
            out,
            "@@ -{},{} +{},{} @@",
            h.old_start, h.old_lines, h.new_start, h.new_lines
        );
        for line in h
            .lines
            .iter()
            .flatten()
            .filter_map(|l: &MaybeStr| l.0.as_deref())
        {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A unified diff that adds `content` as a new file.
fn creation_diff(path: &str, content: &str) -> String {
    let body = content.strip_suffix('\n');
    let lines: Vec<&str> = match body {
        Some(b) => b.split('\n').collect(),
        None if content.is_empty() => Vec::new(),
        None => content.split('\n').collect(),
    };
    let mut out = format!("--- /dev/null\n+++ {path}\n@@ -0,0 +1,{} @@\n", lines.len());
    for line in &lines {
        out.push('+');
        out.push_str(line);
        out.push('\n');
    }
    if body.is_none() && !content.is_empty() {
        out.push_str("\\ No newline at end of file\n");
    }
    out
}

pub fn todo_status(status: Option<&str>) -> TodoStatus {
    match status {
        Some("in_progress") => TodoStatus::InProgress,
        Some("completed") => TodoStatus::Completed,
        Some("cancelled" | "canceled") => TodoStatus::Cancelled,
        _ => TodoStatus::Pending,
    }
}

/// TodoWrite's input: the whole list, each time.
pub fn todo_write(todos: Vec<TodoInput>) -> Vec<TodoItem> {
    todos
        .into_iter()
        .map(|t| TodoItem {
            status: todo_status(t.status.as_deref()),
            text: t.content.unwrap_or_default(),
        })
        .collect()
}

/// The task list built from TaskCreate / TaskUpdate calls (Claude Code's
/// incremental successor of TodoWrite). Tasks created before this process
/// (an earlier run of a resumed session) are known only once updated.
#[derive(Debug, Default)]
pub struct TaskList {
    tasks: Vec<(String, TodoItem)>,
}

impl TaskList {
    pub fn create(&mut self, id: String, subject: Option<String>) {
        let text = subject.unwrap_or_else(|| format!("Task #{id}"));
        match self.tasks.iter_mut().find(|(i, _)| *i == id) {
            Some((_, item)) => item.text = text,
            None => self.tasks.push((
                id,
                TodoItem {
                    text,
                    status: TodoStatus::Pending,
                },
            )),
        }
    }

    pub fn update(&mut self, id: String, status: Option<&str>, subject: Option<String>) {
        if status == Some("deleted") {
            self.tasks.retain(|(i, _)| *i != id);
            return;
        }
        let pos = match self.tasks.iter().position(|(i, _)| *i == id) {
            Some(pos) => pos,
            None => {
                self.create(id, subject.clone());
                self.tasks.len() - 1
            }
        };
        let item = &mut self.tasks[pos].1;
        if let Some(status) = status {
            item.status = todo_status(Some(status));
        }
        if let Some(subject) = subject {
            item.text = subject;
        }
    }

    pub fn items(&self) -> Vec<TodoItem> {
        self.tasks.iter().map(|(_, item)| item.clone()).collect()
    }
}

/// The task id in TaskCreate's result text, `Task #3 created successfully…`.
pub fn created_task_id(output: &str) -> Option<String> {
    let rest = output.trim_start().strip_prefix("Task #")?;
    let end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_owned())
}

/// The exit code in a failed Bash result, `Exit code 3\n…`.
pub fn exit_code(output: &str) -> Option<i32> {
    let rest = output.strip_prefix("Exit code ")?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_diff_marks_a_missing_final_newline() {
        assert_eq!(
            creation_diff("/w/a", "x\ny"),
            "--- /dev/null\n+++ /w/a\n@@ -0,0 +1,2 @@\n+x\n+y\n\\ No newline at end of file\n"
        );
        assert_eq!(
            creation_diff("/w/a", "x\n"),
            "--- /dev/null\n+++ /w/a\n@@ -0,0 +1,1 @@\n+x\n"
        );
    }

    #[test]
    fn ids_and_exit_codes_from_result_text() {
        assert_eq!(
            created_task_id("Task #12 created successfully: x").as_deref(),
            Some("12")
        );
        assert_eq!(created_task_id("created"), None);
        assert_eq!(exit_code("Exit code 3\nboom"), Some(3));
        assert_eq!(exit_code("hello"), None);
    }

    #[test]
    fn task_list_follows_creates_updates_and_deletes() {
        let mut list = TaskList::default();
        list.create("1".into(), Some("a".into()));
        list.create("2".into(), Some("b".into()));
        list.update("1".into(), Some("completed"), None);
        list.update("2".into(), Some("deleted"), None);
        list.update("7".into(), Some("in_progress"), None);
        let items = list.items();
        assert_eq!(items.len(), 2);
        assert_eq!(
            (items[0].text.as_str(), items[0].status),
            ("a", TodoStatus::Completed)
        );
        assert_eq!(
            (items[1].text.as_str(), items[1].status),
            ("Task #7", TodoStatus::InProgress)
        );
    }
}
