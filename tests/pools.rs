//! Several workers per bridge: placement, isolation between workers, caps.

mod common;

use std::collections::HashSet;

use agy_bridge::{Bridge, Error, testing::Reply, tools::FnTool};
use common::{agent_config, collect, config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn agents_spread_over_workers_and_chat_concurrently_with_tools() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&data).workers(2);
    cfg.max_agents_per_worker = Some(3);
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::with_responder(std::sync::Arc::new(
        |req: &agy_bridge::testing::RecordedRequest| {
            // Every turn: call the tool once, then report its result.
            match req.tool_result() {
                Some(result) => Reply::text(format!(
                    "done: {}",
                    result.rsplit('\n').nth(1).unwrap_or("")
                )),
                None => Reply::tool_call("whoami", json!({})),
            }
        },
    ))
    .await
    .unwrap();
    let whoami = FnTool::new(
        "whoami",
        "Says which agent calls.",
        json!({"type": "object", "properties": {}}),
        |_, ctx| async move { Ok(json!(ctx.agent_id())) },
    );
    let mut agents = Vec::new();
    for _ in 0..6 {
        agents.push(
            bridge
                .create_agent(agent_config(&model).tool(whoami.clone()))
                .await
                .unwrap(),
        );
    }
    let stats = bridge.worker_stats();
    assert_eq!(
        stats.iter().map(|s| s.agents).collect::<Vec<_>>(),
        [3, 3],
        "least-loaded placement"
    );
    let pids: HashSet<u32> = stats.iter().map(|s| s.worker_pid).collect();
    assert_eq!(pids.len(), 2);

    // A seventh agent does not fit.
    let err = bridge.create_agent(agent_config(&model)).await.unwrap_err();
    assert!(matches!(err, Error::Capacity { .. }), "{err}");

    // All six chat at once, each calling its tool; every turn completes and sees its own id.
    let turns = agents.iter().map(|a| async move {
        let (text, outcome) = collect(a.chat("who am I?").await.unwrap()).await;
        outcome.unwrap();
        (a.id().to_owned(), text)
    });
    for (id, text) in futures::future::join_all(turns).await {
        assert!(text.contains(&id), "{id}: {text}");
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_cannot_call_back_for_an_agent_on_another_worker() {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data).workers(2)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let tool = FnTool::new(
        "t",
        "T.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!(1)) },
    );
    let first = bridge
        .create_agent(agent_config(&model).tool(tool.clone()))
        .await
        .unwrap();
    let second = bridge
        .create_agent(agent_config(&model).tool(tool))
        .await
        .unwrap();
    // The debug call goes to the first worker; the second agent lives on the other one.
    let forged = json!({"action": "reverse", "method": "tool/call",
        "params": {"agent_id": second.id(), "tool": "t", "args": {}}});
    let err = bridge.call_raw("worker/debug", forged).await.unwrap_err();
    assert!(err.to_string().contains("unknown agent"), "{err}");
    let own = json!({"action": "reverse", "method": "tool/call",
        "params": {"agent_id": first.id(), "tool": "t", "args": {}}});
    assert_eq!(
        bridge.call_raw("worker/debug", own).await.unwrap(),
        json!(1)
    );
    bridge.shutdown().await;
}
