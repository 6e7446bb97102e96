//! Gemini model options and endpoints, through the real harness: a Gemini agent pointed at a
//! local endpoint (`model_endpoint`) sends its model calls there, with its extra headers and
//! its `GeminiModelOptions` in the request. The endpoint only records and refuses: no network.

use std::{net::SocketAddr, sync::Arc};

use agy_bridge::{
    AgentConfig, Bridge, ModelConfig,
    sdk_config::{GeminiOptions, LiteRtOptions, ServiceTier, ThinkingLevel},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use parking_lot::Mutex;

use crate::common::{self, collect, config};

/// A request the endpoint got.
#[derive(Debug, Clone)]
struct Recorded {
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Records every request and answers each with a Gemini API error (400: not retried).
async fn recording_endpoint() -> (SocketAddr, Arc<Mutex<Vec<Recorded>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let kept = Arc::clone(&kept);
                        async move {
                            let path = req.uri().to_string();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            kept.lock().push(Recorded {
                                path,
                                headers,
                                body: String::from_utf8_lossy(&body).into_owned(),
                            });
                            let error = r#"{"error": {"code": 400, "message": "recorded", "status": "INVALID_ARGUMENT"}}"#;
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(400)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from_static(error.as_bytes())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gemini_agent_calls_its_endpoint_with_its_headers_and_options() {
    let (addr, got) = recording_endpoint().await;
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let agent = bridge
        .create_agent(
            AgentConfig::new(ModelConfig::gemini("probe-key").with_model("gemini-probe"))
                .model_endpoint(format!("http://{addr}"))
                .model_header("x-probe-token", "probe-sentinel")
                .gemini_options(GeminiOptions {
                    thinking_level: Some(ThinkingLevel::Low),
                    service_tier: Some(ServiceTier::Flex),
                    max_output_tokens: Some(1234),
                }),
        )
        .await
        .unwrap();
    let (_, outcome) = collect(agent.chat("hello").await.unwrap()).await;
    assert!(outcome.is_err(), "the endpoint refuses every call");
    let requests = got.lock().clone();
    let call = requests
        .iter()
        .find(|r| r.path.contains("gemini-probe"))
        .unwrap_or_else(|| panic!("no model call reached the endpoint: {requests:?}"));
    let header = |name: &str| {
        call.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("x-probe-token"), Some("probe-sentinel"), "{call:?}");
    let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    let generation = &body["generationConfig"];
    assert_eq!(generation["maxOutputTokens"], 1234, "{body}");
    let thinking = generation["thinkingConfig"].to_string().to_lowercase();
    assert!(thinking.contains("low"), "{body}");
    assert!(call.body.to_lowercase().contains("flex"), "{body}");
    agent.close().await.unwrap();
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn model_options_for_another_kind_of_model_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    for (config, name) in [
        (
            common::agent_config(&model).gemini_options(GeminiOptions::default()),
            "gemini_options",
        ),
        (
            common::agent_config(&model).model_endpoint("http://x"),
            "model_endpoint",
        ),
        (
            common::agent_config(&model).image_model("img"),
            "image_model",
        ),
        (
            AgentConfig::new(ModelConfig::gemini("k")).litert_options(LiteRtOptions::default()),
            "litert_options",
        ),
    ] {
        let err = bridge.create_agent(config).await.unwrap_err();
        assert!(
            matches!(&err, agy_bridge::Error::InvalidConfig { message } if message.contains(name)),
            "{err}"
        );
    }
    bridge.shutdown().await;
}

/// The `.eval()` preset: every default built-in but image generation, with a policy so the
/// write tools are allowed, and for Gemini thinking at `high` in the model request.
#[tokio::test(flavor = "multi_thread")]
async fn the_eval_preset_offers_the_default_tools_and_thinks_high_on_gemini() {
    let data = tempfile::tempdir().unwrap();
    let bridge = Bridge::start(config(&data)).await.unwrap();
    let model = agy_bridge::testing::ScriptedModel::start().await.unwrap();
    let agent = bridge
        .create_agent(common::agent_config(&model).eval())
        .await
        .unwrap();
    common::chat_ok(&agent, "hello").await;
    let offered = model.requests().pop().unwrap().tool_names();
    assert!(offered.iter().any(|t| t == "run_command"), "{offered:?}");
    assert!(!offered.iter().any(|t| t.contains("image")), "{offered:?}");
    assert!(
        !offered.iter().any(|t| t.contains("subagent")),
        "{offered:?}"
    );
    agent.close().await.unwrap();

    let (addr, got) = recording_endpoint().await;
    let gemini = bridge
        .create_agent(
            AgentConfig::new(ModelConfig::gemini("probe-key").with_model("gemini-probe"))
                .model_endpoint(format!("http://{addr}"))
                .eval(),
        )
        .await
        .unwrap();
    let (_, outcome) = collect(gemini.chat("hello").await.unwrap()).await;
    assert!(outcome.is_err(), "the endpoint refuses every call");
    let requests = got.lock().clone();
    let call = requests
        .iter()
        .find(|r| r.path.contains("gemini-probe"))
        .unwrap_or_else(|| panic!("no model call: {requests:?}"));
    let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    let thinking = body["generationConfig"]["thinkingConfig"]
        .to_string()
        .to_lowercase();
    assert!(thinking.contains("high"), "{body}");
    bridge.shutdown().await;
}
