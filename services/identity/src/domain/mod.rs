//! Identity's domain functions. Each takes a connection and the current time, so it tests without
//! HTTP; handlers only parse, authorise, call one of these and map the result.

pub mod accounts;
pub mod applications;
pub mod demo;
pub mod notifications;
pub mod permissions;
pub mod sessions;

use actix_web::http::StatusCode;
use immilink_shared::db::DbError;
use immilink_shared::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Deliberately one variant for every login refusal, so the response cannot reveal whether the
    /// account exists (the cause is logged server-side).
    #[error("login refused")]
    LoginRefused,
    #[error("too many attempts from this address")]
    Throttled { retry_after_seconds: u64 },
    #[error("the session has ended: {0}")]
    SessionEnded(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Forbidden { code: &'static str, rule: Option<&'static str>, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, rule: Option<&'static str>, field: Option<&'static str>, detail: String },
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("{detail}")]
    Unavailable { code: &'static str, detail: String },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Something that cannot happen with sane data (a stored record that does not parse): a 500.
    #[error("{0}")]
    Internal(String),
}

impl IdentityError {
    pub fn forbidden(code: &'static str, rule: Option<&'static str>, detail: impl Into<String>) -> Self {
        IdentityError::Forbidden { code, rule, detail: detail.into() }
    }

    pub fn conflict(code: &'static str, rule: Option<&'static str>, detail: impl Into<String>) -> Self {
        IdentityError::Conflict { code, rule, field: None, detail: detail.into() }
    }

    pub fn conflict_on(field: &'static str, code: &'static str, detail: impl Into<String>) -> Self {
        IdentityError::Conflict { code, rule: None, field: Some(field), detail: detail.into() }
    }

    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        IdentityError::Invalid { field: field.into(), detail: detail.into() }
    }

    /// 403 unless the actor holds one of `roles`.
    pub fn role_required(roles: &[&str]) -> Self {
        Self::forbidden("role_required", None, format!("this action needs one of the roles: {}", roles.join(", ")))
    }
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
                StatusCode::UNAUTHORIZED,
                "login_refused",
                "Login refused",
                "登入失敗",
            )
            .detail("the login was refused: check the username, password, certificate and that you use your registered workstation"),
            IdentityError::Throttled { retry_after_seconds } => ApiError::too_many_requests(
                "too_many_attempts",
                "too many attempts from this address; wait before trying again",
                retry_after_seconds,
            ),
            IdentityError::SessionEnded(reason) => {
                ApiError::unauthenticated(format!("the session has ended ({reason}); log in again"))
            }
            IdentityError::NotFound(what) => ApiError::not_found(what),
            IdentityError::Forbidden { code, rule, detail } => {
                let err = ApiError::forbidden(code, detail);
                match rule {
                    Some(rule) => err.rule(rule),
                    None => err,
                }
            }
            IdentityError::Conflict { code, rule, field, detail } => {
                let mut err = ApiError::conflict(code, detail);
                if let Some(rule) = rule {
                    err = err.rule(rule);
                }
                if let Some(field) = field {
                    err = err.field(field);
                }
                err
            }
            IdentityError::Invalid { field, detail } => ApiError::invalid_field(field, detail),
            IdentityError::Unavailable { code, detail } => ApiError::unavailable(code, detail),
            IdentityError::Db(db) => db.into(),
            IdentityError::Hashing(cause) | IdentityError::Internal(cause) => ApiError::internal(cause),
        }
    }
}

/// A fresh UUIDv7 id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
