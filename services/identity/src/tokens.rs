//! Access tokens: short-lived EdDSA JWTs carrying sub, sid, agency, unit and roles.

use chrono::{DateTime, Utc};
use immilink_shared::auth::{AccessClaims, AUDIENCE, ISSUER};
use immilink_shared::ApiError;
use jsonwebtoken::{Algorithm, Header};

use crate::domain::sessions::OpenedSession;
use crate::State;

pub fn issue(state: &State, session: &OpenedSession, now: DateTime<Utc>) -> Result<String, ApiError> {
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: session.user_id.clone(),
        sid: session.session_id.clone(),
        agency: session.agency_code.clone(),
        unit: session.unit_id.clone(),
        roles: session.roles.clone(),
        iat: now.timestamp(),
        exp: (now + state.token_ttl).timestamp(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(state.keys.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, state.keys.encoding_key()).map_err(ApiError::internal)
}
