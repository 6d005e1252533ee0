//! The real CLI's transcripts against their reviewed golden output, and the
//! usage totals against the CLI's own final figures.

use std::path::{Path, PathBuf};

use agent_claude_code::ClaudeCode;
use paddock_sdk::agent::{AgentEvent, ResultStatus, UsageTotals};
use paddock_sdk::testing;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/claude-code")
}

#[test]
fn every_fixture_matches_its_golden_output_in_every_chunking() {
    let dir = dir();
    let cases = testing::load_cases(&dir);
    // Every stdout transcript has a case.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(case) = name.strip_suffix(".jsonl")
            && !case.ends_with(".golden")
        {
            assert!(
                cases.contains_key(case),
                "{name} has no entry in cases.json"
            );
        }
    }
    let all = testing::check_fixtures::<ClaudeCode>(&dir);
    assert_eq!(all.len(), cases.len());
}

/// The CLI's own totals for the process: the last `result` line's
/// `modelUsage` (true per-model totals, cumulative over the process,
/// sub-agents included). Anthropic's `inputTokens` already excludes cache
/// reads and writes, so it is the convention's `input_tokens` as is.
fn cli_totals(stdout: &str) -> Option<UsageTotals> {
    let last = stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")?;
    let mut t = UsageTotals {
        cost_usd: Some(0.0),
        ..UsageTotals::default()
    };
    for m in last["modelUsage"].as_object()?.values() {
        let n = |k: &str| m[k].as_u64().unwrap_or(0);
        t.input_tokens += n("inputTokens");
        t.output_tokens += n("outputTokens");
        t.cache_read_tokens += n("cacheReadInputTokens");
        t.cache_write_tokens += n("cacheCreationInputTokens");
        t.reasoning_tokens += n("thinkingTokens");
        *t.cost_usd.get_or_insert(0.0) += m["costUSD"].as_f64().unwrap_or(0.0);
    }
    Some(t)
}

fn assert_same_totals(name: &str, got: &UsageTotals, want: &UsageTotals) {
    let tokens = |t: &UsageTotals| {
        (
            t.input_tokens,
            t.output_tokens,
            t.cache_read_tokens,
            t.cache_write_tokens,
            t.reasoning_tokens,
        )
    };
    assert_eq!(tokens(got), tokens(want), "{name}: token totals");
    let (g, w) = (got.cost_usd.unwrap_or(0.0), want.cost_usd.unwrap_or(0.0));
    assert!((g - w).abs() < 1e-9, "{name}: cost {g} != {w}");
}

#[test]
fn usage_sums_to_the_clis_final_figures() {
    let dir = dir();
    let mut checked = 0;
    for (name, case) in testing::load_cases(&dir) {
        let stdout = std::fs::read_to_string(dir.join(format!("{name}.jsonl"))).unwrap();
        let events = testing::parse::<ClaudeCode>(case.context, stdout.as_bytes(), 0, case.end);
        let got = testing::sum_usage(&events);
        // Every fixture kept as a file ends with a result line; a killed run
        // (e_sigterm, not kept) would have none and only provisional usage.
        let want = cli_totals(&stdout).unwrap_or_else(|| panic!("{name}: no result line"));
        assert_same_totals(&name, &got, &want);

        // The results' costs are the turns' costs: together, the process's.
        let result_cost: f64 = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => r.cost_usd,
                _ => None,
            })
            .sum();
        assert!(
            (result_cost - want.cost_usd.unwrap_or(0.0)).abs() < 1e-9,
            "{name}: result costs {result_cost}"
        );
        checked += 1;
    }
    assert!(checked >= 9);
}

#[test]
fn per_message_usage_is_counted_once_however_many_blocks_repeat_it() {
    // c_multi_tool: the first API message has four block lines with the same
    // usage; exactly one usage event names it.
    let dir = dir();
    let stdout = std::fs::read(dir.join("c_multi_tool.jsonl")).unwrap();
    let events = testing::parse::<ClaudeCode>(
        Default::default(),
        &stdout,
        0,
        paddock_sdk::agent::ProcessEnd::Exited(0),
    );
    let of_first: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage(u)
                if u.message_id.as_deref() == Some("msg_01q7GP6NxjoR87hgujN1Nqkmrp") =>
            {
                Some(u)
            }
            _ => None,
        })
        .collect();
    assert_eq!(of_first.len(), 1);
    assert_eq!(
        (
            of_first[0].input_tokens,
            of_first[0].cache_write_tokens,
            of_first[0].cache_read_tokens
        ),
        (6, 1873, 14210)
    );
}

#[test]
fn partial_messages_take_the_final_usage_from_message_delta_without_double_counting() {
    let stdout = std::fs::read(dir().join("a_text_partial.jsonl")).unwrap();
    let events = testing::parse::<ClaudeCode>(
        Default::default(),
        &stdout,
        0,
        paddock_sdk::agent::ProcessEnd::Exited(0),
    );
    let outputs: Vec<(Option<&str>, u64)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage(u) => Some((u.message_id.as_deref(), u.output_tokens)),
            _ => None,
        })
        .collect();
    // Provisional 1 at the first block, +21 at message_delta (final 22), and
    // the result's correction adds no tokens, only the cost.
    let msg = Some("msg_01T5ocBKmbgL9TSLgdJ5vAKsMx");
    assert_eq!(outputs, [(msg, 1), (msg, 21), (None, 0)]);
    let deltas: String = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::TextDelta(d) => Some(d.text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "2 + 2 = 4. That is all there is to it.");
}

#[test]
fn results_carry_the_right_status() {
    let dir = dir();
    let status_of = |name: &str, end| {
        let stdout = std::fs::read(dir.join(format!("{name}.jsonl"))).unwrap();
        testing::parse::<ClaudeCode>(Default::default(), &stdout, 0, end)
            .into_iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => Some(r.status),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    use paddock_sdk::agent::ProcessEnd::Exited;
    assert_eq!(status_of("a_text", Exited(0)), [ResultStatus::Success]);
    assert_eq!(status_of("d_http_500", Exited(1)), [ResultStatus::Error]);
    assert_eq!(
        status_of("e_sigint", Exited(0)),
        [ResultStatus::Interrupted]
    );
    assert_eq!(
        status_of("h_stream_json_input", Exited(0)),
        [ResultStatus::Success, ResultStatus::Success]
    );
}
