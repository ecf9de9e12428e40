//! Login and sessions: password (argon2id) + bound certificate serial + bound IP (R-ACC-03, R-ACC-11);
//! every session stored with login and logout time (R-ACC-12); logout and idle timeout end it
//! (R-ACC-10).

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;

use super::IdentityError;
use crate::schema::{agencies, sessions, user_ips, user_roles, users};

pub const STATUS_ACTIVE: &str = "active";

/// What a caller presents at login.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub username: String,
    pub password: String,
    pub certificate_serial: String,
    pub ip: IpAddr,
    pub user_agent: String,
}

/// A session just opened: what goes into the token.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub session_id: String,
    pub user_id: String,
    pub agency_code: String,
    pub unit_id: Option<String>,
    pub roles: Vec<String>,
}

pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| IdentityError::Hashing(err.to_string()))
}

fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A hash to verify against when the username is unknown, so both paths cost the same time.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

type UserRow = (String, String, Option<String>, String, String, String);

/// Checks every factor and opens a session. Every refusal is the same `LoginRefused`; the cause is
/// logged for the operators, never returned.
pub fn login(conn: &mut DbConn, now: DateTime<Utc>, attempt: &LoginAttempt) -> Result<OpenedSession, IdentityError> {
    let user: Option<UserRow> = users::table
        .inner_join(agencies::table)
        .filter(users::username.eq(&attempt.username))
        .select((
            users::id,
            agencies::code,
            users::unit_id,
            users::password_hash,
            users::certificate_serial,
            users::status,
        ))
        .first(conn)
        .optional()?;
    let Some((user_id, agency_code, unit_id, password_hash, certificate_serial, status)) = user else {
        password_matches(&attempt.password, decoy_hash());
        return refuse(&attempt.username, "unknown username");
    };
    if !password_matches(&attempt.password, &password_hash) {
        return refuse(&attempt.username, "wrong password");
    }
    if certificate_serial != attempt.certificate_serial {
        return refuse(&attempt.username, "certificate serial is not the bound one");
    }
    if status != STATUS_ACTIVE {
        return refuse(&attempt.username, "account is not active");
    }
    if !ip_is_bound(conn, &user_id, attempt.ip)? {
        return refuse(&attempt.username, "client IP is not registered for the account");
    }
    let roles = user_roles::table
        .filter(user_roles::user_id.eq(&user_id))
        .select(user_roles::role)
        .order(user_roles::role)
        .load(conn)?;
    let session_id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(&user_id),
            sessions::ip.eq(attempt.ip.to_string()),
            sessions::user_agent.eq(&attempt.user_agent),
            sessions::login_at.eq(to_db(now)),
            sessions::last_seen_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    tracing::info!(user_id, session_id, ip = %attempt.ip, "login");
    Ok(OpenedSession { session_id, user_id, agency_code, unit_id, roles })
}

fn refuse<T>(username: &str, cause: &str) -> Result<T, IdentityError> {
    tracing::info!(username, cause, "login refused");
    Err(IdentityError::LoginRefused)
}

fn ip_is_bound(conn: &mut DbConn, user_id: &str, ip: IpAddr) -> Result<bool, IdentityError> {
    let count: i64 = user_ips::table
        .filter(user_ips::user_id.eq(user_id))
        .filter(user_ips::ip.eq(ip.to_string()))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Ends a session now (logout, or an administrative end).
pub fn end_session(conn: &mut DbConn, now: DateTime<Utc>, session_id: &str, reason: &str) -> Result<(), IdentityError> {
    diesel::update(sessions::table.filter(sessions::id.eq(session_id)).filter(sessions::logout_at.is_null()))
        .set((sessions::logout_at.eq(to_db(now)), sessions::end_reason.eq(reason)))
        .execute(conn)?;
    Ok(())
}

/// How often a live session's `last_seen_at` is written: often enough for a minutes-long idle
/// timeout, rarely enough that liveness checks are mostly reads.
const TOUCH_INTERVAL_SECONDS: i64 = 15;

/// Checks that a session is live for a request from `ip`, and records activity. A session idle for
/// longer than `idle_timeout` is ended on the spot (R-ACC-10); a request from another IP than the
/// session's is refused (R-ACC-11); a session of an account that is no longer active is ended.
pub fn check_live(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &str,
    ip: Option<IpAddr>,
    idle_timeout: Duration,
) -> Result<String, IdentityError> {
    let row: Option<(String, String, chrono::NaiveDateTime, Option<String>, String)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .select((sessions::user_id, sessions::ip, sessions::last_seen_at, sessions::end_reason, users::status))
        .first(conn)
        .optional()?;
    let Some((user_id, session_ip, last_seen, end_reason, user_status)) = row else {
        return Err(IdentityError::SessionEnded("unknown session".into()));
    };
    if let Some(reason) = end_reason {
        return Err(IdentityError::SessionEnded(reason));
    }
    if user_status != STATUS_ACTIVE {
        end_session(conn, now, session_id, "account_inactive")?;
        return Err(IdentityError::SessionEnded("account_inactive".into()));
    }
    if now - from_db(last_seen) > idle_timeout {
        end_session(conn, now, session_id, "idle_timeout")?;
        return Err(IdentityError::SessionEnded("idle_timeout".into()));
    }
    if let Some(ip) = ip {
        if ip.to_string() != session_ip {
            tracing::warn!(session_id, %ip, session_ip, "request from an IP other than the session's");
            return Err(IdentityError::SessionEnded("ip_mismatch".into()));
        }
    }
    if now - from_db(last_seen) > Duration::seconds(TOUCH_INTERVAL_SECONDS) {
        diesel::update(sessions::table.filter(sessions::id.eq(session_id)))
            .set(sessions::last_seen_at.eq(to_db(now)))
            .execute(conn)?;
    }
    Ok(user_id)
}
