//! Activation: cold start to the first agent, agent start and resume against a warm turn, and
//! memory per agent, each next to the Python SDK doing the same in the same run
//! (`scripts/sdk_activation.py`, same scripted model, same no-op tool); then shared harnesses
//! (`conversations_per_harness`): memory per live agent at 16, 64 and 256 agents, activation,
//! and the turns/s of 32 concurrent agents, each against a harness per agent in the same run.
//!
//! Then the model gateway's cost: warm turns with and without it, alternating. Last, with the
//! `otel` feature, the cost of tracing: warm tool-calling turns traced across both processes
//! (exported to a real OTLP/HTTP receiver) against untraced ones, alternating.
//!
//! `cargo bench --bench activation --features otel` (or `scripts/bench`;
//! `AGY_BENCH_ONLY=shared`, `=gateway` or `=otel` runs only that part). Prints a Markdown report
//! for BENCHMARKS.md.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use agy_bridge::{
    Agent, AgentConfig, Bridge, BridgeConfig, ModelConfig, setup as venv, testing::ScriptedModel,
    tools::FnTool,
};
use futures::StreamExt;
use serde_json::{Value, json};
use support::median;

mod support;

#[cfg(feature = "otel")]
#[path = "../tests/integration/otlp.rs"]
mod otlp;

/// Counts the bytes the Rust side holds, for the bytes-per-agent figures.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const COLD_RUNS: usize = 5;
const ACTIVATIONS: usize = 10;
const MEMORY_AGENTS: usize = 16;
/// Set in the child process that measures one cold start.
const COLD_CHILD: &str = "AGY_BENCH_COLD_CHILD";

fn agent_config(model_url: &str) -> AgentConfig {
    let noop = FnTool::new(
        "noop",
        "Does nothing.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("ok")) },
    );
    AgentConfig::new(ModelConfig::openai_compatible(model_url, "bench")).tool(noop)
}

async fn turn(agent: &Agent, prompt: &str) -> f64 {
    let t = Instant::now();
    let mut reply = agent.chat(prompt).await.unwrap();
    while reply.next().await.is_some() {}
    reply.finish().await.unwrap();
    ms(t.elapsed())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The child side of a cold start: start a bridge and one agent, say READY with the worker's
/// start-up phases, stop.
fn cold_child(model_url: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let prestarted = std::env::var("AGY_BENCH_PRESTARTED")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let start = Instant::now();
        let bridge = Bridge::start(
            BridgeConfig::default()
                .data_dir(data.path())
                .prestarted_harnesses(prestarted),
        )
        .await
        .unwrap();
        let bridge_start_ms = ms(start.elapsed());
        let ready = Instant::now();
        let _agent = bridge.create_agent(agent_config(model_url)).await.unwrap();
        let t = bridge.startup_timings();
        println!(
            "READY {}",
            json!({
                "interpreter_ms": ms(t.interpreter),
                "sdk_import_ms": ms(t.sdk_import),
                "initialize_ms": ms(t.ready),
                "create_agent_ms": ms(ready.elapsed()),
                "before_spawn_ms": bridge_start_ms - ms(t.ready),
            })
        );
        bridge.shutdown().await;
    });
}

/// Spawns `cmd`, returns the time until it prints a line starting with READY, and the rest of
/// that line.
fn time_to_ready(mut cmd: Command) -> (f64, String) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .map_while(Result::ok)
        .find(|l| l.starts_with("READY"))
        .expect("the child reports READY");
    let elapsed = ms(started.elapsed());
    assert!(child.wait().unwrap().success());
    (elapsed, line["READY".len()..].trim().to_owned())
}

struct Cold {
    bridge: Vec<f64>,
    bridge_no_prestart: Vec<f64>,
    sdk: Vec<f64>,
    phases: Vec<Value>,
}

fn cold_start(model_url: &str, python: &Path) -> Cold {
    let mut cold = Cold {
        bridge: Vec::new(),
        bridge_no_prestart: Vec::new(),
        sdk: Vec::new(),
        phases: Vec::new(),
    };
    let exe = std::env::current_exe().unwrap();
    for _ in 0..COLD_RUNS {
        // Alternating, so that load changes hit all three alike.
        let work = tempfile::tempdir().unwrap();
        let mut sdk = Command::new(python);
        sdk.arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/sdk_activation.py"
        ))
        .args(["cold", model_url])
        .arg(work.path());
        cold.sdk.push(time_to_ready(sdk).0);
        for prestarted in ["1", "0"] {
            let mut bridge = Command::new(&exe);
            bridge
                .env(COLD_CHILD, model_url)
                .env("AGY_BENCH_PRESTARTED", prestarted);
            let (elapsed, phases) = time_to_ready(bridge);
            if prestarted == "1" {
                cold.bridge.push(elapsed);
                cold.phases.push(serde_json::from_str(&phases).unwrap());
            } else {
                cold.bridge_no_prestart.push(elapsed);
            }
        }
    }
    cold
}

#[derive(Default)]
struct Activation {
    create_ms: Vec<f64>,
    first_turn_ms: Vec<f64>,
    warm_turn_ms: Vec<f64>,
    resumed_turn_ms: Vec<f64>,
}

impl Activation {
    fn from_sdk(v: &Value) -> Self {
        let col = |k: &str| -> Vec<f64> {
            v[k].as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_f64)
                .collect()
        };
        Self {
            create_ms: col("start_ms"),
            first_turn_ms: col("first_turn_ms"),
            warm_turn_ms: col("warm_turn_ms"),
            resumed_turn_ms: col("resumed_turn_ms"),
        }
    }

    /// (start + first turn, resumed turn) minus the warm turn, medians.
    fn over_warm(&self) -> (f64, f64, f64) {
        let warm = median(self.warm_turn_ms.clone());
        let start: Vec<f64> = self
            .create_ms
            .iter()
            .zip(&self.first_turn_ms)
            .map(|(c, f)| c + f)
            .collect();
        (
            warm,
            median(start) - warm,
            median(self.resumed_turn_ms.clone()) - warm,
        )
    }
}

/// Agents started, chatted with, hibernated and resumed one after the other. With spares, each
/// activation waits for the spare to be back first: the steady state of a service whose
/// activations are further apart than a harness start (~0.1 s). With shared harnesses, the
/// warm-up agent stays open, so activations land on its running harness.
async fn activations(model_url: &str, prestarted: usize, per_harness: usize) -> Activation {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .prestarted_harnesses(prestarted)
            .conversations_per_harness(per_harness),
    )
    .await
    .unwrap();
    let spare_ready = || async {
        while bridge.stats().spare_harness_pids.len() < prestarted {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    // One warm-up activation (page cache, the model's connection pool).
    let warm_up = bridge.create_agent(agent_config(model_url)).await.unwrap();
    turn(&warm_up, "warm up").await;
    if per_harness == 1 {
        warm_up.close().await.unwrap();
    }

    let mut a = Activation::default();
    for i in 0..ACTIVATIONS {
        spare_ready().await;
        let t = Instant::now();
        let agent = bridge.create_agent(agent_config(model_url)).await.unwrap();
        a.create_ms.push(ms(t.elapsed()));
        a.first_turn_ms
            .push(turn(&agent, &format!("first {i}")).await);
        a.warm_turn_ms
            .push(turn(&agent, &format!("warm {i}")).await);
        agent.disconnect().await.unwrap();
        spare_ready().await;
        a.resumed_turn_ms
            .push(turn(&agent, &format!("again {i}")).await);
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
    a
}

/// A live agent's marginal memory on shared harnesses: worker RSS growth plus the harnesses'
/// RSS, per agent, each agent after one turn.
struct SharedMemory {
    agents: usize,
    per_harness: usize,
    harnesses: usize,
    per_agent: f64,
    harness_total: f64,
    worker_growth: f64,
}

async fn shared_memory(model_url: &str, agents: usize, per_harness: usize) -> SharedMemory {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .prestarted_harnesses(0)
            .conversations_per_harness(per_harness),
    )
    .await
    .unwrap();
    let warm_up = bridge.create_agent(agent_config(model_url)).await.unwrap();
    turn(&warm_up, "warm up").await;
    warm_up.close().await.unwrap();
    let worker_before = bridge.stats().rss_bytes.unwrap_or(0) as f64;
    let mut live = Vec::new();
    // Eight at a time: how a busy service activates agents.
    for batch in 0..agents.div_ceil(8) {
        let starts = (batch * 8..((batch + 1) * 8).min(agents)).map(|i| {
            let bridge = &bridge;
            async move {
                let agent = bridge.create_agent(agent_config(model_url)).await.unwrap();
                turn(&agent, &format!("hello {i}")).await;
                agent
            }
        });
        live.extend(futures::future::join_all(starts).await);
    }
    let stats = bridge.stats();
    let worker_growth = stats.rss_bytes.unwrap_or(0) as f64 - worker_before;
    let harness_total = stats.harness_rss_bytes.unwrap_or(0) as f64;
    let harnesses: std::collections::BTreeSet<u32> =
        live.iter().filter_map(Agent::harness_pid).collect();
    futures::future::join_all(live.into_iter().map(Agent::close)).await;
    bridge.shutdown().await;
    SharedMemory {
        agents,
        per_harness,
        harnesses: harnesses.len(),
        per_agent: (worker_growth + harness_total) / agents as f64,
        harness_total,
        worker_growth,
    }
}

/// Turns per second of `AGENTS` agents each running `ROUNDS` turns at once.
async fn throughput(model_url: &str, per_harness: usize) -> f64 {
    const AGENTS: usize = 32;
    const ROUNDS: usize = 3;
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .conversations_per_harness(per_harness),
    )
    .await
    .unwrap();
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let agent = bridge.create_agent(agent_config(model_url)).await.unwrap();
        turn(&agent, &format!("warm {i}")).await;
        agents.push(agent);
    }
    let t = Instant::now();
    for round in 0..ROUNDS {
        let prompt = format!("round {round}");
        let turns = agents.iter().map(|agent| turn(agent, &prompt));
        futures::future::join_all(turns).await;
    }
    let per_sec = (AGENTS * ROUNDS) as f64 / t.elapsed().as_secs_f64();
    futures::future::join_all(agents.into_iter().map(Agent::close)).await;
    bridge.shutdown().await;
    per_sec
}

/// Measures and prints the shared-harness section.
async fn shared_section(url: &str, python: &Path) {
    let sdk = support::sdk_baseline(
        python,
        "sdk_activation.py",
        &["memory", url, "{work}", "16"],
    )
    .await["per_agent_bytes"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let mut rows = vec![shared_memory(url, 16, 1).await];
    // One agent alone on a shared harness: what the marginal figures are counted from.
    let first = shared_memory(url, 1, 256).await;
    let first_total = first.per_agent;
    for n in [16, 64, 256] {
        rows.push(shared_memory(url, n, n).await);
    }
    let shared_start = activations(url, 1, 64).await;
    let own_start = activations(url, 1, 1).await;
    let own = throughput(url, 1).await;
    let shared = throughput(url, 32).await;

    println!("\n### Shared harnesses: memory per live agent (each after one turn; no spares)\n");
    println!(
        "| live agents | conversations per harness | harnesses | harnesses' RSS (MiB) | worker RSS growth (MiB) | MiB per live agent | marginal MiB per extra agent | ratio to one harness each |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let base = rows[0].per_agent;
    for r in &rows {
        let total = r.per_agent * r.agents as f64;
        let marginal = if r.per_harness == 1 {
            r.per_agent
        } else {
            (total - first_total) / (r.agents - 1) as f64
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.3} |",
            r.agents,
            r.per_harness,
            r.harnesses,
            r.harness_total / MIB,
            r.worker_growth / MIB,
            r.per_agent / MIB,
            marginal / MIB,
            r.per_agent / base
        );
    }
    println!(
        "\nOne agent alone on a harness: {:.0} MiB (the harness and the worker's growth). The Python \
         SDK in the same run, 16 agents each after one turn (its process's RSS growth and its \
         harnesses): {:.2} MiB per agent.",
        first_total / MIB,
        sdk / MIB
    );
    println!(
        "\n### Shared harnesses: start and resume (ms, median of {ACTIVATIONS}; over warm as above; a spare kept)\n"
    );
    println!("| harnesses | warm turn | start over warm | resumed turn over warm | start alone |");
    println!("|---|---|---|---|---|");
    for (name, a) in [
        ("one per agent (baseline)", &own_start),
        ("shared (64 per harness, one running)", &shared_start),
    ] {
        let (warm, start, resume) = a.over_warm();
        println!(
            "| {name} | {warm:.1} | {start:.1} | {resume:.1} | {:.1} |",
            median(a.create_ms.clone())
        );
    }
    println!(
        "\n### Shared harnesses: throughput of 32 concurrent agents (text turns/s, 3 rounds)\n"
    );
    println!("| harnesses | turns/s | ratio |");
    println!("|---|---|---|");
    println!("| one per agent (baseline) | {own:.1} | 1.00 |");
    println!(
        "| 32 agents on one harness | {shared:.1} | {:.2} |",
        shared / own
    );
}

const MIB: f64 = 1024.0 * 1024.0;

/// Time to the first text event, and to the end, of one turn.
async fn timed_turn(agent: &Agent, prompt: &str) -> (f64, f64) {
    let t = Instant::now();
    let mut reply = agent.chat(prompt).await.unwrap();
    let mut first = None;
    while let Some(event) = reply.next().await {
        if first.is_none() && matches!(event, agy_bridge::ChatEvent::Text { .. }) {
            first = Some(ms(t.elapsed()));
        }
    }
    reply.finish().await.unwrap();
    (first.unwrap_or(f64::NAN), ms(t.elapsed()))
}

/// The model gateway's cost: warm text turns (one model call each, ten chunks 5 ms apart) with
/// and without the gateway, alternating, in the same run.
async fn gateway_section() {
    const TURNS: usize = 60;
    let model = ScriptedModel::with_responder(std::sync::Arc::new(|_: &_| {
        agy_bridge::testing::Reply::slow_text(
            (0..10).map(|i| format!("w{i} ")),
            Duration::from_millis(5),
        )
    }))
    .await
    .unwrap();
    let url = model.base_url();
    let (on_dir, off_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on = Bridge::start(BridgeConfig::default().data_dir(on_dir.path()))
        .await
        .unwrap();
    let off = Bridge::start(
        BridgeConfig::default()
            .data_dir(off_dir.path())
            .model_gateway(false),
    )
    .await
    .unwrap();
    let via = on.create_agent(agent_config(&url)).await.unwrap();
    let direct = off.create_agent(agent_config(&url)).await.unwrap();
    for i in 0..5 {
        timed_turn(&via, &format!("warm {i}")).await;
        timed_turn(&direct, &format!("warm {i}")).await;
    }
    let (mut via_first, mut via_total, mut direct_first, mut direct_total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..TURNS {
        let (first, total) = timed_turn(&via, &format!("turn {i}")).await;
        via_first.push(first);
        via_total.push(total);
        let (first, total) = timed_turn(&direct, &format!("turn {i}")).await;
        direct_first.push(first);
        direct_total.push(total);
    }
    println!(
        "\n### Model gateway: warm text turns (ms, median of {TURNS}, alternating; one model call of 10 chunks 5 ms apart each)\n"
    );
    println!("| path | time to first text | whole turn | ratio |");
    println!("|---|---|---|---|");
    let base = median(direct_total.clone());
    for (name, first, total) in [
        (
            "straight to the model server (baseline)",
            direct_first,
            direct_total,
        ),
        ("through the gateway (default)", via_first, via_total),
    ] {
        let t = median(total);
        println!(
            "| {name} | {:.1} | {t:.1} | {:.3} |",
            median(first),
            t / base
        );
    }
    via.close().await.unwrap();
    direct.close().await.unwrap();
    on.shutdown().await;
    off.shutdown().await;
}

/// Tracing's cost: warm turns that call a Rust tool (two model calls), traced end to end —
/// the application's spans through `tracing-opentelemetry` and the worker's, both exported to
/// an OTLP/HTTP receiver on loopback — against the same turns untraced, alternating.
#[cfg(feature = "otel")]
async fn otel_section(url: &str, model: &ScriptedModel) {
    use std::sync::{Arc, atomic::AtomicBool};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{Layer, layer::SubscriberExt};

    const TURNS: usize = 60;
    let receiver = otlp::Receiver::start().await;
    let provider = receiver.tracer_provider("bench");
    // The layer is switched per turn: off for the untraced turns, so they pay nothing.
    let traced = Arc::new(AtomicBool::new(false));
    let on = Arc::clone(&traced);
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bench"))
        .with_filter(tracing_subscriber::filter::filter_fn(move |_| {
            on.load(Ordering::Relaxed)
        }));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).unwrap();

    let (on_dir, off_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = Bridge::start(BridgeConfig::default().data_dir(off_dir.path()))
        .await
        .unwrap();
    let tracing_bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(on_dir.path())
            .tracing(agy_bridge::WorkerTracing::otlp(receiver.endpoint())),
    )
    .await
    .unwrap();
    let untraced = plain.create_agent(agent_config(url)).await.unwrap();
    let with_traces = tracing_bridge
        .create_agent(agent_config(url))
        .await
        .unwrap();
    async fn tool_turn(model: &ScriptedModel, agent: &Agent, prompt: String) -> f64 {
        model.push(agy_bridge::testing::Reply::tool_call("noop", json!({})));
        timed_turn(agent, &prompt).await.1
    }
    let (mut off, mut on) = (Vec::new(), Vec::new());
    // Switching the filter changes what callsites are interested in: rebuild that cache.
    let switch = |on: bool| {
        traced.store(on, Ordering::Relaxed);
        tracing::callsite::rebuild_interest_cache();
    };
    for i in 0..5 + TURNS {
        switch(false);
        let untraced_ms = tool_turn(model, &untraced, format!("turn {i}")).await;
        switch(true);
        let traced_ms = tool_turn(model, &with_traces, format!("turn {i}")).await;
        if i >= 5 {
            off.push(untraced_ms);
            on.push(traced_ms);
        }
    }
    switch(false);
    untraced.close().await.unwrap();
    with_traces.close().await.unwrap();
    plain.shutdown().await;
    tracing_bridge.shutdown().await;
    tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .unwrap()
        .unwrap();
    let spans = receiver.spans();
    let worker = spans.iter().filter(|s| s.service == "agy-worker").count();
    println!(
        "\n### Tracing: warm turns calling a Rust tool (ms, median of {TURNS}, alternating; {} spans received from the bench, {worker} from the worker)\n",
        spans.len() - worker
    );
    println!("| turns | whole turn | ratio of medians | median of paired ratios |");
    println!("|---|---|---|---|");
    let base = median(off.clone());
    println!("| untraced (default; baseline) | {base:.1} | 1.000 | 1.000 |");
    let paired = median(on.iter().zip(&off).map(|(t, u)| t / u).collect());
    let traced_ms = median(on);
    println!(
        "| traced across both processes, exported over OTLP/HTTP | {traced_ms:.1} | {:.3} | {paired:.3} |",
        traced_ms / base
    );
}

struct Memory {
    rust_live: f64,
    rust_idle: f64,
    worker_live: f64,
    harness_live: f64,
    spare_harness: f64,
}

/// Bytes per agent: the Rust side's heap (counted by this binary's allocator) with the agents
/// live and then hibernated, the worker's RSS growth, and the harnesses' RSS.
async fn memory(model_url: &str) -> Memory {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()))
        .await
        .unwrap();
    let warm_up = bridge.create_agent(agent_config(model_url)).await.unwrap();
    turn(&warm_up, "warm up").await;
    warm_up.close().await.unwrap();
    while bridge.stats().spare_harness_pids.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let spare_harness = bridge.stats().harness_rss_bytes.unwrap_or(0) as f64;
    let worker_before = bridge.stats().rss_bytes.unwrap_or(0) as f64;
    let rust_before = LIVE_BYTES.load(Ordering::Relaxed) as f64;
    let mut agents = Vec::new();
    for i in 0..MEMORY_AGENTS {
        let agent = bridge.create_agent(agent_config(model_url)).await.unwrap();
        turn(&agent, &format!("hello {i}")).await;
        agents.push(agent);
    }
    let n = MEMORY_AGENTS as f64;
    let rust_live = (LIVE_BYTES.load(Ordering::Relaxed) as f64 - rust_before) / n;
    let stats = bridge.stats();
    let worker_live = (stats.rss_bytes.unwrap_or(0) as f64 - worker_before) / n;
    let harness_live = (stats.harness_rss_bytes.unwrap_or(0) as f64 - spare_harness) / n;
    for agent in &agents {
        agent.disconnect().await.unwrap();
    }
    let rust_idle = (LIVE_BYTES.load(Ordering::Relaxed) as f64 - rust_before) / n;
    futures::future::join_all(agents.into_iter().map(Agent::close)).await;
    bridge.shutdown().await;
    Memory {
        rust_live,
        rust_idle,
        worker_live,
        harness_live,
        spare_harness,
    }
}

async fn sdk_activations(python: &Path, model_url: &str) -> Activation {
    let count = ACTIVATIONS.to_string();
    let v = support::sdk_baseline(
        python,
        "sdk_activation.py",
        &["agents", model_url, "{work}", &count],
    )
    .await;
    Activation::from_sdk(&v)
}

fn main() {
    if let Ok(url) = std::env::var(COLD_CHILD) {
        cold_child(&url);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let env = venv::ensure(Default::default(), None)
            .await
            .expect("python env");
        let model = ScriptedModel::start().await.unwrap();
        let url = model.base_url().to_owned();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        eprintln!("measuring (load average {})…", load.trim());
        if std::env::var("AGY_BENCH_ONLY").as_deref() == Ok("gateway") {
            println!("## Run of {} (model gateway)", support::run_date());
            println!("\nLoad average at start: {}", load.trim());
            gateway_section().await;
            return;
        }
        #[cfg(feature = "otel")]
        if std::env::var("AGY_BENCH_ONLY").as_deref() == Ok("otel") {
            println!("## Run of {} (tracing)", support::run_date());
            println!("\nLoad average at start: {}", load.trim());
            otel_section(&url, &model).await;
            return;
        }
        if std::env::var("AGY_BENCH_ONLY").as_deref() == Ok("shared") {
            println!("## Run of {} (shared harnesses)", support::run_date());
            println!("\nLoad average at start: {}", load.trim());
            shared_section(&url, &env.python).await;
            return;
        }

        let cold = {
            let (url, python) = (url.clone(), env.python.clone());
            tokio::task::spawn_blocking(move || cold_start(&url, &python))
                .await
                .unwrap()
        };
        let sdk = sdk_activations(&env.python, &url).await;
        let with_spare = activations(&url, 1, 1).await;
        let without = activations(&url, 0, 1).await;
        let mem = memory(&url).await;

        println!("## Run of {} (activation)", support::run_date());
        println!("\nLoad average at start: {}\n", load.trim());
        let sdk_cold = median(cold.sdk.clone());
        println!(
            "### Cold start: process start → first agent ready (ms, median of {COLD_RUNS}; ratio = figure / Python SDK)\n"
        );
        println!("| process | ms | ratio |");
        println!("|---|---|---|");
        println!("| Python SDK script (baseline) | {sdk_cold:.0} | 1.00 |");
        for (name, runs) in [
            ("bridge, harness pre-started during the SDK import (default)", &cold.bridge),
            ("bridge, `prestarted_harnesses(0)`", &cold.bridge_no_prestart),
        ] {
            let m = median(runs.clone());
            println!("| {name} | {m:.0} | {:.2} |", m / sdk_cold);
        }
        let phase = |k: &str| median(cold.phases.iter().filter_map(|p| p[k].as_f64()).collect());
        println!("\nBridge start-up timeline (default, medians, ms):\n");
        println!("| phase | ms |");
        println!("|---|---|");
        println!("| `Bridge::start` before the worker's spawn (venv lookup: runs the base `python3` once) | {:.0} |", phase("before_spawn_ms"));
        println!("| interpreter start → `__main__` | {:.0} |", phase("interpreter_ms"));
        println!("| SDK import (in a thread; the first spare harness starts meanwhile) | {:.0} |", phase("sdk_import_ms"));
        println!("| spawn → `initialize` answered | {:.0} |", phase("initialize_ms"));
        println!("| `create_agent` after that | {:.0} |", phase("create_agent_ms"));

        println!(
            "\n### Agent start and resume (ms, median of {ACTIVATIONS}; over warm = figure − warm text turn of the same process)\n"
        );
        println!("| who | warm turn | start (create + first turn) over warm | resumed turn over warm | start alone |");
        println!("|---|---|---|---|---|");
        for (name, a) in [
            ("Python SDK (baseline: `Agent.__aenter__`, resume = a new `Agent` on the conversation)", &sdk),
            ("bridge, a harness per agent, pre-started (default spares)", &with_spare),
            ("bridge, a harness per agent, `prestarted_harnesses(0)`", &without),
        ] {
            let (warm, start, resume) = a.over_warm();
            println!(
                "| {name} | {warm:.1} | {start:.1} | {resume:.1} | {:.1} |",
                median(a.create_ms.clone())
            );
        }

        println!("\n### Memory per agent ({MEMORY_AGENTS} agents, each after one turn)\n");
        println!("| figure | KiB per agent |");
        println!("|---|---|");
        println!("| Rust heap, live agent (counted by the allocator) | {:.1} |", mem.rust_live / 1024.0);
        println!("| Rust heap, hibernated agent | {:.1} |", mem.rust_idle / 1024.0);
        println!("| worker RSS growth, live agent | {:.0} |", mem.worker_live / 1024.0);
        println!("| `localharness` RSS, live agent (default: shared, 64 per harness) | {:.0} |", mem.harness_live / 1024.0);
        println!("| one pre-started (idle) `localharness` | {:.0} |", mem.spare_harness / 1024.0);

        shared_section(&url, &env.python).await;
        gateway_section().await;
        #[cfg(feature = "otel")]
        otel_section(&url, &model).await;
    });
}
