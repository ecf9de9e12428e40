use actix_web::{get, web};
use immilink_shared::auth::JwkSet;

use crate::State;

/// The public keys that verify access tokens.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sessions", responses((status = 200, body = JwkSet)))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<State>) -> web::Json<JwkSet> {
    web::Json(state.keys.jwks())
}
