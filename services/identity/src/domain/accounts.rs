//! Accounts after they exist: who is acting ([`Actor`]), the lifecycle an account manager drives
//! (R-ACC-05 HR events, R-ACC-07 suspension, R-ACC-09 lost certificate, R-ACC-11 IP bindings), the
//! account-manager handover (R-ACC-06), and what managers may read. Every change is an
//! `account_events` row and a notification, written in the transaction that makes it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::contractors::{self, ContractorStatus};
use super::fields::RegisteredIps;
use super::permissions::{self, Permission, UnitRef};
use super::sessions::{self, Ending, SessionEndReason};
use super::{audit, new_id, notifications, AgencyCode, AgencyId, IdentityError, SessionId, UnitId, UserId};
use crate::schema::{
    account_events, agencies, sessions as session_rows, units, user_grants, user_ips, user_roles, users,
};

text_enum! {
    /// Where an account stands. It opens active (an approved application); every later change is
    /// judged by `AccountStatus::transition`.
    pub enum AccountStatus {
        /// May log in and act.
        Active = "active",
        /// Held by the account manager (R-ACC-07); reinstating reopens it.
        Suspended = "suspended",
        /// Closed by an HR event (R-ACC-05); a new application is needed.
        Cancelled = "cancelled",
        /// Closed for good after a lost certificate (R-ACC-09).
        Terminated = "terminated",
    }
}

impl AccountStatus {
    /// The one judge of account status changes: active → suspended (R-ACC-07), suspended → active
    /// (reinstatement), active or suspended → cancelled (R-ACC-05), anything not terminated →
    /// terminated (R-ACC-09). Every other move is refused with the reason its target gives.
    pub fn transition(self, to: AccountStatus) -> Result<AccountStatus, IdentityError> {
        use AccountStatus::*;
        match (self, to) {
            (Active, Suspended) | (Suspended, Active) | (Active | Suspended, Cancelled) => Ok(to),
            (Active | Suspended | Cancelled, Terminated) => Ok(to),
            (status, Suspended) => Err(IdentityError::NotActive { status }),
            (status, Active) => Err(IdentityError::NotSuspended { status }),
            (status, Cancelled | Terminated) => Err(IdentityError::AccountClosed { status }),
        }
    }

    /// Not cancelled or terminated: the account still binds its certificate (R-ACC-03).
    pub fn is_open(self) -> bool {
        !matches!(self, AccountStatus::Cancelled | AccountStatus::Terminated)
    }
}

text_enum! {
    /// What an `account_events` row records.
    pub enum AccountEventKind {
        /// R-ACC-05: the HR events that cancel an account.
        HrResignation = "hr_resignation",
        HrLeave = "hr_leave",
        HrSuspension = "hr_suspension",
        HrTransfer = "hr_transfer",
        /// R-ACC-07.
        Suspended = "suspended",
        Reinstated = "reinstated",
        /// R-ACC-09.
        CertificateLost = "certificate_lost",
        /// R-ACC-11.
        IpsChanged = "ips_changed",
        /// R-ACC-07: a login refused because the account was live elsewhere.
        PossibleAccountLending = "possible_account_lending",
        /// R-ACC-06.
        AccountManagerGranted = "account_manager_granted",
        AccountManagerRevoked = "account_manager_revoked",
        /// The application was approved and the account opened (R-ACC-01).
        Activated = "activated",
        /// Repeated failed logins locked the account for a while.
        LockedOut = "locked_out",
        /// R-VEN-06: the holder left a contractor's staff, changed role or the contract ended; the
        /// account is cancelled and its sessions ended.
        ContractorOffboarded = "contractor_offboarded",
        /// R-VEN-08: the holder of lookup grants was registered as contractor personnel; the grants
        /// are suspended until an account manager resolves the conflict.
        GrantsSuspended = "grants_suspended",
        /// R-VEN-08: the account manager resolved the conflict (grants revoked, or restored).
        ContractorConflictResolved = "contractor_conflict_resolved",
    }
}

text_enum! {
    /// The HR events that cancel an account the same day (R-ACC-05).
    pub enum HrEvent {
        /// 辭職 / 離職
        Resignation = "resignation",
        /// 留職停薪 / 休假
        Leave = "leave",
        /// 停職
        Suspension = "suspension",
        /// 職務調動
        Transfer = "transfer",
    }
}

impl HrEvent {
    fn event_kind(self) -> AccountEventKind {
        match self {
            Self::Resignation => AccountEventKind::HrResignation,
            Self::Leave => AccountEventKind::HrLeave,
            Self::Suspension => AccountEventKind::HrSuspension,
            Self::Transfer => AccountEventKind::HrTransfer,
        }
    }
}

/// The authenticated user performing an action, as the database knows them right now (roles may
/// have changed since the token was issued; the database wins).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub agency_id: AgencyId,
    pub agency_code: AgencyCode,
    pub unit_id: Option<UnitId>,
    pub roles: Vec<String>,
    pub national_id: Option<String>,
    pub certificate_serial: String,
}

impl Actor {
    /// The caller of a request as the database knows them now. Their session must be live from
    /// `ip` (R-ACC-10, R-ACC-11): identity checks its own sessions directly, uncached, so a revoked
    /// session is refused here at once.
    pub fn of(
        conn: &mut DbConn,
        now: DateTime<Utc>,
        caller: &Caller,
        ip: Option<IpAddr>,
        idle_timeout: Duration,
    ) -> Result<Actor, IdentityError> {
        let user_id = sessions::check_live(conn, now, &caller.session_id, ip, idle_timeout)?;
        load_actor(conn, &user_id)
    }

    pub fn has(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn require_any(&self, wanted: &'static [&'static str]) -> Result<(), IdentityError> {
        if wanted.iter().any(|role| self.has(role)) {
            Ok(())
        } else {
            Err(IdentityError::RoleRequired { roles: wanted })
        }
    }
}

pub fn load_actor(conn: &mut DbConn, user_id: &UserId) -> Result<Actor, IdentityError> {
    type Row = (String, String, AgencyId, AgencyCode, Option<UnitId>, Option<String>, String);
    let (username, display_name, agency_id, agency_code, unit_id, national_id, certificate_serial): Row = users::table
        .inner_join(agencies::table)
        .filter(users::id.eq(user_id))
        .select((
            users::username,
            users::display_name,
            agencies::id,
            agencies::code,
            users::unit_id,
            users::national_id,
            users::certificate_serial,
        ))
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the user"))?;
    Ok(Actor {
        user_id: user_id.clone(),
        username,
        display_name,
        agency_id,
        agency_code,
        unit_id,
        roles: roles_of(conn, user_id)?,
        national_id,
        certificate_serial,
    })
}

fn ips_of(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<String>, IdentityError> {
    Ok(user_ips::table.filter(user_ips::user_id.eq(user_id)).select(user_ips::ip).order(user_ips::ip).load(conn)?)
}

/// How many (query type, purpose) pairs the account holds.
pub fn grant_count(conn: &mut DbConn, user_id: &UserId) -> Result<usize, IdentityError> {
    let count: i64 = user_grants::table.filter(user_grants::user_id.eq(user_id)).count().get_result(conn)?;
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

pub fn roles_of(conn: &mut DbConn, user_id: &UserId) -> Result<Vec<String>, IdentityError> {
    Ok(user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .select(user_roles::role)
        .order(user_roles::role)
        .load(conn)?)
}

/// An account as its managers see it.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub agency_code: AgencyCode,
    pub unit_id: Option<UnitId>,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub roles: Vec<String>,
    /// The registered IP addresses logins and requests must come from (R-ACC-11).
    pub ips: Vec<String>,
    /// Granted (query type, purpose) pairs, in order.
    pub grants: Vec<Grant>,
    /// Set while the grants are suspended because the holder is also contractor personnel
    /// (R-VEN-08): no lookup runs until an account manager resolves the conflict.
    pub grants_suspension: Option<GrantsSuspension>,
    /// Its history, oldest first (only when one account is read).
    pub events: Vec<AccountEvent>,
}

/// Why and since when an account's lookup grants are suspended (R-VEN-08).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantsSuspension {
    pub since: NaiveDateTime,
    pub reason: String,
}

/// A (query type, purpose) pair granted to a user or requested by an applicant. Stored as JSON text
/// in an application (requested and granted pairs), hence serde.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub query_type: String,
    pub purpose_code: String,
}

/// What happened to an account, when, and by whom.
#[derive(Debug, Clone, Queryable)]
pub struct AccountEvent {
    pub id: String,
    pub kind: AccountEventKind,
    pub reason: String,
    pub actor_id: Option<UserId>,
    /// Business date (Asia/Taipei) the event took effect.
    pub effective_date: NaiveDate,
    pub created_at: NaiveDateTime,
}

/// One session as the record table shows it (R-ACC-12).
#[derive(Debug, Clone, Queryable)]
pub struct SessionRecord {
    pub session_id: SessionId,
    pub ip: String,
    pub user_agent: String,
    pub login_at: NaiveDateTime,
    pub logout_at: Option<NaiveDateTime>,
    pub end_reason: Option<SessionEndReason>,
}

/// The account rows a manager may touch: same agency only. Another agency's account is "not
/// found", so managers cannot even learn which ids exist elsewhere.
fn account_in_agency(
    conn: &mut DbConn,
    actor: &Actor,
    user_id: &UserId,
) -> Result<(AccountStatus, String), IdentityError> {
    users::table
        .filter(users::id.eq(user_id))
        .filter(users::agency_id.eq(&actor.agency_id))
        .select((users::status, users::display_name))
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the account"))
}

/// As [`account_in_agency`], inside a write transaction: takes the account's row lock first
/// (PostgreSQL; SQLite's write transaction holds the database lock already), so two managers acting
/// on one account at once are judged one after the other, each on the status the other left.
pub(super) fn lock_account_in_agency(
    conn: &mut DbConn,
    actor: &Actor,
    user_id: &UserId,
) -> Result<(AccountStatus, String), IdentityError> {
    diesel::update(users::table.filter(users::id.eq(user_id)).filter(users::agency_id.eq(&actor.agency_id)))
        .set(users::status.eq(users::status))
        .execute(conn)?;
    account_in_agency(conn, actor, user_id)
}

const READERS: &[&str] = &[roles::ACCOUNT_MANAGER, roles::AGENCY_HEAD, roles::AUDITOR, roles::IT_OFFICER];

/// The accounts of the actor's agency, by username, one page at a time (the cursor is the last
/// account's id).
pub fn list(conn: &mut DbConn, actor: &Actor, page: &Page) -> Result<Vec<Account>, IdentityError> {
    actor.require_any(READERS)?;
    let mut query = users::table.filter(users::agency_id.eq(actor.agency_id.clone())).into_boxed();
    if let Some(after) = &page.cursor {
        let username: String = users::table
            .filter(users::id.eq(after))
            .filter(users::agency_id.eq(&actor.agency_id))
            .select(users::username)
            .first(conn)
            .optional()?
            .ok_or_else(|| IdentityError::invalid("before", "not an account of this list"))?;
        query = query.filter(users::username.gt(username));
    }
    let ids: Vec<UserId> = query.order(users::username.asc()).limit(page.limit).select(users::id).load(conn)?;
    load_accounts(conn, &ids, false)
}

/// One account of the actor's agency; a user may always read their own.
pub fn detail(conn: &mut DbConn, actor: &Actor, user_id: &UserId) -> Result<Account, IdentityError> {
    if actor.user_id != *user_id {
        actor.require_any(READERS)?;
        account_in_agency(conn, actor, user_id)?;
    }
    account(conn, user_id)
}

/// An account's sessions, newest first, one page at a time (the cursor is the last session's id).
pub fn sessions_of(
    conn: &mut DbConn,
    actor: &Actor,
    user_id: &UserId,
    page: &Page,
) -> Result<Vec<SessionRecord>, IdentityError> {
    if actor.user_id != *user_id {
        actor.require_any(READERS)?;
        account_in_agency(conn, actor, user_id)?;
    }
    let mut query = session_rows::table.filter(session_rows::user_id.eq(user_id.clone())).into_boxed();
    if let Some(before) = &page.cursor {
        let at: NaiveDateTime = session_rows::table
            .filter(session_rows::id.eq(before))
            .filter(session_rows::user_id.eq(user_id))
            .select(session_rows::login_at)
            .first(conn)
            .optional()?
            .ok_or_else(|| IdentityError::invalid("before", "not a session of this account"))?;
        query = query.filter(
            session_rows::login_at.lt(at).or(session_rows::login_at.eq(at).and(session_rows::id.lt(before.clone()))),
        );
    }
    Ok(query
        .order((session_rows::login_at.desc(), session_rows::id.desc()))
        .limit(page.limit)
        .select((
            session_rows::id,
            session_rows::ip,
            session_rows::user_agent,
            session_rows::login_at,
            session_rows::logout_at,
            session_rows::end_reason,
        ))
        .load(conn)?)
}

/// One account with its history.
pub(super) fn account(conn: &mut DbConn, user_id: &UserId) -> Result<Account, IdentityError> {
    load_accounts(conn, std::slice::from_ref(user_id), true)?.pop().ok_or(IdentityError::NotFound("the account"))
}

/// The accounts with these ids, in this order, in a fixed number of queries (one per table),
/// however many there are.
fn load_accounts(conn: &mut DbConn, ids: &[UserId], with_events: bool) -> Result<Vec<Account>, IdentityError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    type Row = (
        UserId,
        String,
        String,
        AgencyCode,
        Option<UnitId>,
        AccountStatus,
        Option<String>,
        (Option<NaiveDateTime>, Option<String>),
    );
    let rows: Vec<Row> = users::table
        .inner_join(agencies::table)
        .filter(users::id.eq_any(ids))
        .select((
            users::id,
            users::username,
            users::display_name,
            agencies::code,
            users::unit_id,
            users::status,
            users::status_reason,
            (users::grants_suspended_at, users::grants_suspended_reason),
        ))
        .load(conn)?;
    let mut roles = group(
        user_roles::table
            .filter(user_roles::user_id.eq_any(ids))
            .order((user_roles::user_id, user_roles::role))
            .select((user_roles::user_id, user_roles::role))
            .load::<(UserId, String)>(conn)?,
    );
    let mut ips = group(
        user_ips::table
            .filter(user_ips::user_id.eq_any(ids))
            .order((user_ips::user_id, user_ips::ip))
            .select((user_ips::user_id, user_ips::ip))
            .load::<(UserId, String)>(conn)?,
    );
    let mut grants = group(
        user_grants::table
            .filter(user_grants::user_id.eq_any(ids))
            .order((user_grants::user_id, user_grants::query_type, user_grants::purpose_code))
            .select((user_grants::user_id, (user_grants::query_type, user_grants::purpose_code)))
            .load::<(UserId, (String, String))>(conn)?,
    );
    let mut events = match with_events {
        true => group(
            account_events::table
                .filter(account_events::user_id.eq_any(ids))
                .order(account_events::id.asc())
                .select((
                    account_events::user_id,
                    (
                        account_events::id,
                        account_events::kind,
                        account_events::reason,
                        account_events::actor_id,
                        account_events::effective_date,
                        account_events::created_at,
                    ),
                ))
                .load::<(UserId, AccountEvent)>(conn)?,
        ),
        false => BTreeMap::new(),
    };
    let mut found: BTreeMap<UserId, Row> = rows.into_iter().map(|row| (row.0.clone(), row)).collect();
    Ok(ids
        .iter()
        .filter_map(|id| found.remove(id))
        .map(|(user_id, username, display_name, agency_code, unit_id, status, status_reason, suspension)| Account {
            grants_suspension: match suspension {
                (Some(since), reason) => Some(GrantsSuspension { since, reason: reason.unwrap_or_default() }),
                (None, _) => None,
            },
            roles: roles.remove(&user_id).unwrap_or_default(),
            ips: ips.remove(&user_id).unwrap_or_default(),
            grants: grants
                .remove(&user_id)
                .unwrap_or_default()
                .into_iter()
                .map(|(query_type, purpose_code)| Grant { query_type, purpose_code })
                .collect(),
            events: events.remove(&user_id).unwrap_or_default(),
            user_id,
            username,
            display_name,
            agency_code,
            unit_id,
            status,
            status_reason,
        })
        .collect())
}

/// Groups (key, value) rows by key, keeping their order.
fn group<K: Ord, V>(rows: Vec<(K, V)>) -> BTreeMap<K, Vec<V>> {
    let mut grouped: BTreeMap<K, Vec<V>> = BTreeMap::new();
    for (key, value) in rows {
        grouped.entry(key).or_default().push(value);
    }
    grouped
}

impl AccountEventKind {
    /// The audit event kind that records it (`immilink_shared::events::kind`).
    pub fn audit_kind(self) -> &'static str {
        use AccountEventKind::*;
        match self {
            HrResignation | HrLeave | HrSuspension | HrTransfer => kind::ACCOUNT_HR_EVENT,
            Suspended => kind::ACCOUNT_SUSPENDED,
            Reinstated => kind::ACCOUNT_REINSTATED,
            CertificateLost => kind::ACCOUNT_CERTIFICATE_LOST,
            IpsChanged => kind::ACCOUNT_IPS_CHANGED,
            PossibleAccountLending => kind::ACCOUNT_LENDING_FLAGGED,
            AccountManagerGranted => kind::ACCOUNT_ROLE_GRANTED,
            AccountManagerRevoked => kind::ACCOUNT_ROLE_REVOKED,
            Activated => kind::ACCOUNT_ACTIVATED,
            LockedOut => kind::ACCOUNT_LOCKED_OUT,
            ContractorOffboarded => kind::ACCOUNT_CONTRACTOR_OFFBOARDED,
            GrantsSuspended => kind::ACCOUNT_GRANTS_SUSPENDED,
            ContractorConflictResolved => kind::ACCOUNT_CONTRACTOR_CONFLICT_RESOLVED,
        }
    }
}

/// Records what happened to an account: its `account_events` row and its audit event (the one
/// place both are written, so every account change reaches the audit log). Part of the caller's
/// transaction.
pub fn record_event(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    kind: AccountEventKind,
    reason: &str,
    actor_id: Option<&UserId>,
) -> Result<(), IdentityError> {
    record_event_with(conn, now, user_id, kind, reason, actor_id, serde_json::Map::new())
}

/// As [`record_event`], with `details` added to the audit event's payload (e.g. which contractor's
/// message caused it, R-VEN-06). Never a national ID.
pub fn record_event_with(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    kind: AccountEventKind,
    reason: &str,
    actor_id: Option<&UserId>,
    details: serde_json::Map<String, serde_json::Value>,
) -> Result<(), IdentityError> {
    let (agency_id, agency_code, status): (AgencyId, AgencyCode, AccountStatus) = users::table
        .inner_join(agencies::table)
        .filter(users::id.eq(user_id))
        .select((users::agency_id, agencies::code, users::status))
        .first(conn)?;
    let mut payload = json!({
        "account_user_id": user_id,
        "event": kind,
        "reason": reason,
        "status": status,
        "effective_date": business_date(now),
    });
    // What changed, as it stands now in this transaction.
    match kind {
        AccountEventKind::HrResignation
        | AccountEventKind::HrLeave
        | AccountEventKind::HrSuspension
        | AccountEventKind::HrTransfer => {
            payload["hr_event"] = json!(kind.as_str().trim_start_matches("hr_"));
        }
        AccountEventKind::AccountManagerGranted | AccountEventKind::AccountManagerRevoked => {
            payload["role"] = json!(roles::ACCOUNT_MANAGER);
            payload["roles"] = json!(roles_of(conn, user_id)?);
        }
        AccountEventKind::IpsChanged => payload["ips"] = json!(ips_of(conn, user_id)?),
        AccountEventKind::Activated => {
            let grants: Vec<(String, String)> = user_grants::table
                .filter(user_grants::user_id.eq(user_id))
                .order((user_grants::query_type, user_grants::purpose_code))
                .select((user_grants::query_type, user_grants::purpose_code))
                .load(conn)?;
            payload["roles"] = json!(roles_of(conn, user_id)?);
            payload["ips"] = json!(ips_of(conn, user_id)?);
            payload["grants"] = json!(grants
                .into_iter()
                .map(|(query_type, purpose_code)| Grant { query_type, purpose_code })
                .collect::<Vec<_>>());
        }
        _ => {}
    }
    for (key, value) in details {
        payload[key] = value;
    }
    let about = audit::About { actor: actor_id, agency: Some(&agency_code), correlation_id: Some(user_id.as_str()) };
    audit::record(conn, now, kind.audit_kind(), about, payload)?;
    diesel::insert_into(account_events::table)
        .values((
            account_events::id.eq(new_id()),
            account_events::user_id.eq(user_id),
            account_events::agency_id.eq(agency_id),
            account_events::kind.eq(kind),
            account_events::reason.eq(reason),
            account_events::actor_id.eq(actor_id),
            account_events::effective_date.eq(business_date(now)),
            account_events::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ends every live session of an account at once (R-ACC-05, R-ACC-09, R-ACC-10, R-VEN-06), each
/// with its audit event; `by` is the manager who forced it (`None`: another system's message, such
/// as the vendors service's offboarding). Returns how many.
pub fn end_all_sessions(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    reason: SessionEndReason,
    by: Option<&UserId>,
) -> Result<usize, IdentityError> {
    sessions::close(conn, now, Ending::AllOf(user_id), reason, by)
}

/// Moves an account from `from` (as read in this transaction) to `to`, if [`AccountStatus::transition`]
/// allows it: the only status write of an existing account.
pub(super) fn set_status(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    from: AccountStatus,
    to: AccountStatus,
    reason: &str,
) -> Result<(), IdentityError> {
    let to = from.transition(to)?;
    diesel::update(users::table.filter(users::id.eq(user_id)))
        .set((users::status.eq(to), users::status_reason.eq(reason), users::status_changed_at.eq(to_db(now))))
        .execute(conn)?;
    Ok(())
}

/// Tells the account holder, when they left an e-mail address.
pub fn notify_holder(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    subject: &str,
    body: &str,
) -> Result<(), IdentityError> {
    let email: Option<String> = users::table.filter(users::id.eq(user_id)).select(users::email).first(conn)?;
    if let Some(email) = email {
        notifications::enqueue(conn, now, &email, subject, body)?;
    }
    Ok(())
}

/// Tells every active account manager of an agency (one message each, in one insert).
pub fn notify_managers(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    agency_id: &AgencyId,
    subject: &str,
    body: &str,
) -> Result<(), IdentityError> {
    let emails: Vec<Option<String>> = users::table
        .inner_join(user_roles::table)
        .filter(users::agency_id.eq(agency_id))
        .filter(users::status.eq(AccountStatus::Active))
        .filter(user_roles::role.eq(roles::ACCOUNT_MANAGER))
        .select(users::email)
        .load(conn)?;
    let recipients: Vec<String> = emails.into_iter().flatten().collect();
    notifications::enqueue_to_all(conn, now, &recipients, subject, body)
}

fn active_managers(conn: &mut DbConn, agency_id: &AgencyId) -> Result<Vec<UserId>, IdentityError> {
    Ok(users::table
        .inner_join(user_roles::table)
        .filter(users::agency_id.eq(agency_id))
        .filter(users::status.eq(AccountStatus::Active))
        .filter(user_roles::role.eq(roles::ACCOUNT_MANAGER))
        .select(users::id)
        .load(conn)?)
}

/// R-ACC-06: an agency always keeps an active account manager. Taking the last one out of service
/// needs a handover first.
pub(super) fn ensure_not_last_manager(
    conn: &mut DbConn,
    agency_id: &AgencyId,
    user_id: &UserId,
) -> Result<(), IdentityError> {
    let managers = active_managers(conn, agency_id)?;
    if managers.len() == 1 && managers[0] == *user_id {
        return Err(IdentityError::LastAccountManager);
    }
    Ok(())
}

pub(super) fn require_reason(reason: &str) -> Result<(), IdentityError> {
    if reason.trim().is_empty() {
        return Err(IdentityError::invalid("reason", "a reason is required"));
    }
    Ok(())
}

/// R-ACC-05: resignation, leave, suspension or transfer cancels the account today and ends its
/// sessions at once. Filed by an account manager of the same agency.
pub fn record_hr_event(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    event: HrEvent,
    reason: &str,
) -> Result<Account, IdentityError> {
    actor.require_any(&[roles::ACCOUNT_MANAGER])?;
    require_reason(reason)?;
    conn.write_transaction(|conn| {
        let (status, _) = lock_account_in_agency(conn, actor, user_id)?;
        // Only an active account can be the last manager, and only a closed one is refused below:
        // the two refusals never meet.
        ensure_not_last_manager(conn, &actor.agency_id, user_id)?;
        let kind = event.event_kind();
        set_status(conn, now, user_id, status, AccountStatus::Cancelled, kind.as_str())?;
        let ended = end_all_sessions(conn, now, user_id, SessionEndReason::AccountCancelled, Some(&actor.user_id))?;
        record_event(conn, now, user_id, kind, reason, Some(&actor.user_id))?;
        notify_holder(
            conn,
            now,
            user_id,
            "帳號已註銷 Account cancelled",
            &format!("Your account was cancelled ({kind}): {reason}"),
        )?;
        tracing::info!(user_id = %user_id, event = kind.as_str(), ended, "account cancelled");
        Ok::<(), IdentityError>(())
    })?;
    account(conn, user_id)
}

/// R-ACC-09: a lost citizen certificate terminates the account at once. The holder may report it
/// themselves; so may an account manager of the agency. Termination is never held back, not even
/// for the last account manager (a warning is logged; appointing a new one is the agency head's handover).
pub fn report_certificate_lost(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    reason: &str,
) -> Result<Account, IdentityError> {
    let own = actor.user_id == *user_id;
    if !own {
        actor.require_any(&[roles::ACCOUNT_MANAGER])?;
    }
    let reason = if reason.trim().is_empty() { "certificate reported lost" } else { reason };
    conn.write_transaction(|conn| {
        let (status, _) = if own {
            diesel::update(users::table.filter(users::id.eq(user_id)))
                .set(users::status.eq(users::status))
                .execute(conn)?;
            users::table.filter(users::id.eq(user_id)).select((users::status, users::display_name)).first::<(
                AccountStatus,
                String,
            )>(
                conn
            )?
        } else {
            lock_account_in_agency(conn, actor, user_id)?
        };
        // Reporting it again changes nothing.
        if status == AccountStatus::Terminated {
            return Ok::<(), IdentityError>(());
        }
        let was_last_manager = ensure_not_last_manager(conn, &actor.agency_id, user_id).is_err();
        let lost = AccountEventKind::CertificateLost;
        set_status(conn, now, user_id, status, AccountStatus::Terminated, lost.as_str())?;
        end_all_sessions(conn, now, user_id, SessionEndReason::CertificateLost, Some(&actor.user_id))?;
        record_event(conn, now, user_id, lost, reason, Some(&actor.user_id))?;
        notify_holder(
            conn,
            now,
            user_id,
            "帳號已終止 Account terminated",
            "Your account was terminated because its certificate was reported lost.",
        )?;
        if was_last_manager {
            tracing::warn!(agency = %actor.agency_code, "the agency's last account manager was terminated");
        }
        Ok(())
    })?;
    account(conn, user_id)
}

/// R-ACC-07: the manager suspends an account (e.g. after a lending flag); its sessions end at once.
pub fn suspend(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    reason: &str,
) -> Result<Account, IdentityError> {
    actor.require_any(&[roles::ACCOUNT_MANAGER])?;
    require_reason(reason)?;
    if actor.user_id == *user_id {
        return Err(IdentityError::OwnAccount { action: "suspend" });
    }
    conn.write_transaction(|conn| {
        let (status, _) = lock_account_in_agency(conn, actor, user_id)?;
        // As for HR events: only an active account can be the last manager.
        ensure_not_last_manager(conn, &actor.agency_id, user_id)?;
        set_status(conn, now, user_id, status, AccountStatus::Suspended, reason)?;
        end_all_sessions(conn, now, user_id, SessionEndReason::AccountSuspended, Some(&actor.user_id))?;
        record_event(conn, now, user_id, AccountEventKind::Suspended, reason, Some(&actor.user_id))?;
        notify_holder(
            conn,
            now,
            user_id,
            "帳號已停用 Account suspended",
            &format!("Your account was suspended: {reason}"),
        )
    })?;
    account(conn, user_id)
}

/// Reinstates a suspended account. Cancelled and terminated accounts stay closed: a new
/// application is needed.
pub fn reinstate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    reason: &str,
) -> Result<Account, IdentityError> {
    actor.require_any(&[roles::ACCOUNT_MANAGER])?;
    require_reason(reason)?;
    if actor.user_id == *user_id {
        return Err(IdentityError::OwnAccount { action: "reinstate" });
    }
    conn.write_transaction(|conn| {
        let (status, _) = lock_account_in_agency(conn, actor, user_id)?;
        set_status(conn, now, user_id, status, AccountStatus::Active, reason)?;
        diesel::update(users::table.filter(users::id.eq(user_id)))
            .set((users::failed_logins.eq(0), users::locked_until.eq(None::<NaiveDateTime>)))
            .execute(conn)?;
        record_event(conn, now, user_id, AccountEventKind::Reinstated, reason, Some(&actor.user_id))?;
        notify_holder(
            conn,
            now,
            user_id,
            "帳號已恢復 Account reinstated",
            &format!("Your account was reinstated: {reason}"),
        )
    })?;
    account(conn, user_id)
}

/// R-ACC-11: IP bindings change only through the account manager (or the IT unit). Sessions from
/// an address that is no longer registered end at once.
pub fn set_ips(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    ips: &RegisteredIps,
    reason: &str,
) -> Result<Account, IdentityError> {
    actor.require_any(&[roles::ACCOUNT_MANAGER, roles::IT_OFFICER])?;
    require_reason(reason)?;
    let wanted: BTreeSet<String> = ips.as_slice().iter().map(IpAddr::to_string).collect();
    conn.write_transaction(|conn| {
        account_in_agency(conn, actor, user_id)?;
        diesel::delete(user_ips::table.filter(user_ips::user_id.eq(user_id))).execute(conn)?;
        let rows: Vec<_> = wanted.iter().map(|ip| (user_ips::user_id.eq(user_id), user_ips::ip.eq(ip))).collect();
        immilink_shared::insert_rows!(conn, user_ips::table, &rows);
        let wanted: Vec<String> = wanted.iter().cloned().collect();
        let ending = Ending::AllOfExceptFrom(user_id, &wanted);
        sessions::close(conn, now, ending, SessionEndReason::IpUnregistered, Some(&actor.user_id))?;
        let listed = wanted.join(", ");
        let reason = format!("{reason} [{listed}]");
        record_event(conn, now, user_id, AccountEventKind::IpsChanged, &reason, Some(&actor.user_id))
    })?;
    account(conn, user_id)
}

/// R-ACC-06: hands the account-manager role from one person to another in one step, so the agency
/// is never without one. Done by the outgoing manager or the agency head.
pub fn hand_over_manager(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    from_user_id: &UserId,
    to_user_id: &UserId,
    reason: &str,
) -> Result<Account, IdentityError> {
    require_reason(reason)?;
    let outgoing_self = actor.user_id == *from_user_id && actor.has(roles::ACCOUNT_MANAGER);
    if !outgoing_self && !actor.has(roles::AGENCY_HEAD) {
        return Err(IdentityError::HandoverNotPermitted);
    }
    if from_user_id == to_user_id {
        return Err(IdentityError::invalid("to_user_id", "the new manager must be another person"));
    }
    conn.write_transaction(|conn| {
        account_in_agency(conn, actor, from_user_id)?;
        let (to_status, _) = account_in_agency(conn, actor, to_user_id)
            .map_err(|_| IdentityError::invalid("to_user_id", "no account with this id in your agency"))?;
        if to_status != AccountStatus::Active {
            return Err(IdentityError::invalid("to_user_id", "the new manager's account is not active"));
        }
        let from_roles = roles_of(conn, from_user_id)?;
        if !from_roles.iter().any(|r| r == roles::ACCOUNT_MANAGER) {
            return Err(IdentityError::invalid("from_user_id", "this account is not an account manager"));
        }
        let to_roles = roles_of(conn, to_user_id)?;
        // R-VEN-08: a vendor_staff account takes no other role.
        let after: BTreeSet<&str> = to_roles.iter().map(String::as_str).chain([roles::ACCOUNT_MANAGER]).collect();
        let after: Vec<&str> = after.into_iter().collect();
        contractors::check_account(ContractorStatus::NotPersonnel, &after, grant_count(conn, to_user_id)?)
            .map_err(|_| IdentityError::VendorStaffAccount { field: "to_user_id" })?;
        if !to_roles.iter().any(|r| r == roles::ACCOUNT_MANAGER) {
            diesel::insert_into(user_roles::table)
                .values((user_roles::user_id.eq(to_user_id), user_roles::role.eq(roles::ACCOUNT_MANAGER)))
                .execute(conn)?;
        }
        diesel::delete(
            user_roles::table
                .filter(user_roles::user_id.eq(from_user_id))
                .filter(user_roles::role.eq(roles::ACCOUNT_MANAGER)),
        )
        .execute(conn)?;
        // Tokens carry roles: the outgoing manager's sessions end so the old role is not used on.
        end_all_sessions(conn, now, from_user_id, SessionEndReason::RolesChanged, Some(&actor.user_id))?;
        let by = Some(&actor.user_id);
        record_event(conn, now, from_user_id, AccountEventKind::AccountManagerRevoked, reason, by)?;
        record_event(conn, now, to_user_id, AccountEventKind::AccountManagerGranted, reason, by)?;
        notify_holder(conn, now, to_user_id, "您已成為帳號管理者 You are now an account manager", reason)?;
        Ok(())
    })?;
    account(conn, to_user_id)
}

/// Whether the unit belongs to the agency (used to validate applications).
pub fn unit_in_agency(conn: &mut DbConn, agency_id: &AgencyId, unit_id: &UnitId) -> Result<bool, IdentityError> {
    let count: i64 =
        units::table.filter(units::id.eq(unit_id)).filter(units::agency_id.eq(agency_id)).count().get_result(conn)?;
    Ok(count > 0)
}

/// The account-lending flags of an agency (R-ACC-07), newest first, for its managers, one page at
/// a time (the cursor is the last flag's id).
pub fn lending_flags(conn: &mut DbConn, actor: &Actor, page: &Page) -> Result<Vec<AccountEvent>, IdentityError> {
    actor.require_any(READERS)?;
    let mut query = account_events::table
        .filter(account_events::agency_id.eq(actor.agency_id.clone()))
        .filter(account_events::kind.eq(AccountEventKind::PossibleAccountLending))
        .into_boxed();
    if let Some(before) = &page.cursor {
        query = query.filter(account_events::id.lt(before.clone()));
    }
    Ok(query
        .order(account_events::id.desc())
        .limit(page.limit)
        .select((
            account_events::id,
            account_events::kind,
            account_events::reason,
            account_events::actor_id,
            account_events::effective_date,
            account_events::created_at,
        ))
        .load(conn)?)
}

/// An agency and its units, as applicants choose them (public organisational data).
#[derive(Debug, Clone)]
pub struct AgencyEntry {
    pub code: AgencyCode,
    pub name: String,
    /// `social_welfare`, `household_registration` or `immigration_agency`.
    pub kind: String,
    /// Whether the agency head approves accounts too (R-ACC-02).
    pub requires_head_approval: bool,
    pub units: Vec<UnitRef>,
}

/// The agencies by code, with their units by name, one page at a time (the cursor is the last
/// agency's code), in two queries.
pub fn directory(conn: &mut DbConn, page: &Page) -> Result<Vec<AgencyEntry>, IdentityError> {
    let mut query = agencies::table.into_boxed();
    if let Some(after) = &page.cursor {
        query = query.filter(agencies::code.gt(after.clone()));
    }
    let rows: Vec<(AgencyId, AgencyCode, String, String, bool)> = query
        .order(agencies::code.asc())
        .limit(page.limit)
        .select((agencies::id, agencies::code, agencies::name, agencies::kind, agencies::requires_head_approval))
        .load(conn)?;
    let ids: Vec<&AgencyId> = rows.iter().map(|row| &row.0).collect();
    let mut units = group(
        units::table
            .filter(units::agency_id.eq_any(ids))
            .order((units::agency_id, units::name.asc()))
            .select((units::agency_id, (units::id, units::name)))
            .load::<(AgencyId, (UnitId, String))>(conn)?,
    );
    Ok(rows
        .into_iter()
        .map(|(id, code, name, kind, requires_head_approval)| AgencyEntry {
            code,
            name,
            kind,
            requires_head_approval,
            units: units.remove(&id).unwrap_or_default().into_iter().map(|(id, name)| UnitRef { id, name }).collect(),
        })
        .collect())
}

/// Who a user is, as another service needs to know it (the broker checks the grantee of a proxy
/// authorization, and a bulk job's submitter before each round): agency code, unit, status, roles
/// and what they may look up now (link items ∩ grants, R-QRY-02).
#[derive(Debug, Clone, PartialEq)]
pub struct UserSummary {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub agency: AgencyCode,
    pub unit: Option<UnitId>,
    pub status: AccountStatus,
    pub roles: Vec<String>,
    pub permissions: Vec<Permission>,
    /// The agency's link now (why lookups are refused, if they are).
    pub link: permissions::LinkRights,
}

/// `None` for an unknown id.
pub fn summary(conn: &mut DbConn, now: DateTime<Utc>, user_id: &UserId) -> Result<Option<UserSummary>, IdentityError> {
    type Row = (String, String, AgencyId, AgencyCode, Option<UnitId>, AccountStatus);
    let row: Option<Row> = users::table
        .inner_join(agencies::table.on(agencies::id.eq(users::agency_id)))
        .filter(users::id.eq(user_id))
        .select((users::username, users::display_name, agencies::id, agencies::code, users::unit_id, users::status))
        .first(conn)
        .optional()?;
    let Some((username, display_name, agency_id, agency, unit, status)) = row else {
        return Ok(None);
    };
    let roles = user_roles::table.filter(user_roles::user_id.eq(user_id)).select(user_roles::role).load(conn)?;
    let (permissions, link, _) = permissions::lookup_rights(conn, now, user_id, &agency_id)?;
    Ok(Some(UserSummary {
        user_id: user_id.clone(),
        username,
        display_name,
        agency,
        unit,
        status,
        roles,
        permissions,
        link,
    }))
}

#[cfg(test)]
mod tests {
    use super::AccountStatus::{self, *};
    use super::IdentityError;

    /// Every (from, to) pair: the legal moves succeed, every other is refused with the reason its
    /// target gives.
    #[test]
    fn account_status_transitions() {
        let legal = [
            (Active, Suspended),
            (Suspended, Active),
            (Active, Cancelled),
            (Suspended, Cancelled),
            (Active, Terminated),
            (Suspended, Terminated),
            (Cancelled, Terminated),
        ];
        for &from in AccountStatus::ALL {
            for &to in AccountStatus::ALL {
                let moved = from.transition(to);
                if legal.contains(&(from, to)) {
                    assert_eq!(moved.ok(), Some(to), "{from} → {to}");
                    continue;
                }
                let refused = match (to, moved) {
                    (Suspended, Err(IdentityError::NotActive { status })) => status,
                    (Active, Err(IdentityError::NotSuspended { status })) => status,
                    (Cancelled | Terminated, Err(IdentityError::AccountClosed { status })) => status,
                    (_, other) => panic!("{from} → {to}: {other:?}"),
                };
                assert_eq!(refused, from, "{from} → {to} names the status it found");
            }
        }
    }

    #[test]
    fn cancelled_and_terminated_accounts_are_closed() {
        let open: Vec<_> = AccountStatus::ALL.iter().filter(|s| s.is_open()).collect();
        assert_eq!(open, [&Active, &Suspended]);
    }
}
