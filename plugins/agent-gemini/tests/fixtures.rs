//! The real Gemini CLI transcripts in `tests/fixtures/agents/gemini`, against
//! their reviewed golden event streams, plus checks computed from the raw
//! transcripts independently of the adapter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_gemini::Gemini;
use paddock_sdk::agent::{AgentEvent, ResultStatus, UsageTotals};
use paddock_sdk::testing;
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/agents/gemini")
}

fn transcript(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join(format!("{name}.jsonl"))).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn all_cases() -> BTreeMap<String, Vec<AgentEvent>> {
    testing::check_fixtures::<Gemini>(&dir())
}

#[test]
fn fixtures_match_their_golden_files_in_every_chunking() {
    let cases = all_cases();
    let on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let case = name.strip_suffix(".jsonl")?;
            (!case.ends_with(".golden")).then(|| case.to_owned())
        })
        .collect();
    for case in &on_disk {
        assert!(
            cases.contains_key(case),
            "{case}.jsonl has no entry in cases.json"
        );
    }
    assert_eq!(cases.len(), on_disk.len());
}

/// What the CLI's own `result.stats` say, in the one convention: the
/// prompt count includes the cache, and thinking is only in `total_tokens`.
fn expected_usage(lines: &[Value]) -> Option<UsageTotals> {
    let mut total: Option<UsageTotals> = None;
    for line in lines.iter().filter(|l| l["type"] == "result") {
        let stats = &line["stats"];
        let n = |k: &str| stats[k].as_u64().unwrap();
        let (prompt, cached, candidates, all) = (
            n("input_tokens"),
            n("cached"),
            n("output_tokens"),
            n("total_tokens"),
        );
        // The CLI's own breakdown agrees with itself.
        assert_eq!(n("input"), prompt - cached);
        let t = total.get_or_insert_with(UsageTotals::default);
        t.input_tokens += prompt - cached;
        t.cache_read_tokens += cached;
        t.output_tokens += all - prompt;
        t.reasoning_tokens += all - prompt - candidates;
    }
    total
}

#[test]
fn usage_sums_to_the_cli_result_totals() {
    for (name, events) in all_cases() {
        let lines = transcript(&name);
        let sum = testing::sum_usage(&events);
        match expected_usage(&lines) {
            Some(expected) => assert_eq!(sum, expected, "{name}"),
            None => {
                // Killed runs (sigint) end without a `result`: the CLI never
                // says what it used, so the adapter reports nothing rather
                // than a guess.
                assert_eq!(sum, UsageTotals::default(), "{name}");
            }
        }
    }
}

#[test]
fn thinking_tokens_count_as_output_and_as_reasoning() {
    let events = &all_cases()["text"];
    let usage: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Usage(u) => Some(u),
            _ => None,
        })
        .collect();
    assert_eq!(usage.len(), 1);
    let u = usage[0];
    assert_eq!(u.model.as_deref(), Some("gemini-2.5-flash"));
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (400, 800, 20)
    );
    assert_eq!(u.reasoning_tokens, Some(5));
}

#[test]
fn every_message_text_is_the_sum_of_its_deltas() {
    for (name, events) in all_cases() {
        let mut deltas: BTreeMap<String, String> = BTreeMap::new();
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for event in &events {
            match event {
                AgentEvent::TextDelta(d) => {
                    assert!(
                        !texts.contains_key(&d.message_id),
                        "{name}: a delta after its message ended"
                    );
                    deltas
                        .entry(d.message_id.clone())
                        .or_default()
                        .push_str(&d.text);
                }
                AgentEvent::Text(t) => {
                    let id = t.message_id.clone().unwrap();
                    assert!(texts.insert(id, t.text.clone()).is_none(), "{name}");
                }
                _ => {}
            }
        }
        assert_eq!(deltas, texts, "{name}");
        // And the raw transcript's assistant chunks are all there.
        let raw: String = transcript(&name)
            .iter()
            .filter(|l| l["type"] == "message" && l["role"] == "assistant")
            .map(|l| l["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts.values().cloned().collect::<String>(), raw, "{name}");
    }
}

#[test]
fn every_tool_result_pairs_with_a_tool_use() {
    for (name, events) in all_cases() {
        let mut open = Vec::new();
        for event in &events {
            match event {
                AgentEvent::ToolUse(u) => open.push(u.id.clone()),
                AgentEvent::ToolResult(r) => {
                    let at = open.iter().position(|id| *id == r.id);
                    assert!(at.is_some(), "{name}: result {} without its use", r.id);
                    open.remove(at.unwrap());
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "{name}: uses without results: {open:?}");
    }
}

#[test]
fn one_result_per_run_and_never_success_without_the_cli_saying_so() {
    for (name, events) in all_cases() {
        let results: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::Result(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(results.len(), 1, "{name}");
        let cli_success = transcript(&name)
            .iter()
            .any(|l| l["type"] == "result" && l["status"] == "success");
        assert_eq!(
            results[0].status == ResultStatus::Success,
            cli_success,
            "{name}"
        );
        let session = transcript(&name)[0]["session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(results[0].session_id.as_deref(), Some(&*session), "{name}");
    }
}

#[test]
fn the_written_file_is_reported_once_its_write_succeeded() {
    let events = &all_cases()["write_and_shell"];
    let changes: Vec<_> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            AgentEvent::FileChange(c) => Some((i, c)),
            _ => None,
        })
        .collect();
    assert_eq!(changes.len(), 1);
    let (at, change) = changes[0];
    assert_eq!(change.path, "/workspace/hello.txt");
    assert!(
        matches!(&events[at - 1], AgentEvent::ToolResult(r) if r.id.starts_with("write_file__") && !r.is_error)
    );
}
