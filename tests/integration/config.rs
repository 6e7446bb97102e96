//! Typed SDK configuration reaches the SDK and changes what the model sees or how turns run.

use crate::common;

use std::time::{Duration, Instant};

use agy_bridge::{
    AgentBehavior, Bridge, BuiltinTool, Error, PolicyRule,
    sdk_config::{
        BudgetConfig, BudgetScope, Capabilities, CompactionConfig, InstructionSection, McpServer,
        SystemInstructions,
    },
    testing::Reply,
    tools::FnTool,
};
use common::{agent_config, collect, config, start};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn system_instructions_in_all_three_forms() {
    let (bridge, model, _data) = start().await;
    let cases = [
        (
            SystemInstructions::Append("Be terse, captain.".into()),
            "Be terse, captain.",
            true,
        ),
        (
            SystemInstructions::Custom {
                text: "You are a parrot.".into(),
            },
            "You are a parrot.",
            false,
        ),
        (
            SystemInstructions::Templated {
                identity: "You are Ada.".into(),
                sections: vec![InstructionSection {
                    title: "Style".into(),
                    content: "Rhyme.".into(),
                }],
            },
            "You are Ada.",
            true,
        ),
    ];
    for (instructions, marker, keeps_builtin) in cases {
        let agent = bridge
            .create_agent(agent_config(&model).system(instructions))
            .await
            .unwrap();
        let (_, o) = collect(agent.chat("hi").await.unwrap()).await;
        o.unwrap();
        let system = model
            .requests()
            .pop()
            .unwrap()
            .system_prompt()
            .unwrap_or_default();
        assert!(
            system.contains(marker),
            "{marker} missing from the system prompt"
        );
        // Custom replaces the SDK's ~1.7k-token built-in prompt; the others append to it.
        assert_eq!(system.len() > 2000, keeps_builtin, "{system}");
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

/// A tool the budget tests let the model call: one more model call after it.
fn step_tool() -> FnTool {
    FnTool::new(
        "step",
        "One step.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("stepped")) },
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_stops_the_turn_with_its_stop_reason() {
    let (bridge, model, _data) = start().await;
    let tool = step_tool();
    let agent = bridge
        .create_agent(agent_config(&model).tool(tool).budget(BudgetConfig {
            max_model_calls: Some(1),
            ..BudgetConfig::default()
        }))
        .await
        .unwrap();
    model.push(Reply::tool_call("step", json!({})));
    let (_, o) = collect(agent.chat("go").await.unwrap()).await;
    let outcome = o.unwrap();
    assert_eq!(outcome.stop_reason, "MAX_MODEL_CALLS_EXCEEDED");
    assert_eq!(model.requests().len(), 1, "no second model call");
    bridge.shutdown().await;
}

/// `BudgetScope`: a lifetime budget spent before a hibernation stays spent after it; a
/// forward-looking one counts again from the resume. (The harness checks the budget after
/// each model call: the call that reaches it still happens, the next does not.)
#[tokio::test(flavor = "multi_thread")]
async fn the_budget_scope_decides_whether_a_resumed_conversation_starts_over() {
    let (bridge, model, _data) = start().await;
    let tool = step_tool();
    for (scope, calls_after_resume) in
        [(BudgetScope::Lifetime, 1), (BudgetScope::ForwardLooking, 2)]
    {
        let agent = bridge
            .create_agent(
                agent_config(&model)
                    .tool(tool.clone())
                    .budget(BudgetConfig {
                        max_model_calls: Some(2),
                        scope: Some(scope),
                        ..BudgetConfig::default()
                    }),
            )
            .await
            .unwrap();
        // One model call of two.
        let (_, o) = collect(agent.chat("first").await.unwrap()).await;
        assert_ne!(
            o.unwrap().stop_reason,
            "MAX_MODEL_CALLS_EXCEEDED",
            "{scope:?}"
        );
        agent.disconnect().await.unwrap();
        // A turn that needs two: a tool call, then the answer.
        let before = model.requests().len();
        model.push(Reply::tool_call("step", json!({})));
        let (_, o) = collect(agent.chat("after the pause").await.unwrap()).await;
        let outcome = o.unwrap();
        assert_eq!(
            model.requests().len() - before,
            calls_after_resume,
            "{scope:?}: {outcome:?}"
        );
        agent.close().await.unwrap();
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_unsafe_configurations_are_refused_with_the_field_named() {
    let (bridge, model, _data) = start().await;
    let err = bridge
        .create_agent(agent_config(&model).compaction(CompactionConfig {
            token_threshold: Some(0),
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("token_threshold")),
        "{err}"
    );

    let err = bridge
        .create_agent(agent_config(&model).capabilities(Capabilities {
            run_command: Some(agy_bridge::sdk_config::RunCommandConfig {
                timeout_seconds: Some(0.0),
                ..Default::default()
            }),
            ..Capabilities::default()
        }))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("timeout_seconds")),
        "{err}"
    );

    let mcp = McpServer::stdio("files", "true");
    let err = bridge
        .create_agent(agent_config(&model).mcp_server(mcp))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("MCP servers")),
        "{err}"
    );

    let err = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool(BuiltinTool::ViewFile)
                .capabilities(Capabilities {
                    disabled_tools: vec![BuiltinTool::RunCommand],
                    ..Capabilities::default()
                })
                .policy(PolicyRule::allow_all()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig { message } if message.contains("mutually exclusive")),
        "{err}"
    );

    // Read-only built-ins need no policy; the behaviour setting is accepted.
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool(BuiltinTool::ViewFile)
                .behavior(AgentBehavior::Interactive),
        )
        .await
        .unwrap();
    agent.close().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inter_agent_delay_spaces_turns() {
    let data = tempfile::tempdir().unwrap();
    let mut cfg = config(&data);
    cfg.inter_agent_delay = Duration::from_millis(600);
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let a = bridge.create_agent(agent_config(&model)).await.unwrap();
    let b = bridge.create_agent(agent_config(&model)).await.unwrap();
    let started = Instant::now();
    let (ra, rb) = tokio::join!(
        async { collect(a.chat("one").await.unwrap()).await },
        async { collect(b.chat("two").await.unwrap()).await }
    );
    ra.1.unwrap();
    rb.1.unwrap();
    // A lower bound only: two turns cannot both start within the delay.
    assert!(started.elapsed() >= Duration::from_millis(600));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_harness_s_sandbox_status_reaches_the_outcome() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("run_command")
                .policy(agy_bridge::PolicyRule::deny_all())
                .capabilities(Capabilities {
                    run_command: Some(agy_bridge::sdk_config::RunCommandConfig {
                        enable_sandbox: true,
                        ..Default::default()
                    }),
                    ..Capabilities::default()
                }),
        )
        .await
        .unwrap();
    let mut reply = agent.chat("hello").await.unwrap();
    let mut warned = None;
    while let Some(event) = futures::StreamExt::next(&mut reply).await {
        if let agy_bridge::ChatEvent::SandboxUnavailable { reason } = event {
            warned = Some(reason);
        }
    }
    let outcome = reply.finish().await.unwrap();
    let sandbox = outcome.sandbox.expect("the harness reports its sandbox");
    // This machine's harness has a sandbox; a missing one is reported by the event (and the
    // worker's tests provoke that case).
    assert_eq!(
        warned.is_some(),
        !sandbox.available,
        "{sandbox:?} {warned:?}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inline_skill_reaches_the_model() {
    let (bridge, model, _data) = start().await;
    let skill = agy_bridge::sdk_config::InlineSkill {
        name: "tide-tables".into(),
        description: "Reads tide tables for harbours".into(),
        content: "Always answer with the high-water time first.".into(),
        metadata: [("owner".to_owned(), "harbour-office".to_owned())].into(),
        dependent_skills: vec!["charts".into()],
        ..Default::default()
    };
    let agent = bridge
        .create_agent(agent_config(&model).inline_skill(skill))
        .await
        .unwrap();
    common::chat_ok(&agent, "when is high water?").await;
    // The model is offered the skill by name and description (its content and metadata are
    // the harness's, loaded when the skill is used).
    let request = model.requests().last().unwrap().body.to_string();
    for needle in ["tide-tables", "Reads tide tables for harbours"] {
        assert!(
            request.contains(needle),
            "{needle} not in the model request"
        );
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lightweight_preset_offers_the_minimal_tools_and_needs_a_policy() {
    let (bridge, model, _data) = start().await;
    let err = bridge
        .create_agent(agent_config(&model).lightweight())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("without a safety policy"), "{err}");
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .lightweight()
                .policies(agy_bridge::PolicyRule::confirm_run_command()),
        )
        .await
        .unwrap();
    common::chat_ok(&agent, "hello").await;
    let mut offered = model.requests().last().unwrap().tool_names();
    offered.sort();
    // The harness shows create_file and edit_file to the model as write_to_file and
    // replace_file_content.
    for tool in [
        "replace_file_content",
        "run_command",
        "view_file",
        "write_to_file",
    ] {
        assert!(
            offered.iter().any(|t| t == tool),
            "{tool} not offered: {offered:?}"
        );
    }
    assert!(
        !offered
            .iter()
            .any(|t| t == "generate_image" || t == "read_url_content"),
        "more than the minimal set: {offered:?}"
    );
    bridge.shutdown().await;
}

/// A subagent with its own capabilities, skills and templated instructions: the SDK and the
/// harness take it, and the model is offered it by name and description.
#[tokio::test(flavor = "multi_thread")]
async fn a_subagent_with_capabilities_and_skills_is_offered_to_the_model() {
    use agy_bridge::sdk_config::{Subagent, SubagentCapabilities, SubagentSkills};
    let (bridge, model, _data) = start().await;
    let skills = tempfile::tempdir().unwrap();
    std::fs::create_dir(skills.path().join("checklist")).unwrap();
    std::fs::write(
        skills.path().join("checklist").join("SKILL.md"),
        "---\nname: checklist\ndescription: A review checklist.\n---\nCheck the error paths.\n",
    )
    .unwrap();
    let reviewer = Subagent {
        name: "reviewer".into(),
        description: "Reviews a change for correctness bugs.".into(),
        system_instructions: Some(SystemInstructions::Templated {
            identity: "You review code.".into(),
            sections: vec![InstructionSection {
                title: "Style".into(),
                content: "Be terse.".into(),
            }],
        }),
        capabilities: Some(SubagentCapabilities {
            agent_behavior: Some(AgentBehavior::Minimal),
            enabled_tools: Some(vec!["view_file".into()]),
            ..SubagentCapabilities::default()
        }),
        skills: Some(SubagentSkills::Override {
            skills_paths: vec![skills.path().to_owned()],
            inline_skills: vec![],
        }),
        ..Subagent::default()
    };
    let agent = bridge
        .create_agent(
            common::with_subagents(
                agent_config(&model),
                "invoke_subagent",
                Capabilities::default(),
            )
            .subagent(reviewer),
        )
        .await
        .unwrap();
    common::chat_ok(&agent, "hello").await;
    let request = model.requests().pop().unwrap();
    let offered = format!("{:?} {:?}", request.tools(), request.system_prompt());
    assert!(offered.contains("reviewer"), "{offered}");
    assert!(
        offered.contains("Reviews a change for correctness bugs."),
        "{offered}"
    );
    bridge.shutdown().await;
}
