//! Pre-started harnesses (`BridgeConfig::prestarted_harnesses`): agents start and resume on
//! them, only agents with the default harness environment get one, a spare killed behind the
//! worker's back is never handed out, and spares end with their worker. (That no spare
//! outlives a SIGKILLed parent is `failures::no_orphans_after_the_parent_is_sigkilled`.)

use crate::common;

use std::time::Duration;

use agy_bridge::{Bridge, RestartPolicy};
use common::{HANG, agent_config, chat_ok, config, eventually, process_gone, wait_gone};

async fn start(
    prestarted: usize,
) -> (
    Bridge,
    agy_bridge::testing::ScriptedModel,
    tempfile::TempDir,
) {
    let data = tempfile::tempdir().expect("temp dir");
    let bridge = Bridge::start(config(&data).prestarted_harnesses(prestarted))
        .await
        .expect("bridge starts");
    let model = agy_bridge::testing::ScriptedModel::start()
        .await
        .expect("model starts");
    (bridge, model, data)
}

/// Waits until the worker reports exactly `n` spares, and returns them.
async fn spares(bridge: &Bridge, n: usize) -> Vec<u32> {
    eventually(&format!("{n} spare harness(es)"), || {
        bridge.stats().spare_harness_pids.len() == n
    })
    .await;
    bridge.stats().spare_harness_pids
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_start_and_resume_on_pre_started_harnesses() {
    let (bridge, model, _data) = start(1).await;
    let spare = spares(&bridge, 1).await[0];

    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    assert_eq!(agent.harness_pid(), Some(spare), "the agent got the spare");
    chat_ok(&agent, "hello").await;
    let replacement = spares(&bridge, 1).await[0];
    assert_ne!(
        replacement, spare,
        "a new spare replaces the one handed out"
    );

    // Hibernate, then the next turn resumes the conversation on the new spare.
    agent.disconnect().await.unwrap();
    assert!(agent.is_hibernated() && agent.harness_pid().is_none());
    assert!(
        wait_gone(spare, HANG).await,
        "the hibernated agent's harness ends"
    );
    chat_ok(&agent, "and now?").await;
    assert_eq!(agent.harness_pid(), Some(replacement));
    let history = agent.history().await.unwrap();
    assert!(
        history
            .iter()
            .any(|s| s.content.contains("You said: hello")),
        "the history survived: {history:?}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_with_their_own_environment_start_their_own_harness() {
    let (bridge, model, _data) = start(1).await;
    let spare = spares(&bridge, 1).await[0];
    let agent = bridge
        .create_agent(agent_config(&model).env("AGY_TEST_OWN_VARIABLE", "1"))
        .await
        .unwrap();
    let own = agent.harness_pid().unwrap();
    assert_ne!(own, spare);
    chat_ok(&agent, "hello").await;
    assert_eq!(
        bridge.stats().spare_harness_pids,
        vec![spare],
        "the spare stays"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_spare_is_replaced_and_never_handed_out() {
    let (bridge, model, _data) = start(1).await;
    let spare = spares(&bridge, 1).await[0];
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(spare as i32, libc::SIGKILL) }, 0);
    assert!(wait_gone(spare, HANG).await);

    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let harness = agent.harness_pid().unwrap();
    assert_ne!(harness, spare, "a dead spare was handed out");
    chat_ok(&agent, "hello").await;
    eventually("a fresh spare", || {
        let pids = bridge.stats().spare_harness_pids;
        pids.len() == 1 && !pids.contains(&spare) && !pids.contains(&harness)
    })
    .await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spares_end_with_their_worker_and_the_replacement_worker_starts_its_own() {
    let (bridge, model, _data) = start(2).await;
    let first = spares(&bridge, 2).await;
    bridge.kill_worker();
    for pid in &first {
        assert!(
            wait_gone(*pid, HANG).await,
            "spare {pid} outlived its worker"
        );
    }
    // The supervisor's replacement keeps its own spares; agents work on it.
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    chat_ok(&agent, "hello").await;
    let second = spares(&bridge, 2).await;
    assert!(second.iter().all(|pid| !first.contains(pid)));

    bridge.shutdown().await;
    for pid in second {
        assert!(
            wait_gone(pid, HANG).await,
            "spare {pid} outlived the bridge"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_spare_workers_harnesses_are_not_taken_for_the_current_workers() {
    let data = tempfile::tempdir().expect("temp dir");
    let bridge = Bridge::start(
        config(&data)
            .prestarted_harnesses(1)
            .restart(RestartPolicy::default().warm_spare(true)),
    )
    .await
    .expect("bridge starts");
    let worker = bridge.stats().worker_pid;
    eventually("a warm spare worker with its own spare harness", || {
        bridge
            .stats()
            .spare_pid
            .is_some_and(|spare| group_members(spare).len() > 1)
    })
    .await;
    let ours = spares(&bridge, 1).await;
    assert_eq!(group_of(ours[0]), Some(worker));
    // The warm spare reports its own spare a moment after starting it (once it has answered
    // its handshake); through that, the stats keep showing the current worker's.
    for _ in 0..100 {
        assert_eq!(bridge.stats().spare_harness_pids, ours);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn none_are_started_when_turned_off() {
    let (bridge, model, _data) = start(0).await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    chat_ok(&agent, "hello").await;
    // A spare would be back well within this (the default config starts one in ~0.1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(bridge.stats().spare_harness_pids.is_empty());
    let worker = bridge.worker_info().pid;
    let harnesses: Vec<u32> = group_members(worker)
        .into_iter()
        .filter(|&pid| pid != worker)
        .collect();
    assert_eq!(harnesses, vec![agent.harness_pid().unwrap()]);
    bridge.shutdown().await;
}

/// Live processes in process group `group`.
fn group_members(group: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| !process_gone(pid) && group_of(pid) == Some(group))
        .collect()
}

fn group_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}
