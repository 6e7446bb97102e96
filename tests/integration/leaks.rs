//! Agent create/close cycles leave nothing behind: no file descriptors in this process, no
//! processes under the worker, no unbounded growth of the worker's memory.

use crate::common;

use common::{agent_config, start};

fn fd_count(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Live (non-zombie) processes whose parent is `pid`.
fn children(pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first().is_some_and(|s| *s != "Z")
                && fields.get(1) == Some(&pid.to_string().as_str())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn soak_a_thousand_create_close_cycles_leak_nothing() {
    let (bridge, model, _data) = start().await;
    let worker = bridge.stats().worker_pid;
    let cycle = || async {
        let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
        agent.close().await.unwrap();
    };
    for _ in 0..50 {
        cycle().await; // warm-up: caches, lazily created pools
    }
    let (fds, worker_fds, rss) = (
        fd_count("self"),
        fd_count(&worker.to_string()),
        rss_kib(worker),
    );
    for _ in 0..1000 {
        cycle().await;
    }
    // Only the pre-started spare (BridgeConfig::prestarted_harnesses) may remain: every
    // shared harness ended with its last conversation.
    common::eventually("no harness outlives its agent", || {
        let stats = bridge.stats();
        stats.shared_harness_pids.is_empty() && children(worker) == stats.spare_harness_pids.len()
    })
    .await;
    let (fds_after, worker_fds_after, rss_after) = (
        fd_count("self"),
        fd_count(&worker.to_string()),
        rss_kib(worker),
    );
    eprintln!(
        "fds {fds} -> {fds_after}, worker fds {worker_fds} -> {worker_fds_after}, RSS {rss} -> {rss_after} KiB"
    );
    if let Ok(entries) = std::fs::read_dir(format!("/proc/{worker}/fd")) {
        let mut targets: Vec<String> = entries
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .map(|t| t.display().to_string())
            .collect();
        targets.sort();
        eprintln!("worker fds: {targets:?}");
    }
    // A per-agent leak would add ~1,000; a handful is lazily grown state (thread pool, epoll).
    assert!(
        fds_after <= fds + 32,
        "bridge fds grew from {fds} to {fds_after}"
    );
    assert!(
        worker_fds_after <= worker_fds + 32,
        "worker fds grew from {worker_fds} to {worker_fds_after}"
    );
    // Loose: Python's allocator keeps some memory; a leak of even 100 KiB per agent would show.
    assert!(
        rss_after < rss + 64 * 1024,
        "worker RSS grew from {rss} KiB to {rss_after} KiB"
    );
    assert_eq!(bridge.stats().agents, 0);
    bridge.shutdown().await;
}
