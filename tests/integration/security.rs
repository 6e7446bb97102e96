//! Probes an attacker (or a careless set-up) would try: a cache directory another user can
//! write, a cache owned by someone else, conversation files others can read, and secrets in the
//! environment that a model with `run_command` could print. See docs/security.md.

use crate::common;

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use agy_bridge::{Bridge, BridgeConfig, Error, PolicyRule, PythonConfig};
use common::{agent_config, collect, start};

/// The machine's managed venv (built by `agy-bridge setup` before the tests run).
fn real_venv() -> std::path::PathBuf {
    let status = agy_bridge::setup::inspect(&PythonConfig::default())
        .expect("python3 runs")
        .expect("a managed venv is configured (AGY_BRIDGE_PYTHON must be unset)");
    assert!(status.complete, "run `agy-bridge setup` first");
    status.dir
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_venv_planted_in_a_shared_cache_directory_is_never_run() {
    // An attacker who can write the cache directory (AGY_BRIDGE_CACHE_DIR in /tmp, say)
    // plants the venv the bridge will look for: its key is computable from public inputs, so
    // here it is copied from the real one, stamp included.
    let real = real_venv();
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("shared-cache");
    let planted = shared.join("venvs").join(real.file_name().unwrap());
    std::fs::create_dir_all(planted.join("bin")).unwrap();
    std::fs::copy(
        real.join("agy-bridge-complete.json"),
        planted.join("agy-bridge-complete.json"),
    )
    .unwrap();
    let marker = root.path().join("pwned");
    let python = planted.join("bin/python");
    std::fs::write(
        &python,
        format!(
            "#!/bin/sh\ntouch {}\nexec {} \"$@\"\n",
            marker.display(),
            real.join("bin/python").display()
        ),
    )
    .unwrap();
    chmod(&python, 0o755);
    for dir in [&shared, &shared.join("venvs"), &planted] {
        chmod(dir, 0o777);
    }

    let data = tempfile::tempdir().unwrap();
    let err = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .cache_dir(&shared),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::InsecurePath { path, problem } if path == &shared && problem.contains("writable by group or others")),
        "{err}"
    );
    assert!(!marker.exists(), "the planted interpreter ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_or_data_directory_owned_by_another_user_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // SAFETY: geteuid has no preconditions.
    let theirs = if unsafe { libc::geteuid() } == 0 {
        let dir = root.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o700);
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        dir
    } else {
        // Not root: a directory of root's is another user's.
        "/usr".into()
    };
    let data = tempfile::tempdir().unwrap();
    let err = Bridge::start(
        BridgeConfig::default()
            .data_dir(data.path())
            .cache_dir(&theirs),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::InsecurePath { problem, .. } if problem.contains("owned by uid")),
        "{err}"
    );
    let err = Bridge::start(BridgeConfig::default().data_dir(&theirs))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InsecurePath { path, .. } if path == &theirs),
        "{err}"
    );
}

/// Every file and directory under `dir` whose mode lets group or others in.
fn readable_by_others(dir: &Path, found: &mut Vec<String>, seen: &mut usize) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.path().symlink_metadata().unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        *seen += 1;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push(format!("{:o} {}", mode, entry.path().display()));
        }
        if meta.is_dir() {
            readable_by_others(&entry.path(), found, seen);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn conversations_and_transcripts_are_owner_only() {
    let (bridge, model, data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    common::chat_ok(&agent, "a private prompt").await;
    let conversation = agent.conversation_id().to_owned();
    agent.close().await.unwrap();
    bridge.shutdown().await;

    // The harness wrote its database and a transcript holding the prompt.
    let logs = data
        .path()
        .join("app-data/brain")
        .join(&conversation)
        .join(".system_generated/logs");
    let transcript = std::fs::read_dir(&logs)
        .unwrap_or_else(|e| panic!("no transcripts in {}: {e}", logs.display()))
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("transcript"))
        .expect("a transcript file");
    let content = std::fs::read_to_string(transcript.path()).unwrap();
    assert!(content.contains("a private prompt"), "{content}");

    let (mut open, mut seen) = (Vec::new(), 0);
    readable_by_others(data.path(), &mut open, &mut seen);
    assert!(seen > 5, "only {seen} entries written");
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));
}

#[test]
fn commands_the_agent_runs_cannot_read_this_process_s_secrets() {
    // Runs the probe below in a child process whose environment holds the secrets, so that
    // this test binary never has to change its own environment.
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "security::environment_probe",
            "--ignored",
            "--nocapture",
        ])
        .env("AGY_TEST_SENTINEL_SECRET", "sentinel-7f3a9e")
        .env("GEMINI_API_KEY", "gemini-sentinel-9b2c41")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn environ(pid: u32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .replace('\0', "\n")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by commands_the_agent_runs_cannot_read_this_process_s_secrets"]
async fn environment_probe() {
    const SECRETS: [&str; 2] = ["sentinel-7f3a9e", "gemini-sentinel-9b2c41"];
    assert_eq!(
        std::env::var("AGY_TEST_SENTINEL_SECRET").as_deref(),
        Ok(SECRETS[0])
    );
    let (bridge, model, data) = start().await;
    let agent = bridge
        .create_agent(
            agent_config(&model)
                .builtin_tool("run_command")
                .policy(PolicyRule::allow_all())
                .env("AGY_TEST_FOR_THE_HARNESS", "visible-on-purpose"),
        )
        .await
        .unwrap();
    model.push(common::print_environment(data.path()));
    let (text, outcome) = collect(agent.chat("print your environment").await.unwrap()).await;
    outcome.unwrap();
    // The command ran and printed its environment (the echo model repeats the output)…
    assert!(text.contains("PATH="), "{text}");
    assert!(text.contains("visible-on-purpose"), "{text}");
    // …without a secret of this process in it, nor in the worker's or harness's environment.
    let worker_env = environ(agent.worker_pid().expect("live"));
    let harness_env = environ(agent.harness_pid().expect("a live harness"));
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{secret} reached the model:\n{text}"
        );
        assert!(!worker_env.contains(secret), "{secret} in the worker");
        assert!(!harness_env.contains(secret), "{secret} in the harness");
    }
    assert!(!worker_env.contains("AGY_TEST_SENTINEL_SECRET"));
    agent.close().await.unwrap();
    bridge.shutdown().await;
}
