//! What handlers take from a request: bodies and query strings whose errors name the field, the
//! authenticated caller (a user's token whose session is live, or another immilink service), the
//! end client's IP, and the one listing shape ([`Page`]). Built on `auth` and `problem`; the server
//! layer wires the app data these extractors read.

use std::future::{ready, Future, Ready};
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{
    bearer_token, AccessClaims, AuthError, Caller, CallingService, SessionChecker, TokenVerifier, IP_FORWARDERS,
};
use crate::context::CLIENT_IP;
use crate::problem::ApiError;

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
            let bytes = body.await.map_err(unreadable_body)?;
            parse_json(&bytes).map(ApiJson).map_err(Into::into)
        })
    }
}

/// The problem for a body that could not be read: 413 when it is larger than the server accepts
/// (the payload limit every server sets, [`crate::context::MAX_BODY_BYTES`]), the same answer the
/// gateway gives; otherwise 400. The framework's wording stays in the log.
fn unreadable_body(err: actix_web::Error) -> ApiError {
    let status = err.as_response_error().status_code();
    tracing::info!(error = %err, %status, "request body not read");
    if status == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::body_too_large()
    } else {
        ApiError::malformed_body("the request body could not be read")
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
    let forwarded =
        req.extensions().get::<CallingService>().is_some_and(|caller| IP_FORWARDERS.contains(&caller.0.as_str()));
    if forwarded {
        if let Some(ip) =
            req.headers().get(&CLIENT_IP).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
        {
            return Some(ip);
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

/// Extractor: a request with a valid access token. Needs `web::Data<TokenVerifier>` in the app. When
/// the app also has a `web::Data<SessionChecker>`, the token's session must be live from the caller's
/// IP too: every service refuses a revoked session's token on its own, not only the gateway.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: AccessClaims,
    pub token: String,
}

impl Authenticated {
    /// The caller as domain functions take them.
    pub fn caller(&self) -> Caller {
        Caller::from(&self.claims)
    }
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let sessions = req.app_data::<web::Data<SessionChecker>>().cloned();
        let ip = client_ip(req);
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let verifier = verifier.ok_or_else(|| ApiError::internal("TokenVerifier missing from app data"))?;
            let token = token.ok_or(AuthError::Missing).map_err(ApiError::from)?;
            let claims = verifier.verify(&token).await.map_err(ApiError::from)?;
            if let Some(sessions) = sessions {
                let ip = ip.ok_or_else(|| ApiError::internal("no client address"))?;
                sessions.require_live(&claims.sid, ip).await?;
            }
            Ok(Authenticated { claims, token })
        })
    }
}

/// Extractor for internal endpoints: the caller presented a valid service token. Being on the
/// network is not enough. A request the gateway forwarded for an end user (it carries the client-IP
/// header) is refused even with the gateway's token, so no path trick at the gateway can turn a
/// user's request into an internal call.
#[derive(Debug, Clone)]
pub struct InternalCaller {
    pub service: String,
}

impl InternalCaller {
    /// 403 unless the caller is one of `services`.
    pub fn require(&self, services: &[&str]) -> Result<(), ApiError> {
        if services.contains(&self.service.as_str()) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "service_not_permitted",
                format!("the {} service may not call this endpoint", self.service),
            ))
        }
    }
}

impl FromRequest for InternalCaller {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let on_behalf_of_a_user = req.headers().contains_key(&CLIENT_IP);
        let result = match req.extensions().get::<CallingService>() {
            Some(CallingService(service)) if !on_behalf_of_a_user => Ok(InternalCaller { service: service.clone() }),
            _ => Err(ApiError::forbidden("internal_only", "this endpoint is for immilink services only").into()),
        };
        ready(result)
    }
}

/// The paging parameters of every list (`?limit=&before=`), before they are checked.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many items (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Continue after this id: the last id of the previous page.
    pub before: Option<String>,
}

/// One page of a list: how many items at most, and the cursor to continue from (the last id, or
/// sequence, of the previous page). Every list takes its page through [`Page::limit`], so every list
/// refuses the same out-of-range `limit` the same way (422), instead of clamping it silently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<C = String> {
    pub limit: i64,
    pub cursor: Option<C>,
}

impl<C> Page<C> {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 500;

    /// The one rule for `?limit=`: absent is the default, 1 to 500 is taken as given, anything else
    /// is refused naming the parameter.
    pub fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
        match limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(limit) if (1..=Self::MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid_field("limit", format!("must be between 1 and {}", Self::MAX_LIMIT))),
        }
    }

    pub fn new(limit: Option<i64>, cursor: Option<C>) -> Result<Self, ApiError> {
        Ok(Self { limit: Self::limit(limit)?, cursor })
    }

    /// The first page of the default size.
    pub fn first() -> Self {
        Self { limit: Self::DEFAULT_LIMIT, cursor: None }
    }
}

impl PageQuery {
    /// Checks the parameters: a blank `before` is absent.
    pub fn page(self) -> Result<Page, ApiError> {
        Page::new(self.limit, self.before.map(|b| b.trim().to_owned()).filter(|b| !b.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

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

    #[test]
    fn syntax_error_is_400() {
        let err = parse_json::<Body>(b"{not json").unwrap_err();
        assert_eq!(err.status().as_u16(), 400);
        assert_eq!(err.code(), "malformed_body");
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
    fn every_list_refuses_the_same_out_of_range_limit() {
        assert_eq!(PageQuery::default().page().unwrap(), Page { limit: 100, cursor: None });
        let page = PageQuery { limit: Some(500), before: Some(" 0193-x ".into()) }.page().unwrap();
        assert_eq!(page, Page { limit: 500, cursor: Some("0193-x".into()) });
        for bad in [0, -1, 501] {
            let err = PageQuery { limit: Some(bad), before: None }.page().unwrap_err();
            assert_eq!((err.status().as_u16(), err.field_name()), (422, Some("limit")), "{bad}");
        }
        assert_eq!(PageQuery { limit: None, before: Some("  ".into()) }.page().unwrap().cursor, None);
    }

    async fn internal_caller(request: TestRequest, verified: Option<&str>) -> Result<InternalCaller, actix_web::Error> {
        let req = request.to_http_request();
        if let Some(service) = verified {
            req.extensions_mut().insert(CallingService(service.to_owned()));
        }
        InternalCaller::from_request(&req, &mut Payload::None).await
    }

    #[actix_web::test]
    async fn internal_endpoints_need_a_verified_service_and_refuse_requests_forwarded_for_a_user() {
        let broker = internal_caller(TestRequest::default(), Some("broker")).await.unwrap();
        assert!(broker.require(&["broker"]).is_ok());
        assert!(broker.require(&["identity"]).is_err(), "each endpoint names the services it serves");
        assert!(internal_caller(TestRequest::default(), None).await.is_err(), "no service token");
        let forwarded = TestRequest::default().insert_header((CLIENT_IP, "127.0.0.1"));
        assert!(internal_caller(forwarded, Some("gateway")).await.is_err(), "a user's request the gateway forwarded");
    }

    #[test]
    fn client_ip_is_taken_from_the_header_only_when_a_forwarder_stated_it() {
        let peer: std::net::SocketAddr = "10.0.0.9:4000".parse().unwrap();
        let stated =
            || TestRequest::default().peer_addr(peer).insert_header((CLIENT_IP, "127.0.0.7")).to_http_request();
        let anonymous = stated();
        assert_eq!(client_ip(&anonymous), Some(peer.ip()));
        let from_gateway = stated();
        from_gateway.extensions_mut().insert(CallingService("gateway".into()));
        assert_eq!(client_ip(&from_gateway), "127.0.0.7".parse().ok());
        let from_audit = stated();
        from_audit.extensions_mut().insert(CallingService("audit".into()));
        assert_eq!(client_ip(&from_audit), Some(peer.ip()), "audit forwards no user requests");
    }
}
