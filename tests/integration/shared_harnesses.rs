//! Several conversations on one `localharness` (`PoolConfig::conversations_per_harness`):
//! histories never mix, tools answer for the right agent under concurrency, closing one agent
//! leaves the others' turns running, a killed harness fails only the turns in flight on it and
//! every agent on it continues with its history, and harnesses end with their last agent.

use crate::common;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use agy_bridge::{
    Agent, Bridge, ChatEvent, Error,
    testing::{RecordedRequest, Reply, ScriptedModel},
    tools::FnTool,
};
use common::{HANG, agent_config, collect, config, wait_gone};
use futures::StreamExt;
use serde_json::json;

/// A bridge whose harnesses each serve up to `per_harness` conversations, without spares (so
/// that which harness an agent lands on is decided by sharing alone).
async fn start(per_harness: usize, model: &ScriptedModel) -> (Bridge, tempfile::TempDir) {
    let _ = model;
    let data = tempfile::tempdir().expect("temp dir");
    let bridge = Bridge::start(
        config(&data)
            .conversations_per_harness(per_harness)
            .prestarted_harnesses(0),
    )
    .await
    .expect("bridge starts");
    assert_eq!(
        bridge.worker_info().conversations_per_harness,
        per_harness,
        "sharing is on with the pinned SDK"
    );
    (bridge, data)
}

/// The scripted model's answer: every user prompt it was shown, so a reply reveals whether
/// another conversation's messages reached this one.
fn prompts_seen(req: &RecordedRequest) -> Reply {
    let seen: Vec<String> = req
        .messages()
        .iter()
        .filter(|m| m["role"] == "user")
        .filter_map(|m| {
            m["content"]
                .as_str()
                .or_else(|| m["content"][0]["text"].as_str())
        })
        .filter_map(|text| {
            text.split_once("<USER_REQUEST>")
                .and_then(|(_, rest)| rest.split_once("</USER_REQUEST>"))
                .map(|(prompt, _)| prompt.trim().to_owned())
        })
        .collect();
    Reply::text(format!("seen: {}", seen.join(" | ")))
}

async fn text_of(agent: &Agent, prompt: &str) -> String {
    let (text, outcome) = collect(agent.chat(prompt).await.unwrap()).await;
    outcome.unwrap_or_else(|e| panic!("turn {prompt:?} of {} failed: {e}", agent.id()));
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_share_a_harness_and_their_histories_never_mix() {
    let model = ScriptedModel::with_responder(Arc::new(prompts_seen))
        .await
        .unwrap();
    let (bridge, _data) = start(8, &model).await;
    let mut agents = Vec::new();
    for _ in 0..4 {
        agents.push(bridge.create_agent(agent_config(&model)).await.unwrap());
    }
    let pids: BTreeSet<u32> = agents.iter().map(|a| a.harness_pid().unwrap()).collect();
    assert_eq!(pids.len(), 1, "four agents, one harness");

    // Interleaved turns, then concurrent ones: each sees only its own prompts.
    for round in 0..2 {
        for (i, agent) in agents.iter().enumerate() {
            let text = text_of(agent, &format!("a{i}-r{round}")).await;
            let expected: Vec<String> = (0..=round).map(|r| format!("a{i}-r{r}")).collect();
            assert_eq!(text, format!("seen: {}", expected.join(" | ")));
        }
    }
    let turns = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| async move { (i, text_of(agent, &format!("a{i}-r2")).await) });
    for (i, text) in futures::future::join_all(turns).await {
        assert_eq!(text, format!("seen: a{i}-r0 | a{i}-r1 | a{i}-r2"));
    }

    // A fifth agent past the capacity of 4 would still fit (8); a bridge of 2 per harness
    // spreads the same four agents over two.
    bridge.shutdown().await;
    let (bridge, _data) = start(2, &model).await;
    let mut agents = Vec::new();
    for _ in 0..4 {
        agents.push(bridge.create_agent(agent_config(&model)).await.unwrap());
    }
    let mut per_pid: BTreeMap<u32, usize> = BTreeMap::new();
    for agent in &agents {
        *per_pid.entry(agent.harness_pid().unwrap()).or_default() += 1;
    }
    assert_eq!(per_pid.values().copied().collect::<Vec<_>>(), [2, 2]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_hooks_and_confirmations_of_64_concurrent_agents_on_one_harness_answer_for_their_own()
{
    const AGENTS: usize = 64;
    // Each turn calls `whoami`, then reports what it answered.
    let model =
        ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| match req.tool_result() {
            Some(result) => Reply::text(format!("tool said {result}")),
            None => Reply::tool_call("whoami", json!({})),
        }))
        .await
        .unwrap();
    let (bridge, _data) = start(AGENTS, &model).await;
    // What each agent's hook and `ask_user` handler saw: (agent number, agent id seen).
    let hooked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let asked: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let name = format!("agent-number-{i}");
        let tool = FnTool::new(
            "whoami",
            "Says which agent this is.",
            json!({"type": "object", "properties": {}}),
            move |_, _| {
                let name = name.clone();
                async move { Ok(json!({ "me": name })) }
            },
        );
        let hook_log = Arc::clone(&hooked);
        let ask_log = Arc::clone(&asked);
        let config = agent_config(&model)
            .tool(tool)
            .hooks(agy_bridge::Hooks::new().pre_tool_call_decide(move |call| {
                hook_log.lock().unwrap().push((i, call.agent_id));
                async { agy_bridge::hooks::ToolDecision::Allow }
            }))
            .policy(agy_bridge::PolicyRule::ask_user(
                "whoami",
                move |req: agy_bridge::policies::ConfirmRequest| {
                    ask_log.lock().unwrap().push((i, req.agent_id));
                    async { true }
                },
            ));
        agents.push(bridge.create_agent(config).await.unwrap());
    }
    let pids: BTreeSet<u32> = agents.iter().map(|a| a.harness_pid().unwrap()).collect();
    assert_eq!(pids.len(), 1);
    let turns = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| async move { (i, text_of(agent, "who are you?").await) });
    for (i, text) in futures::future::join_all(turns).await {
        assert!(
            text.contains(&format!("agent-number-{i}\"")),
            "agent {i} got {text}"
        );
    }
    for (what, log) in [("hook", &hooked), ("ask_user", &asked)] {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), AGENTS, "one {what} call per agent: {log:?}");
        for (i, seen) in log.iter() {
            assert_eq!(seen, agents[*i].id(), "{what} of agent {i}");
        }
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closing_or_cancelling_one_agent_leaves_the_others_turns_running() {
    let model = ScriptedModel::start().await.unwrap();
    let (bridge, _data) = start(4, &model).await;
    let a = bridge.create_agent(agent_config(&model)).await.unwrap();
    let b = bridge.create_agent(agent_config(&model)).await.unwrap();
    let c = bridge.create_agent(agent_config(&model)).await.unwrap();
    assert_eq!(a.harness_pid(), b.harness_pid());
    assert_eq!(a.harness_pid(), c.harness_pid());
    let harness = a.harness_pid().unwrap();

    // `a` streams slowly; `b` is closed and `c` cancelled meanwhile.
    model.push(Reply::slow_text(
        (0..40).map(|i| format!("w{i} ")),
        Duration::from_millis(25),
    ));
    let mut slow = a.chat("talk slowly").await.unwrap();
    common::first_text(&mut slow).await;
    b.close().await.unwrap();
    model.push(Reply::slow_text(
        (0..400).map(|i| format!("c{i} ")),
        Duration::from_millis(40),
    ));
    let mut doomed = c.chat("talk on").await.unwrap();
    common::first_text(&mut doomed).await;
    assert!(c.cancel().await.unwrap());
    assert!(common::finish_within(doomed).await.is_err());

    let outcome = common::finish_within(slow).await.unwrap();
    assert!(outcome.text.contains("w39"), "{}", outcome.text);
    common::chat_ok(&c, "after the cancel").await;
    assert_eq!(
        c.harness_pid(),
        Some(harness),
        "still on the shared harness"
    );

    // The harness is in the worker's stats while it serves, and ends with its last conversation.
    common::eventually("the shared harness in the stats", || {
        bridge.stats().shared_harness_pids == [harness]
    })
    .await;
    a.close().await.unwrap();
    c.close().await.unwrap();
    assert!(wait_gone(harness, HANG).await, "the empty harness ends");
    common::eventually("no shared harness left in the stats", || {
        bridge.stats().shared_harness_pids.is_empty()
    })
    .await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shared_harness_fails_only_the_turn_in_flight_and_every_agent_continues() {
    let model = ScriptedModel::start().await.unwrap();
    let (bridge, _data) = start(4, &model).await;
    let mut agents = Vec::new();
    for i in 0..3 {
        let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
        common::chat_ok(&agent, &format!("remember {i}")).await;
        agents.push(agent);
    }
    let harness = agents[0].harness_pid().unwrap();
    assert!(agents.iter().all(|a| a.harness_pid() == Some(harness)));

    model.push(Reply::slow_text(
        (0..400).map(|i| format!("w{i} ")),
        Duration::from_millis(40),
    ));
    let mut reply = agents[0].chat("talk slowly").await.unwrap();
    common::first_text(&mut reply).await;
    // SAFETY: kill(2) on the harness this test's worker started.
    assert_eq!(unsafe { libc::kill(harness as i32, libc::SIGKILL) }, 0);
    let err = common::finish_within(reply).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: agy_bridge::AgentErrorKind::ConnectionLost,
                ..
            }
        ),
        "{err}"
    );

    // Every agent, busy or idle at the time, continues with its completed turns.
    for (i, agent) in agents.iter().enumerate() {
        common::chat_ok(agent, &format!("still there {i}?")).await;
        let history = agent.history().await.unwrap();
        assert!(
            history
                .iter()
                .any(|s| s.content.contains(&format!("remember {i}"))),
            "agent {i} lost its history: {history:?}"
        );
        assert_ne!(agent.harness_pid(), Some(harness));
    }
    assert_eq!(bridge.stats().restarts, 0, "only the harness died");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hibernating_one_agent_leaves_the_others_on_the_harness_and_it_resumes_there() {
    let model = ScriptedModel::start().await.unwrap();
    let (bridge, _data) = start(4, &model).await;
    let a = bridge.create_agent(agent_config(&model)).await.unwrap();
    let b = bridge.create_agent(agent_config(&model)).await.unwrap();
    common::chat_ok(&a, "first of a").await;
    common::chat_ok(&b, "first of b").await;
    let harness = a.harness_pid().unwrap();

    a.disconnect().await.unwrap();
    assert!(a.is_hibernated());
    model.push(Reply::slow_text(
        (0..20).map(|i| format!("b{i} ")),
        Duration::from_millis(20),
    ));
    let mut reply = b.chat("keep going").await.unwrap();
    let events = Arc::new(Mutex::new(0usize));
    let counter = Arc::clone(&events);
    let reading = async move {
        while let Some(event) = reply.next().await {
            if matches!(event, ChatEvent::Text { .. }) {
                *counter.lock().unwrap() += 1;
            }
        }
        reply.finish().await
    };
    // The hibernated agent resumes (on the same harness: it has room) while b streams.
    let (outcome, ()) = tokio::join!(reading, common::chat_ok(&a, "back again"));
    outcome.unwrap();
    assert!(*events.lock().unwrap() > 0);
    assert_eq!(a.harness_pid(), Some(harness));
    let history = a.history().await.unwrap();
    assert!(history.iter().any(|s| s.content.contains("first of a")));
    bridge.shutdown().await;
}

/// Capacity (run by `scripts/soak`): a thousand live agents, each after a turn, on the default
/// shared harnesses of one worker, then waves of 32 concurrent turns across them all answered.
#[tokio::test(flavor = "multi_thread")]
async fn soak_a_thousand_live_agents_share_harnesses_and_answer_waves_of_32_turns() {
    const AGENTS: usize = 1_000;
    const WAVE: usize = 32;
    let model = ScriptedModel::start().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let per_harness = bridge.worker_info().conversations_per_harness;
    assert_eq!(per_harness, agy_bridge::DEFAULT_CONVERSATIONS_PER_HARNESS);
    let mut agents: Vec<Agent> = Vec::new();
    for wave in 0..AGENTS.div_ceil(WAVE) {
        let starts = (wave * WAVE..((wave + 1) * WAVE).min(AGENTS)).map(|i| {
            let (bridge, model) = (&bridge, &model);
            async move {
                let agent = bridge.create_agent(agent_config(model)).await.unwrap();
                common::chat_ok(&agent, &format!("hello {i}")).await;
                agent
            }
        });
        agents.extend(futures::future::join_all(starts).await);
    }
    let harnesses: BTreeSet<u32> = agents.iter().filter_map(Agent::harness_pid).collect();
    assert!(
        harnesses.len() <= AGENTS.div_ceil(per_harness) + WAVE,
        "{} harnesses for {AGENTS} agents",
        harnesses.len()
    );
    // Waves of 32 concurrent turns, spread over the whole population.
    for wave in 0..4 {
        let turns = (0..WAVE).map(|k| {
            let agent = &agents[(wave * 251 + k * 31) % AGENTS];
            async move { common::chat_ok(agent, &format!("wave {wave}")).await }
        });
        tokio::time::timeout(HANG, futures::future::join_all(turns))
            .await
            .expect("a wave of 32 turns is answered");
    }
    let stats = bridge.stats();
    let total = stats.rss_bytes.unwrap_or(0) + stats.harness_rss_bytes.unwrap_or(0);
    eprintln!(
        "{AGENTS} live agents: {} harnesses, worker {} MiB, harnesses {} MiB, {:.2} MiB per agent",
        harnesses.len(),
        stats.rss_bytes.unwrap_or(0) >> 20,
        stats.harness_rss_bytes.unwrap_or(0) >> 20,
        total as f64 / AGENTS as f64 / 1048576.0
    );
    assert!(
        total < 24 << 30,
        "1,000 live agents must fit a 24 GB machine: {total} bytes"
    );
    futures::future::join_all(agents.into_iter().map(Agent::close)).await;
    bridge.shutdown().await;
}
