//! A failing hook, at every hook point: reported as a `HookFailed` event on the turn and a
//! `tracing` error, and a hook that decides something fails closed.

use crate::common;

use std::sync::{Arc, Mutex, OnceLock};

use agy_bridge::{
    Agent, AgentBehavior, ChatEvent, ChatResponse, Hooks, PolicyRule,
    hooks::{Answers, StopDecision, ToolDecision, TurnDecision},
    testing::Reply,
    tools::{FnTool, ToolError},
};
use common::{HANG, agent_config, start};
use futures::StreamExt;
use serde_json::json;

/// Everything this test binary logs through `tracing`.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let writer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .with_writer(move || Capture(Arc::clone(&writer)))
            .init();
        buffer
    }))
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged(agent_id: &str, point: &str) -> bool {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines().any(|l| {
        l.contains(&format!("agent={agent_id} ")) && l.contains(&format!("the {point} hook failed"))
    })
}

/// A tool that records its calls and fails on "fail".
fn echo(calls: &Arc<Mutex<Vec<String>>>) -> FnTool {
    let calls = Arc::clone(calls);
    FnTool::new(
        "echo",
        "Echoes its text.",
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        move |args, _| {
            let calls = Arc::clone(&calls);
            async move {
                calls.lock().unwrap().push(args["text"].to_string());
                if args["text"] == "fail" {
                    return Err(ToolError::failed("echo refused"));
                }
                Ok(json!({"echoed": args["text"]}))
            }
        },
    )
}

/// The turn's text, its `HookFailed` events, and its outcome.
async fn run(
    mut reply: ChatResponse,
) -> (
    String,
    Vec<(String, String)>,
    agy_bridge::Result<agy_bridge::ChatOutcome>,
) {
    tokio::time::timeout(HANG, async {
        let (mut text, mut failed) = (String::new(), Vec::new());
        while let Some(event) = reply.next().await {
            match event {
                ChatEvent::Text { text: t } => text.push_str(&t),
                ChatEvent::HookFailed { point, message } => failed.push((point, message)),
                _ => {}
            }
        }
        (text, failed, reply.finish().await)
    })
    .await
    .expect("the turn ends")
}

fn reported(agent: &Agent, failed: &[(String, String)], point: &str) {
    assert!(
        failed
            .iter()
            .any(|(p, m)| p == point && m.contains(&format!("{point} bug"))),
        "no HookFailed event for {point}: {failed:?}"
    );
    assert!(logged(agent.id(), point), "no tracing error for {point}");
}

#[tokio::test(flavor = "multi_thread")]
async fn decide_hooks_fail_closed_and_every_failure_is_reported() {
    logs();
    let (bridge, model, _data) = start().await;
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let with = |hooks: Hooks| agent_config(&model).tool(echo(&calls)).hooks(hooks);

    // pre_turn: the turn is refused.
    let agent = bridge
        .create_agent(with(Hooks::new().pre_turn(|_| async {
            panic!("pre_turn bug");
            #[allow(unreachable_code)]
            TurnDecision::allow()
        })))
        .await
        .unwrap();
    let (_, failed, outcome) = run(agent.chat("hello").await.unwrap()).await;
    let err = outcome.unwrap_err();
    assert!(err.to_string().contains("pre_turn hook failed"), "{err}");
    reported(&agent, &failed, "pre_turn");

    // pre_tool_call_decide: the call is blocked, and the model is told.
    let agent = bridge
        .create_agent(with(Hooks::new().pre_tool_call_decide(|_| async {
            panic!("pre_tool_call_decide bug");
            #[allow(unreachable_code)]
            ToolDecision::Allow
        })))
        .await
        .unwrap();
    model.push(Reply::tool_call("echo", json!({"text": "blocked"})));
    let (text, failed, outcome) = run(agent.chat("echo it").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("refused"), "{text}");
    assert!(calls.lock().unwrap().is_empty(), "the tool ran");
    reported(&agent, &failed, "pre_tool_call_decide");

    // post_tool_call and on_session_start: the turn goes on.
    let agent = bridge
        .create_agent(with(
            Hooks::new()
                .post_tool_call(|_| async { panic!("post_tool_call bug") })
                // Slow: the SDK runs it beside the turn, so the turn has to wait for its report.
                .on_session_start(|_| async {
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    panic!("on_session_start bug")
                }),
        ))
        .await
        .unwrap();
    model.push(Reply::tool_call("echo", json!({"text": "ran"})));
    let (text, failed, outcome) = run(agent.chat("echo it").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("echoed"), "{text}");
    reported(&agent, &failed, "post_tool_call");
    reported(&agent, &failed, "on_session_start");

    // on_tool_error: no replacement text; the model sees the tool's own error.
    let agent = bridge
        .create_agent(with(Hooks::new().on_tool_error(|_| async {
            panic!("on_tool_error bug");
            #[allow(unreachable_code)]
            None
        })))
        .await
        .unwrap();
    model.push(Reply::tool_call("echo", json!({"text": "fail"})));
    let (text, failed, outcome) = run(agent.chat("fail it").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("echo refused"), "{text}");
    reported(&agent, &failed, "on_tool_error");

    // stop: the turn is allowed to end (not continued forever); post_turn: reported.
    let agent = bridge
        .create_agent(with(
            Hooks::new()
                .stop(|_| async {
                    panic!("stop bug");
                    #[allow(unreachable_code)]
                    StopDecision::Continue("again".into())
                })
                .post_turn(|_| async { panic!("post_turn bug") }),
        ))
        .await
        .unwrap();
    let (text, failed, outcome) = run(agent.chat("just once").await.unwrap()).await;
    outcome.unwrap();
    assert_eq!(text, "You said: just once");
    reported(&agent, &failed, "stop");
    common::eventually("post_turn's failure is logged", || {
        logged(agent.id(), "post_turn")
    })
    .await;

    // on_session_end: outside any turn, so the tracing error is the report.
    let agent = bridge
        .create_agent(with(
            Hooks::new().on_session_end(|_| async { panic!("on_session_end bug") }),
        ))
        .await
        .unwrap();
    let (_, _, outcome) = run(agent.chat("hi").await.unwrap()).await;
    outcome.unwrap();
    let id = agent.id().to_owned();
    agent.close().await.unwrap();
    assert!(
        logged(&id, "on_session_end"),
        "no tracing error for on_session_end"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_on_interaction_hook_cancels_the_questions() {
    logs();
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("ask_question")
                .behavior(AgentBehavior::Interactive)
                .policy(PolicyRule::allow_all())
                .hooks(Hooks::new().on_interaction(|_| async {
                    panic!("on_interaction bug");
                    #[allow(unreachable_code)]
                    Answers::default()
                })),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call(
        "ask_question",
        json!({"questions": [{"question": "Colour?", "options": ["red", "blue"], "is_multi_select": false}]}),
    ));
    let (_, failed, outcome) = run(agent.chat("ask me").await.unwrap()).await;
    outcome.unwrap();
    reported(&agent, &failed, "on_interaction");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_on_compaction_hook_is_reported() {
    logs();
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .hooks(Hooks::new().on_compaction(|_| async { panic!("on_compaction bug") }))
                .compaction(agy_bridge::sdk_config::CompactionConfig {
                    token_threshold: Some(4000),
                }),
        )
        .await
        .unwrap();
    let filler = "lorem ipsum dolor sit amet ".repeat(60);
    let mut all = Vec::new();
    for i in 0..10 {
        let (_, failed, outcome) =
            run(agent.chat(format!("turn {i}: {filler}")).await.unwrap()).await;
        outcome.unwrap();
        all.extend(failed);
        if logged(agent.id(), "on_compaction") {
            break;
        }
    }
    assert!(
        logged(agent.id(), "on_compaction"),
        "no compaction after 10 long turns"
    );
    assert!(
        all.iter().any(|(p, _)| p == "on_compaction"),
        "compaction ran within a turn, so the turn was told: {all:?}"
    );
    bridge.shutdown().await;
}
