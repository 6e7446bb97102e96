//! Streamed chat end to end: real worker, real SDK, real localharness, scripted model.

use crate::common;

use std::time::Duration;

use agy_bridge::{ChatEvent, testing::Reply};
use common::{HANG, agent_config, collect, start};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn streamed_text_chat_end_to_end() {
    let (bridge, model, _data) = start().await;
    model.push(Reply::slow_text(
        ["Hello ", "from ", "the ", "model"],
        Duration::from_millis(30),
    ));
    // With the pinned SDK, agent start-up runs off the worker's event loop.
    assert!(bridge.worker_info().offloop_agent_start);
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    assert!(agent.harness_pid().is_some());
    assert!(agent.conversation_id().len() >= 32);

    let mut reply = agent.chat("Say hello").await.unwrap();
    let mut deltas = Vec::new();
    while let Some(event) = tokio::time::timeout(HANG, reply.next()).await.unwrap() {
        if let ChatEvent::Text { text } = event {
            deltas.push(text);
        }
    }
    let outcome = reply.finish().await.unwrap();
    assert_eq!(deltas.concat(), "Hello from the model");
    assert_eq!(outcome.text, "Hello from the model");
    let usage = outcome.usage.expect("usage is reported");
    assert!(usage.total_tokens.unwrap_or(0) > 0, "{usage:?}");

    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].last_user_prompt().as_deref(), Some("Say hello"));

    // The conversation is persisted where the bridge said it would be.
    let db = agent
        .save_dir()
        .join(format!("{}.db", agent.conversation_id()));
    assert!(db.exists(), "{} missing", db.display());
    agent.close().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_agents_chat_concurrently_on_one_worker() {
    let (bridge, model, _data) = start().await;
    let (a, b) = tokio::join!(
        bridge.create_agent(agent_config(&model)),
        bridge.create_agent(agent_config(&model))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.id(), b.id());
    assert_ne!(a.conversation_id(), b.conversation_id());
    for round in 0..3 {
        let (ra, rb) = tokio::join!(
            a.chat(format!("alpha {round}")),
            b.chat(format!("beta {round}"))
        );
        let ((ta, oa), (tb, ob)) = tokio::join!(collect(ra.unwrap()), collect(rb.unwrap()));
        assert_eq!(ta, format!("You said: alpha {round}"));
        assert_eq!(tb, format!("You said: beta {round}"));
        assert_eq!(oa.unwrap().text, ta);
        assert_eq!(ob.unwrap().text, tb);
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_turn_on_a_busy_agent_is_refused_clearly() {
    let (bridge, model, _data) = start().await;
    model.push(Reply::text("slow answer").delayed(Duration::from_secs(2)));
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let first = agent.chat("first").await.unwrap();
    // Give the first turn time to reach the worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = agent.chat("second").await.unwrap();
    let err = second.finish().await.unwrap_err();
    assert!(
        matches!(err, agy_bridge::Error::AgentBusy { ref agent_id } if agent_id == agent.id()),
        "{err}"
    );
    let (text, outcome) = collect(first).await;
    assert_eq!(text, "slow answer");
    outcome.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_response_cancels_the_turn_and_the_agent_stays_usable() {
    let (bridge, model, _data) = start().await;
    let words: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    model.push(Reply::slow_text(words, Duration::from_millis(50)));
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let mut reply = agent.chat("talk for a long time").await.unwrap();
    common::first_text(&mut reply).await;
    drop(reply);
    // The next turn works; with the old turn still running the SDK would block in send().
    let (text, outcome) = tokio::time::timeout(HANG, async {
        collect(agent.chat("again").await.unwrap()).await
    })
    .await
    .unwrap();
    outcome.unwrap();
    assert_eq!(text, "You said: again");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_agent_is_unknown() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let id = agent.id().to_owned();
    agent.close().await.unwrap();
    let err = bridge
        .call_raw(
            "agent/chat",
            serde_json::json!({"agent_id": id, "turn_id": 1, "prompt": "hi"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, agy_bridge::Error::UnknownAgent { ref agent_id } if *agent_id == id),
        "{err}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_model_times_out_or_is_cancelled_and_the_agent_stays_usable() {
    let data = tempfile::tempdir().unwrap();
    let bridge =
        agy_bridge::Bridge::start(common::config(&data).chat_timeout(Duration::from_secs(3)))
            .await
            .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();

    model.push(Reply::Stall);
    let err = tokio::time::timeout(HANG, agent.chat("hello?").await.unwrap().finish())
        .await
        .expect("the chat timeout fires")
        .unwrap_err();
    assert!(matches!(err, agy_bridge::Error::Timeout { .. }), "{err}");
    common::chat_ok(&agent, "still there?").await;

    model.push(Reply::Stall);
    let stalled = agent.chat("hello again?").await.unwrap();
    common::eventually("the stalled request reaches the model", || {
        model.requests().len() >= 3
    })
    .await;
    assert!(agent.cancel().await.unwrap());
    let err = tokio::time::timeout(HANG, stalled.finish())
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, agy_bridge::Error::Cancelled), "{err}");
    common::chat_ok(&agent, "and now?").await;
    bridge.shutdown().await;
}

/// `SlashCommand::Plan` reaches the harness, which hands it to the model as `/plan` before the
/// request; a prompt without it has none.
#[tokio::test(flavor = "multi_thread")]
async fn a_plan_slash_command_reaches_the_model() {
    use agy_bridge::{Part, SlashCommand};
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let prompt = vec![
        Part::SlashCommand(SlashCommand::Plan),
        Part::Text("Add a cache".into()),
    ];
    let (_, outcome) = collect(agent.chat(prompt).await.unwrap()).await;
    outcome.unwrap();
    common::chat_ok(&agent, "and then?").await;
    let prompts: Vec<String> = model
        .requests()
        .iter()
        .map(|r| r.last_user_prompt().unwrap_or_default())
        .collect();
    assert!(prompts[0].contains("/plan Add a cache"), "{prompts:?}");
    assert!(!prompts[1].contains("/plan"), "{prompts:?}");
    bridge.shutdown().await;
}
