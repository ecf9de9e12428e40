//! The request context, the bottom layer of shared: the headers immilink's services speak, the
//! limits every server applies to a request, and the request id, correlation id and language of the
//! request being served, kept in a task-local so problems and outbound calls made anywhere below a
//! handler can read them. It depends on nothing else in shared.

use actix_web::http::header::HeaderName;

/// The id immilink gives a request. The gateway always mints its own; a service adopts the one it
/// is sent only from another immilink service (a verified service token), so one id follows a
/// request through every hop and no client can choose the id our logs file its request under.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// A client's own reference for its request: whatever it sent as `X-Correlation-Id` (or, failing
/// that, as `X-Request-Id`), echoed on the response and logged beside our request id, never as it.
pub const CORRELATION_ID: HeaderName = HeaderName::from_static("x-correlation-id");
/// Set by the gateway on every forwarded request, and by every service on its internal calls: the
/// caller's service token.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static(SERVICE_TOKEN_NAME);
/// [`SERVICE_TOKEN`]'s name, for clients built on another version of the `http` crate (reqwest).
pub const SERVICE_TOKEN_NAME: &str = "x-immilink-service-token";
/// The end client's address as the gateway saw it; trusted only with a valid internal token.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-immilink-client-ip");
/// The header a service presents its credential in, to obtain a token: `<service>:<secret>`.
pub const SERVICE_CREDENTIAL: HeaderName = HeaderName::from_static("x-immilink-service-credential");

/// Largest request body any server (the gateway and every service) accepts: beyond it, 413
/// `body_too_large`. Bulk lookups stream through the gateway in pieces.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Largest request head any server accepts, counted as the header lines take on the wire (name,
/// `": "`, value, CRLF): beyond it, 431 `headers_too_large` as problem+json. Well below actix's own
/// bound on a request head (128 KiB, which it answers with a bare 431 and closes the connection), so
/// the refusal is read whole and answered like every other one.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The name of the service answering (app data of every server): for the health handlers and for
/// the `service` field of each request's span, so one trace shows which service each span is of.
#[derive(Debug, Clone)]
pub struct ServiceName(pub &'static str);

/// What a problem needs to know about the request it answers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Our id of the request (see [`REQUEST_ID`]).
    pub request_id: String,
    /// The client's own reference, when it sent one (see [`CORRELATION_ID`]).
    pub correlation_id: Option<String>,
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
