//! Usage and cost: each turn's tokens and estimated cost, and the conversation's running
//! totals, which the harness keeps with the conversation, so they carry on after hibernation
//! and in another bridge (a replica) that opens the conversation.

use agy_bridge::{Bridge, ChatOutcome, Price, PriceTable, Usage};

use crate::common::{agent_config, collect, config};

const PRICE: Price = Price::per_million(3.0, 15.0);

fn input(usage: &Option<Usage>) -> u64 {
    usage.as_ref().and_then(|u| u.prompt_tokens).unwrap_or(0)
}

fn output(usage: &Option<Usage>) -> u64 {
    usage.as_ref().and_then(|u| u.output_tokens).unwrap_or(0)
}

async fn turn(agent: &agy_bridge::Agent, prompt: &str) -> ChatOutcome {
    let (_, outcome) = collect(agent.chat(prompt).await.unwrap()).await;
    let outcome = outcome.unwrap();
    // The turn's cost is its usage at the model's price.
    let usage = outcome
        .usage
        .clone()
        .expect("the scripted model reports usage");
    assert!(usage.prompt_tokens.unwrap() > 0 && usage.output_tokens.unwrap() > 0);
    let cost = outcome.cost.expect("the model has a price");
    assert!(
        (cost - PRICE.cost(&usage).unwrap()).abs() < 1e-12,
        "{outcome:?}"
    );
    outcome
}

#[tokio::test(flavor = "multi_thread")]
async fn running_totals_and_cost_survive_hibernation_and_a_new_bridge() {
    let data = tempfile::tempdir().unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let prices = PriceTable::new().model("scripted", PRICE);
    let (id, first, second) = {
        let bridge = Bridge::start(config(&data).prices(prices.clone()))
            .await
            .unwrap();
        let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
        let first = turn(&agent, "the first question").await;
        assert_eq!(input(&first.conversation_usage), input(&first.usage));
        assert_eq!(output(&first.conversation_usage), output(&first.usage));
        assert!((first.conversation_cost.unwrap() - first.cost.unwrap()).abs() < 1e-12);

        // Hibernated and back: the totals carry on.
        agent.disconnect().await.unwrap();
        assert!(agent.is_hibernated());
        let second = turn(&agent, "a second, longer question after a pause").await;
        assert_eq!(
            input(&second.conversation_usage),
            input(&first.usage) + input(&second.usage),
            "{second:?}"
        );
        assert_eq!(
            output(&second.conversation_usage),
            output(&first.usage) + output(&second.usage)
        );
        let id = agent.conversation_id().to_owned();
        agent.close().await.unwrap();
        bridge.shutdown().await;
        (id, first, second)
    };

    // Another bridge opens the conversation (as a replica would) and its totals go on.
    let bridge = Bridge::start(config(&data).prices(prices)).await.unwrap();
    let agent = bridge.open_agent(&id, agent_config(&model)).await.unwrap();
    let third = turn(&agent, "and a third").await;
    assert_eq!(
        input(&third.conversation_usage),
        input(&first.usage) + input(&second.usage) + input(&third.usage)
    );
    let total = first.cost.unwrap() + second.cost.unwrap() + third.cost.unwrap();
    assert!(
        (third.conversation_cost.unwrap() - total).abs() < 1e-9,
        "{third:?}"
    );
    bridge.shutdown().await;

    // Without a price there is usage but no cost.
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let (_, outcome) = collect(agent.chat("free").await.unwrap()).await;
    let outcome = outcome.unwrap();
    assert!(outcome.usage.is_some() && outcome.conversation_usage.is_some());
    assert_eq!((outcome.cost, outcome.conversation_cost), (None, None));
    bridge.shutdown().await;
}

/// A real subagent run (the scripted model asks for it with `invoke_subagent`): its steps name
/// the main trajectory as their parent, and the turn reports the subagent's usage under its
/// trajectory id, apart from the turn's.
#[tokio::test(flavor = "multi_thread")]
async fn a_subagent_s_steps_name_their_parent_and_its_usage_is_its_own() {
    use agy_bridge::{
        ChatEvent,
        sdk_config::{Capabilities, Subagent},
    };
    use futures::StreamExt;

    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge
        .create_agent(
            crate::common::with_subagents(
                agent_config(&model),
                "invoke_subagent",
                Capabilities::default(),
            )
            .subagent(Subagent {
                name: "reviewer".into(),
                description: "Reviews a change.".into(),
                ..Subagent::default()
            }),
        )
        .await
        .unwrap();
    model.push(invoke_subagent("reviewer", "Review the change"));
    let mut reply = agent.chat("delegate the review").await.unwrap();
    let mut steps = Vec::new();
    while let Some(event) = reply.next().await {
        if let ChatEvent::Step { step } = event {
            steps.push(step);
        }
    }
    let outcome = reply.finish().await.unwrap();
    let main = steps[0].trajectory_id.clone();
    let sub: Vec<_> = steps.iter().filter(|s| s.trajectory_id != main).collect();
    assert!(!sub.is_empty(), "no subagent step: {steps:?}");
    assert!(
        sub.iter().all(|s| s.parent_trajectory_id == main),
        "{sub:?}"
    );
    assert!(
        steps.iter().any(|s| s.target == "TARGET_ENVIRONMENT"),
        "{steps:?}"
    );
    let usage = outcome
        .subagent_usage
        .get(&sub[0].trajectory_id)
        .unwrap_or_else(|| panic!("no usage for the subagent: {outcome:?}"));
    assert!(usage.prompt_tokens.unwrap_or(0) > 0, "{usage:?}");
    assert!(!outcome.subagent_usage.contains_key(&main));
    bridge.shutdown().await;
}

/// `Capabilities::allowed_subagents`: the harness runs a subagent on the list and refuses one
/// that is not (the model is told), with a real `invoke_subagent` call each.
#[tokio::test(flavor = "multi_thread")]
async fn only_allowed_subagents_run() {
    use agy_bridge::sdk_config::{Capabilities, Subagent};

    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let subagent = |name: &str| Subagent {
        name: name.into(),
        description: format!("The {name}."),
        ..Subagent::default()
    };
    let agent = bridge
        .create_agent(
            crate::common::with_subagents(
                agent_config(&model),
                "invoke_subagent",
                Capabilities {
                    allowed_subagents: Some(vec!["reviewer".into()]),
                    ..Capabilities::default()
                },
            )
            .subagent(subagent("reviewer"))
            .subagent(subagent("deployer")),
        )
        .await
        .unwrap();
    for (name, runs) in [("deployer", false), ("reviewer", true)] {
        model.push(invoke_subagent(name, &format!("Work as {name}")));
        let (_, outcome) = collect(agent.chat(format!("ask the {name}")).await.unwrap()).await;
        let outcome = outcome.unwrap();
        assert_eq!(
            !outcome.subagent_usage.is_empty(),
            runs,
            "{name}: {outcome:?}"
        );
        let told = model.requests().iter().any(|r| {
            r.messages().iter().any(|m| {
                m.to_string().contains(&format!("Work as {name}")) && m["role"] != "assistant"
            })
        });
        assert_eq!(told, runs, "{name}: the subagent got its prompt?");
    }
    bridge.shutdown().await;
}

/// The scripted model's call of `invoke_subagent`: one subagent of type `name` on `prompt`.
fn invoke_subagent(name: &str, prompt: &str) -> agy_bridge::testing::Reply {
    agy_bridge::testing::Reply::tool_call(
        "invoke_subagent",
        serde_json::json!({
            "Subagents": [{"TypeName": name, "Role": "Helper", "Prompt": prompt}],
            "toolSummary": "Delegation",
            "toolAction": "Delegating",
        }),
    )
}
