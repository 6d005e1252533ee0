//! The shipped adapters as the host runs them — wasm components — against
//! the same reviewed golden files their native tests use, so the plugin
//! build and the native build cannot drift apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use paddock::config::PluginsConfig;
use paddock::plugin::{AgentPlugin, PluginHost};
use paddock_sdk::agent::{AgentEvent, ParseContext, ProcessEnd};
use paddock_sdk::testing;

const AGENTS: [&str; 4] = ["claude-code", "codex", "gemini", "opencode"];

fn fixtures(agent: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/agents")
        .join(agent)
}

async fn host() -> Arc<PluginHost> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-cache");
    PluginHost::new(
        &PluginsConfig {
            max_instances: Some(32),
            ..PluginsConfig::default()
        },
        None,
        &cache,
    )
    .await
    .unwrap()
}

async fn parse(
    plugin: &Arc<AgentPlugin>,
    context: &ParseContext,
    stdout: &[u8],
    chunk: usize,
    end: ProcessEnd,
) -> Vec<AgentEvent> {
    let mut parser = plugin.parser(context).await.unwrap();
    let mut events = Vec::new();
    for piece in stdout.chunks(chunk) {
        events.extend(parser.feed(piece).await.unwrap());
    }
    events.extend(parser.finish(end).await.unwrap());
    events
}

#[tokio::test]
async fn every_fixture_parses_to_its_golden_output_in_wasm() {
    let host = host().await;
    let mut checked = 0;
    for agent in AGENTS {
        let plugin = host.agent(agent).unwrap();
        let dir = fixtures(agent);
        for (name, case) in testing::load_cases(&dir) {
            let stdout = std::fs::read(dir.join(format!("{name}.jsonl"))).unwrap();
            let golden = std::fs::read_to_string(testing::golden_path(&dir, &name)).unwrap();
            // The host's own read size, and a size that splits every line.
            for chunk in [64 << 10, 7] {
                let events = parse(&plugin, &case.context, &stdout, chunk, case.end).await;
                assert_eq!(
                    testing::to_jsonl(&events),
                    golden,
                    "{agent}/{name} in {chunk}-byte chunks"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} fixtures found");
}

#[tokio::test]
async fn the_prompt_never_reaches_argv() {
    let host = host().await;
    for agent in AGENTS {
        let plugin = host.agent(agent).unwrap();
        for spec in testing::sample_run_specs() {
            let exec = plugin.build_exec(&spec).await.unwrap();
            assert!(
                exec.argv.iter().all(|a| !a.contains("PROMPT-7f3a9c")),
                "{agent}: prompt in argv {:?}",
                exec.argv
            );
            assert!(
                exec.env.values().all(|v| !v.contains("PROMPT-7f3a9c")),
                "{agent}: prompt in env"
            );
            let delivered = exec
                .stdin
                .as_deref()
                .is_some_and(|s| s.contains(&spec.prompt))
                || exec.files.iter().any(|f| f.contents.contains(&spec.prompt));
            assert!(delivered, "{agent}: prompt not delivered: {exec:?}");
        }
    }
}

#[tokio::test]
async fn a_2_mib_line_parses_the_same_whole_and_split() {
    let host = host().await;
    let plugin = host.agent("claude-code").unwrap();
    let text = "x".repeat(2 << 20);
    let line = serde_json::json!({
        "type": "assistant",
        "message": {
            "id": "msg_big", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": text}],
            "stop_reason": null,
            "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
        },
        "parent_tool_use_id": null, "session_id": "s1", "uuid": "u1"
    });
    let mut stdout = serde_json::to_vec(&line).unwrap();
    stdout.push(b'\n');
    let ctx = ParseContext::default();
    let whole = parse(&plugin, &ctx, &stdout, stdout.len(), ProcessEnd::Exited(0)).await;
    let split = parse(&plugin, &ctx, &stdout, 64 << 10, ProcessEnd::Exited(0)).await;
    assert_eq!(whole, split);
    let texts: Vec<usize> = whole
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Text(t) => Some(t.text.len()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [2 << 20], "the whole text arrives as one event");
}

#[tokio::test]
async fn every_adapter_names_its_cli() {
    let host = host().await;
    for agent in AGENTS {
        let plugin = host.agent(agent).unwrap();
        let info = plugin.info();
        assert_eq!(info.name, agent);
        assert!(!info.binaries.is_empty(), "{agent} declares no binaries");
        assert!(
            info.features.iter().any(|f| f == "resume"),
            "{agent} should support resume: {:?}",
            info.features
        );
    }
}
