//! Every hook point, fired by the real SDK and answered by Rust over `hook/run`.

use crate::common;

use std::sync::{Arc, Mutex};

use agy_bridge::{
    Error, Hooks, PolicyRule,
    hooks::{Answer, Answers, StopDecision, ToolDecision, TurnDecision},
    testing::Reply,
    tools::FnTool,
};
use common::{agent_config, collect, start};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, entry: impl Into<String>) {
    log.lock().unwrap().push(entry.into());
}

fn echo_tool(log: &Log) -> FnTool {
    let log = Arc::clone(log);
    FnTool::new(
        "echo",
        "Echoes its text.",
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        move |args, _| {
            let log = Arc::clone(&log);
            async move {
                push(&log, format!("tool echo({})", args["text"]));
                if args["text"] == "fail" {
                    return Err(agy_bridge::tools::ToolError::failed("echo refused"));
                }
                Ok(json!({ "echoed": args["text"] }))
            }
        },
    )
}

fn recording_hooks(log: &Log) -> Hooks {
    let l = |log: &Log| Arc::clone(log);
    let (a, b, c, d, e, f, g, h) = (
        l(log),
        l(log),
        l(log),
        l(log),
        l(log),
        l(log),
        l(log),
        l(log),
    );
    Hooks::new()
        .on_session_start(move |s| {
            let a = Arc::clone(&a);
            async move { push(&a, format!("session_start {}", s.agent_id)) }
        })
        .pre_turn(move |t| {
            let b = Arc::clone(&b);
            async move {
                push(&b, format!("pre_turn {}", t.prompt.contains("please")));
                if t.prompt.contains("forbidden") {
                    TurnDecision::deny("no forbidden topics")
                } else {
                    TurnDecision::allow()
                }
            }
        })
        .pre_tool_call_decide(move |call| {
            let c = Arc::clone(&c);
            async move {
                push(&c, format!("pre_tool {} {}", call.tool, call.args["text"]));
                match call.args["text"].as_str() {
                    Some("secret") => ToolDecision::Deny("secrets stay secret".into()),
                    Some("rewrite me") => ToolDecision::Modify(json!({"text": "rewritten"})),
                    _ => ToolDecision::Allow,
                }
            }
        })
        .post_tool_call(move |done| {
            let d = Arc::clone(&d);
            async move { push(&d, format!("post_tool {} {}", done.tool, done.result)) }
        })
        .on_tool_error(move |failure| {
            let e = Arc::clone(&e);
            async move {
                push(
                    &e,
                    format!(
                        "tool_error {:?} {}",
                        failure.tool,
                        failure.message.contains("echo refused")
                    ),
                );
                Some("the echo tool is unavailable right now".to_owned())
            }
        })
        .stop(move |stop| {
            let f = Arc::clone(&f);
            async move {
                push(&f, format!("stop {}", stop.continuation_count));
                StopDecision::AllowStop
            }
        })
        .post_turn(move |turn| {
            let g = Arc::clone(&g);
            async move { push(&g, format!("post_turn {}", turn.response)) }
        })
        .on_session_end(move |s| {
            let h = Arc::clone(&h);
            async move { push(&h, format!("session_end {}", s.agent_id)) }
        })
}

fn take(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn hook_points_fire_in_order_with_their_data() {
    let (bridge, model, _data) = start().await;
    let log: Log = Arc::default();
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(echo_tool(&log))
                .hooks(recording_hooks(&log)),
        )
        .await
        .unwrap();
    let id = agent.id().to_owned();

    model.push(Reply::tool_call("echo", json!({"text": "hi"})));
    model.push(Reply::text("done"));
    let (text, outcome) = collect(agent.chat("please echo").await.unwrap()).await;
    outcome.unwrap();
    assert_eq!(text, "done");
    let mut events = take(&log);
    // The SDK dispatches on_session_start and pre_turn as concurrent tasks: either may come
    // first. Everything after them is ordered.
    events[..2].sort();
    assert_eq!(
        events,
        [
            "pre_turn true".to_owned(),
            format!("session_start {id}"),
            "pre_tool echo \"hi\"".into(),
            "tool echo(\"hi\")".into(),
            "post_tool echo {\"echoed\":\"hi\"}".into(),
            "stop 0".into(),
            "post_turn done".into(),
        ]
    );

    // A deny from pre_tool_call_decide blocks the call; the model sees the reason.
    model.push(Reply::tool_call("echo", json!({"text": "secret"})));
    let (text, outcome) = collect(agent.chat("tell me").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("secrets stay secret"), "{text}");
    assert!(
        !take(&log).iter().any(|e| e.starts_with("tool echo")),
        "the tool must not run"
    );

    // Modified args reach the tool.
    model.push(Reply::tool_call("echo", json!({"text": "rewrite me"})));
    let (_, outcome) = collect(agent.chat("rewrite").await.unwrap()).await;
    outcome.unwrap();
    assert!(take(&log).contains(&"tool echo(\"rewritten\")".to_owned()));

    // on_tool_error replaces the message the model sees.
    model.push(Reply::tool_call("echo", json!({"text": "fail"})));
    let (text, outcome) = collect(agent.chat("fail it").await.unwrap()).await;
    outcome.unwrap();
    assert!(
        text.contains("the echo tool is unavailable right now"),
        "{text}"
    );
    assert!(take(&log).contains(&"tool_error Some(\"echo\") true".to_owned()));

    // pre_turn can refuse a turn; the agent stays usable.
    let (_, outcome) = collect(agent.chat("something forbidden").await.unwrap()).await;
    let err = outcome.unwrap_err();
    assert!(err.to_string().contains("no forbidden topics"), "{err}");
    common::chat_ok(&agent, "fine again").await;

    take(&log);
    agent.close().await.unwrap();
    assert_eq!(take(&log), [format!("session_end {id}")]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_hook_can_continue_the_turn() {
    let (bridge, model, _data) = start().await;
    let hooks = Hooks::new().stop(|stop| async move {
        if stop.continuation_count == 0 {
            StopDecision::Continue("Also say goodbye.".into())
        } else {
            StopDecision::AllowStop
        }
    });
    let agent = bridge
        .create_agent(agent_config(&model).hooks(hooks))
        .await
        .unwrap();
    model.push(Reply::text("hello"));
    model.push(Reply::text(" goodbye"));
    let (text, outcome) = collect(agent.chat("greet").await.unwrap()).await;
    outcome.unwrap();
    assert_eq!(text, "hello goodbye");
    let second = &model.requests()[1];
    assert!(
        second.body.to_string().contains("Also say goodbye."),
        "the reason is injected"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_interaction_answers_ask_question() {
    let (bridge, model, _data) = start().await;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let hooks = Hooks::new().on_interaction({
        let seen = Arc::clone(&seen);
        move |interaction| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(json!(interaction.questions));
                Answers {
                    responses: vec![Answer {
                        selected_option_ids: Some(vec![
                            interaction.questions[0].options[1].id.clone(),
                        ]),
                        freeform_response: "because".into(),
                        skipped: false,
                    }],
                    cancelled: false,
                }
            }
        }
    });
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("ask_question")
                .behavior(agy_bridge::AgentBehavior::Interactive)
                .policy(PolicyRule::allow_all())
                .hooks(hooks),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call(
        "ask_question",
        json!({"questions": [{"question": "Favourite colour?", "options": ["red", "blue"], "is_multi_select": false}]}),
    ));
    let (text, outcome) = collect(agent.chat("ask me").await.unwrap()).await;
    outcome.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{text}\n{}", bridge.worker_stderr_tail());
    assert_eq!(seen[0][0]["question"], "Favourite colour?");
    assert!(text.contains("blue"), "the model got the answer: {text}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pre_turn_hook_refuses_the_turn_visibly() {
    let (bridge, model, _data) = start().await;
    let hooks = Hooks::new().pre_turn(|_| async { panic!("hook bug") });
    let agent = bridge
        .create_agent(agent_config(&model).hooks(hooks))
        .await
        .unwrap();
    let (_, outcome) = collect(agent.chat("hello").await.unwrap()).await;
    let err = outcome.unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err}");
    assert!(err.to_string().contains("pre_turn hook failed"), "{err}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_compaction_fires_when_the_context_is_compacted() {
    let (bridge, model, _data) = common::start().await;
    let summaries: Arc<Mutex<Vec<String>>> = Arc::default();
    let hooks = Hooks::new().on_compaction({
        let summaries = Arc::clone(&summaries);
        move |c| {
            let summaries = Arc::clone(&summaries);
            async move { summaries.lock().unwrap().push(c.summary) }
        }
    });
    let agent = bridge
        .create_agent(agent_config(&model).hooks(hooks).compaction(
            agy_bridge::sdk_config::CompactionConfig {
                token_threshold: Some(4000),
            },
        ))
        .await
        .unwrap();
    let filler = "lorem ipsum dolor sit amet ".repeat(60);
    for i in 0..10 {
        let (_, o) = collect(agent.chat(format!("turn {i}: {filler}")).await.unwrap()).await;
        o.unwrap();
        if !summaries.lock().unwrap().is_empty() {
            break;
        }
    }
    assert!(
        !summaries.lock().unwrap().is_empty(),
        "no compaction after 10 long turns"
    );
    assert!(!agent.compaction_indices().await.unwrap().is_empty());
    bridge.shutdown().await;
}
