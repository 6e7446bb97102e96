//! Metrics (feature `metrics`): a turn that calls a Rust tool after a retried model call, and a
//! hook that fails, recorded under the documented names through a real `metrics` recorder.

use crate::common;

use agy_bridge::{Hooks, ModelRetry, testing::Reply, tools::FnTool};
use common::{agent_config, collect, start};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

/// The counters recorded since the last snapshot (a snapshot takes them), by name and labels
/// (`name{k=v,…}`).
fn counters(snapshotter: &metrics_util::debugging::Snapshotter) -> Vec<(String, u64)> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => {
                let labels: Vec<String> = key
                    .key()
                    .labels()
                    .map(|l| format!("{}={}", l.key(), l.value()))
                    .collect();
                Some((format!("{}{{{}}}", key.key().name(), labels.join(",")), n))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_tools_model_calls_and_hook_failures_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test process");

    let (bridge, model, _data) = start().await;
    let tool = FnTool::new(
        "echo",
        "Echoes.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("echoed")) },
    );
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(tool)
                .model_retry(ModelRetry::default().backoff(
                    std::time::Duration::from_millis(10),
                    std::time::Duration::from_millis(20),
                ))
                .hooks(Hooks::new().post_turn(|_| async { panic!("post_turn bug") })),
        )
        .await
        .unwrap();
    model.push(Reply::http_error(503, "busy"));
    model.push(Reply::tool_call("echo", json!({})));
    let (_, outcome) = collect(agent.chat("echo something").await.unwrap()).await;
    outcome.unwrap();
    let mut seen: Vec<(String, u64)> = Vec::new();
    common::eventually("the hook failure is counted", || {
        for (key, n) in counters(&snapshotter) {
            match seen.iter_mut().find(|(k, _)| *k == key) {
                Some((_, total)) => *total += n,
                None => seen.push((key, n)),
            }
        }
        seen.iter()
            .any(|(k, n)| k.starts_with("agy_bridge_hook_failures_total") && *n > 0)
    })
    .await;
    let count = |name: &str| seen.iter().find(|(k, _)| k == name).map_or(0, |(_, n)| *n);
    assert_eq!(count("agy_bridge_turns_total{outcome=ok}"), 1, "{seen:?}");
    assert_eq!(
        count("agy_bridge_tool_calls_total{tool=echo,outcome=ok}"),
        1,
        "{seen:?}"
    );
    assert_eq!(
        count("agy_bridge_model_calls_total{outcome=retried}"),
        1,
        "{seen:?}"
    );
    assert_eq!(
        count("agy_bridge_model_calls_total{outcome=ok}"),
        2,
        "{seen:?}"
    );
    assert_eq!(
        count("agy_bridge_hook_failures_total{point=post_turn}"),
        1,
        "{seen:?}"
    );

    // Hibernation, then a resume: one more activation.
    agent.disconnect().await.unwrap();
    common::chat_ok(&agent, "back again").await;
    let mut later: Vec<(String, u64)> = Vec::new();
    common::eventually("the resume is counted", || {
        later.extend(counters(&snapshotter));
        later
            .iter()
            .any(|(k, n)| k == "agy_bridge_activations_total{outcome=ok}" && *n > 0)
    })
    .await;
    assert!(
        later
            .iter()
            .any(|(k, n)| k == "agy_bridge_hibernations_total{}" && *n == 1),
        "{later:?}"
    );
    bridge.shutdown().await;
}
