//! The real Codex transcripts against their reviewed golden files, and the
//! usage each run adds up to against Codex's own figures.

use std::path::{Path, PathBuf};

use agent_codex::Codex;
use paddock_sdk::agent::{AgentEvent, ResultStatus, UsageTotals};
use paddock_sdk::testing;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/codex")
}

#[test]
fn every_fixture_has_a_case() {
    let cases = testing::load_cases(&dir());
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(case) = name.strip_suffix(".jsonl")
            && !case.ends_with(".golden")
            && !cases.contains_key(case)
        {
            missing.push(case.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "fixtures without a case in cases.json: {missing:?}"
    );
}

#[test]
fn fixtures_match_their_golden_files() {
    let all = testing::check_fixtures::<Codex>(&dir());
    assert!(all.len() >= 6, "only {} cases", all.len());
}

/// Codex's last `turn.completed.usage` of a transcript, read independently
/// of the adapter and converted to the one convention (cached and
/// cache-write tokens out of the input), minus what the thread had before.
fn cli_final_usage(stdout: &[u8], previous: &UsageTotals) -> Option<UsageTotals> {
    let last = stdout
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
        .rfind(|v| v["type"] == "turn.completed")?;
    let usage = &last["usage"];
    let n = |key: &str| usage[key].as_u64().unwrap_or(0);
    Some(UsageTotals {
        input_tokens: n("input_tokens")
            - n("cached_input_tokens")
            - n("cache_write_input_tokens")
            - previous.input_tokens,
        output_tokens: n("output_tokens") - previous.output_tokens,
        cache_read_tokens: n("cached_input_tokens") - previous.cache_read_tokens,
        cache_write_tokens: n("cache_write_input_tokens") - previous.cache_write_tokens,
        reasoning_tokens: n("reasoning_output_tokens") - previous.reasoning_tokens,
        cost_usd: None,
    })
}

#[test]
fn summed_usage_equals_codex_totals() {
    let dir = dir();
    for (name, case) in testing::load_cases(&dir) {
        let stdout = std::fs::read(dir.join(format!("{name}.jsonl"))).unwrap();
        let events = testing::parse::<Codex>(case.context.clone(), &stdout, 0, case.end);
        let summed = testing::sum_usage(&events);
        let previous = case.context.previous_usage.clone().unwrap_or_default();
        match cli_final_usage(&stdout, &previous) {
            Some(expected) => assert_eq!(summed, expected, "{name}"),
            None => {
                // No turn.completed (failed or killed runs): Codex reports
                // no figures at all, so nothing may be counted.
                assert_eq!(summed, UsageTotals::default(), "{name}");
                assert!(
                    !events.iter().any(|e| matches!(e, AgentEvent::Usage(_))),
                    "{name}: usage without a turn.completed"
                );
            }
        }
    }
}

#[test]
fn text_fixture_converts_cached_input() {
    // The one convention by hand for `text`: 1200 input of which 800 cached.
    let stdout = std::fs::read(dir().join("text.jsonl")).unwrap();
    let events = testing::parse::<Codex>(
        Default::default(),
        &stdout,
        0,
        paddock_sdk::agent::ProcessEnd::Exited(0),
    );
    let summed = testing::sum_usage(&events);
    assert_eq!(
        (
            summed.input_tokens,
            summed.cache_read_tokens,
            summed.output_tokens,
            summed.reasoning_tokens
        ),
        (400, 800, 42, 7)
    );
}

#[test]
fn every_run_ends_with_one_result_of_the_right_status() {
    let dir = dir();
    let expected = [
        ("http_500", ResultStatus::Error),
        ("patch_and_shell", ResultStatus::Success),
        ("resume_initial", ResultStatus::Success),
        ("shell", ResultStatus::Success),
        // Codex exits 1 on SIGINT and writes nothing: from the exit code
        // alone this is a failure (the host reports `cancelled` when it sent
        // the signal itself).
        ("sigint", ResultStatus::Error),
        ("text", ResultStatus::Success),
    ];
    let cases = testing::load_cases(&dir);
    for (name, status) in expected {
        let case = &cases[name];
        let stdout = std::fs::read(dir.join(format!("{name}.jsonl"))).unwrap();
        let events = testing::parse::<Codex>(case.context.clone(), &stdout, 0, case.end);
        let results: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 1, "{name}: {results:?}");
        assert_eq!(results[0].status, status, "{name}");
        assert!(
            matches!(events.last(), Some(AgentEvent::Result(_))),
            "{name}: the result is not last"
        );
    }
}
