//! Rust tools called by the real SDK through `tool/call` reverse requests.

use crate::common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use agy_bridge::{
    Bridge, ChatEvent, Error, ToolContext, llm_tool,
    testing::{Reply, ScriptedModel},
    tools::{FnTool, ToolError},
};
use common::{HANG, agent_config, collect, config, start};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Units for a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Units {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

/// Where to forecast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Place {
    /// City name.
    city: String,
    /// Optional country code.
    country: Option<String>,
}

/// Gets a weather forecast.
#[llm_tool]
fn forecast(
    place: Place,
    #[describe("How many days ahead, 1 to 7.")] days: u32,
    units: Option<Units>,
) -> Result<String, String> {
    if days == 0 {
        return Err("days must be at least 1".into());
    }
    Ok(format!(
        "{} ({}) in {days} days: 21 degrees {:?}",
        place.city,
        place.country.unwrap_or_default(),
        units.unwrap_or(Units::Celsius)
    ))
}

/// Counts calls per agent in the shared tool state.
#[llm_tool]
async fn count_calls(ctx: ToolContext) -> u64 {
    ctx.update("calls", |n: Option<u64>| n.unwrap_or(0) + 1)
}

/// Adds two numbers.
#[llm_tool(nonblocking)]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[tokio::test(flavor = "multi_thread")]
async fn llm_tool_gets_typed_args_and_its_schema_reaches_the_model() {
    let (bridge, model, _data) = start().await;
    model.push(Reply::tool_call(
        "forecast",
        json!({"place": {"city": "Oslo", "country": "NO"}, "days": 3, "units": "fahrenheit"}),
    ));
    // The echo responder then reports the tool result.
    let agent = bridge
        .create_agent(agent_config(&model).tool(Forecast))
        .await
        .unwrap();
    let mut reply = agent.chat("Weather in Oslo?").await.unwrap();
    let mut calls = Vec::new();
    let mut text = String::new();
    while let Some(event) = tokio::time::timeout(HANG, reply.next()).await.unwrap() {
        match event {
            ChatEvent::ToolCall { name, args, .. } => calls.push((name, args)),
            ChatEvent::Text { text: t } => text.push_str(&t),
            _ => {}
        }
    }
    reply.finish().await.unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "forecast");
    // Integers stay integers all the way (the harness sends floats; the worker fixes them).
    assert_eq!(calls[0].1["days"], json!(3));
    assert!(
        text.contains("Oslo (NO) in 3 days: 21 degrees Fahrenheit"),
        "{text}"
    );

    let requests = model.requests();
    let tool = requests[0]
        .tools()
        .into_iter()
        .find(|t| t["name"] == "forecast")
        .expect("the model saw the tool");
    assert_eq!(tool["description"], "Gets a weather forecast.");
    let props = &tool["parameters"]["properties"];
    assert_eq!(props["days"]["type"], "integer");
    assert_eq!(props["days"]["description"], "How many days ahead, 1 to 7.");
    assert_eq!(props["place"]["properties"]["city"]["type"], "string");
    assert!(props["units"].to_string().contains("fahrenheit"), "{props}");
    let required = tool["parameters"]["required"].to_string();
    assert!(required.contains("place") && required.contains("days") && !required.contains("units"));
    // The tool result reached the model as the tool message.
    let result = requests[1].tool_result().expect("a tool result");
    assert!(result.contains("21 degrees Fahrenheit"), "{result}");
    bridge.shutdown().await;
}

/// `boom`: panics.
fn boom_tool() -> FnTool {
    FnTool::new(
        "boom",
        "Panics.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { panic!("the tool exploded") },
    )
}

/// `slow`: never ends, with a 200 ms timeout.
fn slow_tool() -> FnTool {
    FnTool::new(
        "slow",
        "Never ends.",
        json!({"type": "object", "properties": {}}),
        |_, _| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Value::Null)
        },
    )
    .with_timeout(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_errors_panics_and_timeouts_reach_the_model_and_the_agent_stays_healthy() {
    let (bridge, model, _data) = start().await;
    let boom = boom_tool();
    let slow = slow_tool();
    let agent = bridge
        .create_agent(agent_config(&model).tool(Forecast).tool(boom).tool(slow))
        .await
        .unwrap();
    for (call, expected) in [
        (
            Reply::tool_call("forecast", json!({"place": {"city": "X"}, "days": 0})),
            "days must be at least 1",
        ),
        (
            Reply::tool_call("boom", json!({})),
            "tool boom panicked: the tool exploded",
        ),
        (
            Reply::tool_call("slow", json!({})),
            "tool slow timed out after 200ms",
        ),
    ] {
        model.push(call);
        let (text, outcome) = collect(agent.chat("go").await.unwrap()).await;
        outcome.unwrap();
        assert!(text.contains(expected), "expected {expected:?} in {text:?}");
    }
    bridge.ping().await.unwrap();
    common::chat_ok(&agent, "still fine?").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nonblocking_tools_have_the_same_guards() {
    let (bridge, model, _data) = start().await;
    let inline = FnTool::new(
        "inline",
        "Answers at once.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("answered on the runtime")) },
    )
    .nonblocking();
    let boom = boom_tool().nonblocking();
    let slow = slow_tool().nonblocking();
    use agy_bridge::Tool;
    assert!(Add.nonblocking() && Tool::nonblocking(&inline) && !CountCalls.nonblocking());
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(inline)
                .tool(Add)
                .tool(boom)
                .tool(slow),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call("add", json!({"a": 2, "b": 40})));
    let (text, outcome) = collect(agent.chat("add").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("42"), "{text}");
    for (call, expected) in [
        ("inline", "answered on the runtime"),
        ("boom", "tool boom panicked: the tool exploded"),
        ("slow", "tool slow timed out after 200ms"),
    ] {
        model.push(Reply::tool_call(call, json!({})));
        let (text, outcome) = collect(agent.chat("go").await.unwrap()).await;
        outcome.unwrap();
        assert!(
            text.contains(expected),
            "{call}: expected {expected:?} in {text:?}"
        );
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_10_mib_tool_result_reaches_the_model() {
    let (bridge, model, _data) = start().await;
    let big = FnTool::new(
        "big",
        "Returns 10 MiB.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("z".repeat(10 * 1024 * 1024))) },
    );
    let agent = bridge
        .create_agent(agent_config(&model).tool(big))
        .await
        .unwrap();
    model.push(Reply::tool_call("big", json!({})));
    model.push(Reply::text("got it"));
    let (text, outcome) = collect(agent.chat("go").await.unwrap()).await;
    outcome.unwrap();
    assert_eq!(text, "got it");
    // The whole 10 MiB crossed the bridge; the harness then truncates tool output for the
    // model (the SDK's tool_output_truncation_config), keeping a long run of it.
    let result = model.requests()[1].tool_result().unwrap();
    assert!(
        result.contains("Tool response for big"),
        "{}",
        &result[..200]
    );
    assert!(
        result.contains(&"z".repeat(40_000)),
        "{} bytes reached the model",
        result.len()
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_state_persists_across_turns_and_is_private_to_each_agent() {
    let (bridge, model, _data) = start().await;
    let a = bridge
        .create_agent(agent_config(&model).tool(CountCalls))
        .await
        .unwrap();
    let b = bridge
        .create_agent(agent_config(&model).tool(CountCalls))
        .await
        .unwrap();
    for (agent, expected) in [(&a, 1), (&a, 2), (&b, 1), (&a, 3)] {
        model.push(Reply::tool_call("count_calls", json!({})));
        let (text, outcome) = collect(agent.chat("count").await.unwrap()).await;
        outcome.unwrap();
        let want =
            format!("Tool response for count_calls:\n```json\n{{\"result\": {expected}}}\n```");
        assert!(text.ends_with(&want), "{text}");
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_reverse_requests_are_rejected() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).tool(CountCalls))
        .await
        .unwrap();
    // Ask the worker to send tool/call for an agent id this bridge never created, and for a
    // tool the real agent does not have; both must be refused with typed errors.
    let err = bridge
        .call_raw(
            "worker/debug",
            json!({"action": "reverse", "method": "tool/call",
            "params": {"agent_id": "agent-999", "tool": "count_calls", "args": {}}}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown agent"), "{err}");
    let err = bridge
        .call_raw(
            "worker/debug",
            json!({"action": "reverse", "method": "tool/call",
            "params": {"agent_id": agent.id(), "tool": "rm_rf", "args": {}}}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has no tool rm_rf"), "{err}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicate_tool_names_are_refused_before_anything_starts() {
    let (bridge, model, _data) = start().await;
    let err = bridge
        .create_agent(agent_config(&model).tool(CountCalls).tool(CountCalls))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidConfig { ref message } if message.contains("registered twice")),
        "{err}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_tool_schema_is_refused_before_a_harness_starts() {
    // No pre-started harness either, so that any harness in the worker's group is one too many.
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data).prestarted_harnesses(0))
        .await
        .unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let broken = FnTool::new(
        "broken",
        "Has a schema the harness cannot use.",
        json!({"type": "object", "properties": 5}),
        |_, _| async { Ok(json!(null)) },
    );
    let err = bridge
        .create_agent(agent_config(&model).tool(broken))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidToolSchema { tool, path, .. } if tool == "broken" && path == "/properties"),
        "{err}"
    );
    // Nothing was started for it: no agent on the worker, no harness in its process group.
    let stats = bridge.stats();
    assert_eq!(stats.agents, 0);
    assert!(stats.harness_rss_bytes.unwrap_or(0) == 0, "{stats:?}");
    assert!(model.requests().is_empty());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_turn_cancels_the_rust_tool_in_flight() {
    let (bridge, model, _data) = start().await;
    let started = Arc::new(tokio::sync::Notify::new());
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Guard(Arc<AtomicUsize>);
    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let tool = {
        let (started, dropped) = (Arc::clone(&started), Arc::clone(&dropped));
        FnTool::new(
            "wait",
            "Waits forever.",
            json!({"type": "object", "properties": {}}),
            move |_, _| {
                let (started, guard) = (Arc::clone(&started), Guard(Arc::clone(&dropped)));
                async move {
                    let _guard = guard;
                    started.notify_one();
                    std::future::pending::<()>().await;
                    Err::<Value, _>(ToolError::failed("unreachable"))
                }
            },
        )
    };
    let agent = bridge
        .create_agent(agent_config(&model).tool(tool))
        .await
        .unwrap();
    model.push(Reply::tool_call("wait", json!({})));
    let reply = agent.chat("wait").await.unwrap();
    tokio::time::timeout(HANG, started.notified())
        .await
        .unwrap();
    drop(reply);
    let deadline = tokio::time::Instant::now() + HANG;
    while dropped.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tool future was never dropped\n{}",
            bridge.worker_stderr_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    common::chat_ok(&agent, "after").await;
    bridge.shutdown().await;
}

/// Blocks its thread for a long time without `.await` (a synchronous read on a FIFO, a
/// blocking HTTP client): a bug in the tool, which must not freeze anything else.
fn thread_blocking_tool(released: Arc<AtomicBool>, entered: Arc<AtomicBool>) -> FnTool {
    FnTool::new(
        "stuck",
        "Blocks its thread.",
        json!({"type": "object", "properties": {}}),
        move |_, _| {
            let released = Arc::clone(&released);
            entered.store(true, Ordering::SeqCst);
            async move {
                while !released.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(json!("unstuck"))
            }
        },
    )
}

#[test]
fn timeouts_fire_and_other_agents_run_while_a_tool_blocks_its_thread() {
    // The runtime an application would use, with as few threads as a small container gives it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let released = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let scenario = async {
        let data = tempfile::tempdir().unwrap();
        let bridge = Bridge::start(common::config(&data).chat_timeout(Duration::from_secs(3)))
            .await
            .unwrap();
        let model = ScriptedModel::start().await.unwrap();
        let stuck = bridge
            .create_agent(agent_config(&model).tool(thread_blocking_tool(
                Arc::clone(&released),
                Arc::clone(&entered),
            )))
            .await
            .unwrap();
        let free = bridge.create_agent(agent_config(&model)).await.unwrap();
        model.push(Reply::tool_call("stuck", json!({})));
        let reply = stuck.chat("block").await.unwrap();
        // (The scripted reply is the stuck agent's: wait until its tool runs.)
        common::eventually("the tool runs", || entered.load(Ordering::SeqCst)).await;
        // While the tool blocks a runtime thread, another agent completes a turn…
        common::chat_ok(&free, "are you there?").await;
        // …and the blocked turn ends at its chat timeout.
        let (_, outcome) = collect(reply).await;
        let err = outcome.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        released.store(true, Ordering::SeqCst);
        bridge.shutdown().await;
    };
    let outcome = runtime.block_on(async { tokio::time::timeout(HANG, scenario).await });
    released.store(true, Ordering::SeqCst);
    outcome.expect("nothing may freeze while a tool blocks its thread");
}
