//! Traces: one lookup is one trace, from the gateway through the broker to the immigration agency,
//! with each service's span the child of its caller's, and the span every log line of a request is
//! written in carries the trace id and our request id.

use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::SpanData;

use crate::harness::{finished_spans, permitted_lookup, TestStack};

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| match &kv.value {
        OtelValue::String(text) => text.as_str().to_owned(),
        other => other.to_string(),
    })
}

fn service_of(span: &SpanData) -> Option<String> {
    attribute(span, "service")
}

/// Whether `ancestor` is `span`'s parent, or its parent's, ... within one trace's spans.
fn descends_from(spans: &[SpanData], span: &SpanData, ancestor: SpanId) -> bool {
    let mut parent = span.parent_span_id;
    for _ in 0..spans.len() {
        if parent == ancestor {
            return true;
        }
        match spans.iter().find(|candidate| candidate.span_context.span_id() == parent) {
            Some(next) => parent = next.parent_span_id,
            None => return false,
        }
    }
    false
}

/// The finished spans of the trace the gateway's request `request_id` started, once the gateway's,
/// the broker's and the upstream's request spans have all ended.
async fn trace_of(request_id: &str) -> (TraceId, Vec<SpanData>) {
    let began = Instant::now();
    loop {
        let spans = finished_spans().get_finished_spans().expect("the in-memory exporter answers");
        let gateway = spans.iter().find(|span| {
            service_of(span).as_deref() == Some("gateway")
                && attribute(span, "request_id").as_deref() == Some(request_id)
        });
        if let Some(gateway) = gateway {
            let trace = gateway.span_context.trace_id();
            let of_trace: Vec<SpanData> =
                spans.into_iter().filter(|span| span.span_context.trace_id() == trace).collect();
            let services: Vec<String> = of_trace.iter().filter_map(service_of).collect();
            if ["gateway", "broker", "nia-mock"].iter().all(|wanted| services.iter().any(|s| s == wanted)) {
                return (trace, of_trace);
            }
        }
        assert!(began.elapsed() < Duration::from_secs(10), "the lookup's spans did not all end within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn one_lookup_is_one_trace_from_the_gateway_through_the_broker_to_the_upstream() {
    let t = TestStack::spawn().await;
    let token = t.login("tpe.caseworker").await;
    let response = t.post(&token, "/v1/lookups", &permitted_lookup()).await;
    assert_eq!(response.status(), 200);
    let request_id =
        response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).expect("our request id").to_owned();

    let (trace, spans) = trace_of(&request_id).await;
    let server_span = |service: &str, route: &str| {
        spans
            .iter()
            .find(|span| {
                service_of(span).as_deref() == Some(service) && attribute(span, "http.route").as_deref() == Some(route)
            })
            .unwrap_or_else(|| {
                let seen: Vec<_> = spans.iter().map(|s| (service_of(s), attribute(s, "http.route"))).collect();
                panic!("no {service} span for {route} in the trace: {seen:?}")
            })
    };
    let gateway = spans
        .iter()
        .find(|span| {
            service_of(span).as_deref() == Some("gateway")
                && attribute(span, "request_id").as_deref() == Some(&request_id)
        })
        .expect("the gateway's span");
    let broker = server_span("broker", "/v1/lookups");
    let upstream = spans.iter().find(|span| service_of(span).as_deref() == Some("nia-mock")).expect("nia-mock's span");

    // The gateway started the trace; the broker's request is its child, the upstream's the broker's.
    assert_eq!(gateway.parent_span_id, SpanId::INVALID, "the client sent no trace context: the gateway starts it");
    assert!(descends_from(&spans, broker, gateway.span_context.span_id()), "the broker's span is under the gateway's");
    assert!(broker.parent_span_is_remote, "the broker continued the gateway's context from its traceparent header");
    assert!(
        descends_from(&spans, upstream, broker.span_context.span_id()),
        "the upstream's span is under the broker's"
    );
    assert!(upstream.parent_span_is_remote, "nia-mock continued the broker's context from its traceparent header");

    // Every log line written while a request is served is in its span, whose fields it prints: the
    // trace id and our request id (the same one through every hop).
    for span in [gateway, broker, upstream] {
        assert_eq!(attribute(span, "trace_id"), Some(trace.to_string()), "{:?} carries the trace id", service_of(span));
    }
    assert_eq!(attribute(broker, "request_id"), Some(request_id.clone()), "the broker logs the gateway's request id");
    t.shutdown().await;
}
