//! The README's main command, run as a user would: an offline streaming chat with Rust tools.

use std::process::Command;

#[test]
fn offline_chat_streams_a_reply_that_used_a_rust_tool() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .args(["chat", "--offline", "What is 6 * 7?"])
        .env("XDG_DATA_HOME", data.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Model: offline demo"), "{stderr}");
    assert!(stderr.contains("[tool call] calculator"), "{stderr}");
    assert!(stderr.contains("[hook] calculator allowed"), "{stderr}");
    assert!(
        stderr.contains("[Rust tool result] calculator → 42.0"),
        "{stderr}"
    );
    assert!(
        stdout.contains("The Rust tool answered {\"result\": 42.0}"),
        "{stdout}"
    );
}

/// `agy-bridge doctor` with `env` set (`None` removes the variable): passed, and the report.
fn doctor_with(env: &[(&str, Option<&std::ffi::OsStr>)]) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = cli();
    cmd.arg("doctor").env("XDG_DATA_HOME", data.path());
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let (ok, stdout, _) = run(&mut cmd);
    (ok, stdout)
}

/// The `fix:` line under the failed check `name`.
fn fix_for(report: &str, name: &str) -> String {
    let mut lines = report
        .lines()
        .skip_while(|l| !l.contains(&format!("✗ {name}")));
    assert!(lines.next().is_some(), "{name} did not fail:\n{report}");
    lines
        .map(str::trim)
        .find(|l| l.starts_with("fix:"))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_fix_doctor_prints_for_the_environment_fixes_its_failure() {
    agy_bridge::setup::ensure(agy_bridge::PythonConfig::default(), None)
        .await
        .unwrap();
    fn set<'a>(
        name: &'a str,
        value: &'a std::path::Path,
    ) -> (&'a str, Option<&'a std::ffi::OsStr>) {
        (name, Some(value.as_os_str()))
    }
    fn none(name: &str) -> (&str, Option<&std::ffi::OsStr>) {
        (name, None)
    }
    let missing = std::path::Path::new("/nonexistent/python3");

    // AGY_BRIDGE_PYTHON that does not run: "unset it".
    let (ok, report) = doctor_with(&[set("AGY_BRIDGE_PYTHON", missing)]);
    assert!(!ok);
    assert!(
        fix_for(&report, "Python").contains("or unset it"),
        "{report}"
    );
    let (ok, report) = doctor_with(&[none("AGY_BRIDGE_PYTHON")]);
    assert!(ok, "{report}");

    // A base interpreter that does not exist: "set AGY_BRIDGE_BASE_PYTHON to one".
    let (ok, report) = doctor_with(&[
        none("AGY_BRIDGE_PYTHON"),
        set("AGY_BRIDGE_BASE_PYTHON", missing),
    ]);
    assert!(!ok);
    assert!(
        fix_for(&report, "Python").contains("set AGY_BRIDGE_BASE_PYTHON to one"),
        "{report}"
    );
    let python3 = agy_bridge::setup::inspect(&agy_bridge::PythonConfig::default())
        .unwrap()
        .unwrap()
        .base_python;
    let (ok, report) = doctor_with(&[
        none("AGY_BRIDGE_PYTHON"),
        set("AGY_BRIDGE_BASE_PYTHON", &python3),
    ]);
    assert!(ok, "{report}");

    // An interpreter with another google-antigravity (a real venv with a real, if tiny,
    // installed distribution of another version): "install the pin there, or unset".
    let other = tempfile::tempdir().unwrap();
    let venv = other.path().join("venv");
    assert!(
        Command::new(&python3)
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .unwrap()
            .success()
    );
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::create_dir_all(site.join("google/antigravity")).unwrap();
    std::fs::write(site.join("google/antigravity/__init__.py"), "").unwrap();
    let dist = site.join("google_antigravity-0.0.1.dist-info");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(
        dist.join("METADATA"),
        "Metadata-Version: 2.1\nName: google-antigravity\nVersion: 0.0.1\n",
    )
    .unwrap();
    let (ok, report) = doctor_with(&[set("AGY_BRIDGE_PYTHON", &venv.join("bin/python"))]);
    assert!(!ok);
    let fix = fix_for(&report, "SDK");
    assert!(fix.contains("google-antigravity==0.1.22 there"), "{report}");
    assert!(fix.contains("or unset AGY_BRIDGE_PYTHON"), "{report}");
    let (ok, report) = doctor_with(&[none("AGY_BRIDGE_PYTHON")]);
    assert!(ok, "{report}");
}

#[test]
fn a_missing_python_fails_with_a_clear_message() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .args(["chat", "--offline", "hi"])
        .env("AGY_BRIDGE_CACHE_DIR", cache.path())
        .env("AGY_BRIDGE_BASE_PYTHON", "/nonexistent/python3")
        .env_remove("AGY_BRIDGE_PYTHON")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("error: Python environment set-up failed while looking for Python"),
        "{stderr}"
    );
}

#[test]
fn json_output_is_one_parseable_event_per_line() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .args(["chat", "--offline", "--json", "What is 2 + 3?"])
        .env("XDG_DATA_HOME", data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for want in ["step", "tool_call", "tool_result", "text", "outcome"] {
        assert!(types.contains(&want), "{want} missing from {types:?}");
    }
    let result = events.iter().find(|e| e["type"] == "tool_result").unwrap();
    assert_eq!(result["result"], 5.0);
    let outcome = events.last().unwrap();
    assert_eq!(outcome["type"], "outcome");
    assert!(outcome["outcome"]["text"].as_str().unwrap().contains("5.0"));
}

#[test]
fn interactive_mode_reads_prompts_until_end_of_input() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .args(["chat", "--offline"])
        .env("XDG_DATA_HOME", data.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"what is 2 * 21\nwhat is 10 - 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("{\"result\": 42.0}") && stdout.contains("{\"result\": 6.0}"),
        "{stdout}"
    );
}

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_good_setup() {
    // The environment this test suite runs in (set up first, as `doctor` does not build it).
    agy_bridge::setup::ensure(agy_bridge::PythonConfig::default(), None)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(cli().arg("doctor").env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stdout}\n{stderr}");
    for line in [
        "✓ Python",
        "✓ SDK           google-antigravity 0.1.22",
        "✓ worker",
        "✓ smoke chat",
        "· venv cache",
        "All checks passed.",
    ] {
        assert!(stdout.contains(line), "{line:?} missing:\n{stdout}");
    }
}

#[test]
fn doctor_fails_with_a_fix_for_a_python_without_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("bare");
    let status = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(status.success());
    let (ok, stdout, _) = run(cli()
        .arg("doctor")
        .env("AGY_BRIDGE_PYTHON", venv.join("bin").join("python"))
        .env("XDG_DATA_HOME", dir.path()));
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("✓ Python"), "{stdout}");
    assert!(
        stdout.contains("✗ SDK           google-antigravity does not import"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: install it there") && stdout.contains("1 check(s) failed."),
        "{stdout}"
    );
    assert!(
        stdout.contains("- worker        skipped (no SDK)"),
        "{stdout}"
    );
}

#[test]
fn doctor_fails_with_a_fix_for_a_missing_python() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = run(cli()
        .arg("doctor")
        .env_remove("AGY_BRIDGE_PYTHON")
        .env("AGY_BRIDGE_CACHE_DIR", cache.path())
        .env("AGY_BRIDGE_BASE_PYTHON", "/nonexistent/python3"));
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("✗ Python"), "{stdout}");
    assert!(
        stdout.contains("fix: install Python >= 3.10, or set AGY_BRIDGE_BASE_PYTHON"),
        "{stdout}"
    );
}

#[test]
fn gc_removes_stale_venvs_and_orphaned_conversation_files_only() {
    let cache = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let stale_venv = cache.path().join("venvs").join("0123456789abcdef");
    std::fs::create_dir_all(stale_venv.join("bin")).unwrap();
    std::fs::write(stale_venv.join("bin").join("python"), vec![0u8; 4096]).unwrap();
    let stale_src = cache.path().join("worker-src").join("0000000000000000");
    std::fs::create_dir_all(&stale_src).unwrap();
    let conv = data.path().join("conversations");
    let brain = data.path().join("app-data").join("brain");
    std::fs::create_dir_all(&conv).unwrap();
    std::fs::create_dir_all(brain.join("kept")).unwrap();
    std::fs::create_dir_all(brain.join("orphan")).unwrap();
    std::fs::write(conv.join("kept.db"), b"db").unwrap();
    std::fs::write(conv.join("orphan.db-wal"), b"wal").unwrap();

    let gc = |extra: &[&str]| {
        run(cli()
            .arg("gc")
            .args(extra)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("AGY_BRIDGE_PYTHON")
            .env("AGY_BRIDGE_CACHE_DIR", cache.path()))
    };
    let (ok, stdout, stderr) = gc(&["--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("would free 4.0 KiB in 4 entries"),
        "{stdout}"
    );
    assert!(stale_venv.exists(), "a dry run removes nothing");

    let (ok, stdout, stderr) = gc(&[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("freed 4.0 KiB in 4 entries"), "{stdout}");
    for gone in [
        &stale_venv,
        &stale_src,
        &brain.join("orphan"),
        &conv.join("orphan.db-wal"),
    ] {
        assert!(!gone.exists(), "{} left", gone.display());
    }
    assert!(conv.join("kept.db").exists() && brain.join("kept").exists());
}

/// `setup --download-wheels` on a connected machine, then `setup --offline-wheels` with the
/// package index unreachable: the venv is built from the wheelhouse alone.
#[test]
fn setup_installs_from_a_wheelhouse_without_the_index() {
    let cache = tempfile::tempdir().unwrap();
    let wheels = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args(["setup", "--download-wheels"])
        .arg(wheels.path())
        .env_remove("AGY_BRIDGE_PYTHON"));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("agy-bridge setup --offline-wheels"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run(cli()
        .args(["setup", "--offline-wheels"])
        .arg(wheels.path())
        .env_remove("AGY_BRIDGE_PYTHON")
        .env("AGY_BRIDGE_CACHE_DIR", cache.path())
        // Nothing may come from an index: point every index setting at a closed port.
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_EXTRA_INDEX_URL", "")
        .env("UV_INDEX_URL", "http://127.0.0.1:9/simple"));
    assert!(ok, "{stdout}\n{stderr}");
    // pip, or uv when it is on PATH (scripts/test puts it there): either way from the wheels.
    let source = format!("from {} with ", wheels.path().display());
    assert!(stderr.contains(&source), "{stderr}");
    assert!(stdout.contains("venv:"), "{stdout}");
}

#[test]
fn read_dir_offers_a_read_file_tool_confined_to_that_directory() {
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("notes.txt"), "the launch is on Tuesday").unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args(["chat", "--offline", "--read-dir"])
        .arg(files.path())
        .arg("Please read notes.txt")
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("[tool call] read_file"), "{stderr}");
    assert!(stdout.contains("the launch is on Tuesday"), "{stdout}");

    let (ok, stdout, stderr) = run(cli()
        .args(["chat", "--offline", "--read-dir"])
        .arg(files.path())
        .arg("Please read ../../etc/passwd")
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("[Rust tool error] read_file"), "{stderr}");
    assert!(!stdout.contains("root:"), "{stdout}");

    // The demo hook shows its decisions, and keeps read_file away from likely secrets.
    std::fs::write(files.path().join(".env"), "API_KEY=hunter2").unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args(["chat", "--offline", "--read-dir"])
        .arg(files.path())
        .arg("Please read .env")
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("[hook] read_file .env denied: it may hold secrets"),
        "{stderr}"
    );
    assert!(!stdout.contains("hunter2"), "{stdout}");

    // A link with an innocent name is judged by what it points to.
    std::os::unix::fs::symlink(".env", files.path().join("innocent.txt")).unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args(["chat", "--offline", "--read-dir"])
        .arg(files.path())
        .arg("Please read innocent.txt")
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("[Rust tool error] read_file"), "{stderr}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn reading_a_fifo_is_refused_at_once_instead_of_freezing_the_cli() {
    // Before, opening the FIFO blocked a runtime thread: the CLI froze past its chat timeout
    // and ignored Ctrl-C until SIGKILL.
    let data = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let fifo = files.path().join("pipe.txt");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let child = cli()
        .args(["chat", "--offline", "--read-dir"])
        .arg(files.path())
        .arg("Please read pipe.txt")
        .env("XDG_DATA_HOME", data.path())
        .env("AGY_BRIDGE_CHAT_TIMEOUT_SECS", "30")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn policy_flags_deny_or_ask_and_each_decision_is_shown() {
    let data = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args([
            "chat",
            "--offline",
            "--deny",
            "calculator",
            "What is 6 * 7?",
        ])
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("[denied] calculator is denied by --deny calculator"),
        "{stderr}"
    );
    assert!(!stderr.contains("[Rust tool result]"), "{stderr}");
    assert!(stdout.contains("The tool call did not run"), "{stdout}");

    // Nobody at a terminal to ask: an ask_user rule denies, and says why.
    let (ok, _, stderr) = run(cli()
        .args(["chat", "--offline", "--ask", "calculator", "What is 6 * 7?"])
        .stdin(std::process::Stdio::null())
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(r#"[policy] calculator {"a":6,"b":7,"op":"*"} denied: no terminal to ask"#),
        "{stderr}"
    );
    assert!(!stderr.contains("[Rust tool result]"), "{stderr}");
}

/// `--ask` on a real terminal: util-linux `script` gives the CLI a pseudo-terminal and types
/// the answer.
#[test]
fn ask_asks_on_the_terminal_and_runs_the_tool_when_approved() {
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let mut child = ask_calculator_on_a_terminal(&data);
    child.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains(r#"[policy] allow calculator {"a":6,"b":7,"op":"*"}? [y/N]"#),
        "{screen}"
    );
    assert!(
        screen.contains("[policy] calculator approved by you"),
        "{screen}"
    );
    assert!(
        screen.contains("[Rust tool result] calculator → 42.0"),
        "{screen}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_model_gets_the_demo_tools_only_when_asked() {
    use agy_bridge::testing::{Reply, ScriptedModel};
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let offered = |extra: &[&str]| {
        model.push(Reply::text("hello"));
        let (ok, stdout, stderr) = run(cli()
            .args(["chat", "--base-url", &model.base_url(), "--model", "m"])
            .args(extra)
            .arg("hi")
            .env("XDG_DATA_HOME", data.path()));
        assert!(ok, "{stderr}");
        assert!(stdout.contains("hello"), "{stdout}");
        let mut names = model.requests().pop().unwrap().tool_names();
        names.sort();
        names
    };
    let plain = tokio::task::block_in_place(|| offered(&[]));
    assert!(!plain.contains(&"calculator".to_owned()), "{plain:?}");
    let with_tools = tokio::task::block_in_place(|| offered(&["--tools"]));
    assert!(
        with_tools.contains(&"calculator".to_owned()),
        "{with_tools:?}"
    );
    assert!(with_tools.contains(&"clock".to_owned()), "{with_tools:?}");
}

/// A model stream cut short is never printed as a finished answer with exit status 0: a single
/// prompt fails, and a piped session that had a failed turn exits non-zero after the rest.
#[tokio::test(flavor = "multi_thread")]
async fn a_turn_cut_short_makes_chat_exit_non_zero() {
    use agy_bridge::testing::{Reply, ScriptedModel};
    use std::io::Write;
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModel::start().await.unwrap();
    let chat = || {
        let mut chat = cli();
        chat.args(["chat", "--base-url", &model.base_url(), "--model", "m"])
            .env("XDG_DATA_HOME", data.path());
        chat
    };
    model.push(Reply::Truncated(Reply::words("Hello! You")));
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| run(chat().arg("hi")));
    assert!(!ok, "exit 0 after a truncated answer: {stdout}\n{stderr}");

    model.push(Reply::Malformed(Reply::words("Half an")));
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| {
        let mut child = chat()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"first\nsecond\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    });
    assert!(!ok, "exit 0 after a failed turn: {stdout}\n{stderr}");
    assert!(
        stdout.contains("You said: second"),
        "the session went on: {stdout}"
    );
    assert!(stderr.contains("1 turn(s) did not complete"), "{stderr}");
}

/// Ctrl-C while `--ask` waits for an answer cancels the turn, and nothing is left reading the
/// terminal: the CLI exits at once instead of waiting for a line.
#[test]
fn ctrl_c_at_the_ask_question_cancels_the_turn_and_exits() {
    use std::{
        io::{Read, Write},
        sync::{Arc, Mutex},
        time::{Duration, Instant},
    };
    // Tells a hang from a slow machine.
    const HANG: Duration = Duration::from_secs(60);
    let data = tempfile::tempdir().unwrap();
    let mut child = ask_calculator_on_a_terminal(&data);
    let screen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&screen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let shown = || String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    let until = |what: &str, child: &mut std::process::Child| {
        let start = Instant::now();
        while !shown().contains(what) {
            assert!(
                child.try_wait().unwrap().is_none(),
                "exited early: {}",
                shown()
            );
            assert!(start.elapsed() < HANG, "no {what:?}: {}", shown());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    until("[y/N]", &mut child);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap(); // the terminal turns it into SIGINT
    stdin.flush().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            panic!("the CLI hung after Ctrl-C: {}", shown());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    // Everything the CLI wrote, up to the end of the terminal's output.
    reader.join().unwrap();
    assert!(status.success(), "{status}: {}", shown());
    let screen = shown();
    assert!(screen.contains("[turn cancelled]"), "{screen}");
    assert!(!screen.contains("[Rust tool result]"), "{screen}");
}

/// `chat --ask calculator "What is 6 * 7?"` on a pseudo-terminal (util-linux `script`), with
/// its keyboard and screen piped; `None` (the test is skipped) where `script` is missing.
fn ask_calculator_on_a_terminal(data: &tempfile::TempDir) -> std::process::Child {
    // A missing tool fails the test: a skipped check would pass silently.
    assert!(
        Command::new("script").arg("--version").output().is_ok(),
        "util-linux `script` (Debian: bsdutils) is needed for a pseudo-terminal"
    );
    // `exec`: the shell `script` starts must not stay in the terminal's foreground process
    // group, or Ctrl-C kills it too (dash, a common /bin/sh, then exits with 130).
    let command = format!(
        "exec '{}' chat --offline --ask calculator 'What is 6 * 7?'",
        env!("CARGO_BIN_EXE_agy-bridge")
    );
    Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("XDG_DATA_HOME", data.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `agy-bridge chat … | head`: once nobody reads stdout, the CLI stops the turn and exits
/// quietly, instead of panicking on the closed pipe or streaming a turn nobody will see.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_ends_the_turn_quietly() {
    use agy_bridge::testing::{Reply, ScriptedModel};
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModel::start().await.unwrap();
    // Text: the reply cannot be written. JSON: the first event cannot, while the model stalls
    // (the turn could only end by the CLI cancelling it).
    for (mode, reply) in [("text", Reply::text("hello")), ("--json", Reply::Stall)] {
        model.push(reply);
        let mut chat = cli();
        chat.args(["chat", "--base-url", &model.base_url(), "--model", "m"]);
        if mode == "--json" {
            chat.arg("--json");
        }
        let mut child = chat
            .arg("hi")
            .env("XDG_DATA_HOME", data.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = tokio::task::block_in_place(|| wait_bounded(child));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{mode}: {}: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{mode}: {stderr}");
    }
}

/// The child's output once it exits; kills it and fails if it runs longer than a hang.
fn wait_bounded(mut child: std::process::Child) -> std::process::Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            let _ = child.kill();
            panic!("hung: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The path and body of each request a collector stand-in got.
type Exports = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A collector stand-in: an HTTP/1.1 server that answers every request 200 and keeps each
/// request's path and body.
fn collector() -> (String, Exports) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::{Arc, Mutex};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        if reader.read_line(&mut header).unwrap_or(0) == 0 {
                            return;
                        }
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    kept.lock().unwrap().push((path, body));
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (url, got)
}

/// `--otlp-endpoint` exports the turn's trace to a collector, the CLI's spans and the worker's
/// (their names and services are read off the protobuf bodies), and `--price` shows the turn's
/// estimated cost.
#[test]
fn otlp_endpoint_exports_the_turn_s_trace_and_price_shows_its_cost() {
    let (url, got) = collector();
    let data = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(cli()
        .args([
            "chat",
            "--offline",
            "What is 6 * 7?",
            "--otlp-endpoint",
            &url,
        ])
        .args(["--price", "1,2"])
        .env("XDG_DATA_HOME", data.path()));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("cost ≈ 0.0"), "{stderr}");
    // Everything was exported before the CLI exited.
    let got = got.lock().unwrap();
    assert!(
        got.iter().all(|(path, _)| path == "/v1/traces"),
        "{:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    let all: Vec<u8> = got.iter().flat_map(|(_, body)| body.clone()).collect();
    let has = |text: &str| all.windows(text.len()).any(|w| w == text.as_bytes());
    for expected in [
        "agy-bridge-cli",
        "invoke_agent agy-bridge",
        "chat offline-demo",
        "execute_tool calculator",
        "agy-worker",
        "gen_ai.usage.input_tokens",
    ] {
        assert!(has(expected), "no {expected:?} in what the collector got");
    }

    let (ok, _, stderr) = run(cli().args(["chat", "--offline", "hi", "--price", "cheap"]));
    assert!(!ok && stderr.contains("IN,OUT"), "{stderr}");
}
