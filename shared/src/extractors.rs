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
        let is_utf8 = declares_utf8(req);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json || !is_utf8 {
                return Err(ApiError::unsupported_media_type("send the body as application/json in UTF-8").into());
            }
            let bytes = body.await.map_err(unreadable_body)?;
            parse_json(&bytes).map(ApiJson).map_err(Into::into)
        })
    }
}

/// Whether the request's `Content-Type` names no charset or UTF-8. JSON is UTF-8 (RFC 8259 §8.1),
/// and so is every text body immilink reads: a body declared in another charset (latin1, UTF-16,
/// Big5) is refused with 415, not misread.
pub fn declares_utf8(req: &HttpRequest) -> bool {
    let mime = req.mime_type().ok().flatten();
    let charset = mime.as_ref().and_then(|mime| mime.get_param("charset"));
    charset.is_none_or(|charset| ["utf-8", "utf8"].iter().any(|utf8| charset.as_str().eq_ignore_ascii_case(utf8)))
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

/// Deserialises a query string, naming the parameter that failed (a NUL character is refused as in
/// a body, see [`read_document`]; a parameter given twice is named).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    if let Some((key, _)) = pairs.clone().find(|(key, value)| key.contains('\0') || value.contains('\0')) {
        let field = if key.contains('\0') { "query".to_owned() } else { key.into_owned() };
        return Err(ApiError::invalid_field(field, NUL_REFUSED));
    }
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        if let Some(field) = missing_field_name(&message) {
            return ApiError::missing_field(field);
        }
        if let Some(field) = duplicate_field_name(&message) {
            return ApiError::invalid_field(field, "the parameter is given more than once");
        }
        ApiError::invalid_field(if path == "." { "query".to_owned() } else { path }, message)
    })
}

/// Deserialises JSON, turning serde's error into a problem that names the field. The document is
/// read as it was sent first ([`read_document`]), then as `T` from what was read, so every error of
/// the typed read is about a value, with its path (a number where an enum belongs included, which
/// serde_json reports as a syntax error when it reads `T` from the bytes).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let document = read_document(bytes)?;
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = field_path(err.path());
        let message = err.into_inner().to_string();
        if let Some(field) = missing_field_name(&message) {
            let full = if path == "." { field.to_owned() } else { format!("{path}.{field}") };
            return ApiError::missing_field(&full);
        }
        ApiError::invalid_field(body_if_root(path), strip_position(&message))
    })
}

/// Reads a JSON document as sent: refuses what is not one JSON value (400, naming where the reading
/// stopped), text after it (a second document, stray brackets), a key given twice (422: which value
/// was meant?) and a NUL character (422: no text column of PostgreSQL can hold one, and none of our
/// fields means one).
fn read_document(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let checked = serde_path_to_error::deserialize::<_, Checked>(&mut deserializer).map_err(|err| {
        let path = field_path(err.path());
        let inner = err.into_inner();
        let message = inner.to_string();
        if let Some(key) = duplicate_field_name(&message) {
            let full = if path == "." { key.to_owned() } else { format!("{path}.{key}") };
            return ApiError::invalid_field(full, "the field is given more than once");
        }
        if inner.is_data() {
            return ApiError::invalid_field(body_if_root(path), strip_position(&message));
        }
        ApiError::malformed_body(format!("the body is not valid JSON: {message}")).field(body_if_root(path))
    })?;
    deserializer.end().map_err(|err| {
        ApiError::malformed_body(format!("the body is not valid JSON: text after the document: {err}")).field("body")
    })?;
    Ok(checked.0)
}

/// A JSON value read with the checks a `serde_json::Value` cannot make once built (it keeps the last
/// of two equal keys silently).
struct Checked(serde_json::Value);

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor).map(Checked)
    }
}

struct CheckedVisitor;

pub(crate) const NUL_REFUSED: &str = "must not contain a NUL character (U+0000)";

impl<'de> serde::de::Visitor<'de> for CheckedVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(value.into())
    }

    fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
        if value.contains('\0') {
            return Err(E::custom(NUL_REFUSED));
        }
        Ok(value.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Checked(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if key.contains('\0') {
                return Err(A::Error::custom(format!("a key {NUL_REFUSED}")));
            }
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate field `{key}`")));
            }
            let Checked(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(serde_json::Value::Object(object))
    }
}

/// A path as fields are named (`items[2].name`), at most eight steps deep: a value nested deeper
/// than serde_json reads is named by where it starts, not by 128 steps of `[0]`.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for (index, segment) in path.iter().take(8).enumerate() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            other => {
                if index > 0 {
                    out.push('.');
                }
                out.push_str(&other.to_string());
            }
        }
    }
    if out.is_empty() {
        ".".to_owned()
    } else {
        out
    }
}

fn body_if_root(path: String) -> String {
    if path == "." {
        "body".to_owned()
    } else {
        path
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn duplicate_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("duplicate field `")?;
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
    enum Kind {
        #[serde(rename = "a")]
        A,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct WithKind {
        name: String,
        kind: Option<Kind>,
    }

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> (u16, Option<String>) {
        let err = parse_json::<T>(body.as_bytes()).unwrap_err();
        (err.status().as_u16(), err.field_name().map(str::to_owned))
    }

    #[test]
    fn what_is_not_one_json_document_is_refused_naming_where() {
        let named = |field: &str| Some(field.to_owned());
        assert_eq!(refusal::<Body>(r#"{"name": "x", "count": 1}}"#), (400, named("body")), "trailing text");
        assert_eq!(refusal::<Body>(r#"{"name": "x", "count": 1}{"name": "y", "count": 2}"#), (400, named("body")));
        assert_eq!(refusal::<Body>(r#"{"count": 1, "name": "\ud800"}"#), (400, named("name")), "a lone surrogate");
        let deep = format!(r#"{{"count": 1, "name": {}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
        let (status, field) = refusal::<Body>(&deep);
        assert_eq!(status, 400);
        assert!(field.is_some_and(|f| f.starts_with("name[0]") && f.len() < 40), "nesting named where it starts");
    }

    #[test]
    fn a_field_given_twice_or_holding_nul_is_named() {
        let named = |field: &str| Some(field.to_owned());
        assert_eq!(refusal::<Body>(r#"{"name": "x", "count": 1, "name": "y"}"#), (422, named("name")));
        let nested = r#"{"name": "x", "count": 1, "nested": {"inner": "a", "inner": "b"}}"#;
        assert_eq!(refusal::<Body>(nested), (422, named("nested.inner")));
        assert_eq!(refusal::<Body>(r#"{"name": "a\u0000b", "count": 1}"#), (422, named("name")));
        assert_eq!(
            refusal::<Body>(r#"{"name": "x", "count": 1, "nested": {"inner": "\u0000"}}"#).1,
            named("nested.inner")
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_for_an_enum_is_named_not_called_malformed() {
        let named = |field: &str| Some(field.to_owned());
        assert_eq!(refusal::<WithKind>(r#"{"name": "x", "kind": 12345}"#), (422, named("kind")));
        assert_eq!(refusal::<WithKind>(r#"{"name": "x", "kind": "b"}"#), (422, named("kind")));
        assert_eq!(parse_json::<WithKind>(br#"{"name": "x", "kind": "a"}"#).unwrap().name, "x");
    }

    async fn json_request(content_type: &str) -> Result<ApiJson<Body>, actix_web::Error> {
        let (req, mut payload) = TestRequest::post()
            .insert_header(("content-type", content_type))
            .set_payload(r#"{"name": "x", "count": 1}"#)
            .to_http_parts();
        ApiJson::<Body>::from_request(&req, &mut payload).await
    }

    #[actix_web::test]
    async fn a_body_in_another_charset_than_utf8_is_refused_naming_the_content_type() {
        assert!(json_request("application/json").await.is_ok());
        assert!(json_request("application/json; charset=UTF-8").await.is_ok());
        for refused in ["application/json; charset=latin1", "application/json; charset=utf-16", "text/plain"] {
            let err = json_request(refused).await.unwrap_err();
            let problem = err.as_error::<ApiError>().expect("a problem").to_problem();
            assert_eq!((problem.status, problem.field.as_deref()), (415, Some("Content-Type")), "{refused}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Filter {
        limit: Option<i64>,
        from: Option<chrono::DateTime<chrono::Utc>>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Params {
        q: Option<String>,
    }

    #[test]
    fn bad_query_parameters_are_named() {
        let err = parse_query::<Filter>("limit=ten").unwrap_err();
        assert_eq!(err.status().as_u16(), 422);
        assert_eq!(err.field_name(), Some("limit"));
        let err = parse_query::<Filter>("from=yesterday").unwrap_err();
        assert_eq!(err.field_name(), Some("from"));
        let err = parse_query::<Filter>("limit=5&limit=6").unwrap_err();
        assert_eq!((err.status().as_u16(), err.field_name()), (422, Some("limit")));
        let err = parse_query::<Params>("q=a%00b").unwrap_err();
        assert_eq!((err.status().as_u16(), err.field_name()), (422, Some("q")), "NUL, as in a body");
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
