//! Triggers and self-started turns through the real SDK and harness: a timer, a file watcher
//! and `Agent::notify` each make the agent start a turn on its own, which arrives on
//! `Agent::self_started_turns` with its steps; an agent with triggers is not hibernated for
//! being idle.

use std::time::Duration;

use agy_bridge::{Bridge, PoolConfig, SelfStartedTurn, sdk_config::Trigger};
use futures::StreamExt;

use crate::common::{HANG, agent_config, config, start};

/// The next self-started turn whose steps mention `needle`.
async fn turn_mentioning(
    turns: &mut (impl futures::Stream<Item = SelfStartedTurn> + Unpin),
    needle: &str,
) -> SelfStartedTurn {
    tokio::time::timeout(HANG, async {
        loop {
            let turn = turns.next().await.expect("the agent is still there");
            if turn.steps.iter().any(|s| s.content.contains(needle)) {
                return turn;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no self-started turn mentioning {needle:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_a_file_watcher_and_notify_start_turns_that_arrive_as_typed_events() {
    let (bridge, model, data) = start().await;
    let inbox = data.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .trigger(Trigger::every(
                    Duration::from_millis(300),
                    "Check the queue.",
                ))
                .trigger(Trigger::on_file_change(&inbox, "New files arrived:")),
        )
        .await
        .unwrap();
    let mut turns = agent.self_started_turns();

    // The timer: the model is told, and its answer is the turn's text.
    let turn = turn_mentioning(&mut turns, "Check the queue.").await;
    assert!(
        turn.text().is_some_and(|t| t.contains("Check the queue.")),
        "{turn:?}"
    );

    // A file dropped into the watched directory: the message names it.
    std::fs::write(inbox.join("order-1042.json"), "{}").unwrap();
    let turn = turn_mentioning(&mut turns, "order-1042.json").await;
    assert!(
        turn.steps
            .iter()
            .any(|s| s.content.contains("New files arrived:")),
        "{turn:?}"
    );

    // A trigger of the application's own.
    agent.notify("A message from Rust.").await.unwrap();
    turn_mentioning(&mut turns, "A message from Rust.").await;
    // The model was told (its request may carry several queued messages: look at all).
    let told = model.requests().iter().any(|r| {
        r.messages()
            .iter()
            .any(|m| m["role"] != "assistant" && m.to_string().contains("A message from Rust."))
    });
    assert!(told, "the model never saw the message");

    // The agent still chats as usual between its own turns.
    let mut reply = agent.chat("and you?").await;
    while let Err(agy_bridge::Error::AgentBusy { .. }) = reply {
        tokio::time::sleep(Duration::from_millis(50)).await;
        reply = agent.chat("and you?").await;
    }
    reply.unwrap().finish().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_with_triggers_is_not_hibernated_for_being_idle() {
    let data = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(200);
    let bridge = Bridge::start(config(&data).pool(PoolConfig::new("idle").hibernate_after(idle)))
        .await
        .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let watched = bridge
        .create_agent(
            agent_config(&model)
                .pool("idle")
                .trigger(Trigger::every(Duration::from_secs(3600), "Hourly.")),
        )
        .await
        .unwrap();
    let plain = bridge
        .create_agent(agent_config(&model).pool("idle"))
        .await
        .unwrap();
    crate::common::eventually("the plain agent hibernates", || plain.is_hibernated()).await;
    tokio::time::sleep(idle * 3).await;
    assert!(!watched.is_hibernated(), "its trigger would have stopped");
    bridge.shutdown().await;
}
