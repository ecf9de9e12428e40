//! Tracing set up once per process: `tracing` spans on every request (tracing-actix-web) and outbound
//! call, bridged to OpenTelemetry so every span has a W3C trace context that propagates gateway →
//! service → upstream. Spans are exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set;
//! otherwise they are only logged.

use opentelemetry::propagation::Injector;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{SdkTracerProvider, TracerProviderBuilder};
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
    init_with_provider(service_name, default_filter, |builder| builder)
}

/// As [`init_with_default_filter`], with the tracer provider's builder passed through `configure`
/// first (tests add the SDK's in-memory exporter there, to look at the spans of one request).
pub fn init_with_provider(
    service_name: &'static str,
    default_filter: &str,
    configure: impl FnOnce(TracerProviderBuilder) -> TracerProviderBuilder,
) -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = Resource::builder().with_service_name(service_name).build();
    let mut builder = configure(SdkTracerProvider::builder().with_resource(resource));
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
        insert(&mut headers, &crate::context::REQUEST_ID, &request.request_id);
    }
    headers
}

/// Headers for a call to another immilink service (the service token is added by the caller): as
/// [`outbound_headers`], plus the client's correlation id when it sent one, so every service logs it
/// beside the request id. Not for the upstream: a client's value goes no further than immilink.
pub fn internal_headers() -> reqwest::header::HeaderMap {
    let mut headers = outbound_headers();
    if let Some(correlation_id) = crate::context::current_request().and_then(|request| request.correlation_id) {
        insert(&mut headers, &crate::context::CORRELATION_ID, &correlation_id);
    }
    headers
}

fn insert(headers: &mut reqwest::header::HeaderMap, name: &actix_web::http::header::HeaderName, value: &str) {
    if let (Ok(name), Ok(value)) = (
        reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
        reqwest::header::HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// The root span of every request a server answers (tracing-actix-web's `RootSpanBuilder`): the
/// fields tracing-actix-web's default span has, except that `request_id` is immilink's own id of the
/// request (the one in `X-Request-Id` and in problems, not a second one of the library's), beside
/// the client's `correlation_id` when it sent one. Needs the request's
/// [`RequestContext`](crate::context::RequestContext) in its extensions, so the middleware that
/// makes it runs outside the tracing one.
pub struct RequestSpan;

impl tracing_actix_web::RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage;
        let context = request.extensions().get::<crate::context::RequestContext>().cloned();
        let (request_id, correlation_id) = match context {
            Some(context) => (context.request_id, context.correlation_id),
            None => (String::new(), None),
        };
        let service = request.app_data::<actix_web::web::Data<crate::context::ServiceName>>().map(|name| name.0);
        let method = request.method().as_str().to_owned();
        let route = request.match_pattern().unwrap_or_else(|| "default".to_owned());
        let user_agent = request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("");
        let span = tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.target = %request.uri().path_and_query().map(|p| p.as_str()).unwrap_or(""),
            http.client_ip = %request.peer_addr().map(|addr| addr.ip().to_string()).unwrap_or_default(),
            http.user_agent = %user_agent,
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            service = service.unwrap_or_default(),
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            request_id = %request_id,
            correlation_id = correlation_id.as_deref(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        );
        set_parent_from_headers(&span, request.headers());
        span
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        tracing_actix_web::DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Continues the caller's W3C trace (`traceparent`) in `span`, and records its trace id.
fn set_parent_from_headers(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    use opentelemetry::trace::TraceContextExt;
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)));
    let _ = span.set_parent(parent);
    let trace_id = span.context().span().span_context().trace_id();
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(format!("{trace_id:032x}")));
    }
}

/// Adds the current span's W3C `traceparent` (and `tracestate`) to outbound request headers.
pub fn inject_trace_context(headers: &mut reqwest::header::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}
