//! The real OpenCode transcripts against their reviewed golden files, and
//! the usage each run adds up to against OpenCode's own per-step figures.

use std::path::{Path, PathBuf};

use agent_opencode::OpenCode;
use paddock_sdk::agent::{AgentEvent, ResultStatus};
use paddock_sdk::testing::{self, check_fixtures, sum_usage};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/opencode")
}

#[test]
fn every_fixture_matches_its_golden_file_in_every_chunking() {
    let all = check_fixtures::<OpenCode>(&dir());
    let stdout_files = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".jsonl") && !n.ends_with(".golden.jsonl"))
        .count();
    assert_eq!(
        all.len(),
        stdout_files,
        "every transcript has a case in cases.json"
    );
}

/// OpenCode's own totals for a transcript, read independently of the
/// adapter: the sum of every `step_finish`'s `tokens` and `cost`.
#[derive(Debug, Default)]
struct CliTotals {
    steps: u32,
    input: u64,
    output: u64,
    reasoning: u64,
    cache_read: u64,
    cache_write: u64,
    total: u64,
    cost: f64,
}

fn cli_totals(stdout: &[u8]) -> CliTotals {
    let mut totals = CliTotals::default();
    for line in stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let value: Value = serde_json::from_slice(line).unwrap();
        if value["type"] != "step_finish" {
            continue;
        }
        let part = &value["part"];
        let tokens = &part["tokens"];
        let n = |v: &Value| v.as_u64().unwrap();
        totals.steps += 1;
        totals.input += n(&tokens["input"]);
        totals.output += n(&tokens["output"]);
        totals.reasoning += n(&tokens["reasoning"]);
        totals.cache_read += n(&tokens["cache"]["read"]);
        totals.cache_write += n(&tokens["cache"]["write"]);
        totals.total += n(&tokens["total"]);
        totals.cost += part["cost"].as_f64().unwrap();
    }
    totals
}

#[test]
fn usage_adds_up_to_the_cli_figures_with_the_cache_outside_input() {
    for (name, case) in testing::load_cases(&dir()) {
        let stdout = std::fs::read(dir().join(format!("{name}.jsonl"))).unwrap();
        let events = testing::parse::<OpenCode>(case.context, &stdout, 0, case.end);
        let sum = sum_usage(&events);
        let cli = cli_totals(&stdout);
        if cli.steps == 0 {
            // d_http_401 fails before any model call and e_sigterm is killed
            // during the first one: OpenCode reports no usage at all (the
            // title request it made is never reported), so neither may we.
            assert!(
                matches!(name.as_str(), "d_http_401" | "e_sigterm"),
                "{name}: no step finished"
            );
            assert_eq!(sum, Default::default(), "{name}: usage without any step");
            continue;
        }
        assert_eq!(sum.input_tokens, cli.input, "{name}: input");
        assert_eq!(
            sum.output_tokens,
            cli.output + cli.reasoning,
            "{name}: output"
        );
        assert_eq!(sum.reasoning_tokens, cli.reasoning, "{name}: reasoning");
        assert_eq!(sum.cache_read_tokens, cli.cache_read, "{name}: cache read");
        assert_eq!(
            sum.cache_write_tokens, cli.cache_write,
            "{name}: cache write"
        );
        // `tokens.total` counts every token once: had the cache been left in
        // the input, this sum would exceed it.
        assert_eq!(
            sum.input_tokens + sum.output_tokens + sum.cache_read_tokens + sum.cache_write_tokens,
            cli.total,
            "{name}: counters add up to OpenCode's totals"
        );
        let cost = sum.cost_usd.unwrap_or(0.0);
        assert!(
            (cost - cli.cost).abs() < 1e-12,
            "{name}: cost {cost} vs {}",
            cli.cost
        );
        // The turn's result carries the same cost.
        let result_cost: f64 = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => r.cost_usd,
                _ => None,
            })
            .sum();
        assert!(
            (result_cost - cli.cost).abs() < 1e-12,
            "{name}: result cost"
        );
    }
}

#[test]
fn each_run_ends_as_the_cli_did() {
    let expected = [
        ("a_text", ResultStatus::Success, Some("2 + 2 = 4.")),
        (
            "b_tool_bash",
            ResultStatus::Success,
            Some("The command printed `hello`."),
        ),
        (
            "c_multi_tool",
            ResultStatus::Success,
            Some("Done: hello.txt created and notes.txt now says gamma instead of beta."),
        ),
        ("d_http_401", ResultStatus::Error, None),
        ("e_sigterm", ResultStatus::Cancelled, None),
        (
            "f_resume_run1",
            ResultStatus::Success,
            Some("The command printed `hello`."),
        ),
        (
            "g_subagent",
            ResultStatus::Success,
            Some("The sub-agent reports: from-subagent."),
        ),
    ];
    let cases = testing::load_cases(&dir());
    for (name, status, text) in expected {
        let case = &cases[name];
        let stdout = std::fs::read(dir().join(format!("{name}.jsonl"))).unwrap();
        let events = testing::parse::<OpenCode>(case.context.clone(), &stdout, 0, case.end);
        let results: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 1, "{name}: one result");
        assert_eq!(results[0].status, status, "{name}");
        assert_eq!(results[0].text.as_deref(), text, "{name}");
        assert!(
            results[0]
                .session_id
                .as_deref()
                .is_some_and(|s| s.starts_with("ses_")),
            "{name}: the result names the session to resume"
        );
        assert!(
            matches!(events.last(), Some(AgentEvent::Result(_))),
            "{name}: result last"
        );
    }
}
