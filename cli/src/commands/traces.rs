//! Logging, and with `chat --otlp-endpoint` the export of each turn's trace: the bridge's
//! `tracing` spans through `tracing-opentelemetry` and the OTLP/HTTP exporter, and the worker's
//! spans by the worker itself, to the same collector.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// The service name of the CLI's own spans.
const SERVICE_NAME: &str = "agy-bridge-cli";

/// The OTLP/HTTP exporter of the CLI's spans.
pub(crate) struct Exporter {
    provider: SdkTracerProvider,
    traces_endpoint: String,
}

impl Exporter {
    /// Builds the exporter for a collector at `base` (its traces endpoint is `base/v1/traces`,
    /// as `OTEL_EXPORTER_OTLP_ENDPOINT` means it).
    ///
    /// # Errors
    /// The URL is not http(s), or the exporter cannot be built.
    pub(crate) fn start(base: &str) -> Result<Self, String> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err("expected an http:// or https:// URL".into());
        }
        let traces_endpoint = format!("{}/v1/traces", base.trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&traces_endpoint)
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(SERVICE_NAME)
                    .build(),
            )
            .build();
        Ok(Self {
            provider,
            traces_endpoint,
        })
    }

    /// Where the workers export their spans: the same collector.
    pub(crate) fn worker_tracing(&self) -> agy_bridge::WorkerTracing {
        agy_bridge::WorkerTracing::otlp(&self.traces_endpoint)
    }

    /// Exports what is left (bounded by the exporter's own timeout).
    pub(crate) async fn shutdown(self) {
        let provider = self.provider;
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = done {
            eprintln!("agy-bridge: exporting the last spans failed: {e}");
        }
    }
}

/// Logs to stderr (`AGY_BRIDGE_LOG`, default `warn,agy_worker=error`) and, with an exporter,
/// sends the bridge's spans to it.
pub(crate) fn init_logging(exporter: Option<&Exporter>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGY_BRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,agy_worker=error"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let otel = exporter.map(|e| {
        tracing_opentelemetry::layer()
            .with_tracer(e.provider.tracer("agy-bridge"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry().with(fmt).with(otel).init();
}
