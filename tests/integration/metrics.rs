//! Metrics (feature `metrics`), recorded under the documented names through a real `metrics`
//! recorder: a turn that calls a Rust tool (asked about) after a retried model call, a hook that
//! fails, a tool that fails, a hibernation and resume, a worker killed.

use crate::common;

use agy_bridge::{
    Hooks, ModelRetry, PolicyRule, policies::ConfirmRequest, testing::Reply, tools::FnTool,
};
use common::{agent_config, collect, start};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::json;

/// `name{k=v,…}` of a metric.
fn name(key: &metrics_util::CompositeKey) -> String {
    let labels: Vec<String> = key
        .key()
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.key().name(), labels.join(","))
}

/// Counters added up over snapshots (a snapshot takes them), and gauges as last seen.
struct Recorded {
    snapshotter: metrics_util::debugging::Snapshotter,
    counters: Vec<(String, u64)>,
    gauges: Vec<(String, f64)>,
}

impl Recorded {
    fn take(&mut self) -> &mut Self {
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = name(&key);
            match value {
                DebugValue::Counter(n) => match self.counters.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, total)) => *total += n,
                    None => self.counters.push((key, n)),
                },
                DebugValue::Gauge(v) => {
                    self.gauges.retain(|(k, _)| *k != key);
                    self.gauges.push((key, v.into_inner()));
                }
                DebugValue::Histogram(_) => {}
            }
        }
        self
    }

    fn count(&self, name: &str) -> u64 {
        self.counters
            .iter()
            .find(|(k, _)| k == name)
            .map_or(0, |(_, n)| *n)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn turns_tools_hooks_hibernations_and_crashes_are_recorded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test process");

    let (bridge, model, _data) = start().await;
    let tool = FnTool::new(
        "echo",
        "Echoes.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Ok(json!("echoed")) },
    );
    let fail = FnTool::new(
        "fail",
        "Fails.",
        json!({"type": "object", "properties": {}}),
        |_, _| async { Err(agy_bridge::ToolError::Failed("no such thing".into())) },
    );
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .tool(tool)
                .tool(fail)
                .policy(PolicyRule::ask_user("echo", |_: ConfirmRequest| async {
                    true
                }))
                .policy(PolicyRule::allow_all())
                .model_retry(ModelRetry::default().backoff(
                    std::time::Duration::from_millis(10),
                    std::time::Duration::from_millis(20),
                ))
                .hooks(Hooks::new().post_turn(|_| async { panic!("post_turn bug") })),
        )
        .await
        .unwrap();
    model.push(Reply::http_error(503, "busy"));
    model.push(Reply::tool_call("echo", json!({})));
    let (_, outcome) = collect(agent.chat("echo something").await.unwrap()).await;
    outcome.unwrap();
    let mut got = Recorded {
        snapshotter,
        counters: Vec::new(),
        gauges: Vec::new(),
    };
    common::eventually("the hook failure is counted", || {
        got.take()
            .count("agy_bridge_hook_failures_total{point=post_turn}")
            > 0
    })
    .await;
    let seen = format!("{:?}", got.counters);
    assert_eq!(got.count("agy_bridge_turns_total{outcome=ok}"), 1, "{seen}");
    assert_eq!(
        got.count("agy_bridge_tool_calls_total{tool=echo,outcome=ok}"),
        1,
        "{seen}"
    );
    assert_eq!(
        got.count("agy_bridge_model_calls_total{outcome=retried}"),
        1,
        "{seen}"
    );
    assert_eq!(
        got.count("agy_bridge_model_calls_total{outcome=ok}"),
        2,
        "{seen}"
    );
    assert_eq!(
        got.count("agy_bridge_hook_failures_total{point=post_turn}"),
        1,
        "{seen}"
    );
    assert_eq!(
        got.count("agy_bridge_policy_decisions_total{decision=approved,by=user}"),
        1,
        "{seen}"
    );
    assert!(
        got.count("agy_bridge_worker_starts_total{outcome=ok}") >= 1,
        "{seen}"
    );
    assert!(
        got.count("agy_bridge_harness_events_total{event=started}") >= 1,
        "{seen}"
    );
    assert!(
        got.count("agy_bridge_leases_total{event=acquired}") >= 1,
        "{seen}"
    );
    assert_eq!(got.gauge("agy_bridge_live_agents{pool=default}"), Some(1.0));

    // A tool that fails.
    model.push(Reply::tool_call("fail", json!({})));
    let (_, outcome) = collect(agent.chat("fail please").await.unwrap()).await;
    outcome.unwrap();
    got.take();
    assert_eq!(
        got.count("agy_bridge_tool_calls_total{tool=fail,outcome=failed}"),
        1,
        "{:?}",
        got.counters
    );

    // Hibernation, then a resume: one more activation.
    agent.disconnect().await.unwrap();
    assert_eq!(
        got.take()
            .gauge("agy_bridge_hibernated_agents{pool=default}"),
        Some(1.0)
    );
    assert_eq!(got.gauge("agy_bridge_live_agents{pool=default}"), Some(0.0));
    common::chat_ok(&agent, "back again").await;
    common::eventually("the resume is counted", || {
        got.take().count("agy_bridge_activations_total{outcome=ok}") >= 2
    })
    .await;
    assert_eq!(
        got.count("agy_bridge_hibernations_total{}"),
        1,
        "{:?}",
        got.counters
    );

    // A worker crash: counted, and its replacement's start and restart too.
    let starts = got.count("agy_bridge_worker_starts_total{outcome=ok}");
    let pid = agent.worker_pid().expect("live");
    // SAFETY: kill(2) on a pid we own.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    common::eventually("the crash is counted", || {
        got.take().count("agy_bridge_worker_crashes_total{}") == 1
    })
    .await;
    common::chat_ok(&agent, "after the crash").await;
    got.take();
    assert_eq!(
        got.count("agy_bridge_worker_restarts_total{}"),
        1,
        "{:?}",
        got.counters
    );
    assert!(got.count("agy_bridge_worker_starts_total{outcome=ok}") > starts);

    // A harness killed under its conversation: found dead at the next turn, counted once.
    let harness = agent.harness_pid().expect("live");
    // SAFETY: kill(2) on a pid we own.
    assert_eq!(unsafe { libc::kill(harness as i32, libc::SIGKILL) }, 0);
    assert!(common::wait_gone(harness, common::HANG).await);
    common::chat_ok(&agent, "after the harness").await;
    common::eventually("the lost harness is counted", || {
        got.take()
            .count("agy_bridge_harness_events_total{event=lost}")
            == 1
    })
    .await;
    bridge.shutdown().await;
}
