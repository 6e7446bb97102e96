//! Observability: each turn as one trace across the bridge and its Python worker, exported
//! over OTLP/HTTP to an OpenTelemetry collector, and each turn's tokens and estimated cost.
//!
//! Start a collector that accepts OTLP/HTTP on port 4318, for example
//! `docker run --rm -p 4318:4318 otel/opentelemetry-collector` (it logs what it receives), then
//! `cargo run --example observability --features testing,otel`.
//! `OTEL_EXPORTER_OTLP_ENDPOINT` names another collector (default `http://127.0.0.1:4318`).

#[path = "common/mod.rs"]
mod common;

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, Price, PriceTable, WorkerTracing, llm_tool, testing::Reply,
};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use serde_json::json;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

/// Looks an order up.
#[llm_tool]
fn order_status(order: String) -> String {
    format!("order {order}: shipped")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let collector = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4318".into());
    let traces = format!("{}/v1/traces", collector.trim_end_matches('/'));

    // The application's side: its `tracing` spans (the bridge's among them) become
    // OpenTelemetry spans, exported in batches.
    let exporter = {
        use opentelemetry_otlp::WithExportConfig;
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&traces)
            .build()?
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("order-service")
                .build(),
        )
        .build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("order-service"))),
    )?;

    let (model, _offline) = common::model(vec![
        Reply::tool_call("order_status", json!({"order": "A-17"})),
        Reply::text("Your order A-17 has shipped."),
    ])
    .await;
    let name = model.model_name().to_owned();
    // The workers export their spans to the same collector; a price gives cost estimates.
    let config = BridgeConfig::default()
        .tracing(WorkerTracing::otlp(&traces))
        .prices(PriceTable::new().model(name, Price::per_million(0.30, 2.50)));
    let bridge = Bridge::start(config).await?;
    let agent = bridge
        .create_agent(AgentConfig::new(model).tool(OrderStatus))
        .await?;

    // The turn runs inside the application's own span: its trace holds the bridge's turn, the
    // model calls, the worker's turn, step and tool spans, and the Rust tool.
    let request = tracing::info_span!("handle_request");
    let trace_id = request.context().span().span_context().trace_id();
    let outcome = async {
        let reply = agent.chat("Where is my order A-17?").await?;
        reply.finish().await
    }
    .instrument(request)
    .await?;
    println!("{}", outcome.text);
    let usage = outcome.usage.clone().unwrap_or_default();
    println!(
        "tokens: {} in, {} out; estimated cost {:.6}; trace {trace_id}",
        usage.prompt_tokens.unwrap_or(0),
        usage.output_tokens.unwrap_or(0),
        outcome.cost.unwrap_or(0.0),
    );

    agent.close().await?;
    bridge.shutdown().await; // the workers export their last spans as they stop
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    Ok(())
}
