//! Every example runs offline (no GEMINI_API_KEY) and succeeds. `cargo test` builds them.

use std::{path::PathBuf, process::Command};

fn example(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test binary path");
    dir.pop(); // deps/
    dir.pop();
    dir.join("examples").join(name)
}

fn run(name: &str) -> String {
    run_with(name, &[])
}

fn run_with(name: &str, env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(example(name))
        .envs(env.iter().copied())
        .env_remove("GEMINI_API_KEY")
        .env("XDG_DATA_HOME", data.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("example {name} did not start ({e}); plain `cargo test` builds the examples, or run `cargo build --examples`"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn quickstart() {
    assert!(run("quickstart").contains("I am an Antigravity agent"));
}

#[test]
fn tools() {
    let out = run("tools");
    assert!(
        out.contains("[get_weather → \"Oslo: sunny, 21 °C (in 1 days)\"]"),
        "{out}"
    );
    assert!(out.contains("[add_to_list → [\"sunscreen\"]]"), "{out}");
}

#[test]
fn hooks_and_policies() {
    let out = run("hooks_and_policies");
    assert!(out.contains("[hook] model wants delete_file"), "{out}");
    assert!(out.contains("no terminal, approving"), "{out}");
    assert!(out.contains("The email is on its way."), "{out}");
}

#[test]
fn testing_your_agent() {
    assert!(run("testing_your_agent").contains("all assertions passed"));
}

#[test]
fn pool() {
    let out = run("pool");
    // Eight agents answered through their Rust tool, spread over the batch pool's workers.
    assert_eq!(out.matches(" words.").count(), 8, "{out}");
    assert!(out.contains("That text has 4 words."), "{out}");
    assert!(out.contains("That text has 1 words."), "{out}");
    let batch_rows: Vec<&str> = out.lines().filter(|l| l.starts_with("batch ")).collect();
    assert_eq!(batch_rows.len(), 2, "{out}");
    assert!(
        batch_rows
            .iter()
            .all(|r| r.split_whitespace().nth(2) == Some("4")),
        "{out}"
    );
}

#[cfg(feature = "postgres")]
#[test]
fn replicas() {
    let out = run("replicas");
    assert!(out.contains("replica-a: Nice to meet you, Ada."), "{out}");
    assert!(
        out.contains("replica-b sees the turn replica-a ran: true"),
        "{out}"
    );
    assert!(out.contains("stored: "), "{out}");
}

/// The observability example exports its trace (its own span, the bridge's and the worker's) to
/// the collector `OTEL_EXPORTER_OTLP_ENDPOINT` names, and prints the turn's cost.
#[cfg(feature = "otel")]
#[tokio::test(flavor = "multi_thread")]
async fn observability() {
    let receiver = crate::otlp::Receiver::start().await;
    let base = format!("http://{}", receiver.addr);
    let out = tokio::task::block_in_place(|| {
        run_with("observability", &[("OTEL_EXPORTER_OTLP_ENDPOINT", &base)])
    });
    assert!(out.contains("Your order A-17 has shipped."), "{out}");
    assert!(out.contains("estimated cost 0.0"), "{out}");
    let trace = out.rsplit("trace ").next().unwrap().trim().to_owned();
    let spans = receiver.spans();
    let in_trace = |service: &str, name: &str| {
        spans
            .iter()
            .any(|s| s.service == service && s.name == name && s.trace_id == trace)
    };
    assert!(in_trace("order-service", "handle_request"), "{spans:?}");
    assert!(in_trace("order-service", "invoke_agent agy-bridge"));
    assert!(in_trace("order-service", "execute_tool order_status"));
    assert!(in_trace("agy-worker", "execute_tool order_status"));
}
