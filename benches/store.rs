//! Hibernation and the conversation store, measured in one run: a turn on a hibernated agent
//! (its harness restarted, its state restored) against a warm turn, with the local store and
//! with PostgreSQL; what hibernated conversations cost in memory; snapshot size and save time
//! against conversation length.
//!
//! `cargo bench --bench store --features postgres` (or `scripts/bench`). Needs the PostgreSQL
//! server at `AGY_BRIDGE_TEST_DATABASE_URL` (default: the local `test` database).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ModelConfig, StoreConfig, testing::ScriptedModel,
};
use support::median;

mod support;

const TURNS: usize = 10;
const HIBERNATED: usize = 100;
const LIVE_CAP: usize = 4;
const LENGTHS: [usize; 5] = [1, 5, 10, 20, 40];

fn database_url() -> String {
    std::env::var("AGY_BRIDGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Captures the bridge's `saved` events (target `agy_bridge::store`).
#[derive(Clone, Default)]
struct Saves(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Saves {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Saves {
    /// `(compressed bytes, raw bytes, elapsed µs)` of the last save.
    fn last(&self) -> (f64, f64, f64) {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("saved"))
            .expect("a save");
        let field = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        (
            field("compressed_bytes"),
            field("raw_bytes"),
            field("elapsed_us"),
        )
    }
}

fn rss_bytes() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0
}

async fn chat(agent: &agy_bridge::Agent, prompt: &str) -> f64 {
    let started = Instant::now();
    agent.chat(prompt).await.unwrap().finish().await.unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

/// Warm and resumed turn medians (ms) with `store`.
async fn resumed_vs_warm(model: &ScriptedModel, store: StoreConfig) -> (f64, f64) {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()).store(store))
        .await
        .unwrap();
    let agent = bridge
        .create_agent(AgentConfig::new(ModelConfig::openai_compatible(
            model.base_url(),
            "m",
        )))
        .await
        .unwrap();
    chat(&agent, "warm-up").await;
    let mut warm = Vec::new();
    for i in 0..TURNS {
        warm.push(chat(&agent, &format!("warm {i}")).await);
    }
    let mut resumed = Vec::new();
    for i in 0..TURNS {
        agent.disconnect().await.unwrap();
        resumed.push(chat(&agent, &format!("resumed {i}")).await);
    }
    agent.close().await.unwrap();
    bridge.shutdown().await;
    (median(warm), median(resumed))
}

/// Median time (ms) of opening a conversation last used on the other replica and running a
/// turn: lease, snapshot download and restore, harness start, the turn.
async fn on_another_replica(model: &ScriptedModel, store: &StoreConfig) -> f64 {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let replica = |dir: &tempfile::TempDir| {
        Bridge::start(
            BridgeConfig::default()
                .data_dir(dir.path())
                .store(store.clone()),
        )
    };
    let bridges = [replica(&one).await.unwrap(), replica(&two).await.unwrap()];
    let config = || AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "m"));
    let agent = bridges[0].create_agent(config()).await.unwrap();
    let id = agent.conversation_id().to_owned();
    chat(&agent, "started on one").await;
    agent.close().await.unwrap();
    let mut samples = Vec::new();
    for i in 0..TURNS {
        let started = Instant::now();
        let agent = bridges[(i + 1) % 2]
            .open_agent(&id, config())
            .await
            .unwrap();
        chat(&agent, &format!("moved {i}")).await;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        agent.close().await.unwrap();
    }
    for bridge in bridges {
        bridge.shutdown().await;
    }
    median(samples)
}

fn main() {
    let saves = Saves::default();
    let writer = saves.clone();
    tracing_subscriber::fmt()
        .with_env_filter("agy_bridge::store=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let model = ScriptedModel::start().await.unwrap();
        let schema = format!("bench_{}", std::process::id());
        let postgres = StoreConfig::postgres(database_url()).schema(&schema);
        println!("### Hibernation and the conversation store\n");
        println!("| store | warm turn p50 (ms) | turn on a hibernated agent p50 (ms) | ratio |");
        println!("|---|---|---|---|");
        let mut warm_pg = 0.0;
        for (name, store) in [("local data directory", StoreConfig::local()), ("PostgreSQL, same replica", postgres.clone())] {
            let (warm, resumed) = resumed_vs_warm(&model, store).await;
            warm_pg = warm;
            println!("| {name} | {warm:.1} | {resumed:.1} | {:.2}× |", resumed / warm);
        }
        let moved = on_another_replica(&model, &postgres).await;
        println!(
            "| PostgreSQL, another replica (state restored from the database) | {warm_pg:.1} | {moved:.1} | {:.2}× |",
            moved / warm_pg
        );

        // Memory: many hibernated conversations, a few live.
        let data = tempfile::tempdir().unwrap();
        let bridge = Bridge::start(
            BridgeConfig::default()
                .data_dir(data.path())
                .max_live_agents(LIVE_CAP),
        )
        .await
        .unwrap();
        let config = || AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "m"));
        let mut agents = vec![bridge.create_agent(config()).await.unwrap()];
        let before = rss_bytes();
        for _ in 1..HIBERNATED {
            agents.push(bridge.create_agent(config()).await.unwrap());
        }
        let per_agent = (rss_bytes() - before) / (HIBERNATED - 1) as f64;
        let stats = bridge.worker_stats().remove(0);
        let pool = bridge.pool_stats().remove(0);
        println!("\n| {HIBERNATED} conversations, at most {LIVE_CAP} live | value |");
        println!("|---|---|");
        println!("| live / hibernated agents | {} / {} |", pool.live_agents, pool.hibernated_agents);
        println!("| Rust process, per conversation (RSS growth / conversations) | {:.1} KiB |", per_agent / 1024.0);
        println!(
            "| worker process RSS | {:.0} MiB |",
            stats.rss_bytes.unwrap_or(0) as f64 / 1048576.0
        );
        println!(
            "| harnesses RSS (the {} live agents) | {:.0} MiB |",
            pool.live_agents,
            stats.harness_rss_bytes.unwrap_or(0) as f64 / 1048576.0
        );
        drop(agents);
        bridge.shutdown().await;

        // Snapshot size and save time against conversation length (PostgreSQL).
        let data = tempfile::tempdir().unwrap();
        let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()).store(postgres))
            .await
            .unwrap();
        let agent = bridge.create_agent(config()).await.unwrap();
        println!("\n| turns in the conversation | snapshot (compressed) | state (raw) | save time |");
        println!("|---|---|---|---|");
        let mut turns = 0;
        for length in LENGTHS {
            while turns < length {
                turns += 1;
                chat(&agent, &format!("turn {turns}: {}", "some words ".repeat(20))).await;
            }
            let (compressed, raw, us) = saves.last();
            println!(
                "| {length} | {:.0} KiB | {:.0} KiB | {:.1} ms |",
                compressed / 1024.0,
                raw / 1024.0,
                us / 1e3
            );
        }
        agent.delete().await.unwrap();
        bridge.shutdown().await;
        let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .simple_query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
    });
}
