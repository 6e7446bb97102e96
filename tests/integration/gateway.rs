//! The model gateway against the real worker, SDK and harness, with a scripted model that
//! really fails: transient failures before the first chunk are retried (and counted), retries
//! stop at their bound with the last error, a truncated or malformed stream is a typed error and
//! never a complete answer, a 429's `Retry-After` header reaches the quota backoff, and the
//! gateway answers nothing without its secret.

use crate::common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use agy_bridge::{
    Agent, AgentErrorKind, Error, ModelRetry,
    testing::{RecordedRequest, Reply, ScriptedModel},
};
use common::{HANG, agent_config, collect, start};

/// Quick retries, so the tests do not wait out the default backoff.
fn quick(retries: u32) -> ModelRetry {
    ModelRetry::default()
        .max_retries(retries)
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
}

async fn turn(
    agent: &Agent,
    prompt: &str,
) -> (String, agy_bridge::Result<agy_bridge::ChatOutcome>) {
    tokio::time::timeout(HANG, async {
        collect(agent.chat(prompt).await.unwrap()).await
    })
    .await
    .expect("the turn ends")
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_before_the_first_chunk_are_retried_and_counted() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).model_retry(quick(3)))
        .await
        .unwrap();
    model.push(Reply::http_error(503, "overloaded"));
    model.push(Reply::http_error_retry_after(429, "slow down", 1));
    model.push(Reply::Disconnect(Vec::new()));
    let before = model.requests().len();
    let (text, outcome) = turn(&agent, "hello").await;
    let outcome = outcome.expect("the turn succeeds after retries");
    assert_eq!(text, "You said: hello");
    assert_eq!(outcome.text, "You said: hello");
    assert_eq!(outcome.model_retries, 3);
    assert_eq!(
        model.requests().len() - before,
        4,
        "three failures, then the answer"
    );
    // The next turn needs none.
    let (_, outcome) = turn(&agent, "again").await;
    assert_eq!(outcome.unwrap().model_retries, 0);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_at_their_bound_with_the_last_error() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).model_retry(quick(2)))
        .await
        .unwrap();
    for _ in 0..3 {
        model.push(Reply::http_error(500, "internal trouble"));
    }
    let before = model.requests().len();
    let (_, outcome) = turn(&agent, "hello").await;
    let err = outcome.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent {
                kind: AgentErrorKind::ModelHttp,
                http_status: Some(500),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        model.requests().len() - before,
        3,
        "the first attempt and two retries"
    );
    common::chat_ok(&agent, "still there?").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_or_malformed_stream_is_a_typed_error_never_a_complete_answer() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    for fault in [
        Reply::Truncated(Reply::words("Hello! You are")),
        Reply::Malformed(Reply::words("Hello! You are")),
        Reply::Disconnect(Reply::words("Hello! You are")),
    ] {
        let label = format!("{fault:?}");
        model.push(fault);
        let (text, outcome) = turn(&agent, "say hello").await;
        // The text streamed before the fault stays events; the outcome is a typed error.
        assert!(
            "Hello! You are".starts_with(&text),
            "{label}: streamed {text:?}"
        );
        match outcome {
            Err(Error::Agent { .. }) => {}
            Err(other) => panic!("{label}: not an agent error: {other}"),
            Ok(outcome) => panic!("{label}: accepted as complete: {:?}", outcome.text),
        }
        common::chat_ok(&agent, "still there?").await;
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_s_retry_after_header_reaches_the_quota_backoff() {
    let (bridge, model, _data) = start().await;
    let agent = bridge
        .create_agent(agent_config(&model).model_retry(ModelRetry::none()))
        .await
        .unwrap();
    model.push(Reply::http_error_retry_after(
        429,
        "{\"error\": \"busy\"}",
        7,
    ));
    let (_, outcome) = turn(&agent, "hello").await;
    let err = outcome.unwrap_err();
    match err {
        Error::Agent {
            kind: AgentErrorKind::Quota,
            retry_after,
            ..
        } => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("not a quota error: {other}"),
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_listens_on_loopback_and_answers_nothing_without_its_secret() {
    let (bridge, model, _data) = start().await;
    let agent = bridge.create_agent(agent_config(&model)).await.unwrap();
    common::chat_ok(&agent, "through the gateway").await;
    let addr = bridge
        .model_gateway_addr()
        .expect("the gateway runs by default");
    assert!(addr.ip().is_loopback());
    let before = model.requests().len();
    for path in [
        "/".to_owned(),
        format!("/{}/chat/completions", agent.id()),
        format!("/not-the-secret/{}/chat/completions", agent.id()),
        format!("/{}/{}/chat/completions", "0".repeat(64), agent.id()),
    ] {
        let status = raw_post(addr, &path).await;
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(model.requests().len(), before, "nothing reached the model");
    bridge.shutdown().await;
}

/// POSTs an empty JSON body to `path` over a plain TCP connection; returns the status code.
async fn raw_post(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"))
}

/// The responder of the soak tests: tool-using turns (call `add`, then report its result),
/// with the model request number `n` failing as `fault(n)` says.
fn faulty(
    fault: impl Fn(usize) -> Option<Reply> + Send + Sync + 'static,
) -> agy_bridge::testing::Responder {
    let seen = Arc::new(AtomicUsize::new(0));
    Arc::new(move |req: &RecordedRequest| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        if let Some(reply) = fault(n) {
            return reply;
        }
        match req.tool_result() {
            Some(result) if result.contains("\"result\": 5") => Reply::text("The sum is 5."),
            Some(result) => Reply::text(format!("The tool answered something else: {result}")),
            None => Reply::tool_call("add", serde_json::json!({"a": 2, "b": 3})),
        }
    })
}

fn add_tool() -> agy_bridge::tools::FnTool {
    agy_bridge::tools::FnTool::new(
        "add",
        "Adds two numbers.",
        serde_json::json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
        |args, _| async move {
            Ok(serde_json::json!(
                args["a"].as_i64().unwrap_or(0) + args["b"].as_i64().unwrap_or(0)
            ))
        },
    )
}

/// 200 tool-using turns with 15 % of model requests failing before their first chunk (429,
/// 500, 503 and dropped connections, never twice in a row): at least 99 % complete with the
/// right answer. Then with truncated and malformed streams mixed in too: every turn either
/// completes with the whole answer or fails with a typed error.
#[tokio::test(flavor = "multi_thread")]
async fn soak_two_hundred_tool_turns_through_transient_faults_and_broken_streams() {
    const TURNS: usize = 200;
    let transient = |n: usize| match n % 20 {
        3 => Some(Reply::http_error_retry_after(429, "slow down", 0)),
        9 => Some(Reply::http_error(503, "overloaded")),
        15 => Some(Reply::Disconnect(Vec::new())),
        _ => None,
    };
    for broken_streams in [false, true] {
        let model = ScriptedModel::with_responder(faulty(move |n| {
            transient(n).or_else(|| match (broken_streams, n % 23) {
                (true, 5) => Some(Reply::Truncated(Reply::words("The sum"))),
                (true, 17) => Some(Reply::Malformed(Reply::words("The sum"))),
                _ => None,
            })
        }))
        .await
        .unwrap();
        let data = tempfile::tempdir().unwrap();
        let bridge = agy_bridge::Bridge::start(common::config(&data))
            .await
            .unwrap();
        let agent = bridge
            .create_agent(agent_config(&model).tool(add_tool()).model_retry(quick(2)))
            .await
            .unwrap();
        let (mut complete, mut typed_errors, mut retries) = (0, 0, 0);
        for i in 0..TURNS {
            let (_, outcome) = turn(&agent, &format!("add 2 and 3 ({i})")).await;
            match outcome {
                Ok(outcome) => {
                    assert!(
                        outcome.text.contains("The sum is 5."),
                        "turn {i}: accepted an incomplete answer: {:?}",
                        outcome.text
                    );
                    complete += 1;
                    retries += outcome.model_retries;
                }
                Err(Error::Agent { .. }) => typed_errors += 1,
                Err(other) => panic!("turn {i}: not a typed agent error: {other}"),
            }
        }
        eprintln!(
            "broken streams: {broken_streams}: {complete} complete, {typed_errors} typed errors, {retries} retries"
        );
        assert!(retries > 0, "the faults were retried");
        if !broken_streams {
            assert!(complete * 100 >= TURNS * 99, "{complete}/{TURNS} completed");
        }
        bridge.shutdown().await;
    }
}
