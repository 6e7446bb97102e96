//! Policies enforced by the SDK's harness with Rust `ask_user` handlers (`policy/confirm`), and
//! the no-cross-agent-stall guarantee of the reverse path.

use crate::common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use agy_bridge::{Error, PolicyRule, policies::ConfirmRequest, testing::Reply, tools::FnTool};
use common::{HANG, agent_config, collect, start};
use serde_json::json;

fn counted_tool(name: &str, runs: &Arc<AtomicUsize>) -> FnTool {
    let runs = Arc::clone(runs);
    FnTool::new(
        name,
        "Looks up the weather.",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        move |args, _| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok(json!(format!(
                    "sunny in {}",
                    args["city"].as_str().unwrap_or("?")
                )))
            }
        },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_allow_and_precedence_are_enforced() {
    let (bridge, model, _data) = start().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let cases = [
        (
            vec![PolicyRule::deny_all()],
            false,
            // The SDK's deny_all() names its rule, and so does ours.
            "Denied by policy \"deny_all\"",
        ),
        (
            vec![PolicyRule::deny_all(), PolicyRule::allow("weather")],
            true,
            "",
        ),
        (
            vec![PolicyRule::allow("weather"), PolicyRule::deny_all()],
            true,
            "",
        ),
        (
            vec![
                PolicyRule::allow_all(),
                PolicyRule::deny_with_reason("weather", "no weather!"),
            ],
            false,
            "no weather!",
        ),
        (
            vec![PolicyRule::allow("weather"), PolicyRule::deny("weather")],
            false,
            "",
        ),
    ];
    for (rules, allowed, message) in cases {
        let before = runs.load(Ordering::SeqCst);
        let mut config = agent_config(&model).tool(counted_tool("weather", &runs));
        for rule in rules.clone() {
            config = config.policy(rule);
        }
        let agent = bridge.create_agent(config).await.unwrap();
        model.push(Reply::tool_call("weather", json!({"city": "Oslo"})));
        let (text, outcome) = collect(agent.chat("weather?").await.unwrap()).await;
        outcome.unwrap();
        let ran = runs.load(Ordering::SeqCst) > before;
        assert_eq!(ran, allowed, "{rules:?}: {text}");
        if allowed {
            assert!(text.contains("sunny in Oslo"), "{text}");
        } else {
            assert!(text.to_lowercase().contains("denied"), "{rules:?}: {text}");
            assert!(text.contains(message), "{rules:?}: {text}");
        }
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_user_handlers_decide_and_see_the_call() {
    let (bridge, model, _data) = start().await;
    let runs = Arc::new(AtomicUsize::new(0));
    for approve in [true, false] {
        let asked: Arc<Mutex<Vec<ConfirmRequest>>> = Arc::default();
        let handler = {
            let asked = Arc::clone(&asked);
            move |req: ConfirmRequest| {
                asked.lock().unwrap().push(req);
                async move { approve }
            }
        };
        let before = runs.load(Ordering::SeqCst);
        let agent = bridge
            .create_agent(
                agent_config(&model)
                    .tool(counted_tool("weather", &runs))
                    .policy(PolicyRule::ask_user_with_reason(
                        "weather",
                        "needs approval",
                        handler,
                    )),
            )
            .await
            .unwrap();
        model.push(Reply::tool_call("weather", json!({"city": "Bergen"})));
        let (text, outcome) = collect(agent.chat("weather?").await.unwrap()).await;
        outcome.unwrap();
        let asked = asked.lock().unwrap().clone();
        assert_eq!(
            asked.len(),
            1,
            "asked once, not twice (the Rust re-check uses the approval)"
        );
        assert_eq!(asked[0].tool, "weather");
        assert_eq!(asked[0].args["city"], "Bergen");
        assert_eq!(asked[0].reason, "needs approval");
        assert_eq!(asked[0].agent_id, agent.id());
        assert_eq!(runs.load(Ordering::SeqCst) > before, approve, "{text}");
        if !approve {
            assert!(
                text.contains("needs approval") || text.to_lowercase().contains("denied"),
                "{text}"
            );
        }
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_builtin_tool_is_blocked_by_a_deny_rule() {
    let (bridge, model, data) = start().await;
    let file = data.path().join("secret.txt");
    std::fs::write(&file, "TOP SECRET CONTENT").unwrap();
    for (rules, visible) in [
        (vec![PolicyRule::allow_all()], true),
        (
            vec![
                PolicyRule::allow_all(),
                PolicyRule::deny_with_reason("view_file", "no peeking"),
            ],
            false,
        ),
    ] {
        let mut config = agent_config(&model).builtin_tool("view_file");
        for rule in rules {
            config = config.policy(rule);
        }
        let agent = bridge.create_agent(config).await.unwrap();
        model.push(Reply::tool_call("view_file", json!({"AbsolutePath": file})));
        let (text, outcome) = collect(agent.chat("show me the file").await.unwrap()).await;
        outcome.unwrap();
        assert_eq!(text.contains("TOP SECRET CONTENT"), visible, "{text}");
        if !visible {
            assert!(text.contains("no peeking"), "{text}");
        }
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn write_tools_without_a_policy_are_refused() {
    let (bridge, model, _data) = start().await;
    let err = bridge
        .create_agent(agent_config(&model).builtin_tool("run_command"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("without a safety policy")),
        "{err}"
    );
    // With a policy it starts.
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("run_command")
                .policy(PolicyRule::deny_all()),
        )
        .await
        .unwrap();
    agent.close().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_agents_blocked_in_slow_tools_do_not_hold_up_a_ninth() {
    let (bridge, model, _data) = start().await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let slow = {
        let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
        FnTool::new(
            "gate",
            "Waits for the gate.",
            json!({"type": "object", "properties": {}}),
            move |_, _| {
                let (gate, entered) = (Arc::clone(&gate), Arc::clone(&entered));
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    let _permit = gate.acquire().await.expect("gate open");
                    Ok(json!("gate opened"))
                }
            },
        )
    };
    let quick = FnTool::new(
        "quick",
        "Answers at once.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("quick answer")) },
    );
    let mut blocked = Vec::new();
    for _ in 0..8 {
        blocked.push(
            bridge
                .create_agent(agent_config(&model).tool(slow.clone()))
                .await
                .unwrap(),
        );
    }
    let free = bridge
        .create_agent(agent_config(&model).tool(quick))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for agent in &blocked {
        model.push(Reply::tool_call("gate", json!({})));
        pending.push(agent.chat("wait at the gate").await.unwrap());
        // One scripted reply per request, in order: wait until this agent is inside its tool.
        let n = pending.len();
        tokio::time::timeout(HANG, async {
            while entered.load(Ordering::SeqCst) < n {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("agent reached its tool");
    }
    // All eight are parked in Rust tools. The ninth agent's whole turn, tool call included,
    // completes while the gate is still closed.
    model.push(Reply::tool_call("quick", json!({})));
    let (text, outcome) = tokio::time::timeout(HANG, async {
        collect(free.chat("be quick").await.unwrap()).await
    })
    .await
    .expect("the ninth agent is not held up");
    outcome.unwrap();
    assert!(text.contains("quick answer"), "{text}");
    assert_eq!(gate.available_permits(), 0, "the gate was still closed");
    gate.add_permits(8);
    for reply in pending {
        let (text, outcome) = tokio::time::timeout(HANG, collect(reply)).await.unwrap();
        outcome.unwrap();
        assert!(text.contains("gate opened"), "{text}");
    }
    bridge.shutdown().await;
}

/// An `ask_user` handler nobody ever answers (a human who walked away).
async fn never_answers(_: ConfirmRequest) -> bool {
    std::future::pending::<bool>().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unanswered_confirmation_ends_a_sent_turn_at_the_chat_timeout_as_a_streamed_one() {
    let data = tempfile::tempdir().unwrap();
    let bridge = agy_bridge::Bridge::start(
        common::config(&data).chat_timeout(std::time::Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(counted_tool("weather", &runs))
                .policy(PolicyRule::ask_user("weather", never_answers)),
        )
        .await
        .unwrap();
    for streamed in [true, false] {
        model.push(Reply::tool_call("weather", json!({"city": "Oslo"})));
        let err = if streamed {
            let (_, outcome) = collect(agent.chat("weather?").await.unwrap()).await;
            outcome.unwrap_err()
        } else {
            agent.send("weather?").await.unwrap();
            tokio::time::timeout(HANG, agent.wait_for_idle())
                .await
                .expect("the sent turn ends")
                .unwrap_err()
        };
        assert!(
            matches!(err, Error::Timeout { .. }),
            "streamed {streamed}: {err}"
        );
        // The agent is usable again: the timed-out turn was halted.
        common::chat_ok(&agent, "still there?").await;
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_timeout_denies_the_call() {
    let (bridge, model, _data) = start().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(counted_tool("weather", &runs))
                .policy(PolicyRule::allow_all())
                .policy(PolicyRule::ask_user("weather", never_answers))
                .confirmation_timeout(std::time::Duration::from_millis(500)),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call("weather", json!({"city": "Oslo"})));
    let (text, outcome) = collect(agent.chat("weather?").await.unwrap()).await;
    outcome.unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0, "the tool must not run");
    assert!(!text.contains("sunny"), "{text}");
    bridge.shutdown().await;
}

/// A `run_command` call printing `marker`, as the scripted model sends it.
fn run_command(marker: &str, cwd: &std::path::Path) -> Reply {
    Reply::tool_call(
        "run_command",
        json!({
            "CommandLine": format!("echo {marker}"),
            "Cwd": cwd,
            "WaitMsBeforeAsync": 5000,
            "toolSummary": "Echo",
            "toolAction": "Echoing",
        }),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_s_confirm_run_command_preset_denies_or_asks_before_a_command() {
    let (bridge, model, data) = start().await;
    // Without a handler: the command is denied by the preset's named rule.
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("run_command")
                .policies(PolicyRule::confirm_run_command()),
        )
        .await
        .unwrap();
    model.push(run_command("ran-unasked", data.path()));
    let (text, outcome) = collect(agent.chat("run it").await.unwrap()).await;
    outcome.unwrap();
    assert!(!text.contains("ran-unasked\n"), "the command ran: {text}");
    assert!(text.contains("confirm_run_command"), "{text}");

    // With a handler: it is asked, approves, and the command runs.
    let asked: Arc<Mutex<Vec<ConfirmRequest>>> = Arc::default();
    let log = Arc::clone(&asked);
    let agent = bridge
        .create_agent(agent_config(&model).builtin_tool("run_command").policies(
            PolicyRule::confirm_run_command_with(move |req: ConfirmRequest| {
                log.lock().unwrap().push(req);
                async { true }
            }),
        ))
        .await
        .unwrap();
    model.push(run_command("ran-after-asking", data.path()));
    let (text, outcome) = collect(agent.chat("run it").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("ran-after-asking"), "{text}");
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].tool, "run_command");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_s_safe_defaults_preset_asks_before_a_rust_tool() {
    let (bridge, model, _data) = start().await;
    let runs = Arc::new(AtomicUsize::new(0));
    for approve in [false, true] {
        let asked = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        let agent = bridge
            .create_agent(
                agent_config(&model)
                    .tool(counted_tool("weather", &runs))
                    .policies(PolicyRule::safe_defaults(move |_req: ConfirmRequest| {
                        count.fetch_add(1, Ordering::SeqCst);
                        async move { approve }
                    })),
            )
            .await
            .unwrap();
        let before = runs.load(Ordering::SeqCst);
        model.push(Reply::tool_call("weather", json!({"city": "Tromsø"})));
        let (text, outcome) = collect(agent.chat("weather?").await.unwrap()).await;
        outcome.unwrap();
        assert_eq!(asked.load(Ordering::SeqCst), 1, "asked once: {text}");
        assert_eq!(runs.load(Ordering::SeqCst) > before, approve, "{text}");
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_argument_predicate_in_rust_decides_a_built_in_tool_call() {
    let (bridge, model, data) = start().await;
    let asked = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&asked);
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("run_command")
                .policy(PolicyRule::deny_all())
                .policy(PolicyRule::allow("run_command").when(move |args| {
                    count.fetch_add(1, Ordering::SeqCst);
                    args["CommandLine"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("echo allowed"))
                })),
        )
        .await
        .unwrap();
    model.push(Reply::tool_call(
        "run_command",
        json!({"CommandLine": "echo allowed-by-predicate", "Cwd": data.path(), "WaitMsBeforeAsync": 5000, "toolSummary": "Echo", "toolAction": "Echoing"}),
    ));
    let (text, outcome) = collect(agent.chat("run it").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("allowed-by-predicate"), "{text}");

    model.push(run_command("refused-by-predicate", data.path()));
    let (text, outcome) = collect(agent.chat("run that").await.unwrap()).await;
    outcome.unwrap();
    assert!(text.contains("deny_all"), "denied by the catch-all: {text}");
    assert!(!text.contains("refused-by-predicate\n"), "{text}");
    assert!(
        asked.load(Ordering::SeqCst) >= 2,
        "the Rust predicate decided both"
    );
    bridge.shutdown().await;
}
