//! Test your own agent offline and deterministically: script the model, then assert on what it
//! received (system prompt, tool schemas, tool results). Copy this into a `#[tokio::test]`.
//!
//! `cargo run --example testing_your_agent`

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ModelConfig, llm_tool,
    testing::{Reply, ScriptedModel},
};
use serde_json::json;

/// Converts degrees Celsius to Fahrenheit.
#[llm_tool]
fn to_fahrenheit(celsius: f64) -> f64 {
    celsius * 9.0 / 5.0 + 32.0
}

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    let model = ScriptedModel::start().await?;
    model.push(Reply::tool_call("to_fahrenheit", json!({"celsius": 100})));
    model.push(Reply::text("100 °C is 212 °F."));

    let bridge = Bridge::start(BridgeConfig::default()).await?;
    let agent = bridge
        .create_agent(
            AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "test"))
                .system_instructions("You convert temperatures.")
                .tool(ToFahrenheit),
        )
        .await?;
    let outcome = agent
        .chat("How hot is boiling water in °F?")
        .await?
        .finish()
        .await?;

    assert_eq!(outcome.text, "100 °C is 212 °F.");
    let requests = model.requests();
    assert!(
        requests[0]
            .system_prompt()
            .unwrap_or_default()
            .contains("You convert temperatures.")
    );
    assert!(
        requests[0]
            .tools()
            .iter()
            .any(|t| t["name"] == "to_fahrenheit")
    );
    assert!(
        requests[1]
            .tool_result()
            .unwrap_or_default()
            .contains("212")
    );
    println!("all assertions passed: {}", outcome.text);

    agent.close().await?;
    bridge.shutdown().await;
    Ok(())
}
