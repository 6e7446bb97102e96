//! Shared set-up for the integration tests: a bridge on the real worker, SDK and harness.
#![allow(dead_code)]

use std::time::Duration;

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ChatEvent, ChatResponse, ModelConfig, testing::ScriptedModel,
};
use futures::StreamExt;

/// A loose bound that only tells a hang from a slow, shared machine.
pub(crate) const HANG: Duration = Duration::from_secs(60);

/// A bridge config with its own data directory and the worker's failure injection enabled.
pub(crate) fn config(data: &tempfile::TempDir) -> BridgeConfig {
    BridgeConfig::default()
        .data_dir(data.path())
        .debug_methods(true)
}

/// Starts a bridge and a scripted model.
pub(crate) async fn start() -> (Bridge, ScriptedModel, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let bridge = Bridge::start(config(&data)).await.expect("bridge starts");
    let model = ScriptedModel::start().await.expect("model starts");
    (bridge, model, data)
}

/// An agent config for the scripted model.
pub(crate) fn agent_config(model: &ScriptedModel) -> AgentConfig {
    AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "scripted"))
}

/// Reads a whole response: the streamed text and the outcome's result.
pub(crate) async fn collect(
    mut reply: ChatResponse,
) -> (String, agy_bridge::Result<agy_bridge::ChatOutcome>) {
    let mut text = String::new();
    while let Some(event) = reply.next().await {
        if let ChatEvent::Text { text: t } = event {
            text.push_str(&t);
        }
    }
    (text, reply.finish().await)
}

/// Runs a turn that must complete with the scripted model's default echo of `prompt`.
pub(crate) async fn chat_ok(agent: &agy_bridge::Agent, prompt: &str) {
    let (text, outcome) = collect(agent.chat(prompt).await.expect("the turn starts")).await;
    outcome.expect("the turn completes");
    assert_eq!(text, format!("You said: {prompt}"));
}

/// Whether a process is gone (or a zombie waiting to be reaped).
pub(crate) fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Waits until `pid` is gone or `within` passes.
pub(crate) async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    process_gone(pid)
}

/// Waits until the model is streaming: the first text delta of `reply` (step events come
/// earlier, before the model is even asked).
pub(crate) async fn first_text(reply: &mut ChatResponse) {
    let wait = async {
        while let Some(event) = reply.next().await {
            if matches!(event, ChatEvent::Text { .. }) {
                return;
            }
        }
        panic!("the turn ended without text");
    };
    tokio::time::timeout(HANG, wait)
        .await
        .expect("text within the hang bound");
}

/// Drains the rest of `reply` and returns its outcome, within the hang bound.
pub(crate) async fn finish_within(
    mut reply: ChatResponse,
) -> agy_bridge::Result<agy_bridge::ChatOutcome> {
    tokio::time::timeout(HANG, async {
        while reply.next().await.is_some() {}
        reply.finish().await
    })
    .await
    .expect("the turn must end, not hang")
}

/// Polls `condition` until it holds; panics with `what` past the hang bound.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + HANG;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The scripted model's call of the `run_command` built-in: `env`, printing the environment
/// of the commands the agent runs, in `cwd`.
pub(crate) fn print_environment(cwd: &std::path::Path) -> agy_bridge::testing::Reply {
    agy_bridge::testing::Reply::tool_call(
        "run_command",
        serde_json::json!({
            "CommandLine": "env",
            "Cwd": cwd,
            "WaitMsBeforeAsync": 5000,
            "toolSummary": "Environment",
            "toolAction": "Printing the environment",
        }),
    )
}

/// `config` with subagents enabled (on top of `capabilities`), the SDK built-in `tool` that
/// uses them (`invoke_subagent`, `run_workflow`) and a policy allowing it.
pub(crate) fn with_subagents(
    config: AgentConfig,
    tool: &str,
    capabilities: agy_bridge::sdk_config::Capabilities,
) -> AgentConfig {
    config
        .capabilities(agy_bridge::sdk_config::Capabilities {
            enable_subagents: Some(true),
            ..capabilities
        })
        .builtin_tool(tool)
        .policy(agy_bridge::PolicyRule::allow_all())
}
