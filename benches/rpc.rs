//! Bridge overhead, measured against a plain Python asyncio echo peer in the same run.
//!
//! `cargo bench --bench rpc` (or `scripts/bench`). Prints a Markdown report for BENCHMARKS.md.
//! Figures: forward ping RTT (Rust → worker → Rust), reverse ping RTT (worker → Rust → worker,
//! timed in Python), 32-in-flight reverse throughput, worker start-up phases, first agent ready,
//! a text chat turn, and the time from `kill -9` of the worker to the error of a streaming chat.
//! The worker is measured with uvloop+orjson (the default), asyncio+orjson and asyncio+json.

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use agy_bridge::{
    Agent, AgentConfig, Bridge, BridgeConfig, ModelConfig, RestartPolicy, setup as venv,
    testing::{
        Reply, ScriptedModel,
        rpc::{Handler, Peer, PeerConfig, RpcError},
    },
    tools::FnTool,
};
use futures::{FutureExt, StreamExt, future::BoxFuture};
use serde_json::{Value, json};

mod support;

/// Deadline of one call in the benchmarks (a hang, not a slow machine).
const CALL: Duration = Duration::from_secs(120);
const PINGS: usize = 3000;
const REVERSE: usize = 3000;
const TURNS: usize = 20;
const STARTS: usize = 3;
const KILLS: usize = 3;
const BIG_ECHOES: usize = 30;

async fn big_echo<F, Fut>(call: F) -> f64
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let payload = json!({ "payload": "x".repeat(1 << 20) });
    call(payload.clone()).await;
    let mut samples = Vec::new();
    for _ in 0..BIG_ECHOES {
        let t = Instant::now();
        call(payload.clone()).await;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    percentile(&mut samples, 0.5)
}

struct Pong;

impl Handler for Pong {
    fn request(
        &self,
        _method: String,
        _params: Value,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        async { Ok(json!("pong")) }.boxed()
    }
    fn notification(&self, _method: String, _params: Value) {}
}

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx.min(samples.len() - 1)]
}

fn median(mut v: Vec<f64>) -> f64 {
    percentile(&mut v, 0.5)
}

struct Rtt {
    p50: f64,
    p99: f64,
}

async fn forward<F, Fut>(call: F) -> Rtt
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..PINGS / 10 {
        call().await;
    }
    let mut samples = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Rtt {
        p50: percentile(&mut samples, 0.5),
        p99: percentile(&mut samples, 0.99),
    }
}

fn reverse_result(v: &Value) -> (Rtt, f64) {
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    (
        Rtt {
            p50: f("p50_us"),
            p99: f("p99_us"),
        },
        f("calls_per_sec"),
    )
}

struct Baseline {
    start_ms: f64,
    big_ms: f64,
    fwd: Rtt,
    rev: Rtt,
    rev32: f64,
}

async fn baseline(python: &std::path::Path) -> Baseline {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/asyncio_echo.py");
    let mut starts = Vec::new();
    let mut kept = None;
    for _ in 0..STARTS {
        let t = Instant::now();
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("baseline starts");
        let peer = Peer::spawn(
            child.stdout.take().unwrap(),
            child.stdin.take().unwrap(),
            Arc::new(Pong),
            &PeerConfig::default(),
            Box::new(|| async { Arc::new(std::io::Error::other("baseline stopped")) as _ }.boxed()),
        );
        peer.call("ping", Value::Null, CALL)
            .await
            .expect("baseline answers");
        starts.push(t.elapsed().as_secs_f64() * 1e3);
        kept = Some((child, peer));
    }
    let (_child, peer) = kept.unwrap();
    let fwd = forward(|| async {
        peer.call("ping", Value::Null, CALL).await.unwrap();
    })
    .await;
    let big_ms = big_echo(|p| async {
        peer.call("echo", p, CALL).await.unwrap();
    })
    .await;
    let (rev, _) = reverse_result(
        &peer
            .call(
                "ping_rust",
                json!({"count": REVERSE, "concurrency": 1}),
                CALL,
            )
            .await
            .unwrap(),
    );
    let (_, rev32) = reverse_result(
        &peer
            .call(
                "ping_rust",
                json!({"count": REVERSE * 4, "concurrency": 32}),
                CALL,
            )
            .await
            .unwrap(),
    );
    Baseline {
        start_ms: median(starts),
        big_ms,
        fwd,
        rev,
        rev32,
    }
}

struct Variant {
    name: &'static str,
    big_ms: f64,
    fwd: Rtt,
    rev: Rtt,
    rev32: f64,
}

async fn worker_variant(name: &'static str, env: &[(&str, &str)]) -> Variant {
    let data = tempfile::tempdir().unwrap();
    let config = env.iter().fold(
        BridgeConfig::default().data_dir(data.path()),
        |config, (k, v)| config.worker_env(*k, *v),
    );
    let bridge = Bridge::start(config).await.expect("bridge starts");
    let fwd = forward(|| async {
        bridge.call_raw("worker/ping", Value::Null).await.unwrap();
    })
    .await;
    let big_ms = big_echo(|p| async {
        bridge.call_raw("worker/echo", p).await.unwrap();
    })
    .await;
    let (rev, _) = reverse_result(
        &bridge
            .call_raw(
                "worker/ping_rust",
                json!({"count": REVERSE, "concurrency": 1}),
            )
            .await
            .unwrap(),
    );
    let (_, rev32) = reverse_result(
        &bridge
            .call_raw(
                "worker/ping_rust",
                json!({"count": REVERSE * 4, "concurrency": 32}),
            )
            .await
            .unwrap(),
    );
    bridge.shutdown().await;
    Variant {
        name,
        big_ms,
        fwd,
        rev,
        rev32,
    }
}

struct Startup {
    spawn: f64,
    interpreter: f64,
    sdk_import: f64,
    ready: f64,
    first_agent: f64,
    turn_p50: f64,
    turn_p99: f64,
}

async fn startup_and_turns(model: &ScriptedModel) -> Startup {
    let mut rows = Vec::new();
    let mut turns = Vec::new();
    for run in 0..STARTS {
        let data = tempfile::tempdir().unwrap();
        let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()))
            .await
            .unwrap();
        let t = bridge.startup_timings();
        let started = Instant::now();
        let agent = bridge
            .create_agent(AgentConfig::new(ModelConfig::openai_compatible(
                model.base_url(),
                "bench",
            )))
            .await
            .unwrap();
        let first_agent = started.elapsed();
        rows.push([
            t.spawn.as_secs_f64(),
            t.interpreter.as_secs_f64(),
            t.sdk_import.as_secs_f64(),
            t.ready.as_secs_f64(),
            first_agent.as_secs_f64(),
        ]);
        if run == 0 {
            // Warm-up turn, then timed text turns.
            agent.chat("warm up").await.unwrap().finish().await.unwrap();
            for i in 0..TURNS {
                let t = Instant::now();
                let mut reply = agent.chat(format!("turn {i}")).await.unwrap();
                while reply.next().await.is_some() {}
                reply.finish().await.unwrap();
                turns.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        agent.close().await.unwrap();
        bridge.shutdown().await;
    }
    let col = |i: usize| median(rows.iter().map(|r| r[i] * 1e3).collect());
    Startup {
        spawn: col(0),
        interpreter: col(1),
        sdk_import: col(2),
        ready: col(3),
        first_agent: col(4),
        turn_p50: percentile(&mut turns.clone(), 0.5),
        turn_p99: percentile(&mut turns, 0.99),
    }
}

async fn kill_to_error(model: &ScriptedModel) -> Vec<f64> {
    let mut out = Vec::new();
    for _ in 0..KILLS {
        let data = tempfile::tempdir().unwrap();
        let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()))
            .await
            .unwrap();
        let agent = bridge
            .create_agent(AgentConfig::new(ModelConfig::openai_compatible(
                model.base_url(),
                "bench",
            )))
            .await
            .unwrap();
        model.push(Reply::slow_text(
            (0..500).map(|i| format!("w{i} ")),
            Duration::from_millis(20),
        ));
        let mut reply = agent.chat("stream").await.unwrap();
        reply.next().await.expect("first delta");
        let pid = bridge.worker_info().pid;
        let t = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        while reply.next().await.is_some() {}
        let err = reply.finish().await.unwrap_err();
        out.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            matches!(err, agy_bridge::Error::WorkerCrashed { .. }),
            "{err}"
        );
    }
    out
}

struct ToolBench {
    call: Rtt,
    calls32: f64,
    bridge_turn: Rtt,
    sdk_turn: Rtt,
}

fn ms_stats(mut samples: Vec<f64>) -> Rtt {
    Rtt {
        p50: percentile(&mut samples, 0.5),
        p99: percentile(&mut samples, 0.99),
    }
}

/// `tool` of `agent` called through `tool/call` as the SDK's proxy calls it, timed in the
/// worker: (sequential round trip, calls/s with 32 in flight).
async fn tool_calls(bridge: &Bridge, agent: &Agent, tool: &str) -> (Rtt, f64) {
    let call = json!({"agent_id": agent.id(), "tool": tool, "args": {}});
    let timed = |count: usize, concurrency: usize| {
        let params = json!({"count": count, "concurrency": concurrency, "method": "tool/call", "params": call});
        async move { reverse_result(&bridge.call_raw("worker/ping_rust", params).await.unwrap()) }
    };
    let (rtt, _) = timed(REVERSE, 1).await;
    let (_, rate) = timed(REVERSE * 4, 32).await;
    (rtt, rate)
}

/// A no-op Rust tool called through `tool/call` as the SDK's proxy calls it, timed in the
/// worker: (sequential round trip, calls/s with 32 in flight), for a default tool (run on a
/// blocking-pool thread) and for a `nonblocking()` one (run on the runtime).
async fn tool_call_floor() -> [(Rtt, f64); 2] {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .prestarted_harnesses(0),
    )
    .await
    .unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let noop = |name: &str| {
        FnTool::new(
            name,
            "Does nothing.",
            json!({"type": "object", "properties": {}}),
            |_, _| async { Ok(json!("ok")) },
        )
    };
    let agent = bridge
        .create_agent(
            AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "bench"))
                .tool(noop("noop"))
                .tool(noop("noop_inline").nonblocking()),
        )
        .await
        .unwrap();
    let mut out = [
        (Rtt { p50: 0.0, p99: 0.0 }, 0.0),
        (Rtt { p50: 0.0, p99: 0.0 }, 0.0),
    ];
    for (slot, tool) in out.iter_mut().zip(["noop", "noop_inline"]) {
        *slot = tool_calls(&bridge, &agent, tool).await;
    }
    agent.close().await.unwrap();
    bridge.shutdown().await;
    out
}

/// A no-op Rust tool: its reverse round trip as the worker sees it, and a chat turn with one
/// call of it through the bridge vs the same turn driven by the Python SDK directly.
async fn tool_bench(model: &ScriptedModel, python: &std::path::Path) -> ToolBench {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(BridgeConfig::default().data_dir(data.path()))
        .await
        .unwrap();
    let noop = FnTool::new(
        "noop",
        "Does nothing.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("ok")) },
    );
    let agent = bridge
        .create_agent(
            AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "bench")).tool(noop),
        )
        .await
        .unwrap();
    let (call_rtt, calls32) = tool_calls(&bridge, &agent, "noop").await;
    let mut bridge_turns = Vec::new();
    for i in 0..=TURNS {
        model.push(Reply::tool_call("noop", json!({})));
        model.push(Reply::text("done"));
        let t = Instant::now();
        let mut reply = agent.chat(format!("turn {i}")).await.unwrap();
        while reply.next().await.is_some() {}
        reply.finish().await.unwrap();
        if i > 0 {
            bridge_turns.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    agent.close().await.unwrap();
    bridge.shutdown().await;

    for _ in 0..=TURNS {
        model.push(Reply::tool_call("noop", json!({})));
        model.push(Reply::text("done"));
    }
    let turns = TURNS.to_string();
    let sdk = support::sdk_baseline(
        python,
        "sdk_direct_turn.py",
        &[&model.base_url(), &turns, "{work}"],
    )
    .await;
    let sdk_turns: Vec<f64> = sdk["turn_ms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    ToolBench {
        call: call_rtt,
        calls32,
        bridge_turn: ms_stats(bridge_turns),
        sdk_turn: ms_stats(sdk_turns),
    }
}

struct Recovery {
    ready_ms: Vec<f64>,
    usable_ms: Vec<f64>,
}

async fn wait_for_spare(bridge: &Bridge) {
    while bridge.stats().spare_pid.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Time from `kill -9` of the worker to (a) a replacement answering a ping and (b) the same
/// agent completing a chat turn on it.
async fn crash_recovery(model: &ScriptedModel, warm_spare: bool) -> Recovery {
    let mut ready_ms = Vec::new();
    let mut usable_ms = Vec::new();
    let data = tempfile::tempdir().unwrap();
    // The kills below come faster than the crash-storm guard allows; measure recovery itself.
    let config = BridgeConfig::default().data_dir(data.path()).restart(
        RestartPolicy::default()
            .warm_spare(warm_spare)
            .max_restarts(100)
            .backoff(Duration::ZERO),
    );
    let bridge = Bridge::start(config).await.unwrap();
    let agent = bridge
        .create_agent(AgentConfig::new(ModelConfig::openai_compatible(
            model.base_url(),
            "bench",
        )))
        .await
        .unwrap();
    agent.chat("warm up").await.unwrap().finish().await.unwrap();
    for round in 0..KILLS * 2 {
        if warm_spare {
            wait_for_spare(&bridge).await;
        }
        let pid = bridge.stats().worker_pid;
        let t = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        if round % 2 == 0 {
            while bridge.ping().await.is_err() {}
            ready_ms.push(t.elapsed().as_secs_f64() * 1e3);
        } else {
            loop {
                let turn = match agent.chat("after the crash").await {
                    Ok(reply) => reply.finish().await,
                    Err(e) => Err(e),
                };
                match turn {
                    Ok(_) => break,
                    // A call racing the crash fails like the turn in flight; callers retry.
                    Err(agy_bridge::Error::WorkerCrashed { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            usable_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    bridge.shutdown().await;
    Recovery {
        ready_ms,
        usable_ms,
    }
}

/// The longest reverse round trip other traffic on a worker sees while three agents start on
/// it (milliseconds), with agent start-up off the event loop or on it.
/// The longest reverse round trip seen by other traffic on the worker (ms): with nothing else
/// going on, while 3 agents start, and while those 3 agents stop.
async fn start_stall(model: &ScriptedModel, offloop: bool) -> (f64, f64, f64) {
    let data = tempfile::tempdir().unwrap();
    let mut config = BridgeConfig::default().data_dir(data.path());
    if !offloop {
        config = config.worker_env("AGY_WORKER_OFFLOOP_START", "0");
    }
    let bridge = Bridge::start(config).await.unwrap();
    assert_eq!(bridge.worker_info().offloop_agent_start, offloop);
    let ping_during = |count: u32| {
        bridge.call_raw(
            "worker/ping_rust",
            json!({"count": count, "concurrency": 1}),
        )
    };
    let quiet = ping_during(5000).await.unwrap();
    let starts = async {
        let mut agents = Vec::new();
        for _ in 0..3 {
            let config =
                AgentConfig::new(ModelConfig::openai_compatible(model.base_url(), "bench"));
            agents.push(bridge.create_agent(config).await.unwrap());
        }
        agents
    };
    let (starting, agents) = tokio::join!(ping_during(30000), starts);
    let stops = async {
        for agent in agents {
            agent.close().await.unwrap();
        }
    };
    let (stopping, ()) = tokio::join!(ping_during(10000), stops);
    bridge.shutdown().await;
    let max = |v: &Value| v["max_us"].as_f64().unwrap_or(f64::NAN) / 1e3;
    (
        max(&quiet),
        max(&starting.unwrap()),
        max(&stopping.unwrap()),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let env = venv::ensure(Default::default(), None).await.expect("python env");
        let model = ScriptedModel::start().await.unwrap();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        eprintln!("measuring (load average {})…", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

        if std::env::var("AGY_BENCH_ONLY").as_deref() == Ok("floor") {
            // The RPC floor alone, for profiling: no start-up, turns or scaling.
            let base = baseline(&env.python).await;
            let default = worker_variant("worker (default)", &[]).await;
            let tools = tool_call_floor().await;
            println!("| peer | forward p50 | forward p99 | reverse p50 | reverse p99 | reverse calls/s, 32 in flight | 1 MiB echo p50 (ms) |");
            println!("|---|---|---|---|---|---|---|");
            println!(
                "| plain asyncio echo (baseline) | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} |",
                base.fwd.p50, base.fwd.p99, base.rev.p50, base.rev.p99, base.rev32, base.big_ms
            );
            let v = default;
            println!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} |",
                v.name, v.fwd.p50, v.fwd.p99, v.rev.p50, v.rev.p99, v.rev32, v.big_ms
            );
            for ((rtt, rate), name) in tools.iter().zip(["default", "nonblocking()"]) {
                println!(
                    "\nno-op Rust tool ({name}) via tool/call: p50 {:.1} µs, p99 {:.1} µs, {rate:.0} calls/s with 32 in flight",
                    rtt.p50, rtt.p99
                );
            }
            return;
        }
        let sdk_rate = sdk_scaling(&model, &env.python).await;
        let mut rates = Vec::new();
        for workers in [1, 2, 4] {
            rates.push((workers, scaling(&model, workers).await));
        }
        if std::env::var("AGY_BENCH_ONLY").as_deref() == Ok("scaling") {
            print_scaling(sdk_rate, &rates);
            return;
        }
        let base = baseline(&env.python).await;
        let variants = [
            worker_variant("worker, uvloop + orjson (default)", &[]).await,
            worker_variant("worker, asyncio + orjson", &[("AGY_WORKER_UVLOOP", "0")]).await,
            worker_variant(
                "worker, asyncio + json",
                &[("AGY_WORKER_UVLOOP", "0"), ("AGY_WORKER_JSON", "json")],
            )
            .await,
        ];
        let start = startup_and_turns(&model).await;
        let kills = kill_to_error(&model).await;
        let tools = tool_bench(&model, &env.python).await;
        let stall_on_loop = start_stall(&model, false).await;
        let stall_off_loop = start_stall(&model, true).await;
        let cold = crash_recovery(&model, false).await;
        let warm = crash_recovery(&model, true).await;

        println!("## Run of {}", support::run_date());
        println!("\nLoad average at start: {}\n", load.trim());
        println!("### Ping round trips over stdio (µs; ratio = figure / plain asyncio echo)\n");
        println!("| peer | forward p50 | forward p99 | reverse p50 | reverse p99 | reverse calls/s, 32 in flight | 1 MiB echo p50 (ms) |");
        println!("|---|---|---|---|---|---|---|");
        println!(
            "| plain asyncio echo (baseline) | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {:.2} |",
            base.fwd.p50, base.fwd.p99, base.rev.p50, base.rev.p99, base.rev32, base.big_ms
        );
        for v in &variants {
            println!(
                "| {} | {:.1} ({:.2}×) | {:.1} ({:.2}×) | {:.1} ({:.2}×) | {:.1} ({:.2}×) | {:.0} ({:.2}×) | {:.2} ({:.2}×) |",
                v.name,
                v.fwd.p50,
                v.fwd.p50 / base.fwd.p50,
                v.fwd.p99,
                v.fwd.p99 / base.fwd.p99,
                v.rev.p50,
                v.rev.p50 / base.rev.p50,
                v.rev.p99,
                v.rev.p99 / base.rev.p99,
                v.rev32,
                v.rev32 / base.rev32,
                v.big_ms,
                v.big_ms / base.big_ms,
            );
        }
        println!("\n### Worker start-up (ms, median of {STARTS})\n");
        println!("| phase | worker | plain asyncio echo |");
        println!("|---|---|---|");
        println!("| spawn (fork/exec) | {:.1} | |", start.spawn);
        println!("| interpreter start → `__main__` | {:.0} | |", start.interpreter);
        println!("| SDK import (in a thread, overlapping the above) | {:.0} | |", start.sdk_import);
        println!(
            "| spawn → `initialize` answered | {:.0} ({:.1}×) | {:.0} (spawn → first reply) |",
            start.ready,
            start.ready / base.start_ms,
            base.start_ms
        );
        println!("| first agent ready (`agent/create`, harness start) | {:.0} | |", start.first_agent);
        let ping = &variants[0];
        println!("\n### Rust tools\n");
        println!("| figure | p50 | p99 | calls/s, 32 in flight |");
        println!("|---|---|---|---|");
        println!(
            "| reverse `$/ping` (baseline for the tool path, from the table above) | {:.1} µs | {:.1} µs | {:.0} |",
            ping.rev.p50, ping.rev.p99, ping.rev32
        );
        println!(
            "| no-op Rust tool via `tool/call`, seen from the worker | {:.1} µs ({:.2}×) | {:.1} µs ({:.2}×) | {:.0} ({:.2}×) |",
            tools.call.p50,
            tools.call.p50 / ping.rev.p50,
            tools.call.p99,
            tools.call.p99 / ping.rev.p99,
            tools.calls32,
            tools.calls32 / ping.rev32
        );
        println!(
            "| chat turn with one tool call, Python SDK directly (baseline, {TURNS} turns) | {:.1} ms | {:.1} ms | |",
            tools.sdk_turn.p50, tools.sdk_turn.p99
        );
        println!(
            "| the same turn through the bridge with a Rust tool | {:.1} ms ({:.2}×) | {:.1} ms ({:.2}×) | |",
            tools.bridge_turn.p50,
            tools.bridge_turn.p50 / tools.sdk_turn.p50,
            tools.bridge_turn.p99,
            tools.bridge_turn.p99 / tools.sdk_turn.p99
        );
        println!("\n### Stalls while agents start and stop (ms)\n");
        println!("| longest reverse round trip seen by other traffic on the worker | no agent starting | while 3 agents start | while 3 agents stop |");
        println!("|---|---|---|---|");
        println!(
            "| SDK's own agent start-up and stop (on the event loop) | {:.1} | {:.1} | {:.1} |",
            stall_on_loop.0, stall_on_loop.1, stall_on_loop.2
        );
        println!(
            "| worker's off-loop start-up and stop | {:.1} | {:.1} | {:.1} |",
            stall_off_loop.0, stall_off_loop.1, stall_off_loop.2
        );
        let fmt = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" / ");
        println!("\n### Crash recovery (ms, {KILLS} runs each)\n");
        println!("| figure | new worker started on demand | warm spare |");
        println!("|---|---|---|");
        println!(
            "| `kill -9` → a replacement answers (crash-to-ready) | {} | {} |",
            fmt(&cold.ready_ms),
            fmt(&warm.ready_ms)
        );
        println!(
            "| `kill -9` → the same agent completes a turn (crash-to-agent-usable) | {} | {} |",
            fmt(&cold.usable_ms),
            fmt(&warm.usable_ms)
        );
        print_scaling(sdk_rate, &rates);
        println!("\n### Chat turns and crashes\n");
        println!("| figure | value |");
        println!("|---|---|");
        println!(
            "| text chat turn through the bridge (scripted model), p50 / p99 of {TURNS} | {:.1} ms / {:.1} ms |",
            start.turn_p50, start.turn_p99
        );
        println!(
            "| `kill -9` of the worker → streaming chat fails with `WorkerCrashed` ({KILLS} runs) | {} ms |",
            kills.iter().map(|k| format!("{k:.1}")).collect::<Vec<_>>().join(" / ")
        );
    });
}

/// Turns per second of 32 agents chatting concurrently (text turns, scripted model) on a
/// bridge with `workers` workers: 3 rounds of 32 concurrent turns after a warm-up round.
async fn scaling(model: &ScriptedModel, workers: usize) -> f64 {
    const AGENTS: usize = 32;
    const ROUNDS: usize = 3;
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .workers(workers),
    )
    .await
    .unwrap();
    let agents = futures::future::try_join_all((0..AGENTS).map(|_| {
        bridge.create_agent(AgentConfig::new(ModelConfig::openai_compatible(
            model.base_url(),
            "bench",
        )))
    }))
    .await
    .unwrap();
    let round = || {
        futures::future::join_all(agents.iter().map(|a| async move {
            let mut reply = a.chat("hello there").await.unwrap();
            while reply.next().await.is_some() {}
            reply.finish().await.unwrap();
        }))
    };
    round().await;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        round().await;
    }
    let rate = (AGENTS * ROUNDS) as f64 / started.elapsed().as_secs_f64();
    futures::future::join_all(agents.into_iter().map(Agent::close)).await;
    bridge.shutdown().await;
    rate
}

/// Turns per second of the same 32 agents run by the Python SDK in one asyncio loop
/// (`scripts/sdk_activation.py throughput`), same model, same rounds.
async fn sdk_scaling(model: &ScriptedModel, python: &std::path::Path) -> f64 {
    let v = support::sdk_baseline(
        python,
        "sdk_activation.py",
        &["throughput", &model.base_url(), "{work}", "32"],
    )
    .await;
    v["turns_per_sec"].as_f64().unwrap()
}

fn print_scaling(sdk: f64, rates: &[(usize, f64)]) {
    println!(
        "\n### Throughput of 32 concurrent agents (text turns/s; ratio = figure / the Python SDK's 32 agents in one asyncio loop)\n"
    );
    println!("| who | turns/s | ratio |");
    println!("|---|---|---|");
    println!("| Python SDK, one process, one event loop (baseline) | {sdk:.1} | 1.00 |");
    for (workers, rate) in rates {
        println!(
            "| bridge, {workers} worker(s) | {rate:.1} | {:.2} |",
            rate / sdk
        );
    }
}
