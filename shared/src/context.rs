//! The request context, the bottom layer of shared: the headers immilink's services speak, and the
//! request id and language of the request being served, kept in a task-local so problems and
//! outbound calls made anywhere below a handler can read them. It depends on nothing else in shared.

use actix_web::http::header::HeaderName;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Set by the gateway on every forwarded request, and by every service on its internal calls: the
/// caller's service token.
pub const SERVICE_TOKEN: HeaderName = HeaderName::from_static(SERVICE_TOKEN_NAME);
/// [`SERVICE_TOKEN`]'s name, for clients built on another version of the `http` crate (reqwest).
pub const SERVICE_TOKEN_NAME: &str = "x-immilink-service-token";
/// The end client's address as the gateway saw it; trusted only with a valid internal token.
pub const CLIENT_IP: HeaderName = HeaderName::from_static("x-immilink-client-ip");
/// The header a service presents its credential in, to obtain a token: `<service>:<secret>`.
pub const SERVICE_CREDENTIAL: HeaderName = HeaderName::from_static("x-immilink-service-credential");

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
