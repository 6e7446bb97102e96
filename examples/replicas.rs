//! Two replicas of a service sharing one PostgreSQL: a conversation started on one continues on
//! the other, the way a service running several pods behind a load balancer works.
//!
//! `cargo run --example replicas --features postgres`
//! (`AGY_BRIDGE_DATABASE_URL` names the database; default: `postgres://postgres@127.0.0.1/test`.)
//!
//! Each replica has its own data directory, as pods on different nodes do: the conversation's
//! state travels through the database. Replica A starts the conversation, then drains (what a
//! rolling deploy does before stopping a pod: every agent hibernates, its state is saved and
//! its lease released); replica B opens the conversation by id and carries on.

#[path = "common/mod.rs"]
mod common;

use agy_bridge::{AgentConfig, Bridge, BridgeConfig, StoreConfig, testing::Reply};

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    let url = std::env::var("AGY_BRIDGE_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let (model, _offline) = common::model(vec![
        Reply::text("Nice to meet you, Ada."),
        Reply::text("Your name is Ada: you told me on the other replica."),
    ])
    .await;
    let store = StoreConfig::postgres(url).schema("agy_bridge_example");
    let replica = |name: &str, data: &std::path::Path| {
        BridgeConfig::default()
            .data_dir(data)
            .store(store.clone())
            .holder(name)
    };
    let (data_a, data_b) = (tempdir("a")?, tempdir("b")?);

    let a = Bridge::start(replica("replica-a", &data_a)).await?;
    let agent = a.create_agent(AgentConfig::new(model.clone())).await?;
    let id = agent.conversation_id().to_owned();
    let outcome = agent.chat("Hello, my name is Ada.").await?.finish().await?;
    println!("replica-a: {}", outcome.text);
    a.drain().await?; // hibernate everything: saved to PostgreSQL, lease released
    println!("replica-a drained; conversation {id} is free");

    let b = Bridge::start(replica("replica-b", &data_b)).await?;
    let agent = b.open_agent(&id, AgentConfig::new(model)).await?;
    let outcome = agent.chat("What is my name?").await?.finish().await?;
    println!("replica-b: {}", outcome.text);
    let earlier = agent
        .history()
        .await?
        .into_iter()
        .any(|step| step.content.contains("my name is Ada"));
    println!("replica-b sees the turn replica-a ran: {earlier}");
    agent.close().await?;

    for c in b.list_conversations().await? {
        println!(
            "stored: {} version {:?}, {} bytes",
            c.id,
            c.version,
            c.size_bytes.unwrap_or(0)
        );
    }
    b.delete_conversation(&id).await?;
    a.shutdown().await;
    b.shutdown().await;
    std::fs::remove_dir_all(&data_a)?;
    std::fs::remove_dir_all(&data_b)?;
    Ok(())
}

/// A private directory for one replica's data.
fn tempdir(name: &str) -> std::io::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("agy-bridge-replica-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
