//! The conversation API on the real SDK: history, counters, send/wait, cancel, structured
//! output, content, errors with recovery, quota, resume and delete, wake-ups.

use crate::common;

use std::time::{Duration, Instant};

use agy_bridge::{
    AgentErrorKind, Content, Error, ModelConfig,
    testing::{Reply, ScriptedModel},
    tools::FnTool,
};
use common::{HANG, agent_config, collect, start};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

fn noop_tool() -> FnTool {
    FnTool::new(
        "lookup",
        "Looks something up.",
        json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        |args, _| async move { Ok(json!(format!("found {}", args["q"].as_str().unwrap_or("")))) },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn history_counters_and_clear_after_a_tool_turn() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).tool(noop_tool()))
        .await
        .unwrap();
    let before = agent.conversation_state().await.unwrap();
    assert_eq!(before.turn_count, 0);
    assert!(before.is_idle);

    model.push(Reply::tool_call("lookup", json!({"q": "moon"})));
    model.push(Reply::text("The moon was found."));
    let (_, outcome) = collect(agent.chat("find the moon").await.unwrap()).await;
    let outcome = outcome.unwrap();

    let history = agent.history().await.unwrap();
    let mut keys: Vec<(String, u32, bool)> = history
        .iter()
        .map(|s| {
            (
                s.trajectory_id.clone(),
                s.step_index,
                s.tool_calls.is_empty(),
            )
        })
        .collect();
    let len = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), len, "one entry per step: {history:#?}");
    assert!(
        history
            .iter()
            .any(|s| s.source == "USER" && s.content.contains("find the moon"))
    );
    assert!(history.iter().any(|s| {
        s.tool_calls
            .iter()
            .any(|c| c.name == "lookup" && c.args["q"] == "moon")
    }));
    let reply = history
        .iter()
        .find(|s| s.is_complete_response == Some(true))
        .expect("a reply step");
    assert_eq!(reply.content, "The moon was found.");

    let state = agent.conversation_state().await.unwrap();
    assert_eq!(state.turn_count, 1);
    assert_eq!(state.last_response.as_deref(), Some("The moon was found."));
    assert!(state.is_idle);
    assert!(state.compaction_indices.is_empty());
    let total = state.total_usage.unwrap();
    assert!(total.total_tokens.unwrap() > 0);
    assert_eq!(
        state.last_turn_usage, outcome.usage,
        "the turn's usage is the last turn's usage"
    );
    assert_eq!(agent.turn_count().await.unwrap(), 1);

    agent.clear_history().await.unwrap();
    assert!(agent.history().await.unwrap().is_empty());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_then_wait_for_idle_returns_the_outcome() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    model.push(Reply::text("background answer").delayed(Duration::from_millis(300)));
    agent.send("work in the background").await.unwrap();
    // A streaming chat while the sent turn runs is refused as busy.
    let busy = agent
        .chat("me too")
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(matches!(busy, Error::AgentBusy { .. }), "{busy}");
    let outcome = agent
        .wait_for_idle()
        .await
        .unwrap()
        .expect("the sent turn's outcome");
    assert_eq!(outcome.text, "background answer");
    assert!(
        agent.wait_for_idle().await.unwrap().is_none(),
        "nothing left to wait for"
    );
    assert_eq!(
        agent.last_response().await.unwrap().as_deref(),
        Some("background answer")
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_streaming_reply_and_the_agent_goes_on() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    model.push(Reply::slow_text(
        (0..300).map(|i| format!("w{i} ")),
        Duration::from_millis(40),
    ));
    let mut reply = agent.chat("talk").await.unwrap();
    common::first_text(&mut reply).await;
    assert!(agent.cancel().await.unwrap(), "a turn was running");
    let err = common::finish_within(reply).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    common::chat_ok(&agent, "next").await;
    bridge.shutdown().await;
}

/// The weather, as structured output.
#[derive(Debug, Deserialize, JsonSchema, PartialEq)]
struct Weather {
    /// City name.
    city: String,
    /// Temperature in °C.
    celsius: i32,
}

#[tokio::test(flavor = "multi_thread")]
async fn structured_output_decodes_into_a_rust_struct() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).response_schema::<Weather>())
        .await
        .unwrap();
    model.push(Reply::tool_call(
        "finish",
        json!({"city": "Oslo", "celsius": 21}),
    ));
    let (_, outcome) = collect(agent.chat("weather as JSON").await.unwrap()).await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.structured_output.as_ref().unwrap()["city"], "Oslo");
    let weather: Weather = agent
        .structured_output()
        .await
        .unwrap()
        .expect("structured output");
    assert_eq!(
        weather,
        Weather {
            city: "Oslo".into(),
            celsius: 21
        }
    );
    let finish = model.requests()[0]
        .tools()
        .into_iter()
        .find(|t| t["name"] == "finish")
        .expect("finish tool");
    assert_eq!(
        finish["parameters"]["properties"]["celsius"]["type"],
        "integer"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_in_the_prompt_reaches_the_model() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    // A 1x1 PNG.
    let png: Vec<u8> = vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0xF8,
        0xCF, 0xC0, 0xF0, 0x1F, 0x00, 0x05, 0x00, 0x01, 0xFF, 0x89, 0x99, 0x3D, 0x1D, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    let (_, outcome) = collect(
        agent
            .chat(Content::text_and_media(
                "What is in this picture?",
                png.clone(),
                "image/png",
            ))
            .await
            .unwrap(),
    )
    .await;
    outcome.unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let body = model.requests()[0].body.to_string();
    assert!(
        body.contains(&b64),
        "the image bytes reach the model request"
    );
    assert!(body.contains("What is in this picture?"));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_is_a_typed_error_and_the_agent_recovers_with_its_history() {
    let (bridge, model, _data) = start().await;
    // The model gateway's retries off: this is about the error itself.
    let agent = bridge
        .create_agent(agent_config(&model).model_retry(agy_bridge::ModelRetry::none()))
        .await
        .unwrap();
    let (_, first) = collect(agent.chat("remember the number 7").await.unwrap()).await;
    first.unwrap();
    model.push(Reply::http_error(500, "internal trouble"));
    let (_, failed) = collect(agent.chat("this fails").await.unwrap()).await;
    let err = failed.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: AgentErrorKind::ModelHttp,
                http_status: Some(500),
                ..
            }
        ),
        "{err}"
    );
    // The SDK session died with the error; the worker re-opened it (RESUME).
    for prompt in ["still there?", "and again?"] {
        let (text, outcome) = collect(agent.chat(prompt).await.unwrap()).await;
        outcome.unwrap();
        assert_eq!(text, format!("You said: {prompt}"));
    }
    let history = agent.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|s| s.content.contains("remember the number 7")),
        "history survives"
    );
    let last = model.requests().pop().unwrap().body.to_string();
    assert!(
        last.contains("remember the number 7"),
        "the model still sees the earlier turns"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_backs_off_the_key_then_succeeds() {
    let (bridge, model, _data) = start().await;
    // The model gateway's retries off: this is about the error itself.
    let agent = bridge
        .create_agent(agent_config(&model).model_retry(agy_bridge::ModelRetry::none()))
        .await
        .unwrap();
    model.push(Reply::http_error(
        429,
        r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [{"retryDelay": "2s"}]}}"#,
    ));
    let (_, failed) = collect(agent.chat("hello").await.unwrap()).await;
    let failed_at = Instant::now();
    let err = failed.unwrap_err();
    assert!(
        matches!(err, Error::Agent { kind: AgentErrorKind::Quota, retry_after: Some(d), .. } if d == Duration::from_secs(2)),
        "{err}"
    );
    let key = ModelConfig::openai_compatible(model.base_url(), "scripted").quota_key();
    assert!(
        !bridge.quota().state_for_key(&key).remaining().is_zero(),
        "the key is in backoff"
    );
    let requests_before = model.requests().len();
    common::chat_ok(&agent, "hello again").await;
    // Ordering, not timing: the retry reached the model only after the backoff ran out.
    assert!(failed_at.elapsed() >= Duration::from_millis(1900));
    assert_eq!(model.requests().len(), requests_before + 1);
    assert!(
        bridge.quota().state_for_key(&key).remaining().is_zero(),
        "a success clears it"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_typed_and_the_agent_stays_usable() {
    let (bridge, _model, _data) = start().await;
    // Reserve a port, then close it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = bridge
        .create_agent(agy_bridge::AgentConfig::new(
            ModelConfig::openai_compatible(format!("http://127.0.0.1:{port}/v1"), "nobody"),
        ))
        .await
        .unwrap();
    let (_, outcome) = collect(agent.chat("anyone?").await.unwrap()).await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: AgentErrorKind::ModelUnreachable,
                ..
            }
        ),
        "{err}"
    );
    // The session was re-opened: the agent answers API calls and takes new turns.
    assert!(agent.is_idle().await.unwrap());
    let (_, again) = collect(agent.chat("anyone now?").await.unwrap()).await;
    assert!(matches!(
        again.unwrap_err(),
        Error::Agent {
            kind: AgentErrorKind::ModelUnreachable,
            ..
        }
    ));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_resume_and_delete() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let (_, o) = collect(agent.chat("first words").await.unwrap()).await;
    o.unwrap();
    let harness = agent.harness_pid().unwrap();
    agent.disconnect().await.unwrap();
    assert!(
        common::wait_gone(harness, HANG).await,
        "disconnect stops the harness"
    );
    assert!(agent.is_hibernated());
    assert_eq!(agent.harness_pid(), None);
    // Any call activates a hibernated agent again, with its history.
    let history = agent.history().await.unwrap();
    assert!(history.iter().any(|s| s.content.contains("first words")));
    assert!(agent.harness_pid().is_some_and(|pid| pid != harness));
    common::chat_ok(&agent, "after the break").await;
    assert!(
        agent
            .history()
            .await
            .unwrap()
            .iter()
            .any(|s| s.content.contains("first words"))
    );

    // Another agent resumes the same conversation by id.
    let id = agent.conversation_id().to_owned();
    agent.close().await.unwrap();
    let resumed = bridge
        .create_agent(agent_config(&model).conversation_id(&id))
        .await
        .unwrap();
    let history = resumed.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|s| s.content.contains("after the break")),
        "{history:#?}"
    );
    let total = resumed.total_usage().await.unwrap();
    assert!(
        total.total_tokens.unwrap_or(0) > 0,
        "usage is restored on resume"
    );

    // delete removes the files; a new agent under the same id starts empty.
    let db = resumed.save_dir().join(format!("{id}.db"));
    assert!(db.exists());
    resumed.delete().await.unwrap();
    assert!(!db.exists(), "conversation database removed");
    let fresh = bridge
        .create_agent(agent_config(&model).conversation_id(&id))
        .await
        .unwrap();
    assert!(fresh.history().await.unwrap().is_empty());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_wakeup_sees_a_turn_the_agent_started_itself() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    assert!(
        !agent
            .wait_for_wakeup(Duration::from_millis(200))
            .await
            .unwrap(),
        "nothing happened"
    );
    model.push(Reply::text("reacting to the trigger"));
    bridge
        .call_raw(
            "worker/debug",
            json!({"action": "trigger", "agent_id": agent.id(), "text": "timer fired"}),
        )
        .await
        .unwrap();
    assert!(agent.wait_for_wakeup(HANG).await.unwrap());
    let history = agent.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|s| s.content.contains("reacting to the trigger")),
        "the self-started turn's steps were kept: {history:#?}"
    );
    agent.signal_idle().await.unwrap();
    common::chat_ok(&agent, "and now me").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_config_values_name_the_field() {
    let (bridge, model, _data) = start().await;
    let err = bridge
        .create_agent(
            agent_config(&model).sdk_option("compaction_config", json!({"token_threshold": -5})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("token_threshold")),
        "{err}"
    );
    let err = bridge
        .create_agent(agent_config(&model).conversation_id("short"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("conversation_id")),
        "{err}"
    );
    let _ = ScriptedModel::start; // the module is used above through `start`
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stream_carries_steps_and_rust_tool_results_in_order() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).tool(noop_tool()))
        .await
        .unwrap();
    model.push(Reply::tool_call("lookup", json!({"q": "sun"})));
    model.push(Reply::text("Found the sun."));
    let mut reply = agent.chat("find the sun").await.unwrap();
    let mut kinds = Vec::new();
    while let Some(event) = tokio::time::timeout(HANG, reply.next()).await.unwrap() {
        match event {
            agy_bridge::ChatEvent::ToolCall { name, .. } => kinds.push(format!("call {name}")),
            agy_bridge::ChatEvent::ToolResult {
                name,
                result,
                error,
            } => {
                assert_eq!(result, Some(json!("found sun")));
                assert!(error.is_none());
                kinds.push(format!("result {name}"));
            }
            agy_bridge::ChatEvent::Step { step } => {
                kinds.push(format!("step {} {}", step.source, step.kind))
            }
            agy_bridge::ChatEvent::Text { .. }
                if kinds.last().map(String::as_str) != Some("text") =>
            {
                kinds.push("text".into());
            }
            _ => {}
        }
    }
    reply.finish().await.unwrap();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| x.starts_with(k))
            .unwrap_or_else(|| panic!("{k} missing: {kinds:?}"))
    };
    assert!(pos("step USER") < pos("call lookup"), "{kinds:?}");
    assert!(pos("call lookup") < pos("result lookup"), "{kinds:?}");
    assert!(pos("result lookup") < pos("text"), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k == "step MODEL TEXT_RESPONSE"),
        "{kinds:?}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn try_shutdown_closes_the_agent_without_waiting() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let harness = agent.harness_pid().unwrap();
    assert_eq!(bridge.stats().agents, 1);
    agent.try_shutdown();
    assert!(matches!(
        agent.chat("too late").await,
        Err(Error::UnknownAgent { .. })
    ));
    assert!(
        common::wait_gone(harness, HANG).await,
        "the agent's harness stops"
    );
    common::eventually("the agent was never removed", || bridge.stats().agents == 0).await;
    bridge.shutdown().await;
}
