//! A real OTLP/HTTP trace receiver on loopback: it decodes what exporters send
//! (`ExportTraceServiceRequest`, protobuf) and keeps every span with its service name.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
};
use parking_lot::Mutex;
use prost::Message;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedSpan {
    /// The `service.name` of the process that sent it.
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty for a root span.
    pub(crate) parent_span_id: String,
    /// Attributes, values as text.
    pub(crate) attributes: Vec<(String, String)>,
    /// The resource's attributes, values as text.
    pub(crate) resource: Vec<(String, String)>,
}

impl ReceivedSpan {
    /// An attribute's value.
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The receiver: its address and what it got.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    /// Request headers of every export, as `name: value` lines.
    headers: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts it on a free loopback port.
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let (s, h) = (Arc::clone(&spans), Arc::clone(&headers));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (spans, headers) = (Arc::clone(&s), Arc::clone(&h));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (spans, headers) = (Arc::clone(&spans), Arc::clone(&headers));
                        async move {
                            Ok::<_, std::convert::Infallible>(export(req, &spans, &headers).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            spans,
            headers,
            task,
        }
    }

    /// The traces endpoint exporters are pointed at.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// An OpenTelemetry tracer provider exporting to this receiver over OTLP/HTTP in batches,
    /// as an application would (`service` names it).
    pub(crate) fn tracer_provider(
        &self,
        service: &str,
    ) -> opentelemetry_sdk::trace::SdkTracerProvider {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(self.endpoint())
            .build()
            .unwrap();
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service.to_owned())
                    .build(),
            )
            .build()
    }

    /// Every span received so far.
    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().clone()
    }

    /// The headers of every export request so far.
    pub(crate) fn headers(&self) -> Vec<String> {
        self.headers.lock().clone()
    }
}

async fn export(
    req: hyper::Request<hyper::body::Incoming>,
    spans: &Mutex<Vec<ReceivedSpan>>,
    headers: &Mutex<Vec<String>>,
) -> hyper::Response<Full<Bytes>> {
    let reply = |code: u16| {
        hyper::Response::builder()
            .status(code)
            .header("content-type", "application/x-protobuf")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    if req.uri().path() != "/v1/traces" {
        return reply(404);
    }
    headers.lock().extend(
        req.headers()
            .iter()
            .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes()))),
    );
    let Ok(body) = req.into_body().collect().await else {
        return reply(400);
    };
    let Ok(request) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return reply(400);
    };
    let mut got = spans.lock();
    for resource_spans in request.resource_spans {
        let resource: Vec<(String, String)> = resource_spans
            .resource
            .map(|r| r.attributes.iter().map(pair).collect())
            .unwrap_or_default();
        let service = resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                got.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span.attributes.iter().map(pair).collect(),
                    resource: resource.clone(),
                });
            }
        }
    }
    reply(200)
}

fn pair(kv: &KeyValue) -> (String, String) {
    (
        kv.key.clone(),
        kv.value.as_ref().map(text).unwrap_or_default(),
    )
}

fn text(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::ArrayValue(a)) => a.values.iter().map(text).collect::<Vec<_>>().join(","),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
