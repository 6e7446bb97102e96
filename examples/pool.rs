//! A pool serving many agents at once: two named pools with their own settings, 8 agents
//! chatting concurrently with a Rust tool, and the per-worker statistics.
//!
//! `cargo run --example pool`

use std::sync::Arc;

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ModelConfig, PoolConfig, RestartPolicy, llm_tool,
    testing::{RecordedRequest, Reply, ScriptedModel},
};
use serde_json::json;

/// Counts the words in a text.
#[llm_tool]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

const PROMPTS: [&str; 8] = [
    "How many words are in: the quick brown fox",
    "How many words are in: to be or not to be",
    "How many words are in: hello",
    "How many words are in: a b c d e f g h",
    "How many words are in: Rust and Python, out of process",
    "How many words are in: one two",
    "How many words are in: agents in a pool share workers",
    "How many words are in: count the words in this line",
];

#[tokio::main]
async fn main() -> agy_bridge::Result<()> {
    // Offline, a scripted model asks for the tool and then reports its answer.
    let (model, _offline) = if std::env::var("GEMINI_API_KEY").is_ok() {
        (ModelConfig::gemini_from_env()?, None)
    } else {
        eprintln!("(offline: a scripted model plays the model; set GEMINI_API_KEY for Gemini)");
        let server = ScriptedModel::with_responder(Arc::new(|req: &RecordedRequest| {
            match req.tool_result() {
                Some(result) => {
                    // The harness wraps the tool's JSON in a short report; take the number.
                    let count = result
                        .rsplit("\"result\": ")
                        .next()
                        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                        .unwrap_or("?")
                        .to_owned();
                    Reply::text(format!("That text has {count} words."))
                }
                None => {
                    let prompt = req.last_user_prompt().unwrap_or_default();
                    let text = prompt.split_once(": ").map_or("", |(_, t)| t);
                    Reply::tool_call("word_count", json!({ "text": text }))
                }
            }
        }))
        .await?;
        let model = ModelConfig::openai_compatible(server.base_url(), "scripted");
        (model, Some(server))
    };

    // The default pool (one worker) for interactive agents; a "batch" pool of two workers with
    // at most 4 agents each, a warm spare for fast crash recovery, recycled every 100 turns.
    let bridge = Bridge::start(
        BridgeConfig::default().pool(
            PoolConfig::new("batch")
                .workers(2)
                .max_agents_per_worker(4)
                .restart(RestartPolicy::default().warm_spare(true))
                .recycle_after_turns(100),
        ),
    )
    .await?;

    let agents = futures::future::try_join_all(PROMPTS.iter().map(|_| {
        bridge.create_agent(
            AgentConfig::new(model.clone())
                .pool("batch")
                .system_instructions("Use the word_count tool, then give the number.")
                .tool(WordCount),
        )
    }))
    .await?;

    // All eight turns run at once, spread over the pool's two workers.
    let answers = futures::future::try_join_all(agents.iter().zip(PROMPTS).map(
        |(agent, prompt)| async move {
            let outcome = agent.chat(prompt).await?.finish().await?;
            let pid = agent.worker_pid().unwrap_or_default();
            Ok::<_, agy_bridge::Error>((agent.id().to_owned(), pid, outcome.text))
        },
    ))
    .await?;
    for (id, pid, text) in answers {
        println!("{id} (worker {pid}): {}", text.replace('\n', " "));
    }

    println!("\npool     worker  agents  turns  worker RSS  harnesses RSS");
    for s in bridge.worker_stats() {
        let mib = |b: Option<u64>| b.map_or_else(|| "?".into(), |b| format!("{} MiB", b >> 20));
        println!(
            "{:<8} {:<7} {:<7} {:<6} {:<11} {}",
            s.pool,
            s.worker_pid,
            s.agents,
            s.turns,
            mib(s.rss_bytes),
            mib(s.harness_rss_bytes)
        );
    }

    futures::future::try_join_all(agents.into_iter().map(agy_bridge::Agent::close)).await?;
    bridge.shutdown().await;
    Ok(())
}
