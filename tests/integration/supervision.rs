//! Crash isolation and failover with real processes: a killed worker is replaced on next use
//! and its agents continue with their history; a hung worker is found by the heartbeat; a
//! worker that cannot start is retried a bounded number of times.

use crate::common;

use std::time::Duration;

use serde_json::Value;

use agy_bridge::{Bridge, Error, RestartPolicy, testing::Reply};
use common::{HANG, agent_config, collect, config, wait_gone};

/// Runs a turn with `first`, then starts a turn the model answers slowly (400 words, 40 ms
/// apart) and returns it once its text is streaming.
async fn streaming_after(
    agent: &agy_bridge::Agent,
    model: &agy_bridge::testing::ScriptedModel,
    first: &str,
) -> agy_bridge::ChatResponse {
    collect(agent.chat(first).await.unwrap()).await.1.unwrap();
    model.push(Reply::slow_text(
        (0..400).map(|i| format!("w{i} ")),
        Duration::from_millis(40),
    ));
    let mut reply = agent.chat("talk slowly").await.unwrap();
    common::first_text(&mut reply).await;
    reply
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a pid we own.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_is_replaced_and_the_agent_keeps_its_history() {
    let (bridge, model, _data) = common::start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let reply = streaming_after(&agent, &model, "remember the word apricot").await;
    let old = bridge.stats();
    let old_harness = agent.harness_pid().unwrap();
    signal(old.worker_pid, libc::SIGKILL);
    let err = common::finish_within(reply).await.unwrap_err();
    assert!(matches!(err, Error::WorkerCrashed { .. }), "{err}");

    // The same Agent handle just works: a new worker, the conversation resumed.
    common::chat_ok(&agent, "what was the word?").await;
    let now = bridge.stats();
    assert_eq!((now.generation, now.restarts), (2, 1));
    assert_ne!(now.worker_pid, old.worker_pid);
    assert_ne!(agent.harness_pid().unwrap(), old_harness);
    assert!(
        wait_gone(old_harness, HANG).await,
        "the old harness died with its worker"
    );
    let last = model.requests().pop().unwrap().body.to_string();
    assert!(
        last.contains("remember the word apricot"),
        "the model sees the earlier history"
    );
    let history = agent.history().await.unwrap();
    assert!(history.iter().any(|s| s.content.contains("apricot")));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sent_turn_on_a_killed_worker_fails_with_worker_crashed_and_the_agent_goes_on() {
    let (bridge, model, _data) = common::start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    model.push(Reply::Stall);
    let asked = model.requests().len();
    agent.send("never answered").await.unwrap();
    common::eventually("the model is asked", || model.requests().len() > asked).await;
    signal(agent.worker_pid().expect("live"), libc::SIGKILL);
    // The fire-and-forget turn is not lost silently: its collector saw the crash.
    let err = tokio::time::timeout(HANG, agent.wait_for_idle())
        .await
        .expect("wait_for_idle hung")
        .unwrap_err();
    assert!(matches!(err, Error::WorkerCrashed { .. }), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert_eq!(agent.wait_for_idle().await.unwrap(), None, "reported once");
    common::chat_ok(&agent, "still there?").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_harness_fails_the_turn_and_the_agent_recovers() {
    let (bridge, model, _data) = common::start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let reply = streaming_after(&agent, &model, "first").await;
    signal(agent.harness_pid().unwrap(), libc::SIGKILL);
    let err = common::finish_within(reply).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: agy_bridge::AgentErrorKind::ConnectionLost,
                ..
            }
        ),
        "{err}"
    );
    common::chat_ok(&agent, "still there?").await;
    assert!(
        agent
            .history()
            .await
            .unwrap()
            .iter()
            .any(|s| s.content.contains("first"))
    );
    assert_eq!(
        bridge.stats().restarts,
        0,
        "only the harness died, not the worker"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_harness_that_cannot_be_restarted_is_a_typed_error_until_it_can() {
    let (bridge, model, data) = common::start().await;
    // The agent's harness runs through a launcher that fails while `unavailable` exists, as a
    // binary removed by a half-finished upgrade would.
    let venv = agy_bridge::setup::ensure(agy_bridge::PythonConfig::default(), None)
        .await
        .unwrap();
    let real = find_file(venv.venv_dir.as_deref().unwrap(), "bin/localharness")
        .expect("the SDK's harness");
    let unavailable = data.path().join("unavailable");
    let launcher = data.path().join("harness-launcher");
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\n[ -e '{}' ] && {{ echo 'harness unavailable' >&2; exit 1; }}\nexec '{}' \"$@\"\n",
            unavailable.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &launcher,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let agent = bridge
        .create_agent(
            agent_config(&model).env("ANTIGRAVITY_HARNESS_PATH", launcher.display().to_string()),
        )
        .await
        .unwrap();
    let reply = streaming_after(&agent, &model, "first").await;
    std::fs::write(&unavailable, "").unwrap();
    signal(agent.harness_pid().unwrap(), libc::SIGKILL);
    let err = common::finish_within(reply).await.unwrap_err();
    assert!(matches!(err, Error::Agent { .. }), "{err}");
    // No session now: a typed error, not a hang or a crash.
    let err = agent.history().await.unwrap_err();
    assert!(matches!(err, Error::AgentDisconnected { .. }), "{err}");

    // The binary is back: the next turn re-opens the conversation with its history.
    std::fs::remove_file(&unavailable).unwrap();
    common::chat_ok(&agent, "back?").await;
    let history = agent.history().await.unwrap();
    assert!(
        history.iter().any(|s| s.content.contains("first")),
        "{history:?}"
    );
    assert_eq!(bridge.stats().restarts, 0, "only the harness was affected");
    bridge.shutdown().await;
}

/// The first file under `dir` whose path ends with `suffix`.
fn find_file(dir: &std::path::Path, suffix: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.ends_with(suffix) {
            return Some(path);
        }
        if entry.file_type().ok()?.is_dir()
            && let Some(found) = find_file(&path, suffix)
        {
            return Some(found);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigstopped_worker_is_found_by_the_heartbeat_and_replaced() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).restart(
        RestartPolicy::default()
            .heartbeat_interval(Some(Duration::from_millis(200)))
            .heartbeat_timeout(Duration::from_secs(2)),
    );
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let stopped = bridge.stats().worker_pid;
    signal(stopped, libc::SIGSTOP);
    // Without a heartbeat this would wait forever: the process exists but never answers.
    let in_flight = tokio::time::timeout(HANG, bridge.call_raw("worker/ping", Value::Null))
        .await
        .expect("the call to the hung worker ended");
    // The error says the bridge killed it, so nobody goes looking for the OOM killer.
    assert!(
        matches!(&in_flight, Err(Error::WorkerCrashed { exit_status: Some(s), .. })
            if s.contains("SIGKILL") && s.contains("heartbeat")),
        "{in_flight:?}"
    );
    common::eventually("the hung worker was never detected", || {
        !bridge.stats().worker_alive
    })
    .await;
    assert!(wait_gone(stopped, HANG).await, "the hung worker was killed");
    common::chat_ok(&agent, "hello after the hang").await;
    assert_eq!(bridge.stats().generation, 2);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_crashes_on_start_is_retried_a_bounded_number_of_times() {
    let data = tempfile::tempdir().unwrap();
    let marker = data.path().join("crash-on-start");
    let cfg = config(&data)
        .restart(
            RestartPolicy::default()
                .max_restarts(2)
                .backoff(Duration::from_millis(10)),
        )
        .worker_env(
            "AGY_WORKER_CRASH_ON_START_IF_EXISTS",
            marker.display().to_string(),
        );
    let bridge = Bridge::start(cfg).await.unwrap();
    std::fs::write(&marker, "").unwrap();
    signal(bridge.stats().worker_pid, libc::SIGKILL);
    common::eventually("the crash was never noticed", || {
        !bridge.stats().worker_alive
    })
    .await;
    let mut errors = Vec::new();
    for _ in 0..4 {
        errors.push(
            tokio::time::timeout(HANG, bridge.ping())
                .await
                .unwrap()
                .unwrap_err(),
        );
    }
    // Two restart attempts die on start (with their stderr), then the budget says stop.
    for err in &errors[..2] {
        assert!(
            matches!(err, Error::WorkerCrashed { exit_status: Some(s), stderr_tail } if s == "exit code 7" && stderr_tail.contains("crashing on start")),
            "{err}"
        );
    }
    for err in &errors[2..] {
        assert!(
            matches!(err, Error::RestartBudgetExhausted { restarts: 2, last_failure, .. } if last_failure.contains("exit code 7")),
            "{err}"
        );
    }
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_shut_down_on_purpose_is_not_restarted() {
    let (bridge, _model, _data) = common::start().await;
    let keep = bridge.clone();
    bridge.shutdown().await;
    assert!(matches!(keep.ping().await, Err(Error::WorkerStopped)));
    assert_eq!(keep.stats().restarts, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_spare_takes_over_after_a_crash() {
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data).restart(RestartPolicy::default().warm_spare(true));
    let bridge = Bridge::start(cfg).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let deadline = tokio::time::Instant::now() + HANG;
    let spare = loop {
        if let Some(pid) = bridge.stats().spare_pid {
            break pid;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no spare was started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    signal(bridge.stats().worker_pid, libc::SIGKILL);
    common::eventually("the crash to be noticed", || !bridge.stats().worker_alive).await;
    common::chat_ok(&agent, "on the spare").await;
    assert_eq!(
        bridge.stats().worker_pid,
        spare,
        "the pre-started spare took over"
    );
    bridge.shutdown().await;
    assert!(wait_gone(spare, HANG).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_failure_that_retrying_cannot_fix_is_reported_at_once_without_looping() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    // The worker runs through a launcher script; deleting it makes every restart fail the same
    // way (the interpreter is gone), as a removed venv would.
    let venv = agy_bridge::setup::ensure(agy_bridge::PythonConfig::default(), None)
        .await
        .unwrap();
    let launcher = data.path().join("python-launcher");
    std::fs::write(
        &launcher,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", venv.python.display()),
    )
    .unwrap();
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bridge = Bridge::start(config(&data).python(&launcher))
        .await
        .unwrap();
    bridge.ping().await.unwrap();

    std::fs::remove_file(&launcher).unwrap();
    signal(bridge.stats().worker_pid, libc::SIGKILL);
    common::eventually("the crash was never noticed", || {
        !bridge.stats().worker_alive
    })
    .await;
    for _ in 0..8 {
        let err = tokio::time::timeout(HANG, bridge.ping())
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(&err, Error::Spawn { program, .. } if program.contains("python-launcher")),
            "{err}"
        );
    }
    // One attempt, not one per call and not a budget-exhausted error hiding the cause.
    assert_eq!(bridge.stats().restarts, 1);
    drop(bridge);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_under_an_agent_start_is_replaced_and_the_start_succeeds() {
    let data = tempfile::tempdir().unwrap();
    // No spare harness: the start launches its own, which shows the start is under way.
    let bridge = Bridge::start(config(&data).prestarted_harnesses(0))
        .await
        .unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let worker = bridge.stats().worker_pid;
    let starting = tokio::spawn({
        let bridge = bridge.clone();
        let config = agent_config(&model);
        async move { bridge.create_agent(config).await }
    });
    common::eventually("the agent's harness to be launched", || {
        !children_of(worker).is_empty()
    })
    .await;
    signal(worker, libc::SIGKILL);
    let agent = tokio::time::timeout(HANG, starting)
        .await
        .expect("the start must end, not hang")
        .unwrap()
        .expect("the start goes on on the replacement worker");
    let now = bridge.stats();
    assert_eq!((now.generation, now.restarts), (2, 1));
    assert_eq!(agent.worker_pid(), Some(now.worker_pid));
    common::chat_ok(&agent, "hello").await;
    bridge.shutdown().await;
}

/// Live processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&child: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            parent == Some(pid) && !common::process_gone(child)
        })
        .collect()
}
