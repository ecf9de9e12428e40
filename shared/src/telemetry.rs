//! Tracing set up once per process: `tracing` spans on every request (tracing-actix-web) and outbound
//! call, bridged to OpenTelemetry so every span has a W3C trace context that propagates gateway →
//! service → upstream. Spans are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! otherwise they are only logged.

use opentelemetry::propagation::Injector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the tracer provider alive; call [`Telemetry::shutdown`] before exit to flush spans.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

/// Installs the global subscriber and propagator. Safe to call more than once (tests): later calls
/// keep the first subscriber. Must run inside a Tokio runtime when exporting (the batch processor
/// runs on it).
pub fn init(service_name: &'static str) -> Telemetry {
    init_with_default_filter(
        service_name,
        "info,actix_server=warn,diesel_migrations=warn,opentelemetry=warn,opentelemetry_sdk=warn",
    )
}

/// As [`init`], with the log filter used when `RUST_LOG` is not set (tests keep their output quiet).
pub fn init_with_default_filter(service_name: &'static str, default_filter: &str) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder().with_service_name(service_name).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(exporter) = otlp_exporter() {
        builder = builder
            .with_span_processor(BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build());
    }
    let provider = builder.build();
    let tracer = provider.tracer(service_name);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The log filter applies to log output only: the OpenTelemetry layer always sees request spans,
    // so trace context propagates however quiet the logs are.
    let installed = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
                .with_filter(filter),
        )
        .with(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(LevelFilter::INFO))
        .try_init();
    if installed.is_ok() {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    Telemetry { provider }
}

fn otlp_exporter() -> Option<opentelemetry_otlp::SpanExporter> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    use opentelemetry_otlp::WithExportConfig;
    match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
    {
        Ok(exporter) => Some(exporter),
        Err(err) => {
            eprintln!("OTLP exporter not started: {err}");
            None
        }
    }
}

impl Telemetry {
    /// Flushes and stops exporting. Runs on a blocking thread: the provider's shutdown blocks, and
    /// blocking the executor here would hang SIGTERM handling.
    pub async fn shutdown(self) {
        let provider = self.provider;
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
}

struct HeaderInjector<'a>(&'a mut reqwest::header::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (reqwest::header::HeaderName::from_bytes(key.as_bytes()), reqwest::header::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Headers for a call to another service or the upstream: the current W3C trace context and, inside
/// a request, its `X-Request-Id`, so one request can be followed through every service's logs.
pub fn outbound_headers() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    inject_trace_context(&mut headers);
    if let Some(request) = crate::context::current_request() {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&request.request_id) {
            headers.insert(reqwest::header::HeaderName::from_static("x-request-id"), value);
        }
    }
    headers
}

/// Adds the current span's W3C `traceparent` (and `tracestate`) to outbound request headers.
pub fn inject_trace_context(headers: &mut reqwest::header::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}
