//! Start a bridge, create an agent, stream one reply.
//!
//! `cargo run --example quickstart`

#[path = "common/mod.rs"]
mod common;

use agy_bridge::{AgentConfig, Bridge, BridgeConfig, ChatEvent, testing::Reply};
use futures::StreamExt;
use std::io::Write;

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    let (model, _offline) = common::model(vec![Reply::text(
        "Hello! I am an Antigravity agent, driven from Rust.",
    )])
    .await;
    let bridge = Bridge::start(BridgeConfig::default()).await?;
    let agent = bridge
        .create_agent(AgentConfig::new(model).system_instructions("Answer in one sentence."))
        .await?;

    let mut reply = agent.chat("Introduce yourself.").await?;
    while let Some(event) = reply.next().await {
        if let ChatEvent::Text { text } = event {
            print!("{text}");
            std::io::stdout().flush().ok();
        }
    }
    let outcome = reply.finish().await?;
    println!(
        "\n[{} tokens]",
        outcome.usage.and_then(|u| u.total_tokens).unwrap_or(0)
    );

    agent.close().await?;
    bridge.shutdown().await;
    Ok(())
}
