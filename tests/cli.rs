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
    assert!(
        stderr.contains("[Rust tool result] calculator → 42.0"),
        "{stderr}"
    );
    assert!(
        stdout.contains("The Rust tool answered {\"result\": 42.0}"),
        "{stdout}"
    );
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
