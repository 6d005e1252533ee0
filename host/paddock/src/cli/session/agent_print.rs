//! Prints an agent run's normalized events for a person watching it.
//!
//! One line (or a few) per event, led by a symbol that says what it is:
//!
//! ```text
//! ▶ session ab96… · claude-sonnet-4-5 · /workspace
//! ● I'll run that command.
//! ⚙ Bash echo hello
//!   ↳ hello
//! ✎ /workspace/hello.txt (add)
//! ✓ success · 2 turns · 1.0 s · tokens 11 in, 83 out, 30293 cache read, 1969 cache write · $0.0177
//! ```
//!
//! Token use is summed from the `usage` events (they are increments) and
//! shown once, with the `result`. Text that streamed as `text_delta`s is not
//! printed again when its final `text` arrives.

use std::collections::HashSet;
use std::io::{self, Write};
use std::time::Duration;

use paddock_sdk::agent::{
    AgentEvent, FileChangeKind, ResultStatus, RunResult, TodoStatus, ToolResult, ToolUse,
    UsageTotals,
};
use serde_json::Value;

use super::human::{self, Style};

/// Lines of a tool's output shown under its call.
const TOOL_OUTPUT_LINES: usize = 4;
/// Characters of one printed line of tool input or output.
const LINE_CHARS: usize = 160;

/// The printer's state across events.
#[derive(Debug)]
pub struct AgentPrinter {
    style: Style,
    /// Also print `raw` events (lines the adapter did not understand).
    show_raw: bool,
    /// The message whose `text_delta`s are on the current, unfinished line.
    streaming: Option<String>,
    /// Messages whose text was printed through deltas.
    streamed: HashSet<String>,
    usage: UsageTotals,
    saw_result: bool,
}

impl AgentPrinter {
    pub fn new(style: Style, show_raw: bool) -> Self {
        Self {
            style,
            show_raw,
            streaming: None,
            streamed: HashSet::new(),
            usage: UsageTotals::default(),
            saw_result: false,
        }
    }

    /// Whether a `result` event was printed (its summary line included).
    pub fn saw_result(&self) -> bool {
        self.saw_result
    }

    /// Ends a line of streamed text, before anything else is printed.
    pub fn break_line(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.streaming.take().is_some() {
            writeln!(out)?;
        }
        Ok(())
    }

    /// Prints one event.
    pub fn print(&mut self, event: &AgentEvent, out: &mut dyn Write) -> io::Result<()> {
        if let AgentEvent::TextDelta(delta) = event {
            return self.delta(&delta.message_id, &delta.text, out);
        }
        if let AgentEvent::Usage(usage) = event {
            self.usage.add(usage);
            return Ok(());
        }
        self.break_line(out)?;
        let s = self.style;
        match event {
            AgentEvent::RunStarted(run) => {
                let mut line = format!("session {}", run.session_id);
                for part in [&run.model, &run.cwd].into_iter().flatten() {
                    line.push_str(" · ");
                    line.push_str(part);
                }
                writeln!(out, "{} {}", s.cyan("▶"), s.dim(&line))
            }
            AgentEvent::Text(text) => {
                if let Some(id) = &text.message_id
                    && self.streamed.remove(id)
                {
                    return Ok(());
                }
                writeln!(out, "{} {}", s.bold("●"), indent_rest(&text.text, "  "))
            }
            AgentEvent::Thinking(text) => {
                writeln!(
                    out,
                    "{} {}",
                    s.dim("✻"),
                    s.dim(&indent_rest(&text.text, "  "))
                )
            }
            AgentEvent::ToolUse(tool) => self.tool_use(tool, out),
            AgentEvent::ToolResult(result) => self.tool_result(result, out),
            AgentEvent::FileChange(change) => {
                let kind = match change.kind {
                    FileChangeKind::Add => "add",
                    FileChangeKind::Modify => "modify",
                    FileChangeKind::Delete => "delete",
                    FileChangeKind::Rename => "rename",
                };
                match &change.old_path {
                    Some(old) => {
                        writeln!(out, "{} {old} → {} ({kind})", s.yellow("✎"), change.path)
                    }
                    None => writeln!(out, "{} {} ({kind})", s.yellow("✎"), change.path),
                }
            }
            AgentEvent::Todos(todos) => {
                writeln!(out, "{} todos", s.cyan("☰"))?;
                for item in &todos.items {
                    let mark = match item.status {
                        TodoStatus::Pending => "☐",
                        TodoStatus::InProgress => "◐",
                        TodoStatus::Completed => "☑",
                        TodoStatus::Cancelled => "☒",
                    };
                    writeln!(out, "  {mark} {}", item.text)?;
                }
                Ok(())
            }
            AgentEvent::Result(result) => {
                self.saw_result = true;
                writeln!(out, "{}", self.summary(result))
            }
            AgentEvent::Error(error) => {
                let kind = serde_json::to_value(error.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "other".to_owned());
                let retry = if error.retryable { ", retryable" } else { "" };
                writeln!(
                    out,
                    "{} {} {}",
                    s.red("✗"),
                    s.red(&format!("error ({kind}{retry}):")),
                    error.message
                )
            }
            AgentEvent::Raw(raw) => {
                if self.show_raw {
                    writeln!(
                        out,
                        "{} {}",
                        s.dim("·"),
                        s.dim(&human::truncate(&raw.line, LINE_CHARS))
                    )?;
                }
                Ok(())
            }
            AgentEvent::TextDelta(_) | AgentEvent::Usage(_) => Ok(()),
        }
    }

    /// Prints an event of a type this build does not know.
    pub fn print_unknown(&mut self, json: &str, out: &mut dyn Write) -> io::Result<()> {
        self.break_line(out)?;
        writeln!(
            out,
            "{} {}",
            self.style.dim("?"),
            self.style.dim(&human::truncate(json, LINE_CHARS))
        )
    }

    fn delta(&mut self, message_id: &str, text: &str, out: &mut dyn Write) -> io::Result<()> {
        if self.streaming.as_deref() != Some(message_id) {
            self.break_line(out)?;
            write!(out, "{} ", self.style.bold("●"))?;
            self.streaming = Some(message_id.to_owned());
            self.streamed.insert(message_id.to_owned());
        }
        write!(out, "{}", text.replace('\n', "\n  "))?;
        out.flush()
    }

    fn tool_use(&mut self, tool: &ToolUse, out: &mut dyn Write) -> io::Result<()> {
        let nest = nesting(tool.parent_id.as_deref());
        let input = serde_json::from_str::<Value>(tool.input.as_str()).unwrap_or(Value::Null);
        let summary = tool_summary(&input);
        writeln!(
            out,
            "{nest}{} {} {}",
            self.style.cyan("⚙"),
            self.style.bold(&tool.name),
            human::truncate(&summary, LINE_CHARS)
        )
    }

    fn tool_result(&mut self, result: &ToolResult, out: &mut dyn Write) -> io::Result<()> {
        let nest = nesting(result.parent_id.as_deref());
        let s = self.style;
        let arrow = if result.is_error {
            s.red("✗")
        } else {
            s.dim("↳")
        };
        let exit = match result.exit_code {
            Some(code) if code != 0 => format!(" {}", s.dim(&format!("(exit {code})"))),
            _ => String::new(),
        };
        let output = result.output.trim_end();
        let mut lines = output.lines();
        let Some(first) = lines.next() else {
            return writeln!(out, "{nest}  {arrow} {}{exit}", s.dim("(no output)"));
        };
        writeln!(
            out,
            "{nest}  {arrow} {}{exit}",
            human::truncate(first, LINE_CHARS)
        )?;
        let mut shown = 1;
        for line in lines.by_ref().take(TOOL_OUTPUT_LINES - 1) {
            writeln!(out, "{nest}    {}", human::truncate(line, LINE_CHARS))?;
            shown += 1;
        }
        let more = output.lines().count() - shown;
        if more > 0 {
            writeln!(out, "{nest}    {}", s.dim(&format!("… (+{more} lines)")))?;
        }
        Ok(())
    }

    /// `✓ success · 2 turns · 1.0 s · tokens … · $0.0177`.
    fn summary(&self, result: &RunResult) -> String {
        let s = self.style;
        let mark = match result.status {
            ResultStatus::Success => s.green("✓ success"),
            ResultStatus::Error => s.red("✗ error"),
            ResultStatus::Cancelled => s.yellow("■ cancelled"),
            ResultStatus::Interrupted => s.yellow("■ interrupted"),
        };
        let mut parts = vec![mark.into_owned()];
        if let Some(turns) = result.turns {
            parts.push(format!("{turns} turn{}", if turns == 1 { "" } else { "s" }));
        }
        if let Some(ms) = result.duration_ms {
            parts.push(human::duration(Duration::from_millis(ms)));
        }
        let u = &self.usage;
        let mut tokens = format!("tokens {} in, {} out", u.input_tokens, u.output_tokens);
        if u.cache_read_tokens > 0 || u.cache_write_tokens > 0 {
            tokens.push_str(&format!(
                ", {} cache read, {} cache write",
                u.cache_read_tokens, u.cache_write_tokens
            ));
        }
        if u.reasoning_tokens > 0 {
            tokens.push_str(&format!(", {} reasoning", u.reasoning_tokens));
        }
        parts.push(tokens);
        if let Some(cost) = result.cost_usd.or(u.cost_usd) {
            parts.push(format!("${cost:.4}"));
        }
        parts.join(" · ")
    }
}

/// Indentation of a sub-agent's tool calls under the call that started it.
fn nesting(parent: Option<&str>) -> &'static str {
    if parent.is_some() { "  │ " } else { "" }
}

/// The part of a tool's input a person wants to see: the command, the
/// file, the pattern; otherwise the input as compact JSON.
fn tool_summary(input: &Value) -> String {
    const KEYS: &[&str] = &[
        "command",
        "cmd",
        "file_path",
        "notebook_path",
        "pattern",
        "path",
        "query",
        "url",
        "description",
    ];
    if let Value::Object(fields) = input {
        for key in KEYS {
            match fields.get(*key) {
                Some(Value::String(text)) => return one_line(text),
                // Some CLIs pass argv as an array.
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                    let words: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                    return one_line(&words.join(" "));
                }
                _ => {}
            }
        }
        if fields.is_empty() {
            return String::new();
        }
    }
    if input.is_null() {
        return String::new();
    }
    input.to_string()
}

/// The first line of `text`, with `…` if there were more.
fn one_line(text: &str) -> String {
    let text = text.trim();
    match text.split_once('\n') {
        Some((first, _)) => format!("{} …", first.trim_end()),
        None => text.to_owned(),
    }
}

/// `text` with every line after the first indented by `prefix`.
fn indent_rest(text: &str, prefix: &str) -> String {
    text.trim_end().replace('\n', &format!("\n{prefix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/agents");

    fn golden(name: &str) -> Vec<AgentEvent> {
        let path = format!("{FIXTURES}/{name}.golden.jsonl");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
            .collect()
    }

    fn render(events: &[AgentEvent], show_raw: bool) -> String {
        let mut printer = AgentPrinter::new(Style::PLAIN, show_raw);
        let mut out = Vec::new();
        for event in events {
            printer.print(event, &mut out).unwrap();
        }
        printer.break_line(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_tool_call_reads_as_call_output_and_summary() {
        let out = render(&golden("claude-code/b_tool_bash"), false);
        let expected = [
            "▶ session ab9683a1-5bb7-4248-97ea-8b7c51b0820d · claude-sonnet-4-5-20250929 · /workspace",
            "● I'll run that command.",
            "⚙ Bash echo hello",
            "  ↳ hello",
            "● The command printed `hello`.",
            "✓ success · 2 turns · 1.0 s · tokens 11 in, 83 out, 30293 cache read, 1969 cache write · $0.0177",
        ];
        assert_eq!(out, expected.map(|line| format!("{line}\n")).concat());
    }

    #[test]
    fn file_changes_thinking_and_several_tools() {
        let out = render(&golden("claude-code/c_multi_tool"), false);
        for expected in [
            "✻ I should look at the directory and read notes.txt first.\n",
            "⚙ Bash ls -1\n",
            "⚙ Read /workspace/notes.txt\n",
            "  ↳ 1\talpha\n    2\tbeta\n    3\n",
            "⚙ Write /workspace/hello.txt\n",
            "✎ /workspace/hello.txt (add)\n",
            "✎ /workspace/notes.txt (modify)\n",
            "✓ success · 5 turns · 1.8 s",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in\n{out}");
        }
    }

    #[test]
    fn streamed_text_is_printed_once() {
        let out = render(&golden("claude-code/a_text_partial"), false);
        assert!(
            out.contains("● 2 + 2 = 4. That is all there is to it.\n"),
            "{out}"
        );
        assert_eq!(out.matches("That is all").count(), 1, "{out}");
        assert!(!out.contains("requesting"), "raw lines are hidden: {out}");
        let out = render(&golden("claude-code/a_text_partial"), true);
        assert!(
            out.contains("· {\"type\":\"system\",\"subtype\":\"status\""),
            "{out}"
        );
    }

    #[test]
    fn errors_and_interruptions_are_marked() {
        let out = render(&golden("claude-code/d_http_500"), false);
        assert!(
            out.contains("✗ error (api, retryable): API Error: 500"),
            "{out}"
        );
        assert!(out.contains("✗ error · 1 turn · 1.3 s"), "{out}");
        let out = render(&golden("claude-code/e_sigint"), false);
        assert!(out.contains("■ interrupted · 2 turns"), "{out}");
    }

    #[test]
    fn sub_agent_calls_are_nested() {
        let out = render(&golden("claude-code/g_subagent"), false);
        assert!(out.contains("⚙ Agent Run marker command\n"), "{out}");
        assert!(out.contains("  │ ⚙ Bash echo from-subagent\n"), "{out}");
        assert!(out.contains("  │   ↳ from-subagent\n"), "{out}");
    }

    #[test]
    fn long_tool_output_is_cut_to_a_few_lines() {
        let event: AgentEvent = serde_json::from_str(
            r#"{"type":"tool_result","id":"t1","output":"a\nb\nc\nd\ne\nf\n","is_error":true,"exit_code":2}"#,
        )
        .unwrap();
        assert_eq!(
            render(&[event], false),
            "  ✗ a (exit 2)\n    b\n    c\n    d\n    … (+2 lines)\n"
        );
    }

    #[test]
    fn todos_and_renames() {
        let events: Vec<AgentEvent> = [
            r#"{"type":"todos","items":[{"text":"plan","status":"completed"},{"text":"build","status":"in_progress"},{"text":"ship","status":"pending"}]}"#,
            r#"{"type":"file_change","path":"b.rs","kind":"rename","old_path":"a.rs"}"#,
        ]
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
        assert_eq!(
            render(&events, false),
            "☰ todos\n  ☑ plan\n  ◐ build\n  ☐ ship\n✎ a.rs → b.rs (rename)\n"
        );
    }

    #[test]
    fn tool_inputs_are_summarized() {
        let summary = |json: &str| tool_summary(&serde_json::from_str(json).unwrap());
        assert_eq!(
            summary(r#"{"command":"cargo test\ncargo fmt"}"#),
            "cargo test …"
        );
        assert_eq!(summary(r#"{"cmd":["git","status"]}"#), "git status");
        assert_eq!(summary(r#"{"pattern":"fn main","path":"src"}"#), "fn main");
        assert_eq!(summary(r#"{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(summary("{}"), "");
    }
}
