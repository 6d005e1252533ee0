//! The parser on lines written in Gemini CLI's stream-json format for the
//! scenarios the fixture README describes but that have no file here, on
//! garbage, and on a 2 MiB line.

use agent_gemini::Gemini;
use paddock_sdk::agent::{
    AgentEvent, ErrorKind, FileChangeKind, ParseContext, ProcessEnd, ResultStatus, TodoStatus,
    ToolKind,
};
use paddock_sdk::testing;
use serde_json::json;

const SESSION: &str = "f6005801-a26d-4440-83b3-ca5371281c7f";

fn init() -> String {
    json!({"type":"init","timestamp":"2026-11-22T11:07:03.048Z","session_id":SESSION,"model":"gemini-2.5-flash"}).to_string()
}

fn user(prompt: &str) -> String {
    json!({"type":"message","timestamp":"2026-11-22T11:07:03.054Z","role":"user","content":prompt})
        .to_string()
}

fn delta(text: &str) -> String {
    json!({"type":"message","timestamp":"2026-11-22T11:07:03.132Z","role":"assistant","content":text,"delta":true}).to_string()
}

fn stats(prompt: u64, cached: u64, output: u64, total: u64) -> serde_json::Value {
    json!({"total_tokens":total,"input_tokens":prompt,"output_tokens":output,"cached":cached,"input":prompt-cached,"duration_ms":120,"tool_calls":0,
           "models":{"gemini-2.5-flash":{"total_tokens":total,"input_tokens":prompt,"output_tokens":output,"cached":cached,"input":prompt-cached}}})
}

fn success(prompt: u64, cached: u64, output: u64, total: u64) -> String {
    json!({"type":"result","timestamp":"2026-11-22T11:07:03.274Z","status":"success","stats":stats(prompt,cached,output,total)}).to_string()
}

fn api_failure(code: u16, status: &str, message: &str) -> String {
    let body = json!({"error":{"code":code,"status":status,"message":message}}).to_string();
    json!({"type":"result","timestamp":"2026-11-22T11:06:18.961Z","status":"error",
           "error":{"type":"unknown","message":format!("[API Error: {body}]")},
           "stats":stats(0,0,0,0)})
    .to_string()
}

fn run(lines: &[String], end: ProcessEnd) -> Vec<AgentEvent> {
    let mut stdout = lines.join("\n");
    stdout.push('\n');
    testing::parse::<Gemini>(ParseContext::default(), stdout.as_bytes(), 0, end)
}

fn types(events: &[AgentEvent]) -> Vec<&'static str> {
    events.iter().map(AgentEvent::type_name).collect()
}

fn result(events: &[AgentEvent]) -> &paddock_sdk::agent::RunResult {
    match events.last() {
        Some(AgentEvent::Result(r)) => r,
        other => panic!("the last event is not a result: {other:?}"),
    }
}

fn errors(events: &[AgentEvent]) -> Vec<&paddock_sdk::agent::AgentError> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn http_401_is_an_auth_error_that_is_not_retried() {
    let events = run(
        &[
            init(),
            user("Say hello."),
            api_failure(
                401,
                "UNAUTHENTICATED",
                "API key not valid. Please pass a valid API key.",
            ),
        ],
        ProcessEnd::Exited(145),
    );
    assert_eq!(types(&events), ["run_started", "error", "result"]);
    let e = errors(&events)[0];
    assert_eq!((e.kind, e.retryable), (ErrorKind::Auth, false));
    assert!(e.message.contains("API key not valid"), "{}", e.message);
    assert_eq!(result(&events).status, ResultStatus::Error);
}

#[test]
fn rate_limits_and_overload_are_retryable() {
    for (code, status, kind) in [
        (429, "RESOURCE_EXHAUSTED", ErrorKind::RateLimit),
        (503, "UNAVAILABLE", ErrorKind::Overloaded),
        (500, "INTERNAL", ErrorKind::Api),
    ] {
        let events = run(
            &[init(), api_failure(code, status, "try later")],
            ProcessEnd::Exited(i32::from(code) & 0xFF),
        );
        let e = errors(&events)[0];
        assert_eq!((e.kind, e.retryable), (kind, true), "{code}");
        assert_eq!(result(&events).status, ResultStatus::Error);
    }
}

#[test]
fn an_empty_model_response_is_an_error_even_with_exit_0() {
    // `empty_response`: the CLI retried once, then reports it as an `error`
    // line and a `result` without an error of its own.
    let events = run(
        &[
            init(),
            user("Say hello."),
            json!({"type":"error","timestamp":"2026-11-22T11:06:30.001Z","severity":"error",
                   "message":"The model returned an empty text response. If your context window is near capacity, try using /compress."}).to_string(),
            json!({"type":"result","timestamp":"2026-11-22T11:06:30.002Z","status":"error","stats":stats(2400,0,0,2400)}).to_string(),
        ],
        ProcessEnd::Exited(0),
    );
    assert_eq!(types(&events), ["run_started", "error", "usage", "result"]);
    let e = errors(&events)[0];
    assert_eq!((e.kind, e.retryable), (ErrorKind::Api, true));
    assert_eq!(result(&events).status, ResultStatus::Error);
    assert_eq!(result(&events).text, None);
    assert_eq!(testing::sum_usage(&events).input_tokens, 2400);
}

#[test]
fn warnings_are_not_failures_and_stay_visible() {
    let warning = json!({"type":"error","timestamp":"t","severity":"warning","message":"Loop detected, stopping execution"}).to_string();
    let events = run(
        &[
            init(),
            delta("looping"),
            warning.clone(),
            success(10, 0, 2, 12),
        ],
        ProcessEnd::Exited(0),
    );
    assert!(errors(&events).is_empty());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Raw(r) if r.line == warning))
    );
    assert_eq!(result(&events).status, ResultStatus::Success);
}

#[test]
fn max_session_turns_is_a_max_turns_error() {
    let events = run(
        &[
            init(),
            json!({"type":"error","timestamp":"t","severity":"error","message":"Maximum session turns exceeded"}).to_string(),
            json!({"type":"result","timestamp":"t","status":"error",
                   "error":{"type":"FatalTurnLimitedError","message":"Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json."},
                   "stats":stats(100,0,10,110)}).to_string(),
        ],
        ProcessEnd::Exited(53),
    );
    let kinds: Vec<_> = errors(&events).iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ErrorKind::MaxTurns, ErrorKind::MaxTurns]);
    assert_eq!(result(&events).status, ResultStatus::Error);
}

#[test]
fn a_cancelled_operation_is_an_interruption() {
    let events = run(
        &[
            init(),
            delta("partial"),
            json!({"type":"result","timestamp":"t","status":"error",
                   "error":{"type":"FatalCancellationError","message":"Operation cancelled."},"stats":stats(10,0,1,11)}).to_string(),
        ],
        ProcessEnd::Exited(130),
    );
    assert!(errors(&events).is_empty());
    assert_eq!(result(&events).status, ResultStatus::Interrupted);
}

#[test]
fn a_rejected_auth_config_with_empty_stdout_says_auth() {
    // `auth_gateway_rejected`: exit 41, nothing on stdout.
    let events = testing::parse::<Gemini>(ParseContext::default(), b"", 0, ProcessEnd::Exited(41));
    assert_eq!(errors(&events)[0].kind, ErrorKind::Auth);
    assert_eq!(result(&events).status, ResultStatus::Error);
    // An ordinary failure exit after a result adds nothing.
    let events = run(
        &[init(), api_failure(500, "INTERNAL", "x")],
        ProcessEnd::Exited(41),
    );
    assert_eq!(errors(&events).len(), 1);
}

#[test]
fn a_cancelled_exec_keeps_its_partial_text_and_is_cancelled() {
    // `sigterm`: stdout ends after two deltas; the host cancelled the exec.
    let events = run(
        &[
            init(),
            user("Write a long answer."),
            delta("This answer will "),
            delta("be cut"),
        ],
        ProcessEnd::Cancelled,
    );
    assert_eq!(
        types(&events),
        ["run_started", "text_delta", "text_delta", "text", "result"]
    );
    assert!(matches!(&events[3], AgentEvent::Text(t) if t.text == "This answer will be cut"));
    assert_eq!(result(&events).status, ResultStatus::Cancelled);
    assert_eq!(result(&events).session_id.as_deref(), Some(SESSION));
}

#[test]
fn a_failed_tool_reports_its_error_and_a_failed_shell_command_does_not() {
    let events = run(
        &[
            init(),
            json!({"type":"tool_use","timestamp":"t","tool_name":"read_file","tool_id":"read_file__read_file_1_0","parameters":{"file_path":"/workspace/missing.txt"}}).to_string(),
            json!({"type":"tool_result","timestamp":"t","tool_id":"read_file__read_file_1_0","status":"error",
                   "error":{"type":"file_not_found","message":"File not found: /workspace/missing.txt"}}).to_string(),
            json!({"type":"tool_use","timestamp":"t","tool_name":"run_shell_command","tool_id":"run_shell_command__run_shell_command_2_0","parameters":{"command":"ls /definitely/not/here"}}).to_string(),
            json!({"type":"tool_result","timestamp":"t","tool_id":"run_shell_command__run_shell_command_2_0","status":"success",
                   "output":"ls: cannot access '/definitely/not/here': No such file or directory"}).to_string(),
            success(10, 0, 2, 12),
        ],
        ProcessEnd::Exited(0),
    );
    let results: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(results[0].is_error);
    assert_eq!(results[0].output, "File not found: /workspace/missing.txt");
    // The CLI reports a failing command as a successful call.
    assert!(!results[1].is_error);
    assert!(results[1].output.contains("No such file"));
    assert_eq!(results[1].exit_code, None);
}

#[test]
fn edits_become_file_changes_only_when_they_succeed() {
    let replace = |id: &str, path: &str| {
        json!({"type":"tool_use","timestamp":"t","tool_name":"replace","tool_id":id,
               "parameters":{"file_path":path,"old_string":"a","new_string":"b"}})
        .to_string()
    };
    let done = |id: &str, status: &str| {
        json!({"type":"tool_result","timestamp":"t","tool_id":id,"status":status}).to_string()
    };
    let events = run(
        &[
            init(),
            replace("replace__replace_1_0", "/workspace/ok.rs"),
            replace("replace__replace_1_1", "/workspace/bad.rs"),
            done("replace__replace_1_1", "error"),
            done("replace__replace_1_0", "success"),
            success(10, 0, 2, 12),
        ],
        ProcessEnd::Exited(0),
    );
    let changes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::FileChange(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "/workspace/ok.rs");
    assert_eq!(changes[0].kind, FileChangeKind::Modify);
    assert!(matches!(&events[1], AgentEvent::ToolUse(u) if u.kind == ToolKind::Edit));
}

#[test]
fn write_todos_yields_the_plan() {
    let events = run(
        &[
            init(),
            json!({"type":"tool_use","timestamp":"t","tool_name":"write_todos","tool_id":"write_todos__write_todos_1_0",
                   "parameters":{"todos":[{"description":"Read the test","status":"completed"},{"description":"Fix it","status":"in_progress"}]}}).to_string(),
        ],
        ProcessEnd::Exited(0),
    );
    assert!(matches!(&events[1], AgentEvent::ToolUse(u) if u.kind == ToolKind::Todo));
    let AgentEvent::Todos(todos) = &events[2] else {
        panic!("no todos: {events:?}");
    };
    assert_eq!(todos.items.len(), 2);
    assert_eq!(todos.items[1].text, "Fix it");
    assert_eq!(todos.items[1].status, TodoStatus::InProgress);
}

#[test]
fn the_answer_is_the_text_after_the_last_tool_call() {
    let tool = |id: &str| {
        [
            json!({"type":"tool_use","timestamp":"t","tool_name":"glob","tool_id":id,"parameters":{"pattern":"*.rs"}}).to_string(),
            json!({"type":"tool_result","timestamp":"t","tool_id":id,"status":"success","output":"Found 2 files"}).to_string(),
        ]
    };
    let mut lines = vec![init(), delta("Looking.")];
    lines.extend(tool("glob__glob_1_0"));
    lines.push(success(10, 0, 2, 12));
    let events = run(&lines, ProcessEnd::Exited(0));
    assert_eq!(
        result(&events).text,
        None,
        "the text before a tool is no answer"
    );

    let mut lines = vec![init(), delta("Looking.")];
    lines.extend(tool("glob__glob_1_0"));
    lines.extend([delta("Two "), delta("files."), success(10, 0, 2, 12)]);
    let events = run(&lines, ProcessEnd::Exited(0));
    assert_eq!(result(&events).text.as_deref(), Some("Two files."));
}

#[test]
fn a_resumed_run_reports_its_session_and_only_its_own_usage() {
    // `resume`: same session id; the stats cover only the new request, so
    // a previous total in the context is not subtracted.
    let context = ParseContext {
        previous_usage: Some(paddock_sdk::agent::UsageTotals {
            input_tokens: 700,
            cache_read_tokens: 500,
            output_tokens: 14,
            ..Default::default()
        }),
    };
    let stdout = [
        init(),
        user("What word did I ask you to remember?"),
        delta("Reply #2: I can see 2 user turn(s) in the history."),
        success(1300, 1200, 16, 1316),
    ]
    .join("\n");
    let events = testing::parse::<Gemini>(context, stdout.as_bytes(), 0, ProcessEnd::Exited(0));
    assert!(matches!(&events[0], AgentEvent::RunStarted(r) if r.session_id == SESSION));
    let sum = testing::sum_usage(&events);
    assert_eq!(
        (sum.input_tokens, sum.cache_read_tokens, sum.output_tokens),
        (100, 1200, 16)
    );
}

#[test]
fn a_second_result_in_one_process_counts_only_what_grew() {
    // The CLI's stats are cumulative over the process; were it ever to write
    // two results, the usage would still add up to the last totals.
    let events = run(
        &[init(), success(100, 40, 10, 115), success(250, 90, 30, 290)],
        ProcessEnd::Exited(0),
    );
    let sum = testing::sum_usage(&events);
    assert_eq!(sum.input_tokens, 250 - 90);
    assert_eq!(sum.cache_read_tokens, 90);
    assert_eq!(sum.output_tokens, 290 - 250);
    assert_eq!(sum.reasoning_tokens, 290 - 250 - 30);
}

#[test]
fn usage_without_the_per_model_split_goes_to_the_session_model() {
    let line = json!({"type":"result","timestamp":"t","status":"success",
                      "stats":{"total_tokens":30,"input_tokens":20,"output_tokens":10,"cached":5,"duration_ms":3}}).to_string();
    let events = run(&[init(), line], ProcessEnd::Exited(0));
    let AgentEvent::Usage(u) = &events[1] else {
        panic!("no usage: {events:?}");
    };
    assert_eq!(u.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (15, 5, 10)
    );
}

#[test]
fn garbage_becomes_raw_events_and_nothing_panics() {
    let lines: Vec<&[u8]> = vec![
        b"Warning: 256-color support not detected.",
        b"\xff\xfe{\"type\":\"init\"}",
        b"{\"type\":\"message\",\"role\":\"assistant\",\"content\":\"bad \xff utf8\",\"delta\":true}",
        b"{\"type\":\"telemetry\",\"data\":1}",
        b"{\"type\":\"tool_use\",\"tool_name\":\"run_shell_command\",\"parameters\":{\"command\":\"ls\"}}",
        b"{\"type\":\"tool_use\",\"tool_name\":\"run_shell_command\",\"tool_id\":\"\",\"parameters\":{}}",
        b"{\"type\":\"tool_result\",\"status\":\"success\",\"output\":\"x\"}",
        b"{\"type\":\"init\",\"model\":\"gemini-2.5-flash\"}",
        b"[\"init\",\"s\"]",
        b"{\"type\":5}",
        b"{}",
        b"{\"type\":\"message\",\"role\":\"system\",\"content\":\"?\"}",
        b"{\"type\":\"result\",\"status\"",
        b"\x1b[31mred\x1b[0m",
    ];
    let mut stdout = Vec::new();
    for line in &lines {
        stdout.extend_from_slice(line);
        stdout.push(b'\n');
    }
    for chunk in [0, 1, 7] {
        let events = testing::parse::<Gemini>(
            ParseContext::default(),
            &stdout,
            chunk,
            ProcessEnd::Exited(0),
        );
        let raws = events
            .iter()
            .filter(|e| matches!(e, AgentEvent::Raw(_)))
            .count();
        assert_eq!(raws, lines.len(), "every line stays, as raw: {events:?}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, AgentEvent::ToolUse(_) | AgentEvent::ToolResult(_)))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, AgentEvent::Raw(r) if r.line == "red"),)
        );
        // The run still ends with a (synthesized, failed) result.
        assert_eq!(result(&events).status, ResultStatus::Error);
    }
}

#[test]
fn a_2_mib_line_parses_whole_and_in_pieces() {
    // Text with escapes and multi-byte characters, so chunk boundaries fall
    // inside escapes and inside UTF-8 sequences.
    let unit = "line \"quoted\" é✓\n\t";
    let big: String = unit.repeat((2 << 20) / unit.len() + 1);
    assert!(big.len() >= 2 << 20);
    let output: String = "out\\put ü\n".repeat((2 << 20) / 10 + 1);
    let lines = [
        init(),
        delta(&big),
        json!({"type":"tool_use","timestamp":"t","tool_name":"run_shell_command","tool_id":"run_shell_command__run_shell_command_1_0","parameters":{"command":"cat big"}}).to_string(),
        json!({"type":"tool_result","timestamp":"t","tool_id":"run_shell_command__run_shell_command_1_0","status":"success","output":output}).to_string(),
        success(10, 0, 2, 12),
    ];
    let mut stdout = lines.join("\n");
    stdout.push('\n');
    let whole = testing::parse::<Gemini>(
        ParseContext::default(),
        stdout.as_bytes(),
        0,
        ProcessEnd::Exited(0),
    );
    for chunk in [64 << 10, 7] {
        let split = testing::parse::<Gemini>(
            ParseContext::default(),
            stdout.as_bytes(),
            chunk,
            ProcessEnd::Exited(0),
        );
        assert!(split == whole, "{chunk}-byte chunks parse differently");
    }
    assert!(matches!(&whole[1], AgentEvent::TextDelta(d) if d.text == big));
    assert!(matches!(&whole[2], AgentEvent::Text(t) if t.text == big));
    assert!(
        whole
            .iter()
            .any(|e| matches!(e, AgentEvent::ToolResult(r) if r.output == output))
    );
    assert_eq!(result(&whole).status, ResultStatus::Success);
}
