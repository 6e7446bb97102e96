//! Rust tools: a `#[llm_tool]` function with typed arguments, and per-agent state shared by
//! all tool calls of an agent through `ToolContext`.
//!
//! `cargo run --example tools`

#[path = "common/mod.rs"]
mod common;

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ChatEvent, ToolContext, llm_tool, testing::Reply,
};
use futures::StreamExt;
use serde_json::json;

/// Gets the weather forecast for a city.
#[llm_tool]
async fn get_weather(
    city: String,
    #[describe("Days ahead, 0 = today.")] days: Option<u32>,
) -> Result<String, String> {
    if city.trim().is_empty() {
        return Err("city must not be empty".into());
    }
    Ok(format!(
        "{city}: sunny, 21 °C (in {} days)",
        days.unwrap_or(0)
    ))
}

/// Adds an item to this agent's shopping list and returns the whole list.
#[llm_tool]
fn add_to_list(item: String, ctx: ToolContext) -> Vec<String> {
    let mut list: Vec<String> = ctx.get("list").unwrap_or_default();
    list.push(item);
    ctx.set("list", &list);
    list
}

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    let (model, _offline) = common::model(vec![
        Reply::tool_call("get_weather", json!({"city": "Oslo", "days": 1})),
        Reply::text("Tomorrow Oslo will be sunny at 21 °C."),
        Reply::tool_call("add_to_list", json!({"item": "sunscreen"})),
        Reply::text("Added sunscreen to your list."),
    ])
    .await;
    let bridge = Bridge::start(BridgeConfig::default()).await?;
    let agent = bridge
        .create_agent(AgentConfig::new(model).tool(GetWeather).tool(AddToList))
        .await?;

    for prompt in [
        "What's the weather in Oslo tomorrow?",
        "Put sunscreen on my shopping list.",
    ] {
        println!("> {prompt}");
        let mut reply = agent.chat(prompt).await?;
        while let Some(event) = reply.next().await {
            match event {
                ChatEvent::ToolCall { name, args, .. } => println!("  [calls {name} {args}]"),
                ChatEvent::ToolResult {
                    name,
                    result,
                    error,
                } => {
                    println!(
                        "  [{name} → {}]",
                        result.map_or_else(|| error.unwrap_or_default(), |r| r.to_string())
                    );
                }
                ChatEvent::Text { text } => print!("{text}"),
                _ => {}
            }
        }
        reply.finish().await?;
        println!();
    }
    agent.close().await?;
    bridge.shutdown().await;
    Ok(())
}
