//! The reverse proxy: authenticate (token + live session from the caller's IP, which behind a
//! trusted proxy is the client it forwarded for), then forward to the owning service with the
//! request id, W3C trace context, the caller's IP and the internal token.
//! The request id is the gateway's own (a client's `X-Request-Id` travels only as its correlation
//! id); the service adopts it because the gateway's service token comes with it.

use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use immilink_shared::auth::{bearer_token, AuthError};
use immilink_shared::context::SERVICE_CREDENTIAL;
use immilink_shared::context::{CLIENT_IP, CORRELATION_ID, REQUEST_ID, SERVICE_TOKEN};
use immilink_shared::forwarded;
use immilink_shared::server::MAX_BODY_BYTES;
use immilink_shared::telemetry::internal_headers;
use immilink_shared::{ApiError, ApiResult};

use crate::routing::{is_canonical, route, Backend};
use crate::State;

/// Headers that describe one hop, not the message (RFC 9110 §7.6.1), plus the ones the gateway sets.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "traceparent",
    "tracestate",
];

fn forwardable(name: &HeaderName) -> bool {
    let name = name.as_str();
    !NOT_FORWARDED.contains(&name)
        && name != SERVICE_TOKEN.as_str()
        && name != SERVICE_CREDENTIAL.as_str()
        && name != CLIENT_IP.as_str()
        && name != REQUEST_ID.as_str()
        && name != CORRELATION_ID.as_str()
        && !FORWARDING.contains(&name)
}

/// A proxy's forwarding headers: read here only, from trusted proxies ([`forwarded::client_origin`]);
/// services learn the client's IP from the gateway's own header alone.
const FORWARDING: &[&str] = &["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-real-ip"];

/// Every request the gateway does not answer itself.
pub async fn forward(req: HttpRequest, payload: web::Payload, state: web::Data<State>) -> ApiResult<HttpResponse> {
    if !is_canonical(req.path()) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            "non_canonical_path",
            "The path is not in canonical form",
            "路徑格式不正確",
        )
        .detail("paths may not contain '.' or '..' segments, empty segments or encoded separators")
        .field("path"));
    }
    let Some(route) = route(req.method().as_str(), req.path()) else {
        // Not a service's path: maybe one of the gateway's own with the wrong method.
        return immilink_shared::server::method_not_allowed(&req)
            .ok_or_else(|| ApiError::not_found("the requested route"));
    };
    // The TCP peer, or behind a trusted proxy the client it forwarded for: what sessions are bound
    // to at login and checked against on every request (R-ACC-11).
    let client_ip = forwarded::client_origin(&req)?.ip;
    let session = if route.public { None } else { Some(authenticate(&req, &state, client_ip).await?) };
    let body = read_body(&req, payload).await?;
    let base = state.backend_url(route.backend);
    let url = match req.uri().query() {
        Some(query) => format!("{base}{}?{query}", req.path()),
        None => format!("{base}{}", req.path()),
    };
    // Trace context, request id and correlation id as on every internal call, then the caller's own
    // headers (less the ones only the gateway sets).
    let mut outbound = internal_headers();
    copy_headers(req.headers(), &mut outbound);
    set(&mut outbound, &SERVICE_TOKEN, &state.tokens.token().await?);
    set(&mut outbound, &CLIENT_IP, &client_ip.to_string());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::invalid_field("method", "unsupported HTTP method"))?;
    let upstream = state
        .http
        .request(method, url)
        .headers(outbound)
        .body(body)
        .send()
        .await
        .map_err(|err| backend_down(route.backend, &err.to_string()))?;
    if let Some(sid) = session.filter(|_| req.path() == LOGOUT && upstream.status().is_success()) {
        // The session just ended: drop its cached "live" answer so its token is refused here at once.
        state.sessions.forget(&sid);
    }
    relay_response(upstream, route.backend).await
}

const LOGOUT: &str = "/v1/auth/logout";

/// Verifies the token and that its session is live from this IP; returns the session id.
async fn authenticate(req: &HttpRequest, state: &State, client_ip: IpAddr) -> ApiResult<String> {
    let token = bearer_token(req).ok_or(AuthError::Missing).map_err(ApiError::from)?;
    let claims = state.verifier.verify(token).await.map_err(ApiError::from)?;
    state.sessions.require_live(&claims.sid, client_ip).await?;
    Ok(claims.sid)
}

/// The body, up to [`MAX_BODY_BYTES`] (the limit every service applies too): a larger one is a 413,
/// refused from its `Content-Length` before it is read when it states one.
async fn read_body(req: &HttpRequest, mut payload: web::Payload) -> ApiResult<web::Bytes> {
    let stated = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if stated.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::body_too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|err| {
            tracing::info!(error = %err, "request body not read");
            ApiError::malformed_body("the request body could not be read")
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::body_too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn copy_headers(from: &HeaderMap, to: &mut reqwest::header::HeaderMap) {
    for (name, value) in from {
        if forwardable(name) {
            if let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()),
            ) {
                to.append(name, value);
            }
        }
    }
}

fn set(headers: &mut reqwest::header::HeaderMap, name: &HeaderName, value: &str) {
    if let (Ok(name), Ok(value)) = (
        reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()),
        reqwest::header::HeaderValue::from_str(value),
    ) {
        headers.insert(name, value);
    }
}

/// Streams the service's response back, status and headers included.
/// Answers up to this size are relayed with their length rather than streamed in chunks: small
/// chunked answers met Nagle's algorithm and delayed ACKs and stalled ~40 ms now and then.
const SIZED_RELAY_LIMIT: u64 = 256 * 1024;

async fn relay_response(upstream: reqwest::Response, backend: Backend) -> ApiResult<HttpResponse> {
    let status = actix_web::http::StatusCode::from_u16(upstream.status().as_u16())
        .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    let mut response = HttpResponse::build(status);
    for (name, value) in upstream.headers() {
        let name = name.as_str();
        // The ids are the gateway's to state (the same ones, as the service adopted them).
        if NOT_FORWARDED.contains(&name) || name == REQUEST_ID.as_str() || name == CORRELATION_ID.as_str() {
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (header::HeaderName::from_bytes(name.as_bytes()), header::HeaderValue::from_bytes(value.as_bytes()))
        {
            response.append_header((name, value));
        }
    }
    if upstream.content_length().is_some_and(|length| length <= SIZED_RELAY_LIMIT) {
        let body = upstream.bytes().await.map_err(|err| backend_down(backend, &err.to_string()))?;
        return Ok(response.body(body));
    }
    Ok(response.streaming(upstream.bytes_stream()))
}

fn backend_down(backend: Backend, reason: &str) -> ApiError {
    tracing::warn!(?backend, reason, "backend unavailable");
    ApiError::unavailable("service_unavailable", format!("the {backend:?} service is not answering").to_lowercase())
}
