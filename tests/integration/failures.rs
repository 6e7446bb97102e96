//! Failure modes provoked for real: garbage, stray prints, oversized messages, a worker that is
//! SIGKILLed mid-chat or exits, and a parent that dies without cleaning up.

use crate::common;

use std::time::{Duration, Instant};

use agy_bridge::{Bridge, Error, testing::Reply};
use common::{agent_config, collect, config, start, wait_gone};
use serde_json::json;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_stray_prints_do_not_break_the_connection() {
    let (bridge, model, _data) = start().await;
    // A print() and a raw write to fd 1 inside the worker: both must land on stderr.
    bridge
        .call_raw(
            "worker/debug",
            json!({"action": "print", "text": "stray print from a tool"}),
        )
        .await
        .unwrap();
    // A garbage line that does reach the protocol stream: logged, not fatal.
    bridge
        .call_raw(
            "worker/debug",
            json!({"action": "garbage", "text": "this is not JSON {"}),
        )
        .await
        .unwrap();
    bridge.ping().await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    common::chat_ok(&agent, "still there?").await;
    let tail = bridge.worker_stderr_tail();
    assert!(tail.contains("stray print from a tool"), "{tail}");
    assert!(tail.contains("raw write to fd 1"), "{tail}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_merged_with_stray_bytes_is_recovered_or_its_call_fails_at_once() {
    // Rust accepts 1 MiB; the worker writes unterminated stray bytes, which merge with the
    // next message it writes: the answer to this very debug call.
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data).max_message_size(MIB))
        .await
        .unwrap();
    let garbage = |text: &str, repeat: usize| json!({"action": "garbage", "text": text, "repeat": repeat, "newline": false});
    // A few stray bytes: the merged line still holds the whole answer, which is recovered.
    let answer = bridge
        .call_raw("worker/debug", garbage("stray output ", 1))
        .await
        .unwrap();
    assert_eq!(answer, json!({}));
    // Two MiB of them: the merged line is over the limit and the answer is lost in it. The
    // call fails at once with a typed error instead of waiting forever (there is no deadline
    // shorter than the operation timeout here, four minutes).
    let started = Instant::now();
    let err = tokio::time::timeout(
        common::HANG,
        bridge.call_raw("worker/debug", garbage("x", 2 * MIB)),
    )
    .await
    .expect("the call must fail, not hang")
    .unwrap_err();
    assert!(matches!(err, Error::ResponseLost { .. }), "{err}");
    assert!(started.elapsed() < common::HANG);
    // The connection carries on.
    bridge.ping().await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    common::chat_ok(&agent, "still fine?").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mib_message_fails_only_that_request() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let huge = "x".repeat(100 * MIB);
    let err = agent.chat(huge).await.unwrap().finish().await.unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { size, limit } if size > 100 * MIB && limit == 64 * MIB),
        "{err}"
    );
    common::chat_ok(&agent, "small again").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_messages_are_caught_by_the_receiver_on_both_sides() {
    // Rust accepts 1 MiB, the worker 200 MiB: the worker's 2 MiB answer must be refused by
    // the Rust reader, failing only that call.
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data)
        .max_message_size(MIB)
        .worker_env("AGY_WORKER_MAX_MESSAGE", (200 * MIB).to_string());
    let bridge = Bridge::start(cfg).await.unwrap();
    let err = bridge
        .call_raw("worker/echo", json!({"payload": "p", "pad_bytes": 2 * MIB}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { size, limit } if size > 2 * MIB && limit == MIB),
        "{err}"
    );
    assert_eq!(
        bridge
            .call_raw("worker/echo", json!({"payload": 1}))
            .await
            .unwrap(),
        json!({"payload": 1})
    );
    bridge.shutdown().await;

    // Rust accepts 200 MiB, the worker 1 MiB: the worker's reader must refuse a 2 MiB request
    // and answer with a typed error for that id.
    let data = tempfile::tempdir().unwrap();
    let cfg = config(&data)
        .max_message_size(200 * MIB)
        .worker_env("AGY_WORKER_MAX_MESSAGE", MIB.to_string());
    let bridge = Bridge::start(cfg).await.unwrap();
    let err = bridge
        .call_raw("worker/echo", json!({"payload": "y".repeat(2 * MIB)}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { size, limit } if size > 2 * MIB && limit == MIB),
        "{err}"
    );
    assert_eq!(
        bridge
            .call_raw("worker/echo", json!({"payload": 2}))
            .await
            .unwrap(),
        json!({"payload": 2})
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_a_streaming_chat_fails_it_promptly_with_the_stderr_tail() {
    let (bridge, model, _data) = start().await;
    let words: Vec<String> = (0..400).map(|i| format!("w{i} ")).collect();
    model.push(Reply::slow_text(words, Duration::from_millis(50)));
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    bridge
        .call_raw(
            "worker/debug",
            json!({"action": "print", "text": "last words before the crash"}),
        )
        .await
        .unwrap();
    let mut reply = agent.chat("stream for a while").await.unwrap();
    common::first_text(&mut reply).await;

    let pid = bridge.worker_info().pid;
    let killed_at = Instant::now();
    // SAFETY: plain kill(2) on a pid we own.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let err = common::finish_within(reply).await.unwrap_err();
    let elapsed = killed_at.elapsed();
    match &err {
        Error::WorkerCrashed {
            exit_status,
            stderr_tail,
        } => {
            assert!(
                exit_status
                    .as_deref()
                    .is_some_and(|s| s.contains("SIGKILL")),
                "{err}"
            );
            assert!(stderr_tail.contains("last words before the crash"), "{err}");
        }
        other => panic!("expected WorkerCrashed, got {other}"),
    }
    eprintln!("kill -9 to error: {elapsed:?}");
    // (The next call starts a replacement worker: see tests/supervision.rs.)
    // The harness went with the worker's process group.
    assert!(wait_gone(agent.harness_pid().unwrap(), Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_exits_reports_its_exit_code() {
    let (bridge, _model, _data) = start().await;
    let err = bridge
        .call_raw("worker/debug", json!({"action": "exit", "code": 3}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::WorkerCrashed { exit_status: Some(s), .. } if s == "exit code 3"),
        "{err}"
    );
}

/// Helper run in a child process by `no_orphans_after_the_parent_is_sigkilled`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper: runs only when spawned by no_orphans_after_the_parent_is_sigkilled"]
async fn helper_hold_a_live_agent() {
    let dir = std::env::var("AGY_TEST_HELPER_DATA")
        .expect("AGY_TEST_HELPER_DATA is set by the test that spawns this helper");
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let bridge = Bridge::start(agy_bridge::BridgeConfig::default().data_dir(dir))
        .await
        .unwrap();
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    let (_, outcome) = collect(agent.chat("hello").await.unwrap()).await;
    outcome.unwrap();
    common::eventually("a pre-started harness", || {
        !bridge.stats().spare_harness_pids.is_empty()
    })
    .await;
    println!(
        "PIDS {} {} {}",
        bridge.worker_info().pid,
        agent.harness_pid().unwrap(),
        bridge.stats().spare_harness_pids[0]
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_orphans_after_the_parent_is_sigkilled() {
    use std::io::{BufRead, BufReader};
    let data = tempfile::tempdir().unwrap();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "failures::helper_hold_a_live_agent",
            "--ignored",
            "--nocapture",
        ])
        .env("AGY_TEST_HELPER_DATA", data.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let pids = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("PIDS ").map(str::to_owned))
    });
    let pids = tokio::time::timeout(Duration::from_secs(300), pids)
        .await
        .expect("helper reports its pids")
        .unwrap()
        .expect("helper printed PIDS");
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (worker, harness, spare) = (pids[0], pids[1], pids[2]);
    for pid in [worker, harness, spare] {
        assert!(!common::process_gone(pid));
    }

    helper.kill().unwrap(); // SIGKILL: no destructor runs in the helper
    helper.wait().unwrap();
    let worker_gone = wait_gone(worker, Duration::from_secs(2)).await;
    let harness_gone = wait_gone(harness, Duration::from_secs(2)).await;
    assert!(worker_gone, "worker {worker} outlived its parent by 2 s");
    assert!(
        harness_gone,
        "localharness {harness} outlived its parent by 2 s"
    );
    assert!(
        wait_gone(spare, Duration::from_secs(2)).await,
        "pre-started localharness {spare} outlived its parent by 2 s"
    );
}
