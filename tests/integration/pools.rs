//! Several workers per bridge: placement, isolation between workers, caps, named pools and
//! recycling.

use crate::common;

use std::collections::HashSet;

use std::time::Duration;

use agy_bridge::{
    Bridge, ChatEvent, Error, PoolConfig,
    testing::{Reply, ScriptedModel},
    tools::FnTool,
};
use common::{HANG, agent_config, collect, config, eventually, first_text};
use futures::StreamExt;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn agents_spread_over_workers_and_chat_concurrently_with_tools() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&data).workers(2);
    cfg.default_pool.max_agents_per_worker = Some(3);
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

/// The environment a process was started with.
fn environ(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', "\n"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn named_pools_have_their_own_workers_environment_and_caps() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).pool(
        PoolConfig::new("batch")
            .workers(2)
            .max_agents_per_worker(1)
            .env("AGY_TEST_POOL", "batch")
            .gemini_api_key("batch-key"),
    );
    let bridge = Bridge::start(cfg).await.unwrap();
    assert_eq!(bridge.pools(), ["default", "batch"]);
    let model = ScriptedModel::start().await.unwrap();

    let plain = bridge.create_agent(agent_config(&model)).await.unwrap();
    let batch: Vec<_> = futures::future::try_join_all(
        (0..2).map(|_| bridge.create_agent(agent_config(&model).pool("batch"))),
    )
    .await
    .unwrap();
    assert_eq!(plain.pool(), "default");
    let stats = bridge.worker_stats();
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.pool.as_str(), s.agents))
            .collect::<Vec<_>>(),
        [("default", 1), ("batch", 1), ("batch", 1)]
    );
    // Each pool's workers run with the pool's environment, and only those.
    for agent in &batch {
        assert_eq!(agent.pool(), "batch");
        let env = environ(agent.worker_pid().expect("live"));
        assert!(env.contains("AGY_TEST_POOL=batch"), "{env}");
        // The pool's Gemini key travels in agent configurations, never in the environment.
        assert!(!env.contains("batch-key"), "{env}");
    }
    assert!(!environ(plain.worker_pid().expect("live")).contains("AGY_TEST_POOL"));

    // The pool's cap is its own; the default pool still has room.
    let err = bridge
        .create_agent(agent_config(&model).pool("batch"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Capacity { message } if message.contains("batch")),
        "{err}"
    );
    let err = bridge
        .create_agent(agent_config(&model).pool("nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("nope")),
        "{err}"
    );
    for agent in batch.iter().chain([&plain]) {
        common::chat_ok(agent, "hi").await;
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_pool_names_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).pool(PoolConfig::new("default"));
    let err = Bridge::start(cfg).await.unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recycling_waits_for_running_turns_and_keeps_every_conversation() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).pool(PoolConfig::new("recycled").recycle_after_turns(2));
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let slow = bridge
        .create_agent(agent_config(&model).pool("recycled"))
        .await
        .unwrap();
    let quick = bridge
        .create_agent(agent_config(&model).pool("recycled"))
        .await
        .unwrap();
    let old_pid = quick.worker_pid().expect("live");
    let recycled_stats = || bridge.worker_stats().pop().unwrap();

    // A long turn is streaming when the quick agent reaches the pool's turn limit.
    model.push(Reply::slow_text(
        (0..12).map(|i| format!("w{i} ")),
        Duration::from_millis(250),
    ));
    let mut long_turn = slow.chat("take your time").await.unwrap();
    first_text(&mut long_turn).await;
    for prompt in ["my name is Ada", "second"] {
        let (_, outcome) = collect(quick.chat(prompt).await.unwrap()).await;
        outcome.unwrap();
    }
    // The next turn waits for the recycle, which waits for the long turn: it is not drained
    // away, and the worker is not replaced while it streams.
    let next_turn = async {
        let (_, outcome) = collect(quick.chat("what is my name?").await.unwrap()).await;
        outcome
    };
    let stream_long_turn = async {
        let mut text = String::new();
        while let Some(event) = long_turn.next().await {
            let now = recycled_stats();
            assert_eq!(
                (now.worker_pid, now.recycles),
                (old_pid, 0),
                "recycled under a running turn"
            );
            if let ChatEvent::Text { text: t } = event {
                text.push_str(&t);
            }
        }
        (text, long_turn.finish().await)
    };
    let (next, (long_text, long_outcome)) =
        tokio::time::timeout(HANG, futures::future::join(next_turn, stream_long_turn))
            .await
            .expect("no hang");
    long_outcome.unwrap();
    assert!(long_text.ends_with("w11 "), "{long_text}");
    next.unwrap();

    let now = recycled_stats();
    assert_eq!((now.recycles, now.generation, now.restarts), (1, 2, 0));
    assert_ne!(quick.worker_pid(), Some(old_pid));
    assert!(common::wait_gone(old_pid, HANG).await, "old worker stopped");
    // The agent was re-opened on the new worker with its conversation.
    let last = model.requests().pop().unwrap();
    assert!(
        format!("{:?}", last.messages()).contains("my name is Ada"),
        "history lost: {:?}",
        last.messages()
    );
    common::chat_ok(&slow, "still there?").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uncollected_send_turn_does_not_block_recycling() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).pool(PoolConfig::new("recycled").recycle_after_turns(1));
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model).pool("recycled"))
        .await
        .unwrap();
    let old_pid = agent.worker_pid().expect("live");
    // Started with send and not waited for: the recycle goes ahead once the turn is over,
    // and the turn's outcome is kept for a later wait_for_idle.
    agent.send("fire and forget").await.unwrap();
    eventually("the worker is recycled", || {
        bridge.worker_stats().pop().unwrap().recycles == 1
    })
    .await;
    let outcome = agent.wait_for_idle().await.unwrap().expect("the sent turn");
    assert_eq!(outcome.text, "You said: fire and forget");
    assert_eq!(agent.wait_for_idle().await.unwrap(), None, "collected once");
    common::chat_ok(&agent, "next").await;
    assert_ne!(agent.worker_pid(), Some(old_pid));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_report_memory_and_an_rss_ceiling_recycles() {
    let data = tempfile::tempdir().unwrap();
    // A ceiling every worker is above: each turn recycles.
    let cfg = config(&data).pool(PoolConfig::new("small").recycle_above_rss(1));
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model).pool("small"))
        .await
        .unwrap();
    let stats = bridge.worker_stats().pop().unwrap();
    assert!(stats.rss_bytes.unwrap() > 10 << 20, "{stats:?}");
    // The agent's harness runs in the worker's process group.
    assert!(stats.harness_rss_bytes.unwrap() > 10 << 20, "{stats:?}");
    assert_eq!((stats.agents, stats.in_flight), (1, 0));
    let (_, outcome) = collect(agent.chat("hi").await.unwrap()).await;
    outcome.unwrap();
    eventually("an RSS recycle", || {
        bridge.worker_stats().pop().unwrap().recycles == 1
    })
    .await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_serve_32_agents_chatting_with_tools_at_once() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&data).workers(4);
    cfg.default_pool.max_agents_per_worker = Some(8);
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = ScriptedModel::with_responder(std::sync::Arc::new(
        |req: &agy_bridge::testing::RecordedRequest| match req.tool_result() {
            Some(result) => Reply::text(format!("sum is {result}")),
            None => {
                let n: i64 = req
                    .last_user_prompt()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                Reply::tool_call("add", json!({"a": n, "b": 1000}))
            }
        },
    ))
    .await
    .unwrap();
    let add = FnTool::new(
        "add",
        "Adds two integers.",
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
               "required": ["a", "b"]}),
        |args, _| async move {
            Ok(json!(
                args["a"].as_i64().unwrap() + args["b"].as_i64().unwrap()
            ))
        },
    );
    let agents = futures::future::try_join_all(
        (0..32).map(|_| bridge.create_agent(agent_config(&model).tool(add.clone()))),
    )
    .await
    .unwrap();
    assert_eq!(
        bridge
            .worker_stats()
            .iter()
            .map(|s| s.agents)
            .collect::<Vec<_>>(),
        [8, 8, 8, 8]
    );
    // Two rounds of 32 concurrent turns, each with a Rust tool call: none lost or mixed up.
    for round in 0..2 {
        let turns = agents.iter().enumerate().map(|(i, agent)| async move {
            let n = round * 100 + i;
            let (text, outcome) = collect(agent.chat(n.to_string()).await.unwrap()).await;
            outcome.unwrap_or_else(|e| panic!("agent {i} round {round}: {e}"));
            let expected = format!("\"result\": {}}}", n + 1000);
            assert!(
                text.starts_with("sum is") && text.contains(&expected),
                "agent {i}: {text}"
            );
        });
        tokio::time::timeout(HANG * 3, futures::future::join_all(turns))
            .await
            .expect("no hang");
    }
    assert!(bridge.worker_stats().iter().all(|s| s.restarts == 0));
    bridge.shutdown().await;
}
