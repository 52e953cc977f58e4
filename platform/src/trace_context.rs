//! W3C trace context (`traceparent`, `tracestate`) across process boundaries, so that one
//! request is one trace: clients inject the current span's context into gRPC metadata (the
//! [`crate::internal_auth::Credential`] interceptor every client goes through), servers start
//! their request span as its child ([`grpc_server_span`]), the command handler keeps the
//! `traceparent` in each stored event, the relay writes it as a Kafka header, and consumers
//! start their spans from it ([`follow`]).
//!
//! Everything here is a no-op while OTLP export is off: spans then carry no OpenTelemetry
//! context, so nothing is injected, and an extracted context is dropped.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// gRPC metadata key carrying the correlation id of a request.
pub const CORRELATION_HEADER: &str = "x-correlation-id";
/// The W3C header (gRPC metadata key, Kafka header, event field) naming the parent span.
pub const TRACEPARENT: &str = "traceparent";

fn valid(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

/// The `traceparent` of a span: `None` when it has no OpenTelemetry context (export off, or
/// the span is disabled).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !valid(&cx) {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the current span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The remote context a `traceparent` names; `None` when it does not parse.
pub fn context_of(traceparent: &str) -> Option<Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    valid(&cx).then_some(cx)
}

/// Makes `span` (not yet entered) a child of the span `traceparent` names, when there is one.
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(cx) = traceparent.and_then(context_of) {
        // Fails only when export is off or the span already started: then it stays as it is.
        let _ = span.set_parent(cx);
    }
}

/// Links `span` to the span `traceparent` names (for a batch span over many traces).
pub fn link(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(cx) = traceparent.and_then(context_of) {
        span.add_link(cx.span().span_context().clone());
    }
}

/// Adds the current span's trace context to outgoing gRPC metadata.
pub fn inject_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let cx = tracing::Span::current().context();
    if !valid(&cx) {
        return;
    }
    let mut headers = std::mem::take(metadata).into_headers();
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(&mut headers));
    *metadata = tonic::metadata::MetadataMap::from_headers(headers);
}

/// The trace context of incoming HTTP or gRPC headers, when they carry a valid one.
pub fn extract_headers(headers: &http::HeaderMap) -> Option<Context> {
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    valid(&cx).then_some(cx)
}

/// Makes `span` (not yet entered) a child of the caller's span named by incoming headers.
pub fn follow_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if let Some(cx) = extract_headers(headers) {
        let _ = span.set_parent(cx);
    }
}

/// The span of one incoming gRPC call, a child of the caller's span when the metadata
/// carries one (the `trace_fn` of every server, see [`crate::support::serve_grpc_routes`]).
pub fn grpc_server_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
    );
    follow_headers(&span, request.headers());
    span
}

/// The relay's span for publishing one event (a child of the command's span stored with the
/// event); returns the `traceparent` the record carries on: this span's, or the stored one
/// when export is off here.
pub fn publish_span(stored: Option<&str>, topic: &str, stream_id: &str) -> Option<String> {
    let stored = stored?;
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "kafka",
        messaging.destination.name = %topic,
        stream_id = %stream_id,
    );
    follow(&span, Some(stored));
    traceparent_of(&span).or_else(|| Some(stored.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_parses_back_into_its_context() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_of(tp).expect("a valid traceparent");
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context_of("not a traceparent").is_none());
    }

    #[test]
    fn without_export_nothing_is_injected() {
        let mut md = tonic::metadata::MetadataMap::new();
        inject_metadata(&mut md);
        assert!(md.get(TRACEPARENT).is_none());
        assert_eq!(current_traceparent(), None);
        // The stored context goes on unchanged when the relay does not export.
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(publish_span(Some(tp), "t", "s").as_deref(), Some(tp));
        assert_eq!(publish_span(None, "t", "s"), None);
    }
}
