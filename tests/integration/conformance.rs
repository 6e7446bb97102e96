//! The Python worker conforms to the protocol mechanically: a real session (a tool call, hooks,
//! a policy confirmation, a sent turn, history, counters, a cancel and a close) is recorded by
//! the worker itself, message by message in both directions, and every request's params, every
//! notification's params and every answer's result is validated against
//! `docs/protocol.schema.json`, the schema generated from the Rust types.

use crate::common;

use std::collections::HashMap;

use agy_bridge::{
    Hooks, PolicyRule, hooks::ToolDecision, policies::ConfirmRequest, testing::Reply, tools::FnTool,
};
use common::{agent_config, collect};
use serde_json::{Value, json};

const SCHEMA: &str = include_str!("../../docs/protocol.schema.json");

/// One validator per (method, "params" | "result"), each with the schema's `$defs`.
fn validators() -> HashMap<(String, &'static str), jsonschema::Validator> {
    let schema: Value = serde_json::from_str(SCHEMA).expect("the schema is JSON");
    let defs = schema["$defs"].clone();
    let mut out = HashMap::new();
    for (name, method) in schema["methods"].as_object().expect("methods") {
        for part in ["params", "result"] {
            let mut sub = method[part].clone();
            if let Value::Object(map) = &mut sub {
                map.insert("$defs".into(), defs.clone());
            }
            let validator = jsonschema::validator_for(&sub)
                .unwrap_or_else(|e| panic!("schema of {name} {part}: {e}"));
            out.insert((name.clone(), part), validator);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_of_a_real_session_matches_the_protocol_schema() {
    let data = tempfile::tempdir().unwrap();
    let record = data.path().join("session.ndjson");
    let bridge = agy_bridge::Bridge::start(
        common::config(&data).worker_env("AGY_WORKER_RECORD", record.display().to_string()),
    )
    .await
    .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let weather = FnTool::new(
        "weather",
        "Looks up the weather.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        |args, _| async move { Ok(json!({ "city": args["city"], "sky": "clear" })) },
    );
    let hooks = Hooks::new()
        .pre_tool_call_decide(|_| async { ToolDecision::Allow })
        .post_turn(|_| async {});
    let agent =
        bridge
            .create_agent(agent_config(&model).tool(weather).hooks(hooks).policy(
                PolicyRule::ask_user("weather", |_: ConfirmRequest| async { true }),
            ))
            .await
            .unwrap();
    model.push(Reply::tool_call("weather", json!({"city": "Oslo"})));
    let (_, outcome) = collect(agent.chat("weather in Oslo?").await.unwrap()).await;
    outcome.expect("the tool turn completes");
    agent.send("and now?").await.unwrap();
    agent.wait_for_idle().await.unwrap();
    agent.history().await.unwrap();
    agent.turn_count().await.unwrap();
    agent.cancel().await.unwrap();
    agent.close().await.unwrap();
    bridge.shutdown().await;

    let validators = validators();
    let recorded = std::fs::read_to_string(&record).expect("the worker recorded the session");
    // Requests by (direction, id): answers are checked against their request's method.
    let mut asked: HashMap<(char, u64), String> = HashMap::new();
    let (mut checked, mut methods) = (0, std::collections::BTreeSet::new());
    let mut errors = Vec::new();
    for line in recorded.lines() {
        let (direction, text) = line.split_at(2);
        let incoming = direction == "< ";
        let message: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("a recorded line is not JSON ({e}): {text}"));
        let (method, part, value) = if let Some(method) = message["method"].as_str() {
            if let Some(id) = message["id"].as_u64() {
                asked.insert((if incoming { '<' } else { '>' }, id), method.to_owned());
            }
            (method.to_owned(), "params", &message["params"])
        } else if message.get("result").is_some() {
            // An answer goes the other way from its request.
            let id = message["id"]
                .as_u64()
                .expect("answers of ours have integer ids");
            let key = (if incoming { '>' } else { '<' }, id);
            let Some(method) = asked.get(&key) else {
                errors.push(format!("an answer to no recorded request: {text}"));
                continue;
            };
            (method.clone(), "result", &message["result"])
        } else {
            continue; // error answers: their codes are checked by the worker's own tests
        };
        if method.starts_with("$/") && !validators.contains_key(&(method.clone(), part)) {
            continue; // the rpc layer's own (`$/cancelRequest`)
        }
        let Some(validator) = validators.get(&(method.clone(), part)) else {
            errors.push(format!("{method} is not in the schema: {text}"));
            continue;
        };
        if let Err(e) = validator.validate(value) {
            errors.push(format!("{method} {part}: {e}\n  {text}"));
        }
        checked += 1;
        methods.insert(method);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for expected in [
        "initialize",
        "agent/create",
        "agent/chat",
        "chat/event",
        "tool/call",
        "hook/run",
        "policy/confirm",
        "agent/send",
        "agent/wait_for_idle",
        "agent/history",
        "agent/state",
        "agent/cancel",
        "agent/close",
    ] {
        assert!(
            methods.contains(expected),
            "the session never used {expected}: {methods:?}"
        );
    }
    assert!(checked > 20, "only {checked} messages were checked");
}
