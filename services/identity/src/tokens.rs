//! Access tokens: short-lived EdDSA JWTs carrying sub, sid, agency, unit and roles; and service
//! tokens, which name the immilink service making an internal call.

use chrono::{DateTime, Utc};
use immilink_shared::auth::{
    AccessClaims, ServiceClaims, AUDIENCE, ISSUER, SERVICE_AUDIENCE, SERVICE_TOKEN_TTL_SECONDS,
};
use immilink_shared::ApiError;
use jsonwebtoken::{Algorithm, Header};

use crate::domain::sessions::OpenedSession;
use crate::State;

pub fn issue(state: &State, session: &OpenedSession, now: DateTime<Utc>) -> Result<String, ApiError> {
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: session.user_id.to_string(),
        sid: session.session_id.to_string(),
        agency: session.agency_code.to_string(),
        unit: session.unit_id.as_ref().map(|unit| unit.to_string()),
        roles: session.roles.clone(),
        iat: now.timestamp(),
        exp: (now + state.token_ttl).timestamp(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(state.keys.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, state.keys.encoding_key()).map_err(ApiError::internal)
}

/// A service token for `service`. Signed with the same key as access tokens, but with the service
/// audience, so neither kind is accepted in place of the other. Expiry is set from the real clock:
/// every verifier checks it against the real clock too.
pub fn issue_service(kid: &str, key: &jsonwebtoken::EncodingKey, service: &str) -> Result<String, String> {
    let now = Utc::now();
    let claims = ServiceClaims {
        iss: ISSUER.into(),
        aud: SERVICE_AUDIENCE.into(),
        sub: service.to_owned(),
        iat: now.timestamp(),
        exp: now.timestamp() + SERVICE_TOKEN_TTL_SECONDS,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, key).map_err(|err| err.to_string())
}
