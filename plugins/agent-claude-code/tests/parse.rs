//! Parser behaviour on scenarios the fixture README describes but that are
//! not kept as files, on huge lines, and on garbage. Lines are built in the
//! CLI's own format (field names and shapes as in the real transcripts).

use agent_claude_code::ClaudeCode;
use paddock_sdk::agent::{
    AgentEvent, ErrorKind, FileChangeKind, ParseContext, ProcessEnd, ResultStatus, TodoStatus,
    ToolKind, UsageTotals,
};
use paddock_sdk::testing;
use serde_json::{Value, json};

const SID: &str = "5b0f6f7e-0000-4000-8000-000000000001";
const MODEL: &str = "claude-sonnet-4-5-20250929";

fn jsonl(lines: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut out, l).unwrap();
        out.push(b'\n');
    }
    out
}

fn run(lines: &[Value], end: ProcessEnd) -> Vec<AgentEvent> {
    run_with(ParseContext::default(), &jsonl(lines), end)
}

/// Parses in every chunking the fixtures use and insists they agree.
fn run_with(context: ParseContext, stdout: &[u8], end: ProcessEnd) -> Vec<AgentEvent> {
    let whole = testing::parse::<ClaudeCode>(context.clone(), stdout, 0, end);
    for chunk in testing::CHUNKINGS {
        assert_eq!(
            testing::parse::<ClaudeCode>(context.clone(), stdout, chunk, end),
            whole,
            "{chunk}-byte chunks"
        );
    }
    whole
}

fn init() -> Value {
    json!({"type": "system", "subtype": "init", "cwd": "/workspace", "session_id": SID,
           "tools": ["Task", "Bash", "Write"], "model": MODEL, "permissionMode": "bypassPermissions",
           "apiKeySource": "ANTHROPIC_API_KEY", "claude_code_version": "2.1.330", "uuid": "u-init"})
}

fn usage(input: u64, write: u64, read: u64) -> Value {
    json!({"input_tokens": input, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
           "output_tokens": 1, "service_tier": "standard"})
}

fn assistant(msg_id: &str, block: Value, parent: Option<&str>) -> Value {
    json!({"type": "assistant",
           "message": {"id": msg_id, "type": "message", "role": "assistant", "model": MODEL,
                       "content": [block], "stop_reason": null, "usage": usage(6, 100, 1000)},
           "parent_tool_use_id": parent, "session_id": SID, "uuid": "u", "request_id": "req_1"})
}

fn tool_result(id: &str, content: Value, is_error: bool, side: Value) -> Value {
    json!({"type": "user",
           "message": {"role": "user", "content": [
               {"tool_use_id": id, "type": "tool_result", "content": content, "is_error": is_error}]},
           "parent_tool_use_id": null, "session_id": SID, "uuid": "u", "tool_use_result": side})
}

fn model_usage(input: u64, output: u64, read: u64, write: u64, cost: f64) -> Value {
    json!({MODEL: {"inputTokens": input, "outputTokens": output, "cacheReadInputTokens": read,
                   "cacheCreationInputTokens": write, "webSearchRequests": 0, "costUSD": cost,
                   "contextWindow": 200000, "maxOutputTokens": 32000, "thinkingTokens": 0}})
}

fn result(subtype: &str, is_error: bool, text: Option<&str>, extra: Value) -> Value {
    let mut r = json!({"duration_api_ms": 100, "stop_reason": "end_turn", "session_id": SID,
        "total_cost_usd": 0.0, "usage": {"input_tokens": 0, "output_tokens": 0},
        "modelUsage": {}, "permission_denials": [], "terminal_reason": "completed",
        "is_error": is_error, "num_turns": 1, "subtype": subtype, "api_error_status": null,
        "type": "result", "duration_ms": 500, "uuid": "u-res", "result_index": 0});
    if let Some(t) = text {
        r["result"] = json!(t);
    }
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

fn synthetic_error(status: Option<u64>, error: &str, api_type: &str, text: &str) -> Value {
    json!({"type": "assistant",
           "message": {"id": "8e6a78d4-a3a7-493c-a61c-a60d6689a320", "model": "<synthetic>", "role": "assistant",
                       "stop_reason": "stop_sequence", "type": "message",
                       "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                       "content": [{"type": "text", "text": text}]},
           "parent_tool_use_id": null, "session_id": SID, "uuid": "u", "error": error,
           "is_api_error_message": true, "api_error_status": status, "api_error_type": api_type})
}

fn api_retry(attempt: u64, status: u64, error: &str) -> Value {
    json!({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": 2,
           "retry_delay_ms": 500, "error_status": status, "error": error, "session_id": SID, "uuid": "u"})
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

fn results(events: &[AgentEvent]) -> Vec<ResultStatus> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Result(r) => Some(r.status),
            _ => None,
        })
        .collect()
}

fn raws(events: &[AgentEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Raw(_)))
        .count()
}

#[test]
fn failed_api_calls_end_in_one_error_of_the_right_kind() {
    let cases = [
        (
            401,
            "authentication_failed",
            "authentication_error",
            ErrorKind::Auth,
            false,
        ),
        (
            403,
            "authentication_failed",
            "permission_error",
            ErrorKind::Auth,
            false,
        ),
        (
            429,
            "rate_limit",
            "rate_limit_error",
            ErrorKind::RateLimit,
            true,
        ),
        (
            529,
            "overloaded",
            "overloaded_error",
            ErrorKind::Overloaded,
            true,
        ),
        (500, "server_error", "api_error", ErrorKind::Api, true),
    ];
    for (status, error, api_type, kind, retryable) in cases {
        let text = format!("API Error: {status} something went wrong");
        let events = run(
            &[
                init(),
                api_retry(1, status, error),
                api_retry(2, status, error),
                synthetic_error(Some(status), error, api_type, &text),
                result(
                    "success",
                    true,
                    Some(&text),
                    json!({"terminal_reason": "api_error", "api_error_status": status, "api_error_type": api_type}),
                ),
            ],
            ProcessEnd::Exited(1),
        );
        // The retry notices stay raw; the failure is reported once.
        assert_eq!(errors(&events), [(kind, retryable)], "{status}");
        assert_eq!(raws(&events), 2, "{status}");
        assert_eq!(results(&events), [ResultStatus::Error], "{status}");
        assert!(
            !events.iter().any(|e| matches!(e, AgentEvent::Text(_))),
            "{status}: error text is not model text"
        );
    }
}

#[test]
fn an_error_result_without_a_synthetic_message_still_reports_the_error() {
    let events = run(
        &[
            init(),
            result(
                "success",
                true,
                Some("API Error: 429 rate limited"),
                json!({"api_error_status": 429, "terminal_reason": "api_error"}),
            ),
        ],
        ProcessEnd::Exited(1),
    );
    assert_eq!(errors(&events), [(ErrorKind::RateLimit, true)]);
    assert_eq!(results(&events), [ResultStatus::Error]);
}

#[test]
fn retries_that_succeed_are_not_errors() {
    let events = run(
        &[
            init(),
            api_retry(1, 529, "overloaded"),
            api_retry(2, 529, "overloaded"),
            assistant("msg_1", json!({"type": "text", "text": "Hi."}), None),
            result(
                "success",
                false,
                Some("Hi."),
                json!({"modelUsage": model_usage(6, 5, 1000, 100, 0.01)}),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    assert!(errors(&events).is_empty());
    assert_eq!(raws(&events), 2);
    assert_eq!(results(&events), [ResultStatus::Success]);
}

#[test]
fn turn_limits_and_budgets_are_their_own_error_kinds() {
    for (subtype, kind) in [
        ("error_max_turns", ErrorKind::MaxTurns),
        ("error_max_budget_usd", ErrorKind::Budget),
    ] {
        let events = run(
            &[
                init(),
                result(subtype, true, None, json!({"errors": ["limit reached"]})),
            ],
            ProcessEnd::Exited(1),
        );
        assert_eq!(errors(&events), [(kind, false)], "{subtype}");
        assert_eq!(results(&events), [ResultStatus::Error], "{subtype}");
        let AgentEvent::Error(e) = events
            .iter()
            .find(|e| matches!(e, AgentEvent::Error(_)))
            .unwrap()
        else {
            unreachable!()
        };
        assert_eq!(e.message, "limit reached");
    }
}

#[test]
fn an_error_during_execution_without_an_interrupt_is_an_error() {
    let events = run(
        &[
            init(),
            result(
                "error_during_execution",
                true,
                None,
                json!({"terminal_reason": "tool_failure", "errors": ["boom"]}),
            ),
        ],
        ProcessEnd::Exited(1),
    );
    assert_eq!(results(&events), [ResultStatus::Error]);
    assert_eq!(errors(&events), [(ErrorKind::Other, false)]);
}

#[test]
fn an_interrupt_request_on_stdin_ends_the_turn_as_interrupted() {
    // h_stream_json_interrupt: the first line is the reply to `initialize`.
    let events = run(
        &[
            json!({"type": "control_response", "response": {"subtype": "success", "request_id": "paddock-initialize", "response": {"commands": []}}}),
            init(),
            json!({"type": "control_response", "response": {"subtype": "success", "request_id": "paddock-interrupt-1", "response": {}}}),
            json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
                   "parent_tool_use_id": null, "session_id": SID}),
            result(
                "error_during_execution",
                true,
                None,
                json!({"terminal_reason": "aborted_streaming", "errors": ["[ede_diagnostic] result_type=user"]}),
            ),
        ],
        ProcessEnd::Exited(1),
    );
    assert!(
        matches!(events[0], AgentEvent::Raw(_)),
        "the control_response is kept raw"
    );
    assert!(matches!(events[1], AgentEvent::RunStarted(_)));
    assert_eq!(results(&events), [ResultStatus::Interrupted]);
    assert!(errors(&events).is_empty(), "an interrupt is not an error");
}

#[test]
fn a_sigterm_run_with_only_init_gets_a_cancelled_result_from_the_driver() {
    let events = run(&[init()], ProcessEnd::Exited(143));
    assert!(matches!(events[0], AgentEvent::RunStarted(_)));
    assert_eq!(results(&events), [ResultStatus::Cancelled]);
}

#[test]
fn permission_denials_keep_the_notice_raw_and_the_failed_call_changes_no_file() {
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": "toolu_w", "name": "Write",
                                      "input": {"file_path": "/workspace/blocked.txt", "content": "x"}}),
                None,
            ),
            json!({"type": "system", "subtype": "permission_denied", "tool_name": "Write", "tool_use_id": "toolu_w",
                   "message": "Claude requested permissions to write to /workspace/blocked.txt, but you haven't granted it yet.", "session_id": SID}),
            tool_result(
                "toolu_w",
                json!(
                    "Claude requested permissions to write to /workspace/blocked.txt, but you haven't granted it yet."
                ),
                true,
                json!("Error: Claude requested permissions"),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    assert_eq!(raws(&events), 1);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, AgentEvent::FileChange(_)))
    );
    let denied = events.iter().find_map(|e| match e {
        AgentEvent::ToolResult(r) => Some(r),
        _ => None,
    });
    assert!(denied.is_some_and(|r| r.is_error && r.id == "toolu_w"));
}

#[test]
fn failed_tools_report_errors_and_bash_exit_codes() {
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": "toolu_b", "name": "Bash", "input": {"command": "exit 3"}}),
                None,
            ),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": "toolu_r", "name": "Read", "input": {"file_path": "/workspace/nope.txt"}}),
                None,
            ),
            tool_result(
                "toolu_r",
                json!("File does not exist."),
                true,
                json!("Error: File does not exist."),
            ),
            tool_result(
                "toolu_b",
                json!("Exit code 3\nfailing"),
                true,
                json!("Error: Exit code 3\nfailing"),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    let got: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => Some((r.id.as_str(), r.is_error, r.exit_code)),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        [("toolu_r", true, None), ("toolu_b", true, Some(3))],
        "completion order, not call order"
    );
}

#[test]
fn a_background_sub_agent_reactivates_the_session_with_a_second_init_and_result() {
    let agent = "toolu_agent";
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": agent, "name": "Agent",
                                      "input": {"description": "d", "prompt": "p", "subagent_type": "general-purpose"}}),
                None,
            ),
            tool_result(
                agent,
                json!([{"type": "text", "text": "Async agent launched successfully."}]),
                false,
                json!({"status": "async_launched"}),
            ),
            assistant(
                "msg_2",
                json!({"type": "text", "text": "Started it."}),
                None,
            ),
            result(
                "success",
                false,
                Some("Started it."),
                json!({"modelUsage": model_usage(12, 20, 2000, 200, 0.02)}),
            ),
            assistant(
                "msg_3",
                json!({"type": "tool_use", "id": "toolu_sub", "name": "Bash", "input": {"command": "echo x"}}),
                Some(agent),
            ),
            json!({"type": "user", "message": {"role": "user", "content": [{"tool_use_id": "toolu_sub", "type": "tool_result", "content": "x", "is_error": false}]},
                   "parent_tool_use_id": agent, "session_id": SID}),
            assistant(
                "msg_4",
                json!({"type": "text", "text": "Sub-agent says x."}),
                Some(agent),
            ),
            json!({"type": "system", "subtype": "task_notification", "task_id": "t1", "tool_use_id": agent, "status": "completed", "summary": "x", "session_id": SID}),
            init(),
            assistant(
                "msg_5",
                json!({"type": "text", "text": "The sub-agent printed x."}),
                None,
            ),
            result(
                "success",
                false,
                Some("The sub-agent printed x."),
                json!({"modelUsage": model_usage(30, 50, 5000, 500, 0.05), "result_index": 1, "total_cost_usd": 0.05}),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    let started = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::RunStarted(_)))
        .count();
    assert_eq!(started, 1, "the same session id is reported once");
    assert_eq!(
        results(&events),
        [ResultStatus::Success, ResultStatus::Success]
    );
    let sub: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolUse(t) => Some((t.id.as_str(), t.kind, t.parent_id.as_deref())),
            AgentEvent::ToolResult(r) => {
                Some((r.id.as_str(), ToolKind::Other, r.parent_id.as_deref()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        sub,
        [
            (agent, ToolKind::Subagent, None),
            (agent, ToolKind::Other, None),
            ("toolu_sub", ToolKind::Shell, Some(agent)),
            ("toolu_sub", ToolKind::Other, Some(agent)),
        ]
    );
    // modelUsage is cumulative over the process: the sum is its last value.
    let total = testing::sum_usage(&events);
    assert_eq!(
        (
            total.input_tokens,
            total.output_tokens,
            total.cache_read_tokens,
            total.cache_write_tokens
        ),
        (30, 50, 5000, 500)
    );
    assert!((total.cost_usd.unwrap() - 0.05).abs() < 1e-12);
    let costs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Result(r) => r.cost_usd,
            _ => None,
        })
        .collect();
    assert_eq!(costs, [0.02, 0.03]);
}

#[test]
fn a_resumed_run_counts_only_its_own_cost() {
    // f_resume_run2: total_cost_usd is cumulative over the session (run 1's
    // 0.01774965 included); modelUsage counts this process only.
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "text", "text": "It printed hello."}),
                None,
            ),
            result(
                "success",
                false,
                Some("It printed hello."),
                json!({"total_cost_usd": 0.01774965 + 0.0081, "modelUsage": model_usage(6, 9, 1000, 100, 0.0081)}),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    let total = testing::sum_usage(&events);
    assert!((total.cost_usd.unwrap() - 0.0081).abs() < 1e-12);
    let AgentEvent::Result(r) = events.last().unwrap() else {
        panic!("no result last")
    };
    assert_eq!(r.cost_usd, Some(0.0081));
}

#[test]
fn without_model_usage_the_cost_is_the_growth_of_the_session_total() {
    let mut r = result(
        "success",
        false,
        Some("ok"),
        json!({"total_cost_usd": 0.03}),
    );
    r.as_object_mut().unwrap().remove("modelUsage");
    let context = ParseContext {
        previous_usage: Some(UsageTotals {
            cost_usd: Some(0.01),
            ..UsageTotals::default()
        }),
    };
    let events = run_with(context, &jsonl(&[init(), r]), ProcessEnd::Exited(0));
    let total = testing::sum_usage(&events);
    assert!((total.cost_usd.unwrap() - 0.02).abs() < 1e-12, "{total:?}");
}

#[test]
fn todo_write_and_task_tools_yield_the_task_list() {
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": "toolu_t", "name": "TodoWrite", "input": {"todos": [
                {"content": "Read the code", "status": "completed", "activeForm": "Reading"},
                {"content": "Fix the bug", "status": "in_progress", "activeForm": "Fixing"},
                {"content": "Run tests", "status": "pending", "activeForm": "Running"}]}}),
                None,
            ),
            assistant(
                "msg_2",
                json!({"type": "tool_use", "id": "toolu_c1", "name": "TaskCreate",
                                      "input": {"subject": "Ship it", "description": "d", "activeForm": "Shipping"}}),
                None,
            ),
            tool_result(
                "toolu_c1",
                json!("Task #1 created successfully: Ship it"),
                false,
                json!({"task": {"id": "1", "subject": "Ship it"}}),
            ),
            assistant(
                "msg_3",
                json!({"type": "tool_use", "id": "toolu_c2", "name": "TaskCreate", "input": {"subject": "Tell them"}}),
                None,
            ),
            tool_result(
                "toolu_c2",
                json!("Task #2 created successfully: Tell them"),
                false,
                Value::Null,
            ),
            assistant(
                "msg_4",
                json!({"type": "tool_use", "id": "toolu_u", "name": "TaskUpdate", "input": {"taskId": 1, "status": "completed"}}),
                None,
            ),
            tool_result(
                "toolu_u",
                json!("Updated task #1 status"),
                false,
                json!({"success": true}),
            ),
        ],
        ProcessEnd::Exited(0),
    );
    let lists: Vec<Vec<(String, TodoStatus)>> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Todos(t) => {
                Some(t.items.iter().map(|i| (i.text.clone(), i.status)).collect())
            }
            _ => None,
        })
        .collect();
    let s = |t: &str, st| (t.to_owned(), st);
    assert_eq!(
        lists,
        [
            vec![
                s("Read the code", TodoStatus::Completed),
                s("Fix the bug", TodoStatus::InProgress),
                s("Run tests", TodoStatus::Pending)
            ],
            vec![s("Ship it", TodoStatus::Pending)],
            vec![
                s("Ship it", TodoStatus::Pending),
                s("Tell them", TodoStatus::Pending)
            ],
            vec![
                s("Ship it", TodoStatus::Completed),
                s("Tell them", TodoStatus::Pending)
            ],
        ]
    );
    let kinds: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolUse(t) => Some(t.kind),
            _ => None,
        })
        .collect();
    assert!(kinds.iter().all(|k| *k == ToolKind::Todo));
}

#[test]
fn edits_yield_file_changes_with_the_clis_own_diff() {
    let patch = json!([{"oldStart": 3, "oldLines": 1, "newStart": 3, "newLines": 2, "lines": ["-old", "+new", "+more"]}]);
    let events = run(
        &[
            init(),
            assistant(
                "msg_1",
                json!({"type": "tool_use", "id": "toolu_w", "name": "Write",
                                      "input": {"file_path": "/workspace/a.txt", "content": "new content"}}),
                None,
            ),
            tool_result(
                "toolu_w",
                json!("The file /workspace/a.txt has been updated."),
                false,
                json!({"type": "update", "filePath": "/workspace/a.txt", "content": "new content", "structuredPatch": patch, "originalFile": "old"}),
            ),
            assistant(
                "msg_2",
                json!({"type": "tool_use", "id": "toolu_m", "name": "MultiEdit",
                                      "input": {"file_path": "/workspace/b.txt", "edits": []}}),
                None,
            ),
            tool_result(
                "toolu_m",
                json!("Applied 2 edits"),
                false,
                json!("a string side channel"),
            ),
            assistant(
                "msg_3",
                json!({"type": "tool_use", "id": "toolu_n", "name": "NotebookEdit",
                                      "input": {"notebook_path": "/workspace/n.ipynb", "new_source": "x"}}),
                None,
            ),
            tool_result("toolu_n", json!("Updated cell"), false, Value::Null),
        ],
        ProcessEnd::Exited(0),
    );
    let changes: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::FileChange(c) => Some((c.path.as_str(), c.kind, c.diff.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (
                "/workspace/a.txt",
                FileChangeKind::Modify,
                Some(
                    "--- /workspace/a.txt\n+++ /workspace/a.txt\n@@ -3,1 +3,2 @@\n-old\n+new\n+more\n"
                )
            ),
            ("/workspace/b.txt", FileChangeKind::Modify, None),
            ("/workspace/n.ipynb", FileChangeKind::Modify, None),
        ]
    );
}

#[test]
fn sub_agent_api_errors_do_not_fail_the_run() {
    let mut line = synthetic_error(Some(500), "server_error", "api_error", "API Error: 500");
    line["parent_tool_use_id"] = json!("toolu_agent");
    let events = run(&[init(), line], ProcessEnd::Exited(0));
    assert!(
        errors(&events).iter().all(|(k, _)| *k == ErrorKind::Other),
        "only the driver's missing-result error"
    );
    assert_eq!(raws(&events), 1);
}

#[test]
fn text_deltas_without_an_api_message_id_belong_to_the_started_message() {
    let ev = |event: Value| json!({"type": "stream_event", "event": event, "session_id": SID, "parent_tool_use_id": null});
    let events = run(
        &[
            init(),
            ev(
                json!({"type": "message_start", "message": {"id": "msg_s", "usage": {"input_tokens": 1, "output_tokens": 1}}}),
            ),
            ev(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}),
            ),
            ev(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
            ),
            ev(
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}),
            ),
            ev(json!({"type": "content_block_stop", "index": 0})),
            ev(json!({"type": "brand_new_event"})),
        ],
        ProcessEnd::Exited(0),
    );
    let deltas: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::TextDelta(d) => Some((d.message_id.as_str(), d.text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, [("msg_s", "Hel"), ("msg_s", "lo")]);
    assert_eq!(raws(&events), 1, "only the unknown stream event is raw");
}

#[test]
fn garbage_becomes_raw_events_and_never_panics() {
    let mut stdout = Vec::new();
    stdout.extend_from_slice(b"not json at all\n");
    stdout.extend_from_slice(b"\xff\xfe invalid utf-8 \xc3\x28\n");
    stdout.extend_from_slice(b"{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"\xff\"}]}}\n");
    stdout.extend_from_slice(b"{\"type\":\"brand_new_type\",\"x\":1}\n");
    stdout.extend_from_slice(b"[1,2,3]\n");
    stdout.extend_from_slice(b"{}\n");
    stdout.extend_from_slice(b"{\"type\":5}\n");
    stdout.extend_from_slice(b"{\"type\":\"result\",\"subtype\":\n");
    stdout.extend_from_slice(b"\x1b[31mred\x1b[0m\n");
    // A tool call and a tool result without ids.
    stdout.extend_from_slice(&jsonl(&[
        assistant("msg_x", json!({"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}), None),
        assistant("msg_y", json!({"type": "tool_use", "id": "", "name": "Bash", "input": {}}), None),
        json!({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result", "content": "x"}]}}),
        json!({"type": "system"}),
        json!({"type": "assistant"}),
        json!({"type": "assistant", "message": "a string"}),
        json!({"type": "stream_event", "event": {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "orphan"}}}),
    ]));
    let events = run_with(ParseContext::default(), &stdout, ProcessEnd::Exited(0));
    assert!(!events.iter().any(|e| matches!(
        e,
        AgentEvent::ToolUse(_) | AgentEvent::ToolResult(_) | AgentEvent::TextDelta(_)
    )));
    // Every line is kept; the empty-id calls' usage still counts.
    assert_eq!(raws(&events), 16);
    let AgentEvent::Raw(red) = &events[8] else {
        panic!("{:?}", events[8])
    };
    assert_eq!(red.line, "red", "ANSI escapes are stripped");
    let AgentEvent::Raw(bad) = &events[1] else {
        panic!()
    };
    assert!(bad.line.contains("invalid utf-8"));
}

/// A 2 MiB line whole, in 64 KiB chunks and in 7-byte chunks.
fn parse_in_chunks(stdout: &[u8]) -> Vec<AgentEvent> {
    let whole =
        testing::parse::<ClaudeCode>(ParseContext::default(), stdout, 0, ProcessEnd::Exited(0));
    for chunk in [64 << 10, 7] {
        assert_eq!(
            testing::parse::<ClaudeCode>(
                ParseContext::default(),
                stdout,
                chunk,
                ProcessEnd::Exited(0)
            ),
            whole,
            "{chunk}"
        );
    }
    whole
}

#[test]
fn a_2_mib_assistant_text_and_tool_output_arrive_whole() {
    // Newlines, quotes and non-ASCII force escapes and multi-byte splits.
    let unit = "line \"quoted\" — ünïcode ✓\n";
    let text: String = unit.repeat((2 << 20) / unit.len() + 1);
    assert!(text.len() >= 2 << 20);
    let stdout = jsonl(&[
        init(),
        assistant("msg_big", json!({"type": "text", "text": text}), None),
        assistant(
            "msg_big",
            json!({"type": "tool_use", "id": "toolu_big", "name": "Bash", "input": {"command": "cat big"}}),
            None,
        ),
        tool_result(
            "toolu_big",
            json!(text),
            false,
            json!({"stdout": text, "stderr": "", "interrupted": false}),
        ),
    ]);
    let events = parse_in_chunks(&stdout);
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [text.as_str()]);
    let outputs: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolResult(r) => Some(r.output.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(outputs, [text.as_str()]);
    assert_eq!(raws(&events), 0);
}
