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
