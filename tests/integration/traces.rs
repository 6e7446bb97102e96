//! Traces across the pipe (feature `otel`): a turn in which the model calls a Rust tool is
//! one trace at a real OTLP/HTTP receiver, with spans from both processes — the Rust turn,
//! its model calls (the gateway), the worker's SDK turn, step and tool spans, and the Rust
//! tool's span as the child of the worker's — and no OpenTelemetry setting or secret in any
//! attribute, nor in the environment of the commands the agent runs.

use std::process::Command;

use agy_bridge::{Bridge, PolicyRule, WorkerTracing, testing::Reply, tools::FnTool};
use opentelemetry::trace::TracerProvider as _;
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use crate::{
    common::{self, agent_config, collect},
    otlp::{ReceivedSpan, Receiver},
};

const HEADER_SECRET: &str = "otel-sentinel-4d1c";
const ARG_SECRET: &str = "arg-sentinel-77e2";
const RUST_SERVICE: &str = "agy-bridge-probe";

#[test]
fn a_turn_is_one_trace_across_the_pipe() {
    // Run in a child process: it installs the global tracing subscriber, and its environment
    // holds the exporter's (secret) headers, as a deployment's would.
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "traces::trace_probe", "--ignored", "--nocapture"])
        .env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-probe-token={HEADER_SECRET}"),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find<'a>(spans: &'a [ReceivedSpan], service: &str, name: &str) -> Vec<&'a ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by a_turn_is_one_trace_across_the_pipe"]
async fn trace_probe() {
    let receiver = Receiver::start().await;
    // The application's side: tracing spans exported over OTLP/HTTP, as the docs show.
    let provider = receiver.tracer_provider(RUST_SERVICE);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("agy-bridge")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let data = tempfile::tempdir().unwrap();
    let bridge =
        Bridge::start(common::config(&data).tracing(WorkerTracing::otlp(receiver.endpoint())))
            .await
            .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let lookup = FnTool::new(
        "lookup",
        "Looks a customer up.",
        json!({"type": "object", "properties": {"api_key": {"type": "string"}}}),
        |_, _| async { Ok(json!("customer 42")) },
    );
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(lookup)
                .builtin_tool("run_command")
                .policy(PolicyRule::allow_all()),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call("lookup", json!({"api_key": ARG_SECRET})));
    model.push(common::print_environment(data.path()));
    let (text, outcome) = collect(agent.chat("look the customer up").await.unwrap()).await;
    outcome.unwrap();
    // The command ran, and the exporter's settings stayed with the worker.
    assert!(text.contains("PATH="), "{text}");
    assert!(!text.contains("OTEL_"), "{text}");
    let harness = std::fs::read(format!("/proc/{}/environ", agent.harness_pid().unwrap())).unwrap();
    assert!(!String::from_utf8_lossy(&harness).contains("OTEL_"));
    let conversation = agent.conversation_id().to_owned();
    agent.close().await.unwrap();
    // The worker exports its last spans as it stops; the Rust side's, when flushed.
    bridge.shutdown().await;
    let flushed = tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap();
    flushed.unwrap();

    let mut spans = Vec::new();
    common::eventually("spans from both processes arrive", || {
        spans = receiver.spans();
        !find(&spans, RUST_SERVICE, "execute_tool lookup").is_empty()
            && !find(&spans, "agy-worker", "execute_tool run_command").is_empty()
    })
    .await;
    let names: Vec<String> = spans
        .iter()
        .map(|s| {
            format!(
                "{}/{} {} {}<-{}",
                s.service,
                s.name,
                &s.trace_id[..6],
                s.span_id,
                s.parent_span_id
            )
        })
        .collect();

    // The Rust turn is the root, with the GenAI attributes.
    let turns = find(&spans, RUST_SERVICE, "invoke_agent agy-bridge");
    assert_eq!(turns.len(), 1, "{names:?}");
    let turn = turns[0];
    assert_eq!(turn.parent_span_id, "", "the turn is the root");
    assert_eq!(turn.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(turn.attr("gen_ai.request.model"), Some("scripted"));
    assert_eq!(
        turn.attr("gen_ai.conversation.id"),
        Some(conversation.as_str())
    );
    assert!(turn.attr("gen_ai.usage.input_tokens").is_some(), "{turn:?}");
    let in_trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == turn.trace_id)
        .collect();

    // Its model calls (three: the tool call, the command, the answer), through the gateway.
    let calls = find(&spans, RUST_SERVICE, "chat scripted");
    assert_eq!(calls.len(), 3, "{names:?}");
    for call in &calls {
        assert_eq!(call.parent_span_id, turn.span_id);
        assert_eq!(call.attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(call.attr("http.response.status_code"), Some("200"));
    }

    // The SDK's turn span in the worker is the Rust turn's child…
    let worker_turn = in_trace
        .iter()
        .find(|s| {
            s.service == "agy-worker" && s.attr("gen_ai.operation.name") == Some("invoke_agent")
        })
        .unwrap_or_else(|| panic!("no worker turn span in the trace: {names:?}"));
    assert_eq!(worker_turn.parent_span_id, turn.span_id);
    // …and its tool span for `lookup` descends from it (through a step span)…
    let worker_tool = in_trace
        .iter()
        .find(|s| s.service == "agy-worker" && s.name == "execute_tool lookup")
        .unwrap_or_else(|| panic!("no worker tool span in the trace: {names:?}"));
    assert_eq!(worker_tool.attr("gen_ai.tool.name"), Some("lookup"));
    let mut ancestor = worker_tool.parent_span_id.clone();
    let mut chain = Vec::new();
    while let Some(parent) = in_trace.iter().find(|s| s.span_id == ancestor) {
        chain.push(parent.name.clone());
        ancestor = parent.parent_span_id.clone();
    }
    assert!(
        chain.contains(&worker_turn.name)
            && chain.last().map(String::as_str) == Some(turn.name.as_str()),
        "the worker's tool span descends from {chain:?}"
    );
    // …and is the parent of the Rust tool's span.
    let rust_tool = find(&spans, RUST_SERVICE, "execute_tool lookup");
    assert_eq!(rust_tool.len(), 1, "{names:?}");
    assert_eq!(rust_tool[0].trace_id, turn.trace_id);
    assert_eq!(rust_tool[0].parent_span_id, worker_tool.span_id);
    assert_eq!(rust_tool[0].attr("gen_ai.tool.name"), Some("lookup"));

    // No OpenTelemetry setting, no tool argument, no environment value in any attribute.
    for span in &spans {
        for (key, value) in span.attributes.iter().chain(&span.resource) {
            for secret in [HEADER_SECRET, ARG_SECRET, "x-probe-token"] {
                assert!(
                    !value.contains(secret),
                    "{secret} in {}: {key}={value}",
                    span.name
                );
            }
        }
    }
    // The header itself did reach the receiver from the worker (so the secret was in play).
    assert!(
        receiver
            .headers()
            .iter()
            .any(|h| h == &format!("x-probe-token: {HEADER_SECRET}")),
        "the worker's exporter did not use OTEL_EXPORTER_OTLP_HEADERS"
    );
}
