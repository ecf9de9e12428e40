//! Login and sessions: password (argon2id) + bound certificate serial + bound IP (R-ACC-03, R-ACC-11);
//! one live session per account, a second one from another IP or device refused and flagged as
//! possible lending (R-ACC-07); failed-login lockout, which only failures from a bound address count
//! (R-ACC-11: anyone could lock anyone out otherwise); every session stored with login and logout
//! time (R-ACC-12); logout and idle timeout end it (R-ACC-10).
//!
//! Login runs in three phases so that the deliberately slow password hash never holds a database
//! connection: [`find_credentials`] (read), [`password_matches`] (CPU, on a bounded pool), then
//! [`complete_login`] (one write transaction). [`login`] composes them for callers without that need.

use std::net::IpAddr;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::text_enum;
use serde_json::json;

use super::accounts::{self, AccountEventKind, AccountStatus};
use super::audit::{self, About};
use super::{new_id, AgencyCode, AgencyId, IdentityError, SessionId, UnitId, UserId};
use crate::schema::{agencies, sessions, user_ips, users};

text_enum! {
    /// Why a session ended (stored with its logout time, R-ACC-12). A session is live until it has
    /// one; ending it again changes nothing (every end is guarded by `logout_at IS NULL`).
    pub enum SessionEndReason {
        /// The user logged out (R-ACC-10).
        Logout = "logout",
        /// No activity for longer than the idle timeout (R-ACC-10).
        IdleTimeout = "idle_timeout",
        /// The same workstation and browser logged in again.
        Superseded = "superseded",
        /// An HR event cancelled the account (R-ACC-05).
        AccountCancelled = "account_cancelled",
        /// The manager suspended the account (R-ACC-07).
        AccountSuspended = "account_suspended",
        /// The account was found no longer active when the session was next used.
        AccountInactive = "account_inactive",
        /// The certificate was reported lost (R-ACC-09).
        CertificateLost = "certificate_lost",
        /// The account-manager role changed hands; tokens carry roles (R-ACC-06).
        RolesChanged = "roles_changed",
        /// The session's address is no longer registered (R-ACC-11).
        IpUnregistered = "ip_unregistered",
        /// The holder left a contractor's staff, changed role, or the contract ended: the account
        /// was cancelled (R-VEN-06).
        ContractorOffboarded = "contractor_offboarded",
    }
}

/// Why a session is not live for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// It has ended, for this reason.
    Ended(SessionEndReason),
    /// No such session.
    Unknown,
    /// The request comes from another IP than the session's (R-ACC-11); the session itself stays.
    IpMismatch,
}

impl std::fmt::Display for SessionRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SessionRefusal::Ended(reason) => reason.as_str(),
            SessionRefusal::Unknown => "unknown session",
            SessionRefusal::IpMismatch => "ip_mismatch",
        })
    }
}

/// Consecutive failed logins (wrong password or certificate) that lock an account.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_MINUTES: i64 = 15;

/// What a caller presents at login.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub username: String,
    pub password: String,
    pub certificate_serial: String,
    pub ip: IpAddr,
    pub user_agent: String,
}

/// Longest credential (username, password, certificate serial) or user agent a login takes.
pub const MAX_CREDENTIAL_BYTES: usize = 256;

impl LoginAttempt {
    /// The attempt from what the client sent: each credential required and bounded (the username
    /// and serial trimmed, the password as typed), the user agent cut to length.
    pub fn parse(
        username: Option<String>,
        password: Option<String>,
        certificate_serial: Option<String>,
        ip: IpAddr,
        user_agent: &str,
    ) -> Result<Self, IdentityError> {
        Ok(Self {
            username: credential(username, "username")?.trim().to_owned(),
            password: credential(password, "password")?,
            certificate_serial: credential(certificate_serial, "certificate_serial")?.trim().to_owned(),
            ip,
            user_agent: user_agent.chars().take(MAX_CREDENTIAL_BYTES).collect(),
        })
    }
}

fn credential(value: Option<String>, field: &str) -> Result<String, IdentityError> {
    let value = value.filter(|v| !v.trim().is_empty()).ok_or_else(|| IdentityError::missing(field))?;
    if value.len() > MAX_CREDENTIAL_BYTES {
        return Err(IdentityError::invalid(field, format!("must be at most {MAX_CREDENTIAL_BYTES} bytes")));
    }
    Ok(value)
}

/// A session just opened: what goes into the token.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub agency_code: AgencyCode,
    pub unit_id: Option<UnitId>,
    pub roles: Vec<String>,
}

/// The stored credentials of a username.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: UserId,
    pub password_hash: String,
}

pub fn hash_password(password: &str) -> Result<String, IdentityError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| IdentityError::Internal(format!("password hashing failed: {err}")))
}

/// Verifies a password against the stored hash, or against a decoy when the username is unknown so
/// both paths cost the same time. CPU-bound: call it off the async executor.
pub fn password_matches(password: &str, credentials: Option<&Credentials>) -> bool {
    let stored = match credentials {
        Some(c) => c.password_hash.as_str(),
        None => decoy_hash(),
    };
    let matches = PasswordHash::new(stored)
        .map(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false);
    matches && credentials.is_some()
}

fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy-password-never-matches").unwrap_or_default())
}

pub fn find_credentials(conn: &mut DbConn, username: &str) -> Result<Option<Credentials>, IdentityError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select((users::id, users::password_hash))
        .first::<(UserId, String)>(conn)
        .optional()?
        .map(|(user_id, password_hash)| Credentials { user_id, password_hash }))
}

/// Checks every factor and opens a session (all phases in one call).
pub fn login(conn: &mut DbConn, now: DateTime<Utc>, attempt: &LoginAttempt) -> Result<OpenedSession, IdentityError> {
    let credentials = find_credentials(conn, &attempt.username)?;
    let password_ok = password_matches(&attempt.password, credentials.as_ref());
    complete_login(conn, now, attempt, credentials.as_ref(), password_ok, Duration::minutes(15))
}

/// Why a login was refused: logged for operators, never returned.
enum Outcome {
    Opened(OpenedSession),
    Refused(&'static str),
}

/// The last phase: every check besides the password hash, then the session. Every refusal is the same
/// `LoginRefused`. Failure counts and lending flags are committed even though the login is refused.
pub fn complete_login(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    attempt: &LoginAttempt,
    credentials: Option<&Credentials>,
    password_ok: bool,
    idle_timeout: Duration,
) -> Result<OpenedSession, IdentityError> {
    let Some(credentials) = credentials else {
        let cause = "unknown username";
        conn.write_transaction(|conn| record_failed_login(conn, now, attempt, None, cause))?;
        return refuse(&attempt.username, cause);
    };
    // Every refusal is recorded with the failure count and lending flag it causes, in one transaction.
    let outcome = conn.write_transaction(|conn| {
        let outcome = decide(conn, now, attempt, &credentials.user_id, password_ok, idle_timeout)?;
        if let Outcome::Refused(cause) = outcome {
            let account = (&credentials.user_id, &audit::agency_of(conn, &credentials.user_id)?);
            record_failed_login(conn, now, attempt, Some(account), cause)?;
        }
        Ok::<_, IdentityError>(outcome)
    })?;
    match outcome {
        Outcome::Opened(session) => {
            tracing::info!(user_id = %session.user_id, session_id = %session.session_id, ip = %attempt.ip, "login");
            Ok(session)
        }
        Outcome::Refused(cause) => refuse(&attempt.username, cause),
    }
}

fn decide(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    attempt: &LoginAttempt,
    user_id: &UserId,
    password_ok: bool,
    idle_timeout: Duration,
) -> Result<Outcome, IdentityError> {
    type Row = (AgencyCode, Option<UnitId>, String, AccountStatus, i32, Option<NaiveDateTime>, AgencyId, String);
    let (agency_code, unit_id, certificate_serial, status, failed_logins, locked_until, agency_id, display_name): Row =
        users::table
            .inner_join(agencies::table)
            .filter(users::id.eq(user_id))
            .select((
                agencies::code,
                users::unit_id,
                users::certificate_serial,
                users::status,
                users::failed_logins,
                users::locked_until,
                agencies::id,
                users::display_name,
            ))
            .first(conn)?;
    if locked_until.is_some_and(|until| from_db(until) > now) {
        return Ok(Outcome::Refused("account locked after repeated failures"));
    }
    if !password_ok || certificate_serial != attempt.certificate_serial {
        let counted = record_failure(conn, now, user_id, failed_logins, attempt.ip)?;
        return Ok(Outcome::Refused(match (password_ok, counted) {
            (false, true) => "wrong password",
            (true, true) => "certificate serial is not the bound one",
            (false, false) => "wrong password, from an unregistered IP (not counted)",
            (true, false) => "certificate serial is not the bound one, from an unregistered IP (not counted)",
        }));
    }
    if status != AccountStatus::Active {
        return Ok(Outcome::Refused("account is not active"));
    }
    if !ip_is_bound(conn, user_id, attempt.ip)? {
        return Ok(Outcome::Refused("client IP is not registered for the account"));
    }
    if let Some(other) = live_session_elsewhere(conn, now, user_id, attempt, idle_timeout)? {
        let reason = format!(
            "login from {} ({}) while session {} is live from {} ({})",
            attempt.ip, attempt.user_agent, other.0, other.1, other.2
        );
        accounts::record_event(conn, now, user_id, AccountEventKind::PossibleAccountLending, &reason, None)?;
        accounts::notify_managers(conn, now, &agency_id, "疑似帳號借用 Possible account lending", &reason)?;
        tracing::warn!(user_id = %user_id, %reason, "concurrent session refused: possible account lending");
        return Ok(Outcome::Refused("concurrent session from another IP or device"));
    }
    // The same workstation and browser logging in again replaces its earlier session.
    close(conn, now, Ending::AllOf(user_id), SessionEndReason::Superseded, Some(user_id))?;
    diesel::update(users::table.filter(users::id.eq(user_id)))
        .set((users::failed_logins.eq(0), users::locked_until.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    let session_id = SessionId::new(new_id());
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(&session_id),
            sessions::user_id.eq(user_id),
            sessions::ip.eq(attempt.ip.to_string()),
            sessions::user_agent.eq(&attempt.user_agent),
            sessions::login_at.eq(to_db(now)),
            sessions::last_seen_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    let about = About { actor: Some(user_id), agency: Some(&agency_code), correlation_id: Some(session_id.as_str()) };
    let payload = json!({
        "session_id": session_id,
        "user_id": user_id,
        // The query record table names the user (附件一 使用者姓名) as they were called at the time.
        "display_name": display_name,
        "ip": attempt.ip.to_string(),
        "user_agent": attempt.user_agent,
    });
    audit::record(conn, now, kind::SESSION_OPENED, about, payload)?;
    Ok(Outcome::Opened(OpenedSession {
        session_id,
        user_id: user_id.clone(),
        agency_code,
        unit_id,
        roles: accounts::roles_of(conn, user_id)?,
    }))
}

/// Counts a failed login (wrong password or certificate) from `ip` towards the account's lockout,
/// locking it at [`MAX_FAILED_LOGINS`]: the one place a failure counts. Only an attempt from an
/// address the account is bound to counts. One from anywhere else is refused whatever it presents
/// (R-ACC-11), so counting it would only let anyone lock anyone out of their own desk; it is still
/// recorded as `login.failed` and counted by the per-address throttle. Returns whether it counted.
fn record_failure(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    failed_before: i32,
    ip: IpAddr,
) -> Result<bool, IdentityError> {
    if !ip_is_bound(conn, user_id, ip)? {
        return Ok(false);
    }
    let failed = failed_before + 1;
    let update = diesel::update(users::table.filter(users::id.eq(user_id)));
    if failed >= MAX_FAILED_LOGINS {
        update
            .set((users::failed_logins.eq(0), users::locked_until.eq(to_db(now + Duration::minutes(LOCKOUT_MINUTES)))))
            .execute(conn)?;
        let reason = format!("{failed} failed logins in a row");
        accounts::record_event(conn, now, user_id, AccountEventKind::LockedOut, &reason, None)?;
    } else {
        update.set(users::failed_logins.eq(failed)).execute(conn)?;
    }
    Ok(true)
}

/// A live session of the account from another IP or another device (user agent), if any.
fn live_session_elsewhere(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    attempt: &LoginAttempt,
    idle_timeout: Duration,
) -> Result<Option<(SessionId, String, String)>, IdentityError> {
    let live: Vec<(SessionId, String, String)> = sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::logout_at.is_null())
        .filter(sessions::last_seen_at.gt(to_db(now - idle_timeout)))
        .select((sessions::id, sessions::ip, sessions::user_agent))
        .load(conn)?;
    let ip = attempt.ip.to_string();
    Ok(live.into_iter().find(|(_, session_ip, agent)| *session_ip != ip || *agent != attempt.user_agent))
}

/// The `login.failed` event of a refused login: who tried (the account, when the username is one),
/// from where, and why. Never the password, nor the certificate serial presented.
fn record_failed_login(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    attempt: &LoginAttempt,
    account: Option<(&UserId, &AgencyCode)>,
    cause: &str,
) -> Result<(), IdentityError> {
    let about = About {
        actor: account.map(|(user_id, _)| user_id),
        agency: account.map(|(_, agency)| agency),
        correlation_id: account.map(|(user_id, _)| user_id.as_str()),
    };
    let payload = json!({
        "username": attempt.username,
        "user_id": account.map(|(user_id, _)| user_id),
        "ip": attempt.ip.to_string(),
        "user_agent": attempt.user_agent,
        "reason": cause,
    });
    audit::record(conn, now, kind::LOGIN_FAILED, about, payload)
}

fn refuse<T>(username: &str, cause: &str) -> Result<T, IdentityError> {
    tracing::info!(username, cause, "login refused");
    Err(IdentityError::LoginRefused)
}

fn ip_is_bound(conn: &mut DbConn, user_id: &UserId, ip: IpAddr) -> Result<bool, IdentityError> {
    let count: i64 = user_ips::table
        .filter(user_ips::user_id.eq(user_id))
        .filter(user_ips::ip.eq(ip.to_string()))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Ends a session now (logout, or an end found on use: idle, account no longer active), with its
/// audit event, in a transaction of its own. `by` is who ended it (the user at logout; `None` when
/// the system did).
pub fn end_session(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    session_id: &SessionId,
    reason: SessionEndReason,
    by: Option<&UserId>,
) -> Result<(), IdentityError> {
    conn.write_transaction(|conn| close(conn, now, Ending::One(session_id), reason, by))?;
    Ok(())
}

/// Which live sessions [`close`] ends.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    One(&'a SessionId),
    /// Every live session of the account.
    AllOf(&'a UserId),
    /// The account's live sessions from an address not in the list (R-ACC-11).
    AllOfExceptFrom(&'a UserId, &'a [String]),
}

/// Ends the live sessions `which` names, for `reason`, each with its `session.ended` audit event
/// (R-ACC-12: the logout time): the one place a session ends. `by` is who ended them (`None`: the
/// system). Part of the caller's transaction. Returns how many ended.
pub fn close(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    which: Ending<'_>,
    reason: SessionEndReason,
    by: Option<&UserId>,
) -> Result<usize, IdentityError> {
    let mut live = sessions::table.filter(sessions::logout_at.is_null()).into_boxed();
    live = match which {
        Ending::One(session_id) => live.filter(sessions::id.eq(session_id.clone())),
        Ending::AllOf(user_id) => live.filter(sessions::user_id.eq(user_id.clone())),
        Ending::AllOfExceptFrom(user_id, ips) => {
            live.filter(sessions::user_id.eq(user_id.clone())).filter(sessions::ip.ne_all(ips.to_vec()))
        }
    };
    let ending: Vec<(SessionId, UserId, String, NaiveDateTime)> =
        live.select((sessions::id, sessions::user_id, sessions::ip, sessions::login_at)).load(conn)?;
    if ending.is_empty() {
        return Ok(0);
    }
    let ids: Vec<SessionId> = ending.iter().map(|(id, ..)| id.clone()).collect();
    let ended = diesel::update(sessions::table.filter(sessions::id.eq_any(&ids)).filter(sessions::logout_at.is_null()))
        .set((sessions::logout_at.eq(to_db(now)), sessions::end_reason.eq(reason)))
        .execute(conn)?;
    let mut agencies: Vec<(UserId, AgencyCode)> = Vec::new();
    for (session_id, user_id, ip, login_at) in &ending {
        let agency = match agencies.iter().find(|(known, _)| known == user_id) {
            Some((_, agency)) => agency.clone(),
            None => {
                let agency = audit::agency_of(conn, user_id)?;
                agencies.push((user_id.clone(), agency.clone()));
                agency
            }
        };
        let about = About { actor: by, agency: Some(&agency), correlation_id: Some(session_id.as_str()) };
        let payload = json!({
            "session_id": session_id,
            "user_id": user_id,
            "ip": ip,
            "reason": reason,
            "login_at": from_db(*login_at),
        });
        audit::record(conn, now, kind::SESSION_ENDED, about, payload)?;
    }
    Ok(ended)
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
    session_id: &SessionId,
    ip: Option<IpAddr>,
    idle_timeout: Duration,
) -> Result<UserId, IdentityError> {
    type Row = (UserId, String, NaiveDateTime, Option<SessionEndReason>, AccountStatus);
    let row: Option<Row> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(session_id))
        .select((sessions::user_id, sessions::ip, sessions::last_seen_at, sessions::end_reason, users::status))
        .first(conn)
        .optional()?;
    let Some((user_id, session_ip, last_seen, end_reason, user_status)) = row else {
        return Err(IdentityError::SessionEnded(SessionRefusal::Unknown));
    };
    if let Some(reason) = end_reason {
        return Err(IdentityError::SessionEnded(SessionRefusal::Ended(reason)));
    }
    let ended_for = |reason| IdentityError::SessionEnded(SessionRefusal::Ended(reason));
    if user_status != AccountStatus::Active {
        end_session(conn, now, session_id, SessionEndReason::AccountInactive, None)?;
        return Err(ended_for(SessionEndReason::AccountInactive));
    }
    if now - from_db(last_seen) > idle_timeout {
        end_session(conn, now, session_id, SessionEndReason::IdleTimeout, None)?;
        return Err(ended_for(SessionEndReason::IdleTimeout));
    }
    if let Some(ip) = ip {
        if ip.to_string() != session_ip {
            tracing::warn!(session_id = %session_id, %ip, session_ip, "request from an IP other than the session's");
            return Err(IdentityError::SessionEnded(SessionRefusal::IpMismatch));
        }
    }
    if now - from_db(last_seen) > Duration::seconds(TOUCH_INTERVAL_SECONDS) {
        diesel::update(sessions::table.filter(sessions::id.eq(session_id)))
            .set(sessions::last_seen_at.eq(to_db(now)))
            .execute(conn)?;
    }
    Ok(user_id)
}
