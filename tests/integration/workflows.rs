//! Workflows (the SDK's beta `run_workflow`) through the real harness, offline: the scripted
//! model calls `run_workflow` as asked, the harness runs the script's primitives, and the turn
//! streams the workflow's progress and ends with its result.

use agy_bridge::{ChatEvent, Error, Workflow, sdk_config::Capabilities, testing::Reply};
use futures::StreamExt;
use serde_json::json;

use std::sync::Arc;

use agy_bridge::testing::{RecordedRequest, ScriptedModel, echo_responder};

use crate::common::{self, agent_config};

fn workflow_agent(model: &ScriptedModel, dir: &std::path::Path) -> agy_bridge::AgentConfig {
    common::with_subagents(agent_config(model), "run_workflow", Capabilities::default())
        .workspace(dir)
}

/// A bridge and a model that does what the worker asks: it calls `run_workflow` on the script
/// a workflow turn names, and otherwise echoes.
async fn start() -> (agy_bridge::Bridge, ScriptedModel, tempfile::TempDir) {
    let echo = echo_responder();
    let model = ScriptedModel::with_responder(Arc::new(move |request: &RecordedRequest| {
        let prompt = request.last_user_prompt().unwrap_or_default();
        match prompt.split_once("Run the workflow script at `") {
            Some((_, rest)) if request.tool_result().is_none() => {
                let path = rest.split('`').next().unwrap_or_default();
                Reply::tool_call(
                    "run_workflow",
                    json!({"ScriptPath": path, "Description": "test run", "toolSummary": "Workflow", "toolAction": "Running"}),
                )
            }
            _ => echo(request),
        }
    }))
    .await
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let bridge = agy_bridge::Bridge::start(common::config(&data))
        .await
        .unwrap();
    (bridge, model, data)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_runs_streams_its_progress_and_reports_its_output() {
    let (bridge, model, data) = start().await;
    let agent = bridge
        .create_agent(workflow_agent(&model, data.path()))
        .await
        .unwrap();
    let script = data.path().join("triage.py");
    std::fs::write(&script, "phase(\"collect\")\nlog(\"three bugs found\")\n").unwrap();
    for workflow in [
        Workflow::script(&script).description("Triage"),
        Workflow::source("phase(\"inline\")\nlog(\"from source\")\n"),
    ] {
        let mut reply = agent.run_workflow(workflow.clone()).await.unwrap();
        let mut progress = Vec::new();
        while let Some(event) = reply.next().await {
            if let ChatEvent::Step { step } = event
                && let Some(p) = step.workflow_progress
            {
                progress.push(p);
            }
        }
        let outcome = reply.finish().await.unwrap();
        let result = outcome.workflow.expect("a workflow result");
        assert!(!progress.is_empty(), "no progress step streamed");
        if workflow == Workflow::script(&script).description("Triage") {
            assert!(result.output.contains("three bugs found"), "{result:?}");
            assert!(result.output.contains("[phase] collect"), "{result:?}");
            assert_eq!(
                std::path::Path::new(&result.script_path),
                script.canonicalize().unwrap()
            );
        } else {
            assert!(result.output.contains("from source"), "{result:?}");
            // The temporary script is gone.
            assert!(
                !std::path::Path::new(&result.script_path).exists(),
                "{result:?}"
            );
        }
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_or_invalid_workflow_is_a_typed_error() {
    let (bridge, model, data) = start().await;
    let agent = bridge
        .create_agent(workflow_agent(&model, data.path()))
        .await
        .unwrap();
    // Refused as the SDK refuses it: a workflow may not import.
    let err = agent
        .run_workflow(Workflow::source("import os\nlog(os.getcwd())\n"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("import statements are not allowed"),
        "{err}"
    );
    // Fails while it runs: a name the script never defined.
    let err = agent
        .run_workflow(Workflow::source("log(no_such_name)\n"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err}");
    assert!(err.to_string().contains("no_such_name"), "{err}");
    // Refused before the model is asked: a missing script, an agent without the tool.
    let err = agent
        .run_workflow(Workflow::script(data.path().join("missing.py")))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no workflow script"), "{err}");
    let plain = bridge.create_agent(agent_config(&model)).await.unwrap();
    let err = plain
        .run_workflow(Workflow::source("log(\"x\")\n"))
        .await
        .unwrap()
        .finish()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    // The agent goes on.
    common::chat_ok(&agent, "still there?").await;
    bridge.shutdown().await;
}
