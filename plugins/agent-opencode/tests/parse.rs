//! Parser behaviour on the scenarios the fixture README describes without a
//! transcript file, on very long lines and on garbage. Lines are built in
//! OpenCode's own `run --format json` shape.

use agent_opencode::OpenCode;
use paddock_sdk::agent::{
    AgentEvent, ErrorKind, FileChangeKind, ParseContext, ProcessEnd, ResultStatus, TodoStatus,
    ToolKind, UsageTotals,
};
use paddock_sdk::testing::{self, parse, sum_usage};
use serde_json::{Value, json};

const SES: &str = "ses_dfd0242c7ffePtOHP42QwJlWwq";

fn line(kind: &str, part: Value) -> String {
    json!({"type": kind, "timestamp": 1795346516914u64, "sessionID": SES, "part": part}).to_string()
}

fn step_start(msg: &str) -> String {
    line(
        "step_start",
        json!({"id": format!("prt_s_{msg}"), "messageID": msg, "sessionID": SES, "type": "step-start"}),
    )
}

fn text(msg: &str, text: &str) -> String {
    line(
        "text",
        json!({"id": format!("prt_t_{msg}"), "messageID": msg, "sessionID": SES, "type": "text",
               "text": text, "time": {"start": 1, "end": 2}}),
    )
}

fn step_finish(msg: &str, reason: &str, input: u64, output: u64, cost: f64) -> String {
    line(
        "step_finish",
        json!({"id": format!("prt_f_{msg}"), "reason": reason, "messageID": msg, "sessionID": SES,
               "type": "step-finish",
               "tokens": {"total": input + output + 100 + 10, "input": input, "output": output,
                          "reasoning": 0, "cache": {"write": 10, "read": 100}},
               "cost": cost}),
    )
}

fn tool(msg: &str, call: &str, name: &str, state: Value) -> String {
    line(
        "tool_use",
        json!({"type": "tool", "tool": name, "callID": call, "state": state,
               "id": format!("prt_{call}"), "sessionID": SES, "messageID": msg}),
    )
}

fn stdout(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

fn run(lines: &[String], end: ProcessEnd) -> Vec<AgentEvent> {
    parse::<OpenCode>(ParseContext::default(), &stdout(lines), 0, end)
}

fn results(events: &[AgentEvent]) -> Vec<(ResultStatus, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Result(r) => Some((r.status, r.text.clone())),
            _ => None,
        })
        .collect()
}

fn errors(events: &[AgentEvent]) -> Vec<(ErrorKind, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error(e) => Some((e.kind, e.retryable)),
            _ => None,
        })
        .collect()
}

fn raws(events: &[AgentEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Raw(r) => Some(r.line.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_2_mib_text_and_tool_output_arrive_whole_in_any_chunking() {
    let big = "é".repeat(1 << 20); // 2 MiB of UTF-8
    let lines = [
        step_start("msg_1"),
        text("msg_1", &big),
        tool(
            "msg_1",
            "toolu_big",
            "bash",
            json!({"status": "completed", "input": {"command": "cat big"}, "output": big,
                   "metadata": {"output": big, "exit": 0, "truncated": false}, "title": "cat big"}),
        ),
        step_finish("msg_1", "stop", 3, 5, 0.5),
    ];
    let bytes = stdout(&lines);
    assert!(bytes.len() > 3 * (2 << 20));
    let whole = parse::<OpenCode>(ParseContext::default(), &bytes, 0, ProcessEnd::Exited(0));
    for chunk in [64 << 10, 7] {
        let split = parse::<OpenCode>(
            ParseContext::default(),
            &bytes,
            chunk,
            ProcessEnd::Exited(0),
        );
        assert_eq!(split, whole, "{chunk}-byte chunks");
    }
    let texts: Vec<usize> = whole
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Text(t) => Some(t.text.len()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [2 << 20], "the whole text arrives as one event");
    let outputs: Vec<usize> = whole
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => Some(r.output.len()),
            _ => None,
        })
        .collect();
    assert_eq!(outputs, [2 << 20], "the whole tool output arrives");
    assert_eq!(results(&whole), [(ResultStatus::Success, Some(big))]);
}

#[test]
fn garbage_becomes_raw_without_panicking() {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"not json at all\n");
    bytes.extend_from_slice(b"\xff\xfe\x1b[31minvalid utf-8\x1b[0m\n");
    bytes.extend_from_slice(b"{\"type\":\"session_party\",\"sessionID\":\"ses_x\"}\n");
    // A tool call without its callID must not get an empty (or made-up) id.
    bytes.extend_from_slice(
        br#"{"type":"tool_use","sessionID":"ses_x","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{},"output":"x"},"id":"prt_1","messageID":"msg_1"}}"#,
    );
    bytes.push(b'\n');
    bytes.extend_from_slice(br#"{"type":"tool_use","sessionID":"ses_x","part":{"tool":"bash","callID":"","state":{"status":"completed"}}}"#);
    bytes.push(b'\n');
    bytes.extend_from_slice(br#"{"type":"text","sessionID":"ses_x"}"#);
    bytes.push(b'\n');
    bytes.extend_from_slice(
        br#"{"type":"step_finish","sessionID":"ses_x","part":{"tokens":"many"}}"#,
    );
    bytes.push(b'\n');
    bytes.extend_from_slice(b"[1,2,3]\n{\"type\":\"text\",\"part\":{\"text\":\"unterminated");
    for chunk in testing::CHUNKINGS {
        let events = parse::<OpenCode>(
            ParseContext::default(),
            &bytes,
            chunk,
            ProcessEnd::Exited(0),
        );
        let raw = raws(&events);
        assert_eq!(raw.len(), 9, "every line is kept: {events:?}");
        assert_eq!(raw[0], "not json at all");
        assert!(
            raw[1].contains("invalid utf-8") && !raw[1].contains('\u{1b}'),
            "{:?}",
            raw[1]
        );
        assert!(raw[3].contains("\"tool\":\"bash\""));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, AgentEvent::ToolUse(_) | AgentEvent::ToolResult(_))),
            "a tool event without an id stays raw"
        );
        // The session was reported, and the run still ends with one result.
        assert!(
            events
                .iter()
                .any(|e| matches!(e, AgentEvent::RunStarted(s) if s.session_id == "ses_x"))
        );
        assert_eq!(results(&events).len(), 1);
    }
}

#[test]
fn thinking_blocks_become_thinking_events() {
    // a_text_thinking: `--thinking` prints the reasoning part before the text.
    let lines = [
        step_start("msg_1"),
        line(
            "reasoning",
            json!({"id": "prt_r", "messageID": "msg_1", "sessionID": SES, "type": "reasoning",
                   "text": "The user asks 2+2.", "metadata": {"anthropic": {"signature": "sig"}},
                   "time": {"start": 1, "end": 2}}),
        ),
        text("msg_1", "4."),
        step_finish("msg_1", "stop", 6, 30, 0.01),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    let thinking: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Thinking(t) => Some((t.text.as_str(), t.message_id.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, [("The user asks 2+2.", Some("msg_1"))]);
    assert_eq!(
        results(&events),
        [(ResultStatus::Success, Some("4.".into()))]
    );
}

#[test]
fn failing_tools_are_errors_with_their_exit_code() {
    // c_tool_errors: bash `exit 3` is `completed` with metadata.exit 3; a
    // read of a missing file is `state.status: "error"`.
    let lines = [
        step_start("msg_1"),
        tool(
            "msg_1",
            "toolu_bash",
            "bash",
            json!({"status": "completed", "input": {"command": "exit 3"}, "output": "",
                   "metadata": {"output": "", "exit": 3, "truncated": false}}),
        ),
        tool(
            "msg_1",
            "toolu_read",
            "read",
            json!({"status": "error", "input": {"filePath": "/workspace/does-not-exist.txt"},
                   "error": "Error: File not found: /workspace/does-not-exist.txt"}),
        ),
        // c_permission_denied: the model called a tool that was removed.
        tool(
            "msg_1",
            "toolu_inv",
            "invalid",
            json!({"status": "completed", "input": {"tool": "write", "error": "Model tried to call unavailable tool 'write'."},
                   "output": "The arguments provided to the tool are invalid: Model tried to call unavailable tool 'write'.",
                   "metadata": {}}),
        ),
        tool(
            "msg_1",
            "toolu_ok",
            "bash",
            json!({"status": "completed", "input": {"command": "true"}, "output": "",
                   "metadata": {"exit": 0}}),
        ),
        step_finish("msg_1", "tool-calls", 6, 50, 0.01),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => {
                Some((r.id.as_str(), r.is_error, r.exit_code, r.output.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [
            ("toolu_bash", true, Some(3), ""),
            (
                "toolu_read",
                true,
                None,
                "Error: File not found: /workspace/does-not-exist.txt"
            ),
            (
                "toolu_inv",
                true,
                None,
                "The arguments provided to the tool are invalid: Model tried to call unavailable tool 'write'."
            ),
            ("toolu_ok", false, Some(0), ""),
        ]
    );
    // A failed read changes no file.
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, AgentEvent::FileChange(_)))
    );
}

#[test]
fn a_run_that_stops_after_a_rejected_permission_is_not_a_success() {
    // c_permission_ask: `run` auto-rejects the ask, the tool part errors, the
    // step ends with `tool-calls` and the process exits 0 without more.
    let lines = [
        step_start("msg_1"),
        tool(
            "msg_1",
            "toolu_1",
            "bash",
            json!({"status": "error", "input": {"command": "touch asked.txt"},
                   "error": "Error: The user rejected permission to use this specific tool call."}),
        ),
        step_finish("msg_1", "tool-calls", 6, 40, 0.01),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    assert_eq!(results(&events), [(ResultStatus::Error, None)]);
    assert_eq!(errors(&events), [(ErrorKind::Other, false)]);
    // Newer versions print a `done` line naming the rejected permission.
    let mut with_done = lines.to_vec();
    with_done.push(
        json!({"type": "done", "timestamp": 1, "sessionID": SES, "reason": "idle", "rejected": ["bash"]})
            .to_string(),
    );
    let events = run(&with_done, ProcessEnd::Exited(0));
    assert_eq!(results(&events), [(ResultStatus::Error, None)]);
    let messages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error(e) => Some(e.message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        messages,
        ["the run stopped at a permission request that was auto-rejected: bash"]
    );
}

#[test]
fn a_done_line_after_the_answer_does_not_end_the_turn_twice() {
    let lines = [
        step_start("msg_1"),
        text("msg_1", "hi"),
        step_finish("msg_1", "stop", 1, 1, 0.0),
        json!({"type": "done", "timestamp": 1, "sessionID": SES, "reason": "idle", "rejected": []})
            .to_string(),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    assert_eq!(
        results(&events),
        [(ResultStatus::Success, Some("hi".into()))]
    );
    assert!(errors(&events).is_empty());
}

#[test]
fn retried_streams_and_silent_retries_end_by_the_process_end() {
    // d_stream_error: each retry prints another step_start with the same
    // messageID, and nothing else, until the harness kills it.
    let lines = [
        step_start("msg_1"),
        step_start("msg_1"),
        step_start("msg_1"),
    ];
    let events = run(&lines, ProcessEnd::Signaled(15));
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(&events[0], AgentEvent::RunStarted(s) if s.session_id == SES));
    assert_eq!(results(&events), [(ResultStatus::Cancelled, None)]);
    // d_http_529 / d_http_500: OpenCode prints nothing while it retries.
    let events = parse::<OpenCode>(ParseContext::default(), b"", 0, ProcessEnd::TimedOut);
    assert_eq!(errors(&events), [(ErrorKind::Timeout, true)]);
    assert_eq!(results(&events), [(ResultStatus::Error, None)]);
}

#[test]
fn a_resumed_run_counts_only_its_own_steps() {
    // f_resume_run2: `--session <id>` keeps the session id and prints only
    // the new turn. OpenCode's counters are per step, so the previous run's
    // totals must not be subtracted.
    let lines = [
        step_start("msg_3"),
        text("msg_3", "It printed `hello`."),
        step_finish("msg_3", "stop", 3, 9, 0.004),
    ];
    let context = ParseContext {
        previous_usage: Some(UsageTotals {
            input_tokens: 11,
            output_tokens: 83,
            cache_read_tokens: 30293,
            cache_write_tokens: 1969,
            reasoning_tokens: 0,
            cost_usd: Some(0.01774965),
        }),
    };
    let events = parse::<OpenCode>(context, &stdout(&lines), 0, ProcessEnd::Exited(0));
    let sum = sum_usage(&events);
    assert_eq!(
        (
            sum.input_tokens,
            sum.output_tokens,
            sum.cache_read_tokens,
            sum.cache_write_tokens
        ),
        (3, 9, 100, 10)
    );
    assert!(matches!(&events[0], AgentEvent::RunStarted(s) if s.session_id == SES));
    assert_eq!(
        results(&events),
        [(ResultStatus::Success, Some("It printed `hello`.".into()))]
    );
}

#[test]
fn a_repeated_step_finish_is_counted_once() {
    let finish = step_finish("msg_1", "tool-calls", 5, 7, 0.25);
    let lines = [
        step_start("msg_1"),
        finish.clone(),
        finish,
        step_start("msg_2"),
        step_finish("msg_2", "stop", 1, 1, 0.25),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    let sum = sum_usage(&events);
    assert_eq!((sum.input_tokens, sum.output_tokens), (6, 8));
    assert_eq!(sum.cost_usd, Some(0.5));
    let turns: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Result(r) => Some((r.turns, r.cost_usd)),
            _ => None,
        })
        .collect();
    assert_eq!(turns, [(Some(2), Some(0.5))]);
}

#[test]
fn reasoning_tokens_are_part_of_the_output() {
    let finish = line(
        "step_finish",
        json!({"id": "prt_f", "reason": "stop", "messageID": "msg_1", "type": "step-finish",
               "tokens": {"total": 160, "input": 10, "output": 50, "reasoning": 100,
                          "cache": {"write": 0, "read": 0}}, "cost": 0.001}),
    );
    let events = run(&[step_start("msg_1"), finish], ProcessEnd::Exited(0));
    let sum = sum_usage(&events);
    assert_eq!(
        (sum.input_tokens, sum.output_tokens, sum.reasoning_tokens),
        (10, 150, 100)
    );
}

#[test]
fn an_error_after_the_answer_does_not_add_a_second_result() {
    let lines = [
        step_start("msg_1"),
        text("msg_1", "partial"),
        step_finish("msg_1", "length", 5, 4096, 0.1),
        json!({"type": "error", "timestamp": 1, "sessionID": SES,
               "error": {"name": "MessageOutputLengthError", "data": {}}})
        .to_string(),
    ];
    let events = run(&lines, ProcessEnd::Exited(1));
    assert_eq!(
        results(&events),
        [(ResultStatus::Error, Some("partial".into()))]
    );
    assert_eq!(
        errors(&events),
        [(ErrorKind::Other, false), (ErrorKind::Other, false)]
    );
}

#[test]
fn api_errors_end_the_turn_with_the_right_kind() {
    let error = |status: u16, body: &str| {
        json!({"type": "error", "timestamp": 1, "sessionID": SES,
               "error": {"name": "APIError", "data": {"message": "m", "statusCode": status,
                                                      "isRetryable": false, "responseBody": body}}})
        .to_string()
    };
    for (status, body, kind, retryable) in [
        (
            401,
            r#"{"type":"error","error":{"type":"authentication_error"}}"#,
            ErrorKind::Auth,
            false,
        ),
        (
            429,
            r#"{"type":"error","error":{"type":"rate_limit_error"}}"#,
            ErrorKind::RateLimit,
            true,
        ),
        (
            529,
            r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
            ErrorKind::Overloaded,
            true,
        ),
        (
            500,
            r#"{"type":"error","error":{"type":"api_error"}}"#,
            ErrorKind::Api,
            true,
        ),
        (
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}"#,
            ErrorKind::ContextLength,
            false,
        ),
    ] {
        let events = run(&[error(status, body)], ProcessEnd::Exited(1));
        assert_eq!(errors(&events), [(kind, retryable)], "HTTP {status}");
        assert_eq!(
            results(&events),
            [(ResultStatus::Error, None)],
            "HTTP {status}"
        );
    }
    let aborted = json!({"type": "error", "timestamp": 1, "sessionID": SES,
                         "error": {"name": "MessageAbortedError", "data": {"message": "The operation was aborted."}}})
    .to_string();
    let events = run(&[step_start("msg_1"), aborted], ProcessEnd::Exited(1));
    assert!(errors(&events).is_empty(), "an abort is not a failure");
    assert_eq!(results(&events), [(ResultStatus::Cancelled, None)]);
}

#[test]
fn edits_patches_and_todo_lists_are_not_lost() {
    let lines = [
        step_start("msg_1"),
        tool(
            "msg_1",
            "toolu_todo",
            "todowrite",
            json!({"status": "completed",
                   "input": {"todos": [{"content": "Read notes", "status": "completed", "priority": "high"},
                                       {"content": "Fix beta", "status": "in_progress", "priority": "medium"},
                                       {"content": "Write tests", "status": "pending", "priority": "low"}]},
                   "output": "[]", "metadata": {"todos": []}, "title": "2 todos"}),
        ),
        tool(
            "msg_1",
            "toolu_patch",
            "apply_patch",
            json!({"status": "completed", "input": {"patchText": "*** Begin Patch\n*** End Patch"},
                   "output": "Success. Updated the following files:\nA a.txt\nM b.txt",
                   "metadata": {"diff": "d", "files": [
                       {"filePath": "/workspace/a.txt", "relativePath": "a.txt", "type": "add", "patch": "+a\n", "additions": 1, "deletions": 0},
                       {"filePath": "/workspace/c.txt", "relativePath": "d.txt", "type": "move", "movePath": "/workspace/d.txt", "patch": "", "additions": 0, "deletions": 0}
                   ], "diagnostics": {}}}),
        ),
        tool(
            "msg_1",
            "toolu_write",
            "write",
            json!({"status": "completed", "input": {"filePath": "/workspace/notes.txt", "content": "new\n"},
                   "output": "Wrote file successfully.",
                   "metadata": {"diagnostics": {}, "filepath": "/workspace/notes.txt", "exists": true, "truncated": false}}),
        ),
        tool(
            "msg_1",
            "toolu_failed_edit",
            "edit",
            json!({"status": "error", "input": {"filePath": "/workspace/x.txt", "oldString": "a", "newString": "b"},
                   "error": "Error: oldString not found"}),
        ),
        step_finish("msg_1", "tool-calls", 1, 1, 0.0),
    ];
    let events = run(&lines, ProcessEnd::Exited(0));
    let todos: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Todos(t) => Some(
                t.items
                    .iter()
                    .map(|i| (i.text.clone(), i.status))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        todos,
        [vec![
            ("Read notes".to_owned(), TodoStatus::Completed),
            ("Fix beta".to_owned(), TodoStatus::InProgress),
            ("Write tests".to_owned(), TodoStatus::Pending),
        ]]
    );
    let changes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::FileChange(c) => Some((c.path.as_str(), c.kind, c.old_path.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("/workspace/a.txt", FileChangeKind::Add, None),
            (
                "/workspace/d.txt",
                FileChangeKind::Rename,
                Some("/workspace/c.txt")
            ),
            ("/workspace/notes.txt", FileChangeKind::Modify, None),
        ],
        "a failed edit changes nothing"
    );
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolUse(t) => Some(t.kind),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ToolKind::Todo,
            ToolKind::Edit,
            ToolKind::Write,
            ToolKind::Edit
        ]
    );
}

#[test]
fn a_call_reported_running_then_completed_is_one_tool_use() {
    // Newer versions may print tool parts before they finish.
    let running = tool(
        "msg_1",
        "toolu_1",
        "task",
        json!({"status": "running", "input": {"prompt": "p"}}),
    );
    let done = tool(
        "msg_1",
        "toolu_1",
        "task",
        json!({"status": "completed", "input": {"prompt": "p"}, "output": "ok", "metadata": {"sessionId": "ses_child"}}),
    );
    let events = run(
        &[step_start("msg_1"), running.clone(), running, done],
        ProcessEnd::Exited(0),
    );
    let uses = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolUse(_)))
        .count();
    let results = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolResult(_)))
        .count();
    assert_eq!((uses, results), (1, 1));
}
