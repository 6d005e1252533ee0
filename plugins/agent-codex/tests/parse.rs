//! Parser behaviour beyond the recorded fixtures: the scenarios the fixture
//! README describes without a file (resume, failed commands, web search,
//! 401, dropped streams, warnings, SIGTERM), the item types 0.169.0 defines
//! but did not produce (MCP, plan, collab), huge lines and garbage.
//!
//! Lines are written in Codex's own `exec --json` format.

use std::path::Path;

use agent_codex::Codex;
use paddock_sdk::agent::{
    AgentEvent, ErrorKind, FileChangeKind, ParseContext, ProcessEnd, ResultStatus, TodoStatus,
    ToolKind, UsageTotals,
};
use paddock_sdk::testing;

const THREAD: &str =
    r#"{"type":"thread.started","thread_id":"01a202ee-0000-7000-8000-000000000001"}"#;
const TURN: &str = r#"{"type":"turn.started"}"#;

fn run(lines: &[&str], end: ProcessEnd) -> Vec<AgentEvent> {
    run_with(ParseContext::default(), lines, end)
}

fn run_with(context: ParseContext, lines: &[&str], end: ProcessEnd) -> Vec<AgentEvent> {
    let mut stdout = lines.join("\n").into_bytes();
    stdout.push(b'\n');
    let whole = testing::parse::<Codex>(context.clone(), &stdout, 0, end);
    for chunk in testing::CHUNKINGS {
        assert_eq!(
            testing::parse::<Codex>(context.clone(), &stdout, chunk, end),
            whole,
            "{chunk}-byte chunks"
        );
    }
    whole
}

fn types(events: &[AgentEvent]) -> Vec<&'static str> {
    events.iter().map(AgentEvent::type_name).collect()
}

fn result_status(events: &[AgentEvent]) -> ResultStatus {
    match events.last() {
        Some(AgentEvent::Result(r)) => r.status,
        other => panic!("the last event is not a result: {other:?}"),
    }
}

fn errors(events: &[AgentEvent]) -> Vec<(ErrorKind, bool, &str)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error(e) => Some((e.kind, e.retryable, e.message.as_str())),
            _ => None,
        })
        .collect()
}

fn raws(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Raw(r) => Some(r.line.as_str()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- resume

const RESUME: [&str; 4] = [
    r#"{"type":"thread.started","thread_id":"01a202ee-b41d-7fa1-a26e-7a86414f8ac2"}"#,
    TURN,
    r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"Reply #2: I can see 3 user message(s) in the history."}}"#,
    // Cumulative for the thread: 1200 from resume_initial + 1500 now (the
    // README's figure); the other counters are made up the same way.
    r#"{"type":"turn.completed","usage":{"input_tokens":2700,"cached_input_tokens":1900,"cache_write_input_tokens":0,"output_tokens":30,"reasoning_output_tokens":14}}"#,
];

/// What the host hands a resumed run: the usage of the thread's earlier run
/// as this adapter reported it.
fn initial_run_usage() -> UsageTotals {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/codex");
    let stdout = std::fs::read(dir.join("resume_initial.jsonl")).unwrap();
    let events =
        testing::parse::<Codex>(ParseContext::default(), &stdout, 0, ProcessEnd::Exited(0));
    testing::sum_usage(&events)
}

#[test]
fn a_resumed_run_counts_only_its_own_tokens() {
    let previous = initial_run_usage();
    assert_eq!(
        (
            previous.input_tokens,
            previous.cache_read_tokens,
            previous.output_tokens
        ),
        (600, 600, 14)
    );
    let events = run_with(
        ParseContext {
            previous_usage: Some(previous.clone()),
        },
        &RESUME,
        ProcessEnd::Exited(0),
    );
    let summed = testing::sum_usage(&events);
    // Codex's figure in the one convention, minus the previous totals.
    assert_eq!(
        summed,
        UsageTotals {
            input_tokens: (2700 - 1900) - 600,
            output_tokens: 30 - 14,
            cache_read_tokens: 1900 - 600,
            cache_write_tokens: 0,
            reasoning_tokens: 14 - 7,
            cost_usd: None,
        }
    );
    // Both runs together add up to the thread's total, counted once.
    assert_eq!(summed.input_tokens + previous.input_tokens, 2700 - 1900);
    assert_eq!(summed.cache_read_tokens + previous.cache_read_tokens, 1900);
    assert_eq!(result_status(&events), ResultStatus::Success);
    match &events[0] {
        AgentEvent::RunStarted(s) => {
            assert_eq!(s.session_id, "01a202ee-b41d-7fa1-a26e-7a86414f8ac2")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn without_previous_totals_a_resumed_run_reports_the_whole_thread() {
    let summed = testing::sum_usage(&run(&RESUME, ProcessEnd::Exited(0)));
    assert_eq!((summed.input_tokens, summed.cache_read_tokens), (800, 1900));
}

#[test]
fn a_new_thread_id_mid_run_is_reported_again() {
    let events = run(
        &[
            THREAD,
            r#"{"type":"thread.started","thread_id":"01a202ee-0000-7000-8000-000000000002"}"#,
            TURN,
            r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":1}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::RunStarted(s) => Some(s.session_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        ids,
        [
            "01a202ee-0000-7000-8000-000000000001",
            "01a202ee-0000-7000-8000-000000000002"
        ]
    );
    match events.last() {
        Some(AgentEvent::Result(r)) => {
            assert_eq!(
                r.session_id.as_deref(),
                Some("01a202ee-0000-7000-8000-000000000002")
            )
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- tools

#[test]
fn a_failed_command_is_an_error_result_of_the_tool_not_of_the_run() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'ls /definitely/not/here'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc 'ls /definitely/not/here'","aggregated_output":"ls: cannot access '/definitely/not/here': No such file or directory\n","exit_code":2,"status":"failed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"The directory does not exist."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":2600,"cached_input_tokens":1000,"cache_write_input_tokens":0,"output_tokens":40,"reasoning_output_tokens":0}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    assert_eq!(
        types(&events),
        [
            "run_started",
            "tool_use",
            "tool_result",
            "text",
            "usage",
            "result"
        ]
    );
    match &events[2] {
        AgentEvent::ToolResult(r) => {
            assert_eq!(r.id, "item_0");
            assert!(r.is_error);
            assert_eq!(r.exit_code, Some(2));
            assert!(r.output.contains("No such file or directory"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(result_status(&events), ResultStatus::Success);
}

#[test]
fn web_search_with_its_duplicate_id_is_a_tool_pair() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"web_search","id":"ws_68f0c0ffee","query":"","action":{"type":"other"}}}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"web_search","id":"ws_68f0c0ffee","query":"rust serde borrow","action":{"type":"search","query":"rust serde borrow"}}}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Found it."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1300,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":20,"reasoning_output_tokens":0}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    assert_eq!(
        types(&events),
        [
            "run_started",
            "tool_use",
            "tool_result",
            "text",
            "usage",
            "result"
        ]
    );
    match (&events[1], &events[2]) {
        (AgentEvent::ToolUse(u), AgentEvent::ToolResult(r)) => {
            assert_eq!((u.id.as_str(), u.kind), ("item_0", ToolKind::WebSearch));
            assert_eq!(r.id, "item_0");
            assert_eq!(r.output, "rust serde borrow");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn patches_yield_a_file_change_per_path() {
    let events = run(
        &[
            THREAD,
            TURN,
            // Completed without a start (older versions only report the end).
            r#"{"type":"item.completed","item":{"id":"item_0","type":"file_change","changes":[{"path":"/workspace/a.rs","kind":"update"},{"path":"/workspace/old.txt","kind":"delete"},{"path":"/workspace/new.txt","kind":"add"}],"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"file_change","changes":[{"path":"/workspace/b.rs","kind":"update"}],"status":"failed"}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    let changes: Vec<(&str, FileChangeKind)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::FileChange(c) => Some((c.path.as_str(), c.kind)),
            _ => None,
        })
        .collect();
    // The failed patch changed nothing.
    assert_eq!(
        changes,
        [
            ("/workspace/a.rs", FileChangeKind::Modify),
            ("/workspace/old.txt", FileChangeKind::Delete),
            ("/workspace/new.txt", FileChangeKind::Add),
        ]
    );
    let tool_uses = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolUse(u) if u.kind == ToolKind::Edit))
        .count();
    assert_eq!(tool_uses, 2, "each patch is one tool call");
    let failed = events
        .iter()
        .any(|e| matches!(e, AgentEvent::ToolResult(r) if r.id == "item_1" && r.is_error));
    assert!(failed, "the failed patch is an error result: {events:?}");
}

#[test]
fn mcp_calls_are_tool_pairs_with_the_text_output() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{"q":"serde"},"result":null,"error":null,"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{"q":"serde"},"result":{"content":[{"type":"text","text":"serde is a framework"},{"type":"image","data":"AAAA","mimeType":"image/png"}],"structured_content":null},"error":null,"status":"completed"}}"#,
            r#"{"type":"item.started","item":{"id":"item_1","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"result":null,"error":null,"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"mcp_tool_call","server":"docs","tool":"lookup","arguments":{},"result":null,"error":{"message":"server crashed"},"status":"failed"}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    match (&events[1], &events[2]) {
        (AgentEvent::ToolUse(u), AgentEvent::ToolResult(r)) => {
            assert_eq!(u.name, "mcp__docs__lookup");
            assert_eq!(u.kind, ToolKind::Mcp);
            assert_eq!(u.input.as_str(), r#"{"q":"serde"}"#);
            assert_eq!(r.output, "serde is a framework\n[image content]");
            assert!(!r.is_error);
        }
        other => panic!("{other:?}"),
    }
    match &events[4] {
        AgentEvent::ToolResult(r) => {
            assert_eq!((r.output.as_str(), r.is_error), ("server crashed", true))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_plan_is_reported_as_todos_once_per_change() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"todo_list","items":[{"text":"read the code","completed":false},{"text":"fix the bug","completed":false}]}}"#,
            r#"{"type":"item.updated","item":{"id":"item_0","type":"todo_list","items":[{"text":"read the code","completed":true},{"text":"fix the bug","completed":false}]}}"#,
            // At turn end Codex repeats the last state.
            r#"{"type":"item.completed","item":{"id":"item_0","type":"todo_list","items":[{"text":"read the code","completed":true},{"text":"fix the bug","completed":false}]}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    let plans: Vec<Vec<(&str, TodoStatus)>> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Todos(t) => Some(
                t.items
                    .iter()
                    .map(|i| (i.text.as_str(), i.status))
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    assert_eq!(
        plans,
        [
            vec![
                ("read the code", TodoStatus::Pending),
                ("fix the bug", TodoStatus::Pending)
            ],
            vec![
                ("read the code", TodoStatus::Completed),
                ("fix the bug", TodoStatus::Pending)
            ],
        ]
    );
    assert!(raws(&events).is_empty(), "{events:?}");
}

#[test]
fn collab_calls_are_sub_agent_tools() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"collab_tool_call","tool":"spawn_agent","sender_thread_id":"t1","receiver_thread_ids":["t2"],"prompt":"write the tests","agents_states":{},"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"collab_tool_call","tool":"spawn_agent","sender_thread_id":"t1","receiver_thread_ids":["t2"],"prompt":"write the tests","agents_states":{"t2":{"status":"running","message":null}},"status":"completed"}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    match (&events[1], &events[2]) {
        (AgentEvent::ToolUse(u), AgentEvent::ToolResult(r)) => {
            assert_eq!(
                (u.name.as_str(), u.kind),
                ("spawn_agent", ToolKind::Subagent)
            );
            assert!(u.input.as_str().contains("write the tests"));
            assert!(r.output.contains("running"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_update_of_a_running_tool_is_kept_raw_not_doubled() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"sleep 9","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#,
            r#"{"type":"item.updated","item":{"id":"item_0","type":"command_execution","command":"sleep 9","aggregated_output":"partial","exit_code":null,"status":"in_progress"}}"#,
        ],
        ProcessEnd::Signaled(15),
    );
    assert_eq!(types(&events), ["run_started", "tool_use", "raw", "result"]);
    // SIGTERM: Codex writes nothing; the run was cancelled.
    assert_eq!(result_status(&events), ResultStatus::Cancelled);
}

// ---------------------------------------------------------------- failures

#[test]
fn http_401_is_one_auth_error() {
    let message = "unexpected status 401 Unauthorized: Incorrect API key provided: dummy, url: http://127.0.0.1:40123/v1/responses";
    let notice = format!(r#"{{"type":"error","message":"Reconnecting... 1/1 ({message})"}}"#);
    let error = format!(r#"{{"type":"error","message":"{message}"}}"#);
    let failed = format!(r#"{{"type":"turn.failed","error":{{"message":"{message}"}}}}"#);
    let events = run(
        &[THREAD, TURN, &notice, &error, &failed],
        ProcessEnd::Exited(1),
    );
    assert_eq!(errors(&events), [(ErrorKind::Auth, false, message)]);
    assert_eq!(raws(&events).len(), 1, "the retry notice stays raw");
    assert!(raws(&events)[0].contains("Reconnecting... 1/1"));
    assert_eq!(result_status(&events), ResultStatus::Error);
}

#[test]
fn a_dropped_stream_is_a_retryable_api_error() {
    for message in [
        "stream disconnected before completion: stream closed before response.completed",
        "stream disconnected before completion: The server had an error while processing your request",
    ] {
        let error = format!(r#"{{"type":"error","message":"{message}"}}"#);
        let failed = format!(r#"{{"type":"turn.failed","error":{{"message":"{message}"}}}}"#);
        let events = run(&[THREAD, TURN, &error, &failed], ProcessEnd::Exited(1));
        assert_eq!(errors(&events), [(ErrorKind::Api, true, message)]);
        assert_eq!(result_status(&events), ResultStatus::Error);
    }
}

#[test]
fn turn_failed_alone_still_reports_its_error() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests"}}"#,
        ],
        ProcessEnd::Exited(1),
    );
    assert_eq!(
        errors(&events),
        [(
            ErrorKind::RateLimit,
            true,
            "exceeded retry limit, last status: 429 Too Many Requests"
        )]
    );
    assert_eq!(result_status(&events), ResultStatus::Error);
}

#[test]
fn a_warning_item_is_not_an_error() {
    let events = run(
        &[
            THREAD,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `my-local-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."}}"#,
            TURN,
            r#"{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Hello."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":1200,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    assert!(errors(&events).is_empty());
    assert!(raws(&events)[0].contains("Model metadata for `my-local-model` not found"));
    assert_eq!(result_status(&events), ResultStatus::Success);
}

#[test]
fn exit_zero_without_turn_completed_is_not_a_success() {
    let events = run(&[THREAD, TURN], ProcessEnd::Exited(0));
    assert_eq!(result_status(&events), ResultStatus::Error);
}

// ---------------------------------------------------------------- huge lines

fn assert_same_in_all_chunkings(stdout: &[u8]) -> Vec<AgentEvent> {
    let whole = testing::parse::<Codex>(ParseContext::default(), stdout, 0, ProcessEnd::Exited(0));
    for chunk in [64 << 10, 7] {
        let split = testing::parse::<Codex>(
            ParseContext::default(),
            stdout,
            chunk,
            ProcessEnd::Exited(0),
        );
        assert!(split == whole, "{chunk}-byte chunks parse differently");
    }
    whole
}

#[test]
fn a_2_mib_agent_message_arrives_whole() {
    let text = "y".repeat(2 << 20);
    let line = serde_json::json!({
        "type": "item.completed",
        "item": {"id": "item_0", "type": "agent_message", "text": text}
    });
    let stdout = format!("{THREAD}\n{TURN}\n{line}\n").into_bytes();
    let events = assert_same_in_all_chunkings(&stdout);
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [text.as_str()]);
}

#[test]
fn a_2_mib_command_output_with_escapes_arrives_whole() {
    // Newlines and quotes are escaped in JSON: the string cannot be borrowed.
    let output = "line \"quoted\" \u{e9}\n".repeat((2 << 20) / 17 + 1);
    let item = |status: &str, out: &str, code: Option<i32>| {
        serde_json::json!({
            "type": if status == "in_progress" { "item.started" } else { "item.completed" },
            "item": {"id": "item_0", "type": "command_execution", "command": "/bin/bash -lc 'cat big'",
                     "aggregated_output": out, "exit_code": code, "status": status}
        })
    };
    let stdout = format!(
        "{THREAD}\n{TURN}\n{}\n{}\n",
        item("in_progress", "", None),
        item("completed", &output, Some(0))
    )
    .into_bytes();
    assert!(stdout.len() > 2 << 20);
    let events = assert_same_in_all_chunkings(&stdout);
    let outputs: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => Some(r.output.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(outputs, [output.as_str()]);
}

// ---------------------------------------------------------------- garbage

#[test]
fn garbage_becomes_raw_without_panicking() {
    let lines: [&[u8]; 10] = [
        b"WARNING: proceeding, even though we could not create PATH aliases",
        b"\xff\xfe not utf-8 \xc3\x28",
        br#"{"type":"session.reticulated","splines":3}"#,
        // A tool event without an id never gets an empty one.
        br#"{"type":"item.started","item":{"type":"command_execution","command":"ls","status":"in_progress"}}"#,
        br#"{"type":"item.completed","item":{"id":"","type":"mcp_tool_call","server":"s","tool":"t","status":"completed"}}"#,
        br#"["thread.started","01a202ee",null,null,null,null]"#,
        br#"{"type":"thread.started","thread_id":"#,
        br#"{"type":"turn.completed","usage":{"input_tokens":-5}}"#,
        br#"{"type":"item.completed","item":{"id":"item_9","type":"agent_message"}}"#,
        b"\x1b[31m{\"type\":\"error\"}\x1b[0m",
    ];
    let mut stdout = Vec::new();
    for line in lines {
        stdout.extend_from_slice(line);
        stdout.push(b'\n');
    }
    let events =
        testing::parse::<Codex>(ParseContext::default(), &stdout, 0, ProcessEnd::Exited(0));
    // One raw per line, then the synthesized result: nothing dropped,
    // nothing invented (no tool events, no usage).
    let kinds = types(&events);
    assert_eq!(kinds[..lines.len()], ["raw"; 10], "{events:?}");
    assert_eq!(kinds.len(), lines.len() + 2, "{events:?}"); // + error + result
    assert_eq!(result_status(&events), ResultStatus::Error);
    let raw = raws(&events);
    assert!(raw[1].contains("not utf-8"));
    assert!(raw[3].contains("command_execution"));
    assert!(!raw[9].contains('\x1b'), "ANSI escapes are stripped");
}

#[test]
fn the_retry_notices_of_a_successful_run_stay_out_of_errors() {
    let events = run(
        &[
            THREAD,
            TURN,
            r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion: connection reset)"}"#,
            r#"{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"Done."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"cache_write_input_tokens":0,"output_tokens":5,"reasoning_output_tokens":0}}"#,
        ],
        ProcessEnd::Exited(0),
    );
    assert!(errors(&events).is_empty(), "{events:?}");
    assert_eq!(raws(&events).len(), 1);
    assert_eq!(result_status(&events), ResultStatus::Success);
}
