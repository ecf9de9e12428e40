//! Request plumbing shared by every service: the request context (request id, language) that problems
//! read, the JSON body extractor that names the offending field, client-IP resolution behind the gateway,
//! and the health endpoints.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{get, web, FromRequest, HttpMessage, HttpRequest, ResponseError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::problem::ApiError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Set by the gateway on every forwarded request; proves the request came through it.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-immilink-service-token");
/// The end client's address as the gateway saw it; trusted only with a valid internal token.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-immilink-client-ip");

/// What a problem needs to know about the request it answers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub prefers_zh: bool,
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The context of the request being served on this task, if any.
pub fn current_request() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `work` with `context` as its request context: for a task spawned on behalf of a request,
/// so its outbound calls still carry the request id.
pub async fn within_request<F: std::future::Future>(context: Option<RequestContext>, work: F) -> F::Output {
    match context {
        Some(context) => CURRENT.scope(context, work).await,
        None => work.await,
    }
}

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

/// Middleware: adopts the caller's `X-Request-Id` (or makes one), makes it visible to problems built
/// while the request is served, echoes it on the response, and renders middleware errors inside the
/// context so they carry the id too.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id =
        req.headers().get(&REQUEST_ID).and_then(valid_request_id).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let context = RequestContext { request_id: request_id.clone(), prefers_zh: prefers_chinese(&req) };
    req.extensions_mut().insert(context.clone());
    let header = HeaderValue::from_str(&request_id).ok();
    let outcome = CURRENT
        .scope(context, async move {
            // An error from an inner middleware is rendered here, inside the context, so its problem
            // carries the request id too. (The request itself cannot be kept: actix forbids clones of
            // it while the router runs.)
            next.call(req).await.map_err(|err| {
                let mut response = err.error_response();
                if let Some(value) = header.clone() {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                actix_web::Error::from(actix_web::error::InternalError::from_response(err.to_string(), response))
            })
        })
        .await;
    let mut response = outcome?.map_into_boxed_body();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// The request id of a request (set by `request_context`).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions().get::<RequestContext>().map(|c| c.request_id.clone()).unwrap_or_default()
}

/// A JSON body whose deserialisation errors name the offending field (422) instead of a bare 400.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T> ApiJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|mime| mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"));
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Unsupported media type",
                    "不支援的內容類型",
                )
                .detail("send the body as application/json")
                .field("Content-Type")
                .into());
            }
            let bytes = body.await.map_err(|err| ApiError::malformed_body(err.to_string()))?;
            parse_json(&bytes).map(ApiJson).map_err(Into::into)
        })
    }
}

/// Query parameters whose deserialisation errors name the offending parameter (422).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T> ApiQuery<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> FromRequest for ApiQuery<T> {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        std::future::ready(parse_query(req.query_string()).map(ApiQuery).map_err(Into::into))
    }
}

/// Deserialises a query string, naming the parameter that failed.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        if let Some(field) = missing_field_name(&message) {
            return ApiError::missing_field(field);
        }
        ApiError::invalid_field(if path == "." { "query".to_owned() } else { path }, message)
    })
}

/// Deserialises JSON, turning serde's error into a problem that names the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::malformed_body(format!("the body is not valid JSON: {message}"));
        }
        if let Some(field) = missing_field_name(&message) {
            let full = if path == "." { field.to_owned() } else { format!("{path}.{field}") };
            return ApiError::missing_field(&full);
        }
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::invalid_field(field, strip_position(&message))
    })
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The end client's IP: the `X-Immilink-Client-Ip` header when a service allowed to forward users'
/// requests (the gateway, the broker) stated it with its service token, otherwise the TCP peer.
pub fn client_ip(req: &HttpRequest) -> Option<IpAddr> {
    use actix_web::HttpMessage;
    let forwarded = req
        .extensions()
        .get::<crate::auth::CallingService>()
        .is_some_and(|caller| crate::auth::IP_FORWARDERS.contains(&caller.0.as_str()));
    if forwarded {
        if let Some(ip) =
            req.headers().get(&CLIENT_IP).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    req.peer_addr().map(|addr| addr.ip())
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

// Needs `web::Data<Db>` in the app.
/// Readiness: 200 only when the service's database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health), (status = 503, body = Health)))]
#[get("/readyz")]
pub async fn readyz(name: web::Data<ServiceName>, db: web::Data<crate::db::Db>) -> actix_web::HttpResponse {
    let ping = db.ping().await;
    Health::respond(
        name.0,
        vec![HealthCheck { name: "database".into(), ok: ping.is_ok(), error: ping.err().map(|e| e.to_string()) }],
    )
}

/// Shared service name for the health handlers.
#[derive(Debug, Clone)]
pub struct ServiceName(pub &'static str);

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz(name: web::Data<ServiceName>) -> web::Json<Health> {
    web::Json(Health { status: "ok".to_owned(), service: name.0.to_owned(), checks: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        inner: String,
    }

    #[test]
    fn missing_field_is_named() {
        let err = parse_json::<Body>(br#"{"count": 1}"#).unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.code(), "missing_field");
        assert_eq!(err.field_name(), Some("name"));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse_json::<Body>(br#"{"name": "x", "count": "many"}"#).unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.field_name(), Some("count"));
    }

    #[test]
    fn nested_missing_field_has_its_path() {
        let err = parse_json::<Body>(br#"{"name": "x", "count": 1, "nested": {}}"#).unwrap_err();
        assert_eq!(err.field_name(), Some("nested.inner"));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Filter {
        limit: Option<i64>,
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[test]
    fn bad_query_parameters_are_named() {
        let err = parse_query::<Filter>("limit=ten").unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.field_name(), Some("limit"));
        let err = parse_query::<Filter>("from=yesterday").unwrap_err();
        assert_eq!(err.field_name(), Some("from"));
        assert_eq!(parse_query::<Filter>("limit=5").unwrap().limit, Some(5));
    }

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

    #[test]
    fn syntax_error_is_400() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert_eq!(err.code(), "malformed_body");
    }

    #[test]
    fn request_ids_are_restricted_to_safe_characters() {
        assert!(valid_request_id(&HeaderValue::from_static("abc-123_x.y")).is_some());
        assert!(valid_request_id(&HeaderValue::from_static("a b")).is_none());
        assert!(valid_request_id(&HeaderValue::from_static("")).is_none());
    }
}

/// The application every service starts from: request context and tracing middleware, problem+json
/// for bad paths/queries/unknown routes. Services add their state and routes to it.
pub fn base_app() -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .wrap(actix_web::middleware::from_fn(request_context))
        .wrap(tracing_actix_web::TracingLogger::default())
        .app_data(web::QueryConfig::default().error_handler(crate::problem::query_error_handler))
        .app_data(web::PathConfig::default().error_handler(crate::problem::path_error_handler))
        .app_data(web::PayloadConfig::default().limit(MAX_BODY_BYTES))
        .default_service(web::to(crate::problem::not_found_route))
}

/// Largest request body any service accepts (bulk lookups stream through the gateway in pieces).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

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
    /// Adds a background task that must not outlive the server.
    pub fn with_task(mut self, task: actix_web::rt::task::JoinHandle<()>) -> Self {
        self.tasks.push(task);
        self
    }

    /// Stops the background tasks (the server stops through its own handle or signals).
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
        crate::openapi::document_common_problems(&mut doc);
        doc
    }
}

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

/// No internal routes.
pub fn no_internal_routes(_: &mut web::ServiceConfig) {}

/// Binds `addr` and builds the server of a service: [`base_app`], the service's shared state (added by
/// `data`), its routes and `/openapi.json`. Returns without running it.
pub fn serve<D>(addr: &str, workers: usize, routes: Routes, data: D) -> std::io::Result<Running>
where
    D: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    use utoipa_actix_web::AppExt;
    let (listener, port) = bind(addr)?;
    let api = routes.openapi();
    let known = web::Data::new(KnownRoutes::from_openapi(&api));
    let metrics = web::Data::new(crate::metrics::Metrics::new(routes.service));
    let server = actix_web::HttpServer::new(move || {
        let api = api.clone();
        base_app()
            .wrap(actix_web::middleware::from_fn(crate::auth::verify_service_caller))
            .wrap(actix_web::middleware::from_fn(crate::metrics::record))
            .app_data(web::Data::new(ServiceName(routes.service)))
            .app_data(known.clone())
            .app_data(metrics.clone())
            .route("/metrics", web::get().to(crate::metrics::endpoint))
            .configure(data.clone())
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
    .listen(listener)?
    .run();
    tracing::info!(service = routes.service, port, "listening");
    Ok(Running { port, server, tasks: Vec::new() })
}
