//! Contractor personnel and their accounts (seed 001 pt 8, seed 003 pt 8): R-VEN-06, R-VEN-08 and
//! R-ACC-08 on identity's side.
//!
//! - [`check_account`] is THE rule of what account contractor personnel may hold: only the
//!   `vendor_staff` role, without any lookup grant (R-ACC-08, R-VEN-08). Applications, the
//!   account an approval creates and the account-manager handover all ask it.
//! - The vendors service reports its personnel through its outbox (`POST
//!   /internal/v1/personnel-events`, at least once, oldest first). [`receive`] takes each message
//!   once, by its id, in the transaction that applies it:
//!   - `offboarded` (a departure, a role change or the contract's end, R-VEN-06): every account of
//!     the person, in any agency, is cancelled and its sessions end at once;
//!   - `registered` (the person became active contractor personnel of any agency, R-VEN-08): every
//!     open account of the person holding lookup grants has them suspended. Its lookups are refused
//!     ([`standing`], read by `permissions::lookup_rights`) until the account's manager resolves
//!     the conflict ([`resolve`]); the account can still log in.
//!
//! National IDs are compared, never logged, never put in an error, an audit event or a message.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::clock::to_db;
use immilink_shared::db::{DbConn, DbError};
use immilink_shared::ids::SubjectId;
use immilink_shared::text_enum;
use serde_json::{json, Map, Value};

use super::accounts::{self, Account, AccountEventKind, AccountStatus, Actor};
use super::links::LinkRefusal;
use super::sessions::SessionEndReason;
use super::{fields, AgencyCode, AgencyId, IdentityError, UserId};
use crate::schema::{personnel_messages, user_grants, user_roles, users};

/// The rule a refusal of a contractor conflict names.
pub const RULE: &str = "R-VEN-08";
/// The refusal code of a caller whose grants are suspended for a contractor conflict.
pub const CONFLICT_CODE: &str = "contractor_conflict";

/// What the vendors service answered about a person (R-ACC-08): active contractor personnel of any
/// agency, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractorStatus {
    ActivePersonnel,
    NotPersonnel,
}

impl ContractorStatus {
    /// From `VendorsClient::is_vendor_personnel`'s answer.
    pub fn from_answer(active_personnel: bool) -> Self {
        match active_personnel {
            true => ContractorStatus::ActivePersonnel,
            false => ContractorStatus::NotPersonnel,
        }
    }
}

/// THE rule of what account contractor personnel may hold (R-ACC-08, R-VEN-08): "vendor personnel
/// may hold an immilink account only in a vendor role without any lookup permission". An account
/// of active contractor personnel, or any `vendor_staff` account, has exactly the roles
/// `[vendor_staff]` and no lookup grant. `roles` and `grants` are what the account would hold.
///
/// Refused: contractor personnel in any other role (R-ACC-08, as before this rule allowed the vendor
/// role); a `vendor_staff` account with another role (`roles`) or with grants (`grants`).
pub fn check_account(personnel: ContractorStatus, roles: &[&str], grants: usize) -> Result<(), IdentityError> {
    let vendor_staff = roles.contains(&roles::VENDOR_STAFF);
    if personnel == ContractorStatus::ActivePersonnel && !vendor_staff {
        return Err(IdentityError::ContractorApplicant);
    }
    if !vendor_staff {
        return Ok(());
    }
    if roles.iter().any(|role| *role != roles::VENDOR_STAFF) {
        return Err(IdentityError::VendorStaffAccount { field: "roles" });
    }
    if grants > 0 {
        return Err(IdentityError::VendorStaffAccount { field: "grants" });
    }
    Ok(())
}

/// Where a user's own lookups stand, apart from their agency's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnStanding {
    /// The user's grants count.
    Clear,
    /// A `vendor_staff` account: no grant counts, whatever is stored (R-VEN-08).
    VendorStaff,
    /// The grants are suspended for a contractor conflict: this refusal, naming R-VEN-08.
    Suspended(LinkRefusal),
}

/// Whether the user's own standing lets their grants count (R-VEN-08).
pub fn standing(conn: &mut DbConn, user_id: &UserId) -> Result<OwnStanding, IdentityError> {
    let suspended: Option<(Option<NaiveDateTime>, Option<String>)> = users::table
        .filter(users::id.eq(user_id))
        .select((users::grants_suspended_at, users::grants_suspended_reason))
        .first(conn)
        .optional()?;
    if let Some((Some(since), reason)) = suspended {
        let detail = format!(
            "this account's lookup grants are suspended since {}: {}; its lookups are refused until an \
             account manager resolves the contractor conflict",
            since.format("%Y-%m-%d %H:%M UTC"),
            reason.as_deref().unwrap_or("its holder was registered as contractor personnel"),
        );
        return Ok(OwnStanding::Suspended(LinkRefusal { rule: RULE, code: CONFLICT_CODE, detail }));
    }
    let vendor_staff: i64 = user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .filter(user_roles::role.eq(roles::VENDOR_STAFF))
        .count()
        .get_result(conn)?;
    Ok(if vendor_staff > 0 { OwnStanding::VendorStaff } else { OwnStanding::Clear })
}

text_enum! {
    /// What the vendors service reports of a person.
    pub enum PersonnelEventKind {
        /// They left the contract's staff, changed role on it, or the contract ended (R-VEN-06).
        Offboarded = "offboarded",
        /// They became active contractor personnel, of any agency (R-VEN-08).
        Registered = "registered",
    }
}

text_enum! {
    /// Why: an offboarding's cause, or `registered`.
    pub enum PersonnelReason {
        Departure = "departure",
        RoleChange = "role_change",
        ContractEnd = "contract_end",
        Registered = "registered",
    }
}

impl PersonnelReason {
    /// Whether the reason belongs to the kind of message.
    fn fits(self, kind: PersonnelEventKind) -> bool {
        use PersonnelReason::*;
        match kind {
            PersonnelEventKind::Offboarded => matches!(self, Departure | RoleChange | ContractEnd),
            PersonnelEventKind::Registered => self == Registered,
        }
    }
}

/// A personnel message as the vendors service sent it, before any rule was applied.
#[derive(Default)]
pub struct PersonnelEventForm {
    pub id: Option<String>,
    pub kind: Option<String>,
    pub national_id: Option<String>,
    pub agency: Option<String>,
    pub vendor_id: Option<String>,
    pub person_id: Option<String>,
    pub reason: Option<String>,
}

/// A checked personnel message. Its `Debug` leaves the national ID out.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonnelEvent {
    pub id: uuid::Uuid,
    pub kind: PersonnelEventKind,
    national_id: String,
    /// The agency whose vendor reported it.
    pub agency: AgencyCode,
    pub vendor_id: String,
    pub person_id: String,
    pub reason: PersonnelReason,
}

impl std::fmt::Debug for PersonnelEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersonnelEvent")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("national_id", &"<withheld>")
            .field("agency", &self.agency)
            .field("vendor_id", &self.vendor_id)
            .field("person_id", &self.person_id)
            .field("reason", &self.reason)
            .finish()
    }
}

impl PersonnelEvent {
    /// Checks a message as delivered, naming the field that is wrong. The national ID goes through
    /// the parser applications use, so it compares equal to the stored one.
    pub fn parse(form: PersonnelEventForm) -> Result<Self, IdentityError> {
        let id = fields::text(form.id, "id", 64)?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| IdentityError::invalid("id", "must be a UUID"))?;
        let kind: PersonnelEventKind = fields::text(form.kind, "kind", 32)?
            .parse()
            .map_err(|_| IdentityError::invalid("kind", "must be `offboarded` or `registered`"))?;
        let national_id = fields::text(form.national_id, "national_id", 20)?;
        let national_id = SubjectId::parse_resident(&national_id)
            .map_err(|err| IdentityError::invalid("national_id", err.to_string()))?
            .as_str()
            .to_owned();
        let reason: PersonnelReason = fields::text(form.reason, "reason", 32)?.parse().map_err(|_| {
            IdentityError::invalid("reason", "must be `departure`, `role_change`, `contract_end` or `registered`")
        })?;
        if !reason.fits(kind) {
            return Err(IdentityError::invalid("reason", format!("`{reason}` is not a reason of a `{kind}` message")));
        }
        Ok(Self {
            id,
            kind,
            national_id,
            agency: AgencyCode::new(fields::text(form.agency, "agency", 32)?),
            vendor_id: fields::text(form.vendor_id, "vendor_id", 64)?,
            person_id: fields::text(form.person_id, "person_id", 64)?,
            reason,
        })
    }

    /// What the audit events of the message's changes carry about it (no national ID).
    fn details(&self) -> Map<String, Value> {
        let mut details = Map::new();
        details.insert("personnel_message_id".into(), json!(self.id.to_string()));
        details.insert("personnel_reason".into(), json!(self.reason));
        details.insert("vendor_agency".into(), json!(self.agency));
        details.insert("vendor_id".into(), json!(self.vendor_id));
        details.insert("person_id".into(), json!(self.person_id));
        details
    }
}

/// What became of a personnel message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Applied now: this many accounts were cancelled (offboarded) or had their grants suspended
    /// (registered).
    Applied { accounts: usize },
    /// The message was taken before: nothing changed.
    Duplicate,
}

/// Why a message's transaction did not commit.
enum Taken {
    Duplicate,
    Failed(IdentityError),
}

impl From<IdentityError> for Taken {
    fn from(err: IdentityError) -> Self {
        Taken::Failed(err)
    }
}

impl From<diesel::result::Error> for Taken {
    fn from(err: diesel::result::Error) -> Self {
        Taken::Failed(err.into())
    }
}

/// Applies a personnel message once: its id row and every change it makes commit together, and a
/// redelivered id changes nothing. Its row goes in first, so a second delivery of the same message
/// at the same moment waits for the first (PostgreSQL's unique index; SQLite's write lock) and is
/// then a duplicate.
pub fn receive(conn: &mut DbConn, now: DateTime<Utc>, event: &PersonnelEvent) -> Result<Receipt, IdentityError> {
    let applied = conn.write_transaction(|conn| {
        let id = event.id.to_string();
        diesel::insert_into(personnel_messages::table)
            .values((
                personnel_messages::id.eq(&id),
                personnel_messages::kind.eq(event.kind.as_str()),
                personnel_messages::accounts.eq(0),
                personnel_messages::received_at.eq(to_db(now)),
            ))
            .execute(conn)
            .map_err(|err| match DbError::Query(err) {
                e if e.is_unique_violation() => Taken::Duplicate,
                e => Taken::Failed(IdentityError::Db(e)),
            })?;
        let accounts = match event.kind {
            PersonnelEventKind::Offboarded => offboard(conn, now, event)?,
            PersonnelEventKind::Registered => suspend_grants(conn, now, event)?,
        };
        diesel::update(personnel_messages::table.filter(personnel_messages::id.eq(&id)))
            .set(personnel_messages::accounts.eq(i32::try_from(accounts).unwrap_or(i32::MAX)))
            .execute(conn)?;
        Ok::<_, Taken>(accounts)
    });
    match applied {
        Ok(accounts) => Ok(Receipt::Applied { accounts }),
        Err(Taken::Duplicate) => Ok(Receipt::Duplicate),
        Err(Taken::Failed(err)) => Err(err),
    }
}

/// The person's accounts, locked first (PostgreSQL row locks; SQLite's write transaction holds the
/// database already), so a manager acting on one of them at the same moment is judged after.
fn accounts_of_person(
    conn: &mut DbConn,
    national_id: &str,
) -> Result<Vec<(UserId, AgencyId, String, AccountStatus)>, IdentityError> {
    diesel::update(users::table.filter(users::national_id.eq(national_id)))
        .set(users::status.eq(users::status))
        .execute(conn)?;
    Ok(users::table
        .filter(users::national_id.eq(national_id))
        .order(users::id.asc())
        .select((users::id, users::agency_id, users::username, users::status))
        .load(conn)?)
}

fn reason_text(event: &PersonnelEvent) -> String {
    format!(
        "contractor personnel {} ({}): vendor {} of {}, person {}",
        match event.kind {
            PersonnelEventKind::Offboarded => "offboarded",
            PersonnelEventKind::Registered => "registered",
        },
        event.reason,
        event.vendor_id,
        event.agency,
        event.person_id
    )
}

/// R-VEN-06: cancels every open account of the person, in any agency, through the account
/// lifecycle: status, all sessions ended, the account event with its audit event, and a notice to
/// the account's agency managers. Cancelled and terminated accounts are left as they are. Never
/// held back, not even for an agency's last account manager (logged).
fn offboard(conn: &mut DbConn, now: DateTime<Utc>, event: &PersonnelEvent) -> Result<usize, IdentityError> {
    let reason = reason_text(event);
    let kind = AccountEventKind::ContractorOffboarded;
    let mut cancelled = 0;
    for (user_id, agency_id, username, status) in accounts_of_person(conn, &event.national_id)? {
        if !status.is_open() {
            continue;
        }
        let was_last_manager = accounts::ensure_not_last_manager(conn, &agency_id, &user_id).is_err();
        accounts::set_status(conn, now, &user_id, status, AccountStatus::Cancelled, kind.as_str())?;
        let ended = accounts::end_all_sessions(conn, now, &user_id, SessionEndReason::ContractorOffboarded, None)?;
        accounts::record_event_with(conn, now, &user_id, kind, &reason, None, event.details())?;
        accounts::notify_managers(
            conn,
            now,
            &agency_id,
            "委外人員帳號已註銷 Contractor's account cancelled",
            &format!(
                "The account {username} was cancelled and its sessions ended: its holder is no longer on a \
                 contractor's staff ({}, reported by {}'s vendor records), R-VEN-06.",
                event.reason, event.agency
            ),
        )?;
        if was_last_manager {
            tracing::warn!(user_id = %user_id, "an agency's last account manager was offboarded as contractor personnel");
        }
        tracing::info!(user_id = %user_id, ended, reason = %event.reason, "account cancelled: contractor offboarded");
        cancelled += 1;
    }
    Ok(cancelled)
}

/// R-VEN-08 after the fact: suspends the lookup grants of every open account of the person that
/// holds any (an account suspended by its manager too: reinstating it must not bring lookups back),
/// with the account event, its audit event and a notice to the agency's managers and the holder.
/// An account already suspended for a conflict is left as it is. Sessions stay: the account can
/// still log in, only its lookups are refused.
fn suspend_grants(conn: &mut DbConn, now: DateTime<Utc>, event: &PersonnelEvent) -> Result<usize, IdentityError> {
    let reason = reason_text(event);
    let kind = AccountEventKind::GrantsSuspended;
    let accounts = accounts_of_person(conn, &event.national_id)?;
    let open: Vec<&UserId> = accounts.iter().filter(|a| a.3.is_open()).map(|a| &a.0).collect();
    let holding: Vec<UserId> = user_grants::table
        .filter(user_grants::user_id.eq_any(open))
        .select(user_grants::user_id)
        .distinct()
        .load(conn)?;
    let already: Vec<UserId> = users::table
        .filter(users::id.eq_any(&holding))
        .filter(users::grants_suspended_at.is_not_null())
        .select(users::id)
        .load(conn)?;
    let mut suspended = 0;
    for (user_id, agency_id, username, _) in accounts.iter().filter(|a| holding.contains(&a.0)) {
        if already.contains(user_id) {
            continue;
        }
        diesel::update(users::table.filter(users::id.eq(user_id)))
            .set((users::grants_suspended_at.eq(to_db(now)), users::grants_suspended_reason.eq(&reason)))
            .execute(conn)?;
        let mut details = event.details();
        details.insert("grants".into(), json!(accounts::grant_count(conn, user_id)?));
        accounts::record_event_with(conn, now, user_id, kind, &reason, None, details)?;
        let body = format!(
            "The account {username} holds lookup grants and its holder was registered as contractor personnel \
             (by {}'s vendor records). Its lookups are refused until an account manager resolves the conflict \
             (R-VEN-08): revoke its grants, or confirm the holder is not contractor personnel.",
            event.agency
        );
        accounts::notify_managers(conn, now, agency_id, "查詢權限已暫停 Lookup grants suspended", &body)?;
        accounts::notify_holder(conn, now, user_id, "查詢權限已暫停 Lookup grants suspended", &body)?;
        suspended += 1;
    }
    Ok(suspended)
}

text_enum! {
    /// How an account manager resolves a contractor conflict (R-VEN-08).
    pub enum ConflictDecision {
        /// The holder is contractor personnel: the account's lookup grants are deleted.
        RevokeGrants = "revoke_grants",
        /// The holder is not (or no longer) contractor personnel: the grants count again, once the
        /// vendors service confirms it.
        NotContractor = "not_contractor",
    }
}

/// A decision with what it needs: for `not_contractor`, the vendors service's answer now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    RevokeGrants,
    NotContractor(ContractorStatus),
}

/// An account's open contractor conflict, as its manager resolves it. Its `Debug` leaves the
/// national ID out.
#[derive(Clone)]
pub struct Conflict {
    pub user_id: UserId,
    national_id: String,
}

impl std::fmt::Debug for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conflict").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

impl Conflict {
    /// The holder's national ID, for the vendors service's check only.
    pub fn national_id(&self) -> &str {
        &self.national_id
    }
}

/// Who may resolve: an account manager of the account's agency, not for their own account
/// (R-ACC-04). Another agency's account is "not found".
fn may_resolve(actor: &Actor, user_id: &UserId) -> Result<(), IdentityError> {
    actor.require_any(&[roles::ACCOUNT_MANAGER])?;
    if actor.user_id == *user_id {
        return Err(IdentityError::OwnAccount { action: "resolve the contractor conflict of" });
    }
    Ok(())
}

/// The open conflict of an account of the actor's agency (before the vendors service is asked).
pub fn conflict(conn: &mut DbConn, actor: &Actor, user_id: &UserId) -> Result<Conflict, IdentityError> {
    may_resolve(actor, user_id)?;
    let row: Option<(Option<NaiveDateTime>, Option<String>)> = users::table
        .filter(users::id.eq(user_id))
        .filter(users::agency_id.eq(&actor.agency_id))
        .select((users::grants_suspended_at, users::national_id))
        .first(conn)
        .optional()?;
    match row {
        None => Err(IdentityError::NotFound("the account")),
        Some((None, _)) => Err(IdentityError::NoContractorConflict),
        Some((Some(_), national_id)) => {
            Ok(Conflict { user_id: user_id.clone(), national_id: national_id.unwrap_or_default() })
        }
    }
}

/// Resolves an account's contractor conflict (R-VEN-08), by an account manager of its agency:
/// `revoke_grants` deletes its grants and lifts the suspension; `not_contractor` lifts it only when
/// the vendors service no longer lists the holder as active personnel. The account event, its audit
/// event and a notice to the holder commit with it.
pub fn resolve(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    user_id: &UserId,
    resolution: Resolution,
    reason: &str,
) -> Result<Account, IdentityError> {
    may_resolve(actor, user_id)?;
    accounts::require_reason(reason)?;
    conn.write_transaction(|conn| {
        accounts::lock_account_in_agency(conn, actor, user_id)?;
        let suspended: Option<NaiveDateTime> =
            users::table.filter(users::id.eq(user_id)).select(users::grants_suspended_at).first(conn)?;
        if suspended.is_none() {
            return Err(IdentityError::NoContractorConflict);
        }
        let (decision, revoked) = match resolution {
            Resolution::NotContractor(ContractorStatus::ActivePersonnel) => {
                return Err(IdentityError::StillContractorPersonnel)
            }
            Resolution::NotContractor(ContractorStatus::NotPersonnel) => (ConflictDecision::NotContractor, 0),
            Resolution::RevokeGrants => {
                let revoked =
                    diesel::delete(user_grants::table.filter(user_grants::user_id.eq(user_id))).execute(conn)?;
                (ConflictDecision::RevokeGrants, revoked)
            }
        };
        diesel::update(users::table.filter(users::id.eq(user_id)))
            .set((
                users::grants_suspended_at.eq(None::<NaiveDateTime>),
                users::grants_suspended_reason.eq(None::<String>),
            ))
            .execute(conn)?;
        let mut details = Map::new();
        details.insert("decision".into(), json!(decision));
        details.insert("grants_revoked".into(), json!(revoked));
        let kind = AccountEventKind::ContractorConflictResolved;
        accounts::record_event_with(conn, now, user_id, kind, reason, Some(&actor.user_id), details)?;
        let outcome = match decision {
            ConflictDecision::RevokeGrants => "your lookup grants were revoked",
            ConflictDecision::NotContractor => "your lookup grants apply again",
        };
        accounts::notify_holder(
            conn,
            now,
            user_id,
            "委外人員身分疑義已處理 Contractor conflict resolved",
            &format!("The account manager resolved the contractor conflict of your account: {outcome} ({reason})."),
        )
    })?;
    accounts::account(conn, user_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PersonnelEventForm {
        PersonnelEventForm {
            id: Some(uuid::Uuid::now_v7().to_string()),
            kind: Some("offboarded".into()),
            national_id: Some("a123456789".into()),
            agency: Some("TPE-SW".into()),
            vendor_id: Some("vendor-1".into()),
            person_id: Some("person-1".into()),
            reason: Some("departure".into()),
        }
    }

    fn refused_field(form: PersonnelEventForm) -> String {
        match PersonnelEvent::parse(form) {
            Err(IdentityError::Invalid { field, .. } | IdentityError::Missing { field }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_personnel_message_is_checked_field_by_field_and_never_shows_the_national_id() {
        let event = PersonnelEvent::parse(form()).unwrap();
        assert_eq!(event.national_id, "A123456789", "normalised as applications store it");
        assert!(!format!("{event:?}").contains("A123456789"));
        assert_eq!(refused_field(PersonnelEventForm { kind: Some("promoted".into()), ..form() }), "kind");
        assert_eq!(refused_field(PersonnelEventForm { kind: None, ..form() }), "kind");
        assert_eq!(refused_field(PersonnelEventForm { id: Some("7".into()), ..form() }), "id");
        let bad_id = PersonnelEventForm { national_id: Some("A123456788".into()), ..form() };
        match PersonnelEvent::parse(bad_id) {
            Err(err @ IdentityError::Invalid { .. }) => assert!(!err.to_string().contains("A12345678")),
            other => panic!("not refused: {other:?}"),
        }
        assert_eq!(refused_field(PersonnelEventForm { reason: Some("registered".into()), ..form() }), "reason");
        let registered =
            PersonnelEventForm { kind: Some("registered".into()), reason: Some("departure".into()), ..form() };
        assert_eq!(refused_field(registered), "reason");
        assert_eq!(refused_field(PersonnelEventForm { agency: Some(" ".into()), ..form() }), "agency");
        assert_eq!(refused_field(PersonnelEventForm { person_id: None, ..form() }), "person_id");
    }

    /// R-ACC-08 and R-VEN-08 as one rule: contractor personnel only as vendor_staff, and a
    /// vendor_staff account has no other role and no grant, whoever holds it.
    #[test]
    fn r_ven_08_the_account_rule_allows_contractor_personnel_only_the_vendor_role_without_grants() {
        use ContractorStatus::*;
        let staff = [roles::VENDOR_STAFF];
        assert!(check_account(ActivePersonnel, &staff, 0).is_ok());
        assert!(check_account(NotPersonnel, &staff, 0).is_ok());
        assert!(check_account(NotPersonnel, &[roles::CASEWORKER], 3).is_ok());
        assert!(matches!(
            check_account(ActivePersonnel, &[roles::CASEWORKER], 0),
            Err(IdentityError::ContractorApplicant)
        ));
        assert!(matches!(check_account(ActivePersonnel, &[], 0), Err(IdentityError::ContractorApplicant)));
        for personnel in [ActivePersonnel, NotPersonnel] {
            assert!(matches!(
                check_account(personnel, &staff, 1),
                Err(IdentityError::VendorStaffAccount { field: "grants" })
            ));
            assert!(matches!(
                check_account(personnel, &[roles::ACCOUNT_MANAGER, roles::VENDOR_STAFF], 0),
                Err(IdentityError::VendorStaffAccount { field: "roles" })
            ));
        }
    }
}
