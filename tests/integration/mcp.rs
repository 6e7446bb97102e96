//! MCP servers through a real MCP server process (`tests/fixtures/mcp_server.py`, on the `mcp`
//! package the SDK brings): the model gets only the enabled tools, calls one, and its answer
//! comes back from the server; a disabled tool is never offered; the server's environment is
//! passed; and no MCP server runs without a safety policy.

use crate::common;

use std::sync::Arc;

use agy_bridge::{
    PolicyRule,
    sdk_config::McpServer,
    testing::{RecordedRequest, Reply, ScriptedModel},
};
use common::{agent_config, collect, start};
use serde_json::json;

/// The fixture server, run by the managed venv's interpreter.
async fn fixture(name: &str) -> McpServer {
    let venv = agy_bridge::setup::ensure(agy_bridge::PythonConfig::default(), None)
        .await
        .expect("the managed venv");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mcp_server.py");
    McpServer::stdio(name, venv.python.display().to_string())
        .arg(script)
        .env("MCP_TEST_NAME", "fixture-one")
        .force_all_tools_eager(true)
}

/// Names of the tools the model was offered, in the last request.
fn offered(model: &ScriptedModel) -> Vec<String> {
    model
        .requests()
        .last()
        .map(RecordedRequest::tool_names)
        .unwrap_or_default()
}

/// The scripted model's turn: after a tool result, "MCP said: <result>"; before, a call of the
/// offered tool whose name ends in `suffix` (MCP tools are offered as `mcp_<server>_<tool>`).
fn call_offered(req: &RecordedRequest, suffix: &str, args: serde_json::Value) -> Reply {
    if let Some(result) = req.tool_result() {
        return Reply::text(format!("MCP said: {result}"));
    }
    match req.tool_names().into_iter().find(|n| n.ends_with(suffix)) {
        Some(name) => Reply::tool_call(name, args),
        None => Reply::text(format!("no {suffix} tool offered")),
    }
}

/// One completed turn of an agent that may use `server` (every call allowed): its text.
async fn answer_with(
    bridge: &agy_bridge::Bridge,
    model: &ScriptedModel,
    server: agy_bridge::sdk_config::McpServer,
    prompt: &str,
) -> String {
    let agent = bridge
        .create_agent(
            agent_config(model)
                .mcp_server(server)
                .policy(PolicyRule::allow_all()),
        )
        .await
        .unwrap();
    let (text, outcome) = collect(agent.chat(prompt).await.unwrap()).await;
    outcome.unwrap();
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn only_enabled_mcp_tools_are_offered_and_a_call_reaches_the_real_server() {
    // Each turn: call the offered tool whose name ends in "add", then report its answer.
    let model = ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| {
        call_offered(req, "add", json!({"a": 2, "b": 40}))
    }))
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = agy_bridge::Bridge::start(common::config(&data))
        .await
        .unwrap();
    let server = fixture("arith").await.enabled_tools(["add", "whoami"]);
    let text = answer_with(&bridge, &model, server, "add 2 and 40").await;
    assert!(text.contains("42"), "{text}");
    let tools = offered(&model);
    assert!(tools.iter().any(|t| t.ends_with("add")), "{tools:?}");
    assert!(tools.iter().any(|t| t.ends_with("whoami")), "{tools:?}");
    assert!(!tools.iter().any(|t| t.contains("secret")), "{tools:?}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_mcp_tool_is_never_offered_and_the_server_gets_its_environment() {
    let model = ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| {
        call_offered(req, "whoami", json!({}))
    }))
    .await
    .unwrap();
    let (bridge, _, _data) = start().await;
    let server = fixture("named").await.disabled_tools(["secret"]);
    let text = answer_with(&bridge, &model, server, "who is there?").await;
    assert!(text.contains("fixture-one"), "{text}");
    let tools = offered(&model);
    assert!(tools.iter().any(|t| t.ends_with("add")), "{tools:?}");
    assert!(!tools.iter().any(|t| t.contains("secret")), "{tools:?}");

    // Without a policy, an MCP server is refused however it is given.
    let raw = serde_json::to_value(vec![fixture("raw").await]).unwrap();
    let err = bridge
        .create_agent(agent_config(&model).sdk_option("mcp_servers", raw))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MCP servers"), "{err}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_max_output_bytes_decides_whether_an_mcp_output_reaches_the_prompt() {
    let model = ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| {
        call_offered(req, "big", json!({}))
    }))
    .await
    .unwrap();
    let (bridge, _, _data) = start().await;
    // The harness keeps an output above the limit out of the prompt (saved to a file instead);
    // its default limit is below the 5,000 bytes of `big`.
    for (limit, whole) in [(Some(100_000), true), (Some(400), false), (None, false)] {
        let agent = bridge
            .create_agent(
                agent_config(&model)
                    .mcp_server(fixture("large").await)
                    .policy(PolicyRule::allow_all())
                    .capabilities(agy_bridge::sdk_config::Capabilities {
                        mcp_max_output_bytes: limit,
                        ..Default::default()
                    }),
            )
            .await
            .unwrap();
        let (text, outcome) = collect(agent.chat("make it big").await.unwrap()).await;
        outcome.unwrap();
        assert_eq!(
            text.contains("END"),
            whole,
            "limit {limit:?}: {} bytes",
            text.len()
        );
        if !whole {
            assert!(text.contains("was large"), "limit {limit:?}: {text}");
        }
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_name_mcp_tools_as_server_slash_tool() {
    // Each turn calls the offered tool whose name ends in the prompt's last word.
    let model = ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| {
        let wanted = req
            .last_user_prompt()
            .and_then(|p| p.split_whitespace().last().map(str::to_owned))
            .unwrap_or_default();
        let args = if wanted == "add" {
            json!({"a": 1, "b": 2})
        } else {
            json!({})
        };
        call_offered(req, &wanted, args)
    }))
    .await
    .unwrap();
    let (bridge, _, _data) = start().await;
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .mcp_server(fixture("arith").await)
                .policy(PolicyRule::deny_all())
                .policy(PolicyRule::allow("arith/add")),
        )
        .await
        .unwrap();
    let (text, outcome) = collect(agent.chat("please add").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains('3'), "allowed by arith/add: {text}");
    let (text, outcome) = collect(agent.chat("tell me the secret").await.unwrap()).await;
    outcome.unwrap();
    assert!(!text.contains("the secret is 42"), "denied: {text}");
    assert!(text.to_lowercase().contains("denied"), "{text}");
    bridge.shutdown().await;
}
