//! The top layer of shared: how a service is assembled and served. Every service is the same
//! skeleton: [`Service::open`] (database with its migrations, an HTTP client, the service's tokens),
//! then [`Server`] filled with the service's routes, state and background tasks, then
//! [`Server::start`]. The server wraps every request in the request context, tracing, the
//! service-caller check and metrics; answers problem+json for unknown routes, bad paths and queries
//! (405 with `Allow` for a known path with another method); puts the same security headers on every
//! answer, refusals included ([`security_headers`]), and CORS where the server is given origins (the
//! gateway); and serves the generated `/openapi.json`, `/healthz`, `/readyz` and `/metrics`.
//! [`ShutdownSignal`] is the one place SIGTERM and SIGINT are handled.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{get, web, HttpMessage, HttpRequest, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{CallingService, ServiceAuth, ServiceTokens};
use crate::config::ServiceSettings;
use crate::context::{within_request, RequestContext, CORRELATION_ID, REQUEST_ID};
use crate::db::{Db, Migrations};
use crate::problem::ApiError;

fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    ok.then(|| text.to_owned())
}

fn prefers_chinese(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| first.trim().to_ascii_lowercase().starts_with("zh"))
}

/// The request id and correlation id of a request. From another immilink service (its service token
/// verified, see [`crate::auth::verify_service_caller`], which runs before this), the ids it sends
/// are adopted: one request keeps one id through every hop. From anyone else (a client at the
/// gateway, or a client calling a service directly) our own id is minted, and what the client sent
/// as `X-Correlation-Id` or, failing that, `X-Request-Id` is kept as its correlation id only.
fn request_ids(req: &ServiceRequest) -> (String, Option<String>) {
    let sent = |name: &header::HeaderName| req.headers().get(name).and_then(valid_request_id);
    let mint = || uuid::Uuid::now_v7().to_string();
    if req.extensions().get::<CallingService>().is_some() {
        (sent(&REQUEST_ID).unwrap_or_else(mint), sent(&CORRELATION_ID))
    } else {
        (mint(), sent(&CORRELATION_ID).or_else(|| sent(&REQUEST_ID)))
    }
}

/// The size of the request's header lines as they were sent (name, `": "`, value, CRLF).
fn header_bytes(req: &ServiceRequest) -> usize {
    req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum()
}

/// The ids a response carries in its headers.
#[derive(Clone)]
struct ResponseIds(Vec<(header::HeaderName, HeaderValue)>);

impl ResponseIds {
    fn of(context: &RequestContext) -> Self {
        let ids = [(REQUEST_ID, Some(&context.request_id)), (CORRELATION_ID, context.correlation_id.as_ref())];
        Self(ids.into_iter().filter_map(|(name, value)| Some((name, HeaderValue::from_str(value?).ok()?))).collect())
    }

    fn apply(&self, headers: &mut header::HeaderMap) {
        for (name, value) in &self.0 {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Middleware: gives the request its ids ([`request_ids`]), makes them visible to problems and
/// outbound calls made while it is served and to its log span, and echoes them on the response
/// (`X-Request-Id`, and `X-Correlation-Id` when the client sent one). Refuses a request whose
/// headers exceed [`MAX_HEADER_BYTES`] (431), and renders any refusal the framework made itself (a
/// body over the limit, say) as a problem too, inside the context so it carries the request id.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (request_id, correlation_id) = request_ids(&req);
    let context = RequestContext { request_id, correlation_id, prefers_zh: prefers_chinese(&req) };
    req.extensions_mut().insert(context.clone());
    let ids = ResponseIds::of(&context);
    let on_error = ids.clone();
    let outcome: Result<ServiceResponse<BoxBody>, actix_web::Error> = within_request(Some(context), async move {
        if header_bytes(&req) > MAX_HEADER_BYTES {
            return Ok(req.error_response(ApiError::headers_too_large()));
        }
        // A NUL character in the path (`%00`, decoded into a path parameter): no id or name of ours
        // holds one and PostgreSQL cannot compare text with it, so it is refused before any handler
        // reads the path, as in a body or a query (`extractors::read_document`).
        if req.path().contains("%00") {
            return Ok(req.error_response(ApiError::invalid_field("path", crate::extractors::NUL_REFUSED)));
        }
        // An error from an inner middleware is rendered here, inside the context, so its problem
        // carries the request id too. (The request itself cannot be kept: actix forbids clones of
        // it while the router runs.)
        match next.call(req).await {
            Ok(response) => Ok(framework_refusal_as_problem(response)),
            Err(err) => {
                // The error's own response carries what middleware inside added to it (CORS).
                let own = err.error_response();
                let mut response = match err.as_error::<ApiError>() {
                    Some(_) => own,
                    None => with_headers_of(as_api_error(&err).error_response(), own.headers()),
                };
                on_error.apply(response.headers_mut());
                Err(actix_web::error::InternalError::from_response(err.to_string(), response).into())
            }
        }
    })
    .await;
    let mut response = outcome?;
    ids.apply(response.headers_mut());
    Ok(response)
}

/// The problem an error answers: itself when it is one; otherwise (a refusal actix made in an
/// extractor or a library's handler) a problem of the same status, its wording left in the log.
fn as_api_error(err: &actix_web::Error) -> ApiError {
    if let Some(problem) = err.as_error::<ApiError>() {
        return problem.clone();
    }
    if let Some(refusal) = err.as_error::<actix_cors::CorsError>() {
        return cors_refusal(refusal);
    }
    let status = err.as_response_error().status_code();
    if status.is_server_error() {
        return ApiError::internal(err);
    }
    tracing::info!(error = %err, %status, "request refused by the framework");
    match status {
        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
        actix_web::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::headers_too_large(),
        actix_web::http::StatusCode::NOT_FOUND => ApiError::not_found("the requested route"),
        _ => ApiError::new(status, "request_refused", "The request cannot be processed", "無法處理此請求")
            .detail(status.canonical_reason().unwrap_or("the request was refused").to_lowercase()),
    }
}

/// A response made from an error that is not a problem already (see [`as_api_error`]) becomes one.
fn framework_refusal_as_problem<B: MessageBody + 'static>(response: ServiceResponse<B>) -> ServiceResponse<BoxBody> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(crate::problem::PROBLEM_JSON.as_bytes()));
    let refusal = response.response().error().filter(|_| !is_problem).map(as_api_error);
    match refusal {
        Some(problem) => {
            let (req, refused) = response.into_parts();
            ServiceResponse::new(req, with_headers_of(problem.error_response(), refused.headers()))
        }
        None => response.map_into_boxed_body(),
    }
}

/// `response` plus the headers of `other` it lacks (what middleware added to a refusal, such as CORS
/// headers), less those that describe `other`'s body.
fn with_headers_of<B>(
    mut response: actix_web::HttpResponse<B>,
    other: &header::HeaderMap,
) -> actix_web::HttpResponse<B> {
    for (name, value) in other {
        let describes_body = name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH;
        if !describes_body && !response.headers().contains_key(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
    response
}

/// A preflight (or cross-origin request) CORS refused, naming the header it refused.
fn cors_refusal(refusal: &actix_cors::CorsError) -> ApiError {
    use actix_cors::CorsError;
    let field = match refusal {
        CorsError::MissingRequestMethod | CorsError::BadRequestMethod | CorsError::MethodNotAllowed => {
            "Access-Control-Request-Method"
        }
        CorsError::BadRequestHeaders | CorsError::HeadersNotAllowed => "Access-Control-Request-Headers",
        _ => "Origin",
    };
    ApiError::new(
        actix_web::http::StatusCode::BAD_REQUEST,
        "cors_refused",
        "The cross-origin request is not allowed",
        "不允許此跨來源請求",
    )
    .detail(refusal.to_string().to_lowercase())
    .field(field)
}

/// The `Content-Security-Policy` of every HTML answer but the API documentation page: printable
/// documents and pages (link forms, audit reports, the compliance matrix) use their own inline
/// styles and nothing else — no script, image, font, frame, form or connection.
pub const DOCUMENT_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The `Content-Security-Policy` of the API documentation page (Swagger UI at `/docs/`): its own
/// scripts, stylesheets (and the inline styles it sets), icons and `data:` images from this
/// origin, and requests to this origin only (the merged document, "try it out").
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `Strict-Transport-Security` on answers to requests that arrived over TLS: one year.
pub const HSTS: &str = "max-age=31536000";

/// The paths of the API documentation page (the Swagger UI's index).
const DOCS_PAGES: [&str; 2] = ["/docs/", "/docs/index.html"];

/// Middleware, the outermost of every server: the headers every answer carries, refusals included
/// (a problem, a 401, a 404, a refusal made by the framework or by another middleware).
/// `Cache-Control: no-store` unless the handler chose its own (answers carry personal data and
/// tokens), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, a
/// `Content-Security-Policy` on HTML ([`DOCUMENT_CSP`], [`DOCS_CSP`] on the docs page) unless the
/// handler set one, and [`HSTS`] when the request arrived over TLS: on the connection itself or,
/// as a trusted proxy states it, at the proxy (see [`crate::forwarded`]).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let secure = req.app_config().secure();
    let trusted = req.app_data::<web::Data<crate::forwarded::TrustedProxies>>();
    let over_tls = match (req.peer_addr(), trusted) {
        (Some(peer), Some(trusted)) => {
            crate::forwarded::resolve(peer.ip(), req.headers(), trusted, secure).map_or(secure, |origin| origin.https)
        }
        _ => secure,
    };
    let docs_page = DOCS_PAGES.contains(&req.path());
    match next.call(req).await {
        Ok(mut response) => {
            add_security_headers(response.headers_mut(), over_tls, docs_page);
            Ok(response)
        }
        Err(mut err) => {
            err.add_response_mapper(move |mut response| {
                add_security_headers(response.headers_mut(), over_tls, docs_page);
                response
            });
            Err(err)
        }
    }
}

fn add_security_headers(headers: &mut header::HeaderMap, over_tls: bool, docs_page: bool) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/html"));
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if docs_page { DOCS_CSP } else { DOCUMENT_CSP };
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
    }
    if over_tls {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// The CORS policy of a server given front-end origins (the gateway's
/// `IMMILINK_CORS_ALLOWED_ORIGINS`): a preflight from one of them is answered before anything else
/// runs (authentication included) with the methods and headers the API takes; a request from one
/// of them gets `Access-Control-Allow-Origin` (and `Vary: Origin`); other origins get no CORS
/// header at all. Bearer tokens, not cookies: no credentials.
fn cors(origins: &[String]) -> actix_cors::Cors {
    origins
        .iter()
        .fold(actix_cors::Cors::default(), |cors, origin| cors.allowed_origin(origin))
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT_LANGUAGE, CORRELATION_ID])
        .expose_headers([REQUEST_ID, CORRELATION_ID, header::RETRY_AFTER, header::CONTENT_DISPOSITION])
        .max_age(600)
}

/// Body of the health endpoints.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`, `degraded` (an optional dependency is down) or `unavailable`.
    pub status: String,
    pub service: String,
    /// Per-dependency detail on readiness checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<HealthCheck>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Health {
    /// Ready when every check passes.
    pub fn from_checks(service: &str, checks: Vec<HealthCheck>) -> (actix_web::http::StatusCode, Self) {
        let required: Vec<String> = checks.iter().map(|c| c.name.clone()).collect();
        Self::with_required(service, checks, &required)
    }

    /// Ready when the `required` checks pass; a failing optional check is reported (`degraded`)
    /// without taking the service out of rotation.
    pub fn with_required<S: AsRef<str>>(
        service: &str,
        checks: Vec<HealthCheck>,
        required: &[S],
    ) -> (actix_web::http::StatusCode, Self) {
        let is_required = |check: &HealthCheck| required.iter().any(|r| r.as_ref() == check.name);
        let ready = checks.iter().filter(|c| is_required(c)).all(|c| c.ok);
        let all_ok = checks.iter().all(|c| c.ok);
        let (status, word) = match (ready, all_ok) {
            (true, true) => (actix_web::http::StatusCode::OK, "ok"),
            (true, false) => (actix_web::http::StatusCode::OK, "degraded"),
            (false, _) => (actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        (status, Health { status: word.to_owned(), service: service.to_owned(), checks })
    }

    pub fn respond(service: &str, checks: Vec<HealthCheck>) -> actix_web::HttpResponse {
        let (status, body) = Self::from_checks(service, checks);
        actix_web::HttpResponse::build(status).json(body)
    }
}

pub use crate::context::ServiceName;

// Needs `web::Data<Db>` in the app.
/// Readiness: 200 only when the service's database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health), (status = 503, body = Health)))]
#[get("/readyz")]
pub async fn readyz(name: web::Data<ServiceName>, db: web::Data<Db>) -> actix_web::HttpResponse {
    let ping = db.ping().await;
    Health::respond(
        name.0,
        vec![HealthCheck { name: "database".into(), ok: ping.is_ok(), error: ping.err().map(|e| e.to_string()) }],
    )
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz(name: web::Data<ServiceName>) -> web::Json<Health> {
    web::Json(Health { status: "ok".to_owned(), service: name.0.to_owned(), checks: Vec::new() })
}

/// The application every service starts from: request context and tracing middleware, problem+json
/// for bad paths/queries/unknown routes. [`Server`] adds the service's state and routes to it.
pub fn base_app() -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    app_with_cors(&[])
}

/// [`base_app`] with CORS for `origins` (none: no CORS), inside the request context so a preflight's
/// answer carries the request id and its refusal is a problem too.
fn app_with_cors(
    origins: &[String],
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    // The last middleware wrapped runs first: the request context is made before the log span
    // (which carries its ids), and the server's service-caller check runs before both.
    actix_web::App::new()
        .wrap(actix_web::middleware::Condition::new(!origins.is_empty(), cors(origins)))
        .wrap(tracing_actix_web::TracingLogger::<crate::telemetry::RequestSpan>::new())
        .wrap(actix_web::middleware::from_fn(request_context))
        .app_data(web::QueryConfig::default().error_handler(crate::problem::query_error_handler))
        .app_data(web::PathConfig::default().error_handler(crate::problem::path_error_handler))
        .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
        .default_service(web::to(not_found_route))
}

pub use crate::context::{MAX_BODY_BYTES, MAX_HEADER_BYTES};

/// Serves a service's generated OpenAPI document at `/openapi.json`.
pub fn openapi_resource(api: utoipa::openapi::OpenApi) -> actix_web::Resource {
    let api = web::Data::new(api);
    web::resource("/openapi.json").app_data(api).route(web::get().to(
        |api: web::Data<utoipa::openapi::OpenApi>| async move { actix_web::HttpResponse::Ok().json(api.get_ref()) },
    ))
}

/// A bound HTTP server (its port, and the server future to run) plus the service's background tasks,
/// which stop with it.
pub struct Running {
    pub port: u16,
    pub server: actix_web::dev::Server,
    pub tasks: Vec<actix_web::rt::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the background tasks (the server stops through its handle).
    pub fn abort_tasks(tasks: Vec<actix_web::rt::task::JoinHandle<()>>) {
        for task in tasks {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and returns the listener with its port.
pub fn bind(addr: &str) -> std::io::Result<(std::net::TcpListener, u16)> {
    let listener = std::net::TcpListener::bind(addr)?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// What a service serves: its name, its OpenAPI info, the public routes (documented) and the internal
/// routes (for other services only, left out of the document).
#[derive(Clone, Copy)]
pub struct Routes {
    pub service: &'static str,
    pub doc: fn() -> utoipa::openapi::OpenApi,
    pub public: fn(&mut utoipa_actix_web::service_config::ServiceConfig),
    pub internal: fn(&mut web::ServiceConfig),
    /// Serve the generated document at `/openapi.json` (the gateway serves a merged one instead).
    pub serve_document: bool,
}

impl Routes {
    /// The document generated from the public routes, with the common problems documented.
    pub fn openapi(&self) -> utoipa::openapi::OpenApi {
        use utoipa_actix_web::AppExt;
        let app = actix_web::App::new().into_utoipa_app().openapi((self.doc)()).configure(self.public);
        let mut doc = app.split_for_parts().1;
        crate::openapi::qualify_operation_ids(&mut doc);
        crate::openapi::document_common_problems(&mut doc);
        crate::openapi::name_tagged_variants(&mut doc);
        doc
    }
}

/// No internal routes.
pub fn no_internal_routes(_: &mut web::ServiceConfig) {}

/// The documented paths and their methods, so a known path with the wrong method answers 405 (with
/// `Allow`) rather than 404.
#[derive(Debug, Clone, Default)]
pub struct KnownRoutes {
    routes: Vec<(Vec<String>, Vec<&'static str>)>,
}

impl KnownRoutes {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(template, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                let allowed = methods.iter().filter(|(_, present)| *present).map(|(m, _)| *m).collect();
                (template.split('/').map(str::to_owned).collect(), allowed)
            })
            .collect();
        Self { routes }
    }

    /// The methods allowed on `path`, if it is a documented path.
    pub fn allowed(&self, path: &str) -> Option<&[&'static str]> {
        let segments: Vec<&str> = path.split('/').collect();
        self.routes.iter().find_map(|(template, allowed)| {
            let matches = template.len() == segments.len()
                && template.iter().zip(&segments).all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
            matches.then_some(allowed.as_slice())
        })
    }
}

/// 405 with `Allow` when the path is known but the method is not; `None` otherwise.
pub fn method_not_allowed(req: &HttpRequest) -> Option<actix_web::HttpResponse> {
    let known = req.app_data::<web::Data<KnownRoutes>>()?;
    let allowed = known.allowed(req.path())?;
    let mut response = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "不支援此方法",
    )
    .detail(format!("{} is not supported here; use {}", req.method(), allowed.join(", ")))
    .error_response();
    if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    Some(response)
}

/// Problem for unknown routes, so even a 404 for a typo is problem+json; 405 for a known path with
/// another method.
pub async fn not_found_route(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    match method_not_allowed(&req) {
        Some(response) => Ok(response),
        None => Err(ApiError::not_found("the requested route")),
    }
}

/// What a service with a database holds before it serves: its settings, its migrated database, an
/// HTTP client for the calls it makes, and the service tokens it presents on them.
pub struct Service {
    pub settings: ServiceSettings,
    pub db: Db,
    pub http: reqwest::Client,
    pub tokens: Arc<ServiceTokens>,
}

impl Service {
    /// Opens and migrates the database, and prepares the HTTP client and the service's tokens.
    pub async fn open(settings: ServiceSettings, migrations: &'static Migrations) -> anyhow::Result<Self> {
        let db = Db::open(&settings.database, migrations).await?;
        let http = outbound_client()?;
        let tokens = Arc::new(ServiceTokens::for_service(&settings, http.clone()));
        Ok(Self { settings, db, http, tokens })
    }

    /// A server for this service: its database and the user-token checks (signature and session
    /// liveness at identity) are app data; add the state, routes and tasks, then start it.
    pub fn server(&self, routes: Routes) -> Server {
        let auth = ServiceAuth::new(&self.settings, self.http.clone(), Arc::clone(&self.tokens));
        Server::new(&self.settings.addr, self.settings.workers, routes)
            .data(web::Data::new(self.db.clone()))
            .configure(move |cfg| auth.register(cfg))
    }
}

/// `immilink-<service> migrate`: runs the service's pending migrations against its database
/// (`IMMILINK_<SERVICE>_DATABASE_URL`, nothing else is read) and reports what it applied. A replica
/// or another run migrating at the same time is waited for (see [`Db::migrate`]). The Kubernetes
/// migrate Jobs run it; an error exits non-zero with the reason.
pub fn migrate_command(service: &str, migrations: &Migrations) -> anyhow::Result<String> {
    use anyhow::Context;
    let settings = crate::config::service_database_from_env(service)?;
    let applied = Db::migrate(&settings, migrations).with_context(|| format!("migrating the {service} database"))?;
    Ok(match applied.as_slice() {
        [] => format!("{service}: the database is up to date, no migration to apply"),
        applied => format!("{service}: applied {} migration(s): {}", applied.len(), applied.join(", ")),
    })
}

/// The HTTP client every service calls others with ([`crate::tls::outbound_builder`]'s settings).
pub fn outbound_client() -> reqwest::Result<reqwest::Client> {
    crate::tls::outbound_builder().build()
}

/// The audit relay's state for alerting: how long the oldest event has waited, and whether the audit
/// service refuses one (which then holds every later event up until an operator mends it).
impl crate::metrics::GaugeSource for crate::outbox::Relay {
    fn gauges(&self) -> Vec<crate::metrics::Gauge> {
        let waited = self.oldest_undelivered_age().map_or(0.0, |age| age.num_milliseconds().max(0) as f64 / 1000.0);
        vec![
            crate::metrics::Gauge {
                name: "immilink_outbox_oldest_undelivered_seconds",
                help: "How long the oldest audit event not yet taken by the audit service has waited (0: none waits).",
                value: waited,
            },
            crate::metrics::Gauge {
                name: "immilink_outbox_refused_events",
                help: "1 while the audit service refuses the event at the head of the outbox (it and all later events wait; see the log).",
                value: if self.refused().is_some() { 1.0 } else { 0.0 },
            },
        ]
    }
}

type Configure = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;
type Task = Pin<Box<dyn Future<Output = ()>>>;

/// One service's HTTP server being assembled: app data, extra configuration and background tasks,
/// then [`Server::start`].
pub struct Server {
    addr: String,
    workers: usize,
    routes: Routes,
    configure: Vec<Configure>,
    tasks: Vec<Task>,
    cors_origins: Vec<String>,
    tls: Option<rustls::ServerConfig>,
    gauges: Vec<Arc<dyn crate::metrics::GaugeSource>>,
}

impl Server {
    pub fn new(addr: &str, workers: usize, routes: Routes) -> Self {
        Self {
            addr: addr.to_owned(),
            workers,
            routes,
            configure: Vec::new(),
            tasks: Vec::new(),
            cors_origins: Vec::new(),
            tls: None,
            gauges: Vec::new(),
        }
    }

    /// State exported as gauges at `/metrics` (the audit relay's backlog).
    pub fn gauges(mut self, source: Arc<dyn crate::metrics::GaugeSource>) -> Self {
        self.gauges.push(source);
        self
    }

    /// Serves HTTPS with this configuration ([`crate::tls::ServerTls`]) instead of plain HTTP.
    pub fn tls(mut self, config: rustls::ServerConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Browser front-ends at these origins (`https://caseworker.example.gov.tw`) may call the API
    /// (see [`cors`]). Only the gateway is given any.
    pub fn cors(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = origins;
        self
    }

    /// Shared state or any other app data the handlers extract.
    pub fn data<T: 'static + Send + Sync + ?Sized>(self, data: web::Data<T>) -> Self {
        self.configure(move |cfg| {
            cfg.app_data(data.clone());
        })
    }

    /// Anything else the app needs (extra services, a default service).
    pub fn configure(mut self, configure: impl Fn(&mut web::ServiceConfig) + Send + Sync + 'static) -> Self {
        self.configure.push(Arc::new(configure));
        self
    }

    /// A background task that runs while the server runs and stops with it.
    pub fn task(mut self, task: impl Future<Output = ()> + 'static) -> Self {
        self.tasks.push(Box::pin(task));
        self
    }

    /// Binds (port 0 picks a free one), spawns the background tasks and builds the server. The
    /// server does not watch signals itself: [`ShutdownSignal`] does, once per process.
    pub fn start(self) -> std::io::Result<Running> {
        use utoipa_actix_web::AppExt;
        let Self { addr, workers, routes, configure, tasks, cors_origins, tls, gauges } = self;
        let (listener, port) = bind(&addr)?;
        let api = routes.openapi();
        let known = web::Data::new(KnownRoutes::from_openapi(&api));
        let metrics = web::Data::new(crate::metrics::Metrics::with_gauges(routes.service, gauges));
        let configure = Arc::new(configure);
        let server = actix_web::HttpServer::new(move || {
            let (api, configure) = (api.clone(), Arc::clone(&configure));
            app_with_cors(&cors_origins)
                .wrap(actix_web::middleware::from_fn(crate::auth::verify_service_caller))
                .wrap(actix_web::middleware::from_fn(crate::metrics::record))
                .wrap(actix_web::middleware::from_fn(security_headers))
                .app_data(web::Data::new(ServiceName(routes.service)))
                .app_data(known.clone())
                .app_data(metrics.clone())
                .route("/metrics", web::get().to(crate::metrics::endpoint))
                .configure(move |cfg| configure.iter().for_each(|apply| apply(cfg)))
                .into_utoipa_app()
                .configure(routes.public)
                .into_app()
                .configure(routes.internal)
                .configure(move |cfg| {
                    if routes.serve_document {
                        cfg.service(openapi_resource(api));
                    }
                })
        })
        .workers(workers.max(1))
        .shutdown_timeout(5)
        .disable_signals();
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config)?,
            None => server.listen(listener)?,
        }
        .run();
        let tasks = tasks.into_iter().map(actix_web::rt::spawn).collect();
        tracing::info!(service = routes.service, port, "listening");
        Ok(Running { port, server, tasks })
    }
}

/// The one place a process learns it must stop: the first SIGTERM (what `kill`, systemd and container
/// runtimes send) or SIGINT (Ctrl-C). Servers do not watch signals themselves. Listening starts when
/// this is made, so a process makes it before it reports that it runs: a signal that arrives in
/// between is then a request to stop, not the default action that kills the process.
pub struct ShutdownSignal {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    /// Starts listening for SIGTERM and SIGINT. Needs a Tokio runtime.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(terminate), Ok(interrupt)) => Self { signals: Some((terminate, interrupt)) },
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(error = %err, "cannot watch SIGTERM; Ctrl-C only");
                    Self { signals: None }
                }
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves at the first SIGTERM or SIGINT since [`ShutdownSignal::listen`].
    pub async fn received(self) {
        #[cfg(unix)]
        if let Some((mut terminate, mut interrupt)) = self.signals {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("SIGTERM: stopping"),
                _ = interrupt.recv() => tracing::info!("SIGINT: stopping"),
            }
            return;
        }
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot watch Ctrl-C either; stopping now");
        }
    }
}

/// Runs one service binary until SIGTERM or SIGINT, then stops it gracefully (requests in flight
/// finish), stops its background tasks and flushes spans.
pub async fn run_until_stopped(running: Running, telemetry: crate::telemetry::Telemetry) -> std::io::Result<()> {
    let stop = ShutdownSignal::listen();
    let Running { server, tasks, .. } = running;
    let handle = server.handle();
    let server = actix_web::rt::spawn(server);
    stop.received().await;
    Running::abort_tasks(tasks);
    handle.stop(true).await;
    let result = server.await.unwrap_or_else(|err| Err(std::io::Error::other(err)));
    telemetry.shutdown().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes_match_templates_and_list_methods() {
        use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
        let paths = PathsBuilder::new()
            .path("/v1/audit/records/{id}", PathItem::new(HttpMethod::Get, OperationBuilder::new().build()))
            .path("/v1/lookups", PathItem::new(HttpMethod::Post, OperationBuilder::new().build()))
            .build();
        let doc = utoipa::openapi::OpenApiBuilder::new().paths(paths).build();
        let known = KnownRoutes::from_openapi(&doc);
        assert_eq!(known.allowed("/v1/audit/records/abc"), Some(&["GET"][..]));
        assert_eq!(known.allowed("/v1/lookups"), Some(&["POST"][..]));
        assert_eq!(known.allowed("/v1/audit/records/"), None);
        assert_eq!(known.allowed("/v1/audit/records/a/b"), None);
        assert_eq!(known.allowed("/v1/nothing"), None);
    }

    #[test]
    fn only_required_checks_decide_readiness() {
        let check = |name: &str, ok| HealthCheck { name: name.into(), ok, error: None };
        let (status, body) =
            Health::with_required("gateway", vec![check("identity", true), check("vendors", false)], &["identity"]);
        assert_eq!((status.as_u16(), body.status.as_str()), (200, "degraded"));
        let (status, body) =
            Health::with_required("gateway", vec![check("identity", false), check("vendors", true)], &["identity"]);
        assert_eq!((status.as_u16(), body.status.as_str()), (503, "unavailable"));
        let (status, body) = Health::from_checks("audit", vec![check("database", false)]);
        assert_eq!((status.as_u16(), body.status.as_str()), (503, "unavailable"));
        assert_eq!(Health::from_checks("audit", vec![check("database", true)]).1.status, "ok");
    }

    mod requests {
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};

        use actix_web::test::{call_service, init_service, read_body, TestRequest};
        use actix_web::HttpResponse;
        use serde_json::Value;

        use super::*;
        use crate::extractors::ApiJson;

        async fn echo(body: ApiJson<Value>) -> HttpResponse {
            HttpResponse::Ok().json(body.into_inner())
        }

        async fn bytes(body: web::Bytes) -> HttpResponse {
            HttpResponse::Ok().body(body)
        }

        async fn refuse() -> Result<HttpResponse, ApiError> {
            Err(ApiError::invalid_field("x", "refused"))
        }

        /// Stands in for `verify_service_caller` (which runs before the request context): the
        /// `x-test-service` header plays a verified service token.
        async fn pretend_service_caller(
            req: ServiceRequest,
            next: Next<impl MessageBody + 'static>,
        ) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
            if let Some(service) = req.headers().get("x-test-service").and_then(|v| v.to_str().ok()) {
                req.extensions_mut().insert(CallingService(service.to_owned()));
            }
            next.call(req).await
        }

        macro_rules! app {
            () => {
                init_service(
                    base_app()
                        .wrap(actix_web::middleware::from_fn(pretend_service_caller))
                        .route("/json", web::post().to(echo))
                        .route("/bytes", web::post().to(bytes))
                        .route("/refuse", web::get().to(refuse)),
                )
                .await
            };
        }

        fn header<'a>(response: &'a ServiceResponse<impl MessageBody>, name: &str) -> Option<&'a str> {
            response.headers().get(name).and_then(|v| v.to_str().ok())
        }

        async fn problem(response: ServiceResponse<impl MessageBody>) -> Value {
            assert_eq!(header(&response, "content-type"), Some(crate::problem::PROBLEM_JSON));
            serde_json::from_slice(&read_body(response).await).unwrap()
        }

        #[actix_web::test]
        async fn a_client_never_chooses_its_request_id_and_gets_its_own_back_as_the_correlation_id() {
            let app = app!();
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-request-id", "client-chosen-1"));
            let response = call_service(&app, sent.to_request()).await;
            let ours = header(&response, "x-request-id").unwrap().to_owned();
            assert_ne!(ours, "client-chosen-1");
            assert!(uuid::Uuid::parse_str(&ours).is_ok(), "{ours}");
            assert_eq!(header(&response, "x-correlation-id"), Some("client-chosen-1"));
            assert_eq!(problem(response).await["request_id"], ours.as_str(), "the problem names our id");

            // An explicit correlation id is the one kept; nothing sent, none echoed.
            let sent = TestRequest::get()
                .uri("/refuse")
                .insert_header(("x-request-id", "a"))
                .insert_header(("x-correlation-id", "order-77"));
            let response = call_service(&app, sent.to_request()).await;
            assert_eq!(header(&response, "x-correlation-id"), Some("order-77"));
            let response = call_service(&app, TestRequest::get().uri("/refuse").to_request()).await;
            assert_eq!(header(&response, "x-correlation-id"), None);
            assert!(header(&response, "x-request-id").is_some());
            // A value that is not a plain token is not echoed at all.
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-request-id", "a b"));
            assert_eq!(header(&call_service(&app, sent.to_request()).await, "x-correlation-id"), None);
        }

        #[actix_web::test]
        async fn another_immilink_service_passes_its_request_id_on() {
            let app = app!();
            let sent = TestRequest::get()
                .uri("/refuse")
                .insert_header(("x-test-service", "gateway"))
                .insert_header(("x-request-id", "0193-hop-id"))
                .insert_header(("x-correlation-id", "client-ref"));
            let response = call_service(&app, sent.to_request()).await;
            assert_eq!(header(&response, "x-request-id"), Some("0193-hop-id"));
            assert_eq!(header(&response, "x-correlation-id"), Some("client-ref"));
            assert_eq!(problem(response).await["request_id"], "0193-hop-id");
            // Without one, the service mints its own.
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-test-service", "broker"));
            assert!(header(&call_service(&app, sent.to_request()).await, "x-request-id").is_some());
        }

        #[actix_web::test]
        async fn oversized_headers_are_a_431_problem() {
            let app = app!();
            let big = "a".repeat(MAX_HEADER_BYTES);
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-big", big.as_str()));
            let response = call_service(&app, sent.to_request()).await;
            assert_eq!(response.status().as_u16(), 431);
            let ours = header(&response, "x-request-id").unwrap().to_owned();
            let p = problem(response).await;
            assert_eq!(
                (p["code"].as_str(), p["request_id"].as_str()),
                (Some("headers_too_large"), Some(ours.as_str()))
            );
            // Within the limit, the request is served.
            let fits = "a".repeat(MAX_HEADER_BYTES / 2);
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-big", fits.as_str()));
            assert_eq!(call_service(&app, sent.to_request()).await.status().as_u16(), 422);
        }

        #[actix_web::test]
        async fn a_nul_in_the_path_is_refused_naming_the_path() {
            let app = app!();
            let response = call_service(&app, TestRequest::get().uri("/refuse/a%00b").to_request()).await;
            assert_eq!(response.status().as_u16(), 422);
            assert_eq!(problem(response).await["field"], "path");
        }

        #[actix_web::test]
        async fn oversized_bodies_are_a_413_problem_whatever_reads_them() {
            let app = app!();
            let huge = format!("{{\"x\": \"{}\"}}", "x".repeat(MAX_BODY_BYTES));
            for path in ["/json", "/bytes"] {
                let sent = TestRequest::post()
                    .uri(path)
                    .insert_header(("content-type", "application/json"))
                    .set_payload(huge.clone());
                let response = call_service(&app, sent.to_request()).await;
                assert_eq!(response.status().as_u16(), 413, "{path}");
                let p = problem(response).await;
                assert_eq!(p["code"], "body_too_large", "{path}");
                assert!(!p["request_id"].as_str().unwrap().is_empty(), "{path}");
            }
            let fits = TestRequest::post()
                .uri("/json")
                .insert_header(("content-type", "application/json"))
                .set_payload(r#"{"x": 1}"#);
            assert_eq!(call_service(&app, fits.to_request()).await.status().as_u16(), 200);
        }

        fn html(body: &'static str) -> HttpResponse {
            HttpResponse::Ok().content_type("text/html; charset=utf-8").body(body)
        }

        /// What every answer carries; `csp` on HTML only.
        fn assert_security_headers(response: &ServiceResponse<impl MessageBody>, what: &str, csp: Option<&str>) {
            assert_eq!(header(response, "x-content-type-options"), Some("nosniff"), "{what}");
            assert_eq!(header(response, "referrer-policy"), Some("no-referrer"), "{what}");
            assert_eq!(header(response, "content-security-policy"), csp, "{what}");
            assert_eq!(header(response, "strict-transport-security"), None, "{what}: not over TLS");
        }

        #[actix_web::test]
        async fn every_answer_carries_the_security_headers_refusals_included() {
            let app = init_service(
                app_with_cors(&[])
                    .wrap(actix_web::middleware::from_fn(crate::auth::verify_service_caller))
                    .wrap(actix_web::middleware::from_fn(security_headers))
                    .route("/json", web::post().to(echo))
                    .route("/bytes", web::post().to(bytes))
                    .route("/refuse", web::get().to(refuse))
                    .route("/page", web::get().to(|| async { html("<p>printable</p>") }))
                    .route("/docs/", web::get().to(|| async { html("<div id=swagger-ui></div>") }))
                    .route(
                        "/asset",
                        web::get().to(|| async {
                            HttpResponse::Ok().insert_header(("cache-control", "max-age=60")).body("x")
                        }),
                    ),
            )
            .await;
            let json = TestRequest::post().uri("/json").insert_header(("content-type", "application/json"));
            let cases = [
                ("a JSON answer", json.set_payload("{}"), 200, "no-store", None),
                ("a problem", TestRequest::get().uri("/refuse"), 422, "no-store", None),
                ("an unknown route", TestRequest::get().uri("/nothing"), 404, "no-store", None),
                (
                    "a refusal made by the framework",
                    TestRequest::post().uri("/bytes").set_payload(vec![b'x'; MAX_BODY_BYTES + 1]),
                    413,
                    "no-store",
                    None,
                ),
                (
                    "an error of an outer middleware",
                    TestRequest::get().uri("/json").insert_header(("x-immilink-service-token", "forged")),
                    403,
                    "no-store",
                    None,
                ),
                ("a printable page", TestRequest::get().uri("/page"), 200, "no-store", Some(DOCUMENT_CSP)),
                ("the docs page", TestRequest::get().uri("/docs/"), 200, "no-store", Some(DOCS_CSP)),
                ("an answer that chose its caching", TestRequest::get().uri("/asset"), 200, "max-age=60", None),
            ];
            for (what, request, status, cache, csp) in cases {
                // An error from a middleware is rendered by the server, as it would be on the wire.
                let response = match actix_web::test::try_call_service(&app, request.to_request()).await {
                    Ok(response) => response.map_into_boxed_body(),
                    Err(err) => ServiceResponse::new(TestRequest::default().to_http_request(), err.error_response()),
                };
                assert_eq!(response.status().as_u16(), status, "{what}");
                assert_eq!(header(&response, "cache-control"), Some(cache), "{what}");
                assert_security_headers(&response, what, csp);
            }
        }

        #[actix_web::test]
        async fn hsts_only_when_the_request_arrived_over_tls_as_a_trusted_proxy_states_it() {
            let trusted = crate::forwarded::TrustedProxies::parse("127.0.0.1").unwrap();
            let app = init_service(
                app_with_cors(&[])
                    .wrap(actix_web::middleware::from_fn(security_headers))
                    .app_data(web::Data::new(trusted))
                    .route("/refuse", web::get().to(refuse)),
            )
            .await;
            let hsts = |peer: &str, proto: Option<&str>| {
                let mut request = TestRequest::get().uri("/refuse").peer_addr(format!("{peer}:4711").parse().unwrap());
                if let Some(proto) = proto {
                    request = request.insert_header(("x-forwarded-proto", proto));
                }
                let app = &app;
                async move {
                    let response = call_service(app, request.to_request()).await;
                    header(&response, "strict-transport-security").map(str::to_owned)
                }
            };
            assert_eq!(hsts("127.0.0.1", Some("https")).await.as_deref(), Some(HSTS), "from the trusted proxy");
            assert_eq!(hsts("127.0.0.1", Some("http")).await, None, "plain HTTP at the proxy");
            assert_eq!(hsts("127.0.0.1", None).await, None, "the proxy said nothing");
            assert_eq!(hsts("127.0.0.2", Some("https")).await, None, "an untrusted peer's claim");
        }

        #[actix_web::test]
        async fn cors_answers_a_configured_origin_before_any_handler_and_other_origins_nothing() {
            const FRONT: &str = "https://caseworker.example.gov.tw";
            async fn needs_a_token() -> Result<HttpResponse, ApiError> {
                Err(ApiError::unauthenticated("no token"))
            }
            let app = init_service(
                app_with_cors(&[FRONT.to_owned()])
                    .wrap(actix_web::middleware::from_fn(security_headers))
                    .route("/v1/me", web::get().to(needs_a_token))
                    .route("/bytes", web::post().to(bytes)),
            )
            .await;
            let preflight = |origin: &str| {
                TestRequest::default()
                    .method(actix_web::http::Method::OPTIONS)
                    .uri("/v1/me")
                    .insert_header(("origin", origin))
                    .insert_header(("access-control-request-method", "GET"))
                    .insert_header(("access-control-request-headers", "authorization, x-correlation-id"))
                    .to_request()
            };
            let allowed = call_service(&app, preflight(FRONT)).await;
            assert_eq!(allowed.status().as_u16(), 200, "answered, not refused for want of a token");
            assert_eq!(header(&allowed, "access-control-allow-origin"), Some(FRONT));
            let methods = header(&allowed, "access-control-allow-methods").unwrap().to_owned();
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
                assert!(methods.contains(method), "{methods}");
            }
            let headers = header(&allowed, "access-control-allow-headers").unwrap().to_ascii_lowercase();
            for name in ["authorization", "content-type", "accept-language", "x-correlation-id"] {
                assert!(headers.contains(name), "{headers}");
            }
            assert!(header(&allowed, "x-request-id").is_some(), "inside the request context");
            assert_security_headers(&allowed, "a preflight", None);

            let other = call_service(&app, preflight("https://elsewhere.example")).await;
            assert_eq!(header(&other, "access-control-allow-origin"), None);
            assert_security_headers(&other, "a refused preflight", None);
            let p = problem(other).await;
            assert_eq!((p["code"].as_str(), p["field"].as_str()), (Some("cors_refused"), Some("Origin")));

            // Real requests: the allowed origin gets ACAO on refusals too (a 401, a framework 413).
            let get = |origin: &str| TestRequest::get().uri("/v1/me").insert_header(("origin", origin)).to_request();
            let refused = call_service(&app, get(FRONT)).await;
            assert_eq!(refused.status().as_u16(), 401);
            assert_eq!(header(&refused, "access-control-allow-origin"), Some(FRONT));
            assert!(
                header(&refused, "vary").is_some_and(|vary| vary.contains("Origin")),
                "{:?}",
                header(&refused, "vary")
            );
            assert!(header(&refused, "access-control-expose-headers").is_some_and(|h| h.contains("x-request-id")));
            let too_big = TestRequest::post()
                .uri("/bytes")
                .insert_header(("origin", FRONT))
                .set_payload(vec![b'x'; MAX_BODY_BYTES + 1])
                .to_request();
            let too_big = call_service(&app, too_big).await;
            assert_eq!(header(&too_big, "access-control-allow-origin"), Some(FRONT));
            assert_eq!(problem(too_big).await["code"], "body_too_large");
            let stranger = call_service(&app, get("https://elsewhere.example")).await;
            assert_eq!(stranger.status().as_u16(), 401, "served as any request without CORS");
            assert_eq!(header(&stranger, "access-control-allow-origin"), None);
        }

        /// Records the fields of every request's root span.
        struct SpanFields(Arc<Mutex<Vec<HashMap<String, String>>>>);

        struct Visitor<'a>(&'a mut HashMap<String, String>);

        impl tracing::field::Visit for Visitor<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}"));
            }

            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.to_owned());
            }
        }

        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanFields {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                if attrs.metadata().name() == "HTTP request" {
                    let mut fields = HashMap::new();
                    attrs.record(&mut Visitor(&mut fields));
                    self.0.lock().unwrap().push(fields);
                }
            }
        }

        #[actix_web::test]
        async fn the_log_span_carries_our_request_id_and_the_clients_correlation_id() {
            use tracing_subscriber::layer::SubscriberExt;
            let spans = Arc::new(Mutex::new(Vec::new()));
            let subscriber = tracing_subscriber::registry().with(SpanFields(Arc::clone(&spans)));
            let _guard = tracing::subscriber::set_default(subscriber);
            let app = app!();
            let sent = TestRequest::get().uri("/refuse").insert_header(("x-request-id", "client-chosen-2"));
            let response = call_service(&app, sent.to_request()).await;
            let ours = header(&response, "x-request-id").unwrap().to_owned();
            let spans = spans.lock().unwrap();
            assert_eq!(spans.len(), 1, "{spans:?}");
            assert_eq!(spans[0].get("request_id"), Some(&ours));
            assert_eq!(spans[0].get("correlation_id").map(String::as_str), Some("client-chosen-2"));
        }
    }

    #[test]
    fn request_ids_are_restricted_to_safe_characters() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123_x.y")).is_some());
        assert!(valid_request_id(&HeaderValue::from_static("a b")).is_none());
        assert!(valid_request_id(&HeaderValue::from_static("")).is_none());
    }
}
