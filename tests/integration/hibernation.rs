//! Hibernation, the live cap, re-opening conversations by id and single activation, with the
//! default (local) store: no database involved.

use crate::common;

use std::time::Duration;

use agy_bridge::{Bridge, Error, PoolConfig};
use common::{HANG, agent_config, collect, config, eventually, wait_gone};

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_agent_hibernates_and_its_next_call_brings_it_back_with_its_history() {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge
        .create_agent(agent_config(&model).hibernate_after(Duration::from_millis(500)))
        .await
        .unwrap();
    let (_, outcome) = collect(agent.chat("remember the word kumquat").await.unwrap()).await;
    outcome.unwrap();
    let harness = agent.harness_pid().unwrap();
    eventually("the idle agent hibernates", || agent.is_hibernated()).await;
    assert!(wait_gone(harness, HANG).await, "its harness stopped");
    assert_eq!(agent.harness_pid(), None);
    let stats = &bridge.pool_stats()[0];
    assert_eq!((stats.live_agents, stats.hibernated_agents), (0, 1));
    assert_eq!(bridge.stats().agents, 0, "nothing on the worker");

    // The same handle carries on, with the history of before.
    common::chat_ok(&agent, "and now?").await;
    assert!(agent.harness_pid().is_some());
    let history = agent.history().await.unwrap();
    assert!(history.iter().any(|s| s.content.contains("kumquat")));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_cap_hibernates_the_least_recently_used_idle_agent_instead_of_failing() {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data).pool(PoolConfig::new("capped").max_live_agents(2)))
        .await
        .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let mut agents = Vec::new();
    for i in 0..4 {
        let agent = bridge
            .create_agent(agent_config(&model).pool("capped"))
            .await
            .unwrap();
        let (_, outcome) = collect(agent.chat(format!("I am agent {i}")).await.unwrap()).await;
        outcome.unwrap();
        agents.push(agent);
        let stats = &bridge.pool_stats()[1];
        assert!(stats.live_agents <= 2, "{stats:?}");
        // The harnesses on the pool's worker never exceed the cap either.
        assert!(bridge.worker_stats()[1].agents <= 2);
    }
    // The oldest ones were hibernated to make room, the newest stay live.
    assert!(agents[0].is_hibernated() && agents[1].is_hibernated());
    assert!(!agents[3].is_hibernated());
    // Each comes back with its own history, in any order, still under the cap.
    for i in [0, 3, 1, 2, 0] {
        let history = agents[i].history().await.unwrap();
        assert!(
            history
                .iter()
                .any(|s| s.content.contains(&format!("I am agent {i}"))),
            "agent {i}"
        );
        assert!(bridge.pool_stats()[1].live_agents <= 2);
    }
    let stats = &bridge.pool_stats()[1];
    assert_eq!(stats.live_agents + stats.hibernated_agents, 4);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_is_reopened_after_a_restart_listed_and_deleted() {
    let data = tempfile::tempdir().unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let id = {
        let bridge = Bridge::start(config(&data)).await.unwrap();
        let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
        let (_, outcome) = collect(agent.chat("the first bridge was here").await.unwrap()).await;
        outcome.unwrap();
        let id = agent.conversation_id().to_owned();
        bridge.shutdown().await;
        id
    };
    // A new process (here: a new bridge on the same data directory).
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let listed = bridge.list_conversations().await.unwrap();
    assert!(listed.iter().any(|c| c.id == id), "{listed:?}");
    let agent = bridge.open_agent(&id, agent_config(&model)).await.unwrap();
    let history = agent.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|s| s.content.contains("the first bridge was here"))
    );
    agent.close().await.unwrap();

    bridge.delete_conversation(&id).await.unwrap();
    assert!(
        !bridge
            .list_conversations()
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
    let err = bridge
        .open_agent(&id, agent_config(&model))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownConversation { .. }), "{err}");
    let err = bridge
        .open_agent("not-a-conversation", agent_config(&model))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_is_active_in_one_agent_at_a_time() {
    let data = tempfile::tempdir().unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let first = Bridge::start(
        config(&data)
            .holder("first")
            .lease_wait(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let second = Bridge::start(
        config(&data)
            .holder("second")
            .lease_wait(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let agent = first.create_agent(agent_config(&model)).await.unwrap();
    let id = agent.conversation_id().to_owned();
    // Another bridge on the same data directory: busy, naming the holder.
    let err = second
        .open_agent(&id, agent_config(&model))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::ConversationBusy { holder, .. } if holder == "first"),
        "{err}"
    );
    // Another agent of the same bridge: busy too.
    let err = first
        .create_agent(agent_config(&model).conversation_id(&id))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConversationBusy { .. }), "{err}");
    // Hibernated, the conversation is free; and the hibernated agent now waits its turn.
    agent.disconnect().await.unwrap();
    let taken = second.open_agent(&id, agent_config(&model)).await.unwrap();
    let err = agent.history().await.unwrap_err();
    assert!(matches!(err, Error::ConversationBusy { .. }), "{err}");
    taken.close().await.unwrap();
    assert!(agent.history().await.is_ok());
    first.shutdown().await;
    second.shutdown().await;
}
