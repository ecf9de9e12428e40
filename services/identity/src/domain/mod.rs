//! Identity's domain functions. Each takes a connection and the current time, so it tests without
//! HTTP; handlers only parse, authorise, call one of these and map the result.

pub mod demo;
pub mod permissions;
pub mod sessions;

use immilink_shared::db::DbError;
use immilink_shared::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Deliberately one variant for every login refusal, so the response cannot reveal whether the
    /// account exists (the cause is logged server-side).
    #[error("login refused")]
    LoginRefused,
    #[error("the session has ended: {0}")]
    SessionEnded(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl From<diesel::result::Error> for IdentityError {
    fn from(err: diesel::result::Error) -> Self {
        IdentityError::Db(DbError::Query(err))
    }
}

/// The one place identity errors become HTTP problems.
impl From<IdentityError> for ApiError {
    fn from(err: IdentityError) -> Self {
        match err {
            IdentityError::LoginRefused => ApiError::new(
                actix_web::http::StatusCode::UNAUTHORIZED,
                "login_refused",
                "Login refused",
                "登入失敗",
            )
            .detail("the login was refused: check the username, password, certificate and that you use your registered workstation"),
            IdentityError::SessionEnded(reason) => {
                ApiError::unauthenticated(format!("the session has ended ({reason}); log in again"))
            }
            IdentityError::NotFound(what) => ApiError::not_found(what),
            IdentityError::Db(db) => db.into(),
            IdentityError::Hashing(cause) => ApiError::internal(cause),
        }
    }
}
