//! Trace context across the worker pipe (feature `otel`). The bridge's spans are `tracing`
//! spans; an application that exports them with `tracing-opentelemetry` gets one trace per
//! turn: this module hands the W3C trace context of the turn span to the worker (in
//! `agent/chat`), and makes a Rust tool's span the child of the worker's tool span whose
//! context arrives with `tool/call`. Without the feature, or without an OpenTelemetry layer
//! in the application's subscriber, nothing is sent and nothing is linked.

use crate::protocol::wire::TraceContext;

/// The W3C trace context of `span`, when it is part of an OpenTelemetry trace.
#[cfg(feature = "otel")]
pub(crate) fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    Some(TraceContext {
        traceparent: carrier.remove("traceparent")?,
        tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
    })
}

/// The W3C trace context of `span` (never, without the `otel` feature).
#[cfg(not(feature = "otel"))]
pub(crate) fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    let _ = span;
    None
}

/// Makes the span the worker's context names the parent of `span`. A context that does not
/// parse is ignored: it comes from another process and only ever links spans.
#[cfg(feature = "otel")]
pub(crate) fn set_remote_parent(span: &tracing::Span, context: &TraceContext) {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), context.traceparent.clone());
    if let Some(state) = &context.tracestate {
        carrier.insert("tracestate".to_owned(), state.clone());
    }
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Links `span` to the worker's span (never, without the `otel` feature).
#[cfg(not(feature = "otel"))]
pub(crate) fn set_remote_parent(span: &tracing::Span, context: &TraceContext) {
    let _ = (span, context);
}

#[cfg(all(test, feature = "otel"))]
mod tests {
    use super::*;

    #[test]
    fn a_span_outside_an_opentelemetry_trace_has_no_context() {
        let span = tracing::info_span!("turn");
        assert_eq!(context_of(&span), None);
    }

    #[test]
    fn a_malformed_remote_context_is_ignored() {
        let span = tracing::info_span!("tool");
        for bad in [
            "",
            "00-xyz",
            "00-00000000000000000000000000000000-0000000000000000-01",
        ] {
            set_remote_parent(
                &span,
                &TraceContext {
                    traceparent: bad.to_owned(),
                    tracestate: None,
                },
            );
        }
    }
}
