//! Proxy authorizations (移民資料代查授權單, seed 001 pt 5(6); R-QRY-06). A user who needs immigration
//! data for a case asks a colleague of the same agency to run the lookup for them. The authorization
//! names both users, the case, the query types it covers and a validity period of at most 90 days;
//! its terms are never edited (a revocation is its own recorded act), and a lookup on another's behalf
//! runs only under one that holds at that moment ([`authorization_for`]), while its grantor is still
//! an active member of the agency ([`check_grantor`]).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, CaseNumber, UserId};
use serde_json::json;

use super::colleagues::UserSummary;
use super::fields::{self, Lines};
use super::{new_id, BrokerError, ProxyAuthorizationId};
use crate::schema::proxy_authorizations as pa;
use immilink_shared::outbox;

pub const RULE: &str = "R-QRY-06";
/// Longest validity period of one authorization.
pub const MAX_VALIDITY_DAYS: i64 = 90;
/// A `valid_from` this far in the past is taken as "now" (clocks differ a little); further back is
/// refused: an authorization is never backdated.
const CLOCK_TOLERANCE_MINUTES: i64 = 5;
const MAX_REASON: usize = 500;

/// Roles that see every authorization of their agency.
const OVERSEERS: [&str; 2] = [roles::ACCOUNT_MANAGER, roles::AUDITOR];

text_enum! {
    /// Where an authorization stands at a given moment: computed from its validity period and its
    /// revocation, never stored.
    pub enum ProxyStatus {
        /// Within its validity period and not revoked: lookups may run under it.
        Active = "active",
        /// Revoked by its grantor or an account manager.
        Revoked = "revoked",
        /// Its validity period has ended.
        Expired = "expired",
        /// Its validity period has not started yet.
        NotYetValid = "not_yet_valid",
    }
}

impl ProxyStatus {
    /// The one change an authorization's state takes by an act (the others come with the clock):
    /// revocation, before its end. Revoking twice or after the end is refused.
    pub fn transition(self, to: ProxyStatus) -> Result<ProxyStatus, BrokerError> {
        match (self, to) {
            (ProxyStatus::Active | ProxyStatus::NotYetValid, ProxyStatus::Revoked) => Ok(to),
            (ProxyStatus::Revoked, _) => Err(BrokerError::AlreadyRevoked),
            (ProxyStatus::Expired, _) => Err(BrokerError::AlreadyExpired),
            (from, to) => Err(BrokerError::IllegalTransition {
                what: "proxy authorization",
                from: from.as_str(),
                to: to.as_str(),
            }),
        }
    }
}

/// An authorization that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewProxyAuthorization {
    pub grantee_user_id: UserId,
    pub case_number: CaseNumber,
    pub query_types: Vec<QueryType>,
    pub validity: Validity,
    pub reason: Option<String>,
}

/// A validity period: it starts now or later, never in the past, and lasts at most 90 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub from: DateTime<Utc>,
    /// Exclusive.
    pub until: DateTime<Utc>,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> BrokerError {
    BrokerError::invalid(field, detail).rule(RULE)
}

const NOT_YOURSELF: &str = "you cannot authorize yourself: name the colleague who will query";

/// The colleague who will run the lookups: not the grantor.
pub fn grantee(grantor: &Caller, value: Option<String>) -> Result<UserId, BrokerError> {
    let grantee = UserId::new(fields::required(value, "grantee_user_id", 64, Lines::One).map_err(|e| e.or_rule(RULE))?);
    if grantee == grantor.user_id {
        return Err(invalid("grantee_user_id", NOT_YOURSELF));
    }
    Ok(grantee)
}

/// The query types covered: at least one, each known and listed once.
pub fn query_types(value: Option<Vec<String>>) -> Result<Vec<QueryType>, BrokerError> {
    let raw = value.ok_or_else(|| BrokerError::missing("query_types").rule(RULE))?;
    if raw.is_empty() {
        return Err(invalid("query_types", "name at least one query type"));
    }
    let mut parsed: Vec<QueryType> = Vec::with_capacity(raw.len());
    for (i, code) in raw.iter().enumerate() {
        let field = format!("query_types[{i}]");
        let query_type = QueryType::parse(code.trim()).ok_or_else(|| BrokerError::UnknownQueryType {
            field: field.clone(),
            value: code.clone(),
            rule: RULE,
        })?;
        if parsed.contains(&query_type) {
            return Err(invalid(field, format!("{} is listed twice", query_type.code())));
        }
        parsed.push(query_type);
    }
    Ok(parsed)
}

/// The validity period asked for at `now`: from now (default) or later, never backdated (a start a
/// moment ago counts as now), at most 90 days long.
pub fn validity(
    now: DateTime<Utc>,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
) -> Result<Validity, BrokerError> {
    let from = match valid_from {
        None => now,
        Some(at) if at < now - Duration::minutes(CLOCK_TOLERANCE_MINUTES) => {
            return Err(invalid("valid_from", "an authorization cannot start in the past"));
        }
        Some(at) if at > now + Duration::days(MAX_VALIDITY_DAYS) => {
            return Err(invalid("valid_from", format!("must be within {MAX_VALIDITY_DAYS} days from now")));
        }
        Some(at) => at.max(now),
    };
    let until = valid_until.ok_or_else(|| BrokerError::missing("valid_until").rule(RULE))?;
    if until <= from {
        return Err(invalid("valid_until", "must be after valid_from"));
    }
    if until > from + Duration::days(MAX_VALIDITY_DAYS) {
        return Err(invalid("valid_until", format!("must be at most {MAX_VALIDITY_DAYS} days after valid_from")));
    }
    Ok(Validity { from, until })
}

/// Why the grantor cannot run the lookups themselves (optional).
pub fn reason(value: Option<String>) -> Result<Option<String>, BrokerError> {
    fields::optional(value, "reason", MAX_REASON, Lines::Many).map_err(|e| e.or_rule(RULE))
}

/// Why an authorization ends early (required).
pub fn revocation_reason(value: Option<String>) -> Result<String, BrokerError> {
    fields::required(value, "reason", MAX_REASON, Lines::Many).map_err(|e| e.or_rule(RULE))
}

/// A proxy authorization (移民資料代查授權單) as recorded, with its state at the time of reading.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyAuthorization {
    pub id: ProxyAuthorizationId,
    pub agency: AgencyCode,
    /// Who needs the data and authorizes the lookup (授權人).
    pub grantor_user_id: UserId,
    pub grantor_name: String,
    /// Who runs the lookup on the grantor's behalf (代查人).
    pub grantee_user_id: UserId,
    pub grantee_name: String,
    pub case_number: CaseNumber,
    pub query_types: Vec<QueryType>,
    pub validity: Validity,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub status: ProxyStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<UserId>,
    pub revocation_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pa)]
struct Row {
    id: ProxyAuthorizationId,
    agency: AgencyCode,
    grantor_user_id: UserId,
    grantor_name: String,
    grantee_user_id: UserId,
    grantee_name: String,
    case_number: CaseNumber,
    query_types: String,
    valid_from: NaiveDateTime,
    valid_until: NaiveDateTime,
    reason: Option<String>,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_by: Option<UserId>,
    revocation_reason: Option<String>,
}

impl Row {
    fn status_at(&self, now: DateTime<Utc>) -> ProxyStatus {
        if self.revoked_at.is_some() {
            ProxyStatus::Revoked
        } else if now < from_db(self.valid_from) {
            ProxyStatus::NotYetValid
        } else if now >= from_db(self.valid_until) {
            ProxyStatus::Expired
        } else {
            ProxyStatus::Active
        }
    }

    fn query_types(&self) -> Result<Vec<QueryType>, BrokerError> {
        let codes: Vec<String> = serde_json::from_str(&self.query_types)
            .map_err(|err| BrokerError::Internal(format!("proxy authorization {} query types: {err}", self.id)))?;
        codes
            .iter()
            .map(|code| {
                QueryType::parse(code).ok_or_else(|| {
                    BrokerError::Internal(format!("proxy authorization {} holds unknown query type {code:?}", self.id))
                })
            })
            .collect()
    }

    fn visible_to(&self, caller: &Caller) -> bool {
        self.agency == caller.agency
            && (self.grantor_user_id == caller.user_id
                || self.grantee_user_id == caller.user_id
                || caller.has_any(&OVERSEERS))
    }

    fn record(self, now: DateTime<Utc>) -> Result<ProxyAuthorization, BrokerError> {
        Ok(ProxyAuthorization {
            query_types: self.query_types()?,
            status: self.status_at(now),
            validity: Validity { from: from_db(self.valid_from), until: from_db(self.valid_until) },
            created_at: from_db(self.created_at),
            revoked_at: self.revoked_at.map(from_db),
            id: self.id,
            agency: self.agency,
            grantor_user_id: self.grantor_user_id,
            grantor_name: self.grantor_name,
            grantee_user_id: self.grantee_user_id,
            grantee_name: self.grantee_name,
            case_number: self.case_number,
            reason: self.reason,
            revoked_by: self.revoked_by,
            revocation_reason: self.revocation_reason,
        })
    }
}

fn find(conn: &mut DbConn, id: &ProxyAuthorizationId) -> Result<Option<Row>, BrokerError> {
    Ok(pa::table.filter(pa::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the proxy authorization")
}

/// The grantee must be an active member of the grantor's agency, as identity knows them now. An id
/// identity does not know and a user of another agency get the same answer.
pub fn check_grantee<'a>(grantor: &Caller, grantee: Option<&'a UserSummary>) -> Result<&'a UserSummary, BrokerError> {
    let grantee = grantee
        .filter(|user| user.agency == grantor.agency)
        .ok_or_else(|| invalid("grantee_user_id", "no user with this id in your agency"))?;
    if grantee.user_id == grantor.user_id {
        return Err(invalid("grantee_user_id", NOT_YOURSELF));
    }
    if !grantee.is_active_member_of(&grantor.agency) {
        return Err(invalid(
            "grantee_user_id",
            format!("the grantee's account is not active ({})", grantee.status_text()),
        ));
    }
    Ok(grantee)
}

/// R-QRY-06 with R-ACC-05: a lookup on behalf of someone whose account has since been cancelled,
/// suspended or moved to another agency is refused; the authorization served that person's work.
/// `grantor` is what identity says about them now (`None`: it does not know them).
pub fn check_grantor(grantor: Option<&UserSummary>, agency: &AgencyCode) -> Result<(), BrokerError> {
    match grantor {
        Some(user) if is_contractor(user) => Err(BrokerError::ContractorGrantor),
        Some(user) if user.is_active_member_of(agency) => Ok(()),
        _ => Err(BrokerError::ProxyAuthorizationInvalid(ProxyRefusal::GrantorInactive)),
    }
}

/// R-VEN-08: contractor personnel, as identity describes them now: a `vendor_staff` account, or one
/// whose own standing identity refuses for a contractor conflict. Nobody looks up for them, so they
/// issue no proxy authorization, and one they issued serves no more.
fn is_contractor(user: &UserSummary) -> bool {
    user.roles.iter().any(|role| role == roles::VENDOR_STAFF)
        || user
            .link
            .as_ref()
            .and_then(|link| link.refusal.as_ref())
            .is_some_and(|refusal| refusal.reason == super::link::LinkRefusal::ContractorConflict)
}

/// Issues an authorization from the caller (the grantor) to `grantee`, as identity describes both,
/// with its `proxy_authorization.issued` event in the same transaction.
pub fn issue(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    grantor: Option<&UserSummary>,
    grantee: Option<&UserSummary>,
    new: &NewProxyAuthorization,
) -> Result<ProxyAuthorization, BrokerError> {
    let grantor = grantor
        .filter(|user| user.user_id == caller.user_id && user.agency == caller.agency)
        .ok_or(BrokerError::UnknownToIdentity)?;
    if is_contractor(grantor) {
        return Err(BrokerError::ContractorGrantor);
    }
    // Identity's summary carries the canonical form of the id the grantor typed.
    let grantee = check_grantee(caller, grantee)?;
    let id = ProxyAuthorizationId::new(new_id());
    let codes: Vec<&str> = new.query_types.iter().map(|q| q.code()).collect();
    let codes_json = serde_json::to_string(&codes).map_err(|err| BrokerError::Internal(err.to_string()))?;
    let event = outbox::event(
        crate::SERVICE,
        kind::PROXY_AUTHORIZATION_ISSUED,
        now,
        caller,
        id.as_str(),
        None,
        json!({
            "grantor_user_id": grantor.user_id,
            "grantee_user_id": grantee.user_id,
            "case_number": new.case_number,
            "query_types": codes,
            "valid_from": new.validity.from,
            "valid_until": new.validity.until,
            "reason": new.reason,
        }),
    );
    conn.write_transaction(|conn| -> Result<(), BrokerError> {
        diesel::insert_into(pa::table)
            .values((
                pa::id.eq(&id),
                pa::agency.eq(&caller.agency),
                pa::grantor_user_id.eq(&grantor.user_id),
                pa::grantor_name.eq(&grantor.display_name),
                pa::grantee_user_id.eq(&grantee.user_id),
                pa::grantee_name.eq(&grantee.display_name),
                pa::case_number.eq(&new.case_number),
                pa::query_types.eq(&codes_json),
                pa::valid_from.eq(to_db(new.validity.from)),
                pa::valid_until.eq(to_db(new.validity.until)),
                pa::reason.eq(&new.reason),
                pa::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, &id)
}

/// Which authorizations a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProxyFilter {
    /// Only those in this state now.
    pub status: Option<ProxyStatus>,
}

/// The authorizations the caller gave or received, newest first; account managers and auditors see
/// all of their agency's.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &ProxyFilter,
    page: &Page,
) -> Result<Vec<ProxyAuthorization>, BrokerError> {
    let mut query = pa::table.filter(pa::agency.eq(caller.agency.clone())).select(Row::as_select()).into_boxed();
    if !caller.has_any(&OVERSEERS) {
        let me = &caller.user_id;
        query = query.filter(pa::grantor_user_id.eq(me.clone()).or(pa::grantee_user_id.eq(me.clone())));
    }
    let at = to_db(now);
    query = match filter.status {
        None => query,
        Some(ProxyStatus::Revoked) => query.filter(pa::revoked_at.is_not_null()),
        Some(ProxyStatus::Active) => {
            query.filter(pa::revoked_at.is_null()).filter(pa::valid_from.le(at)).filter(pa::valid_until.gt(at))
        }
        Some(ProxyStatus::Expired) => query.filter(pa::revoked_at.is_null()).filter(pa::valid_until.le(at)),
        Some(ProxyStatus::NotYetValid) => query.filter(pa::revoked_at.is_null()).filter(pa::valid_from.gt(at)),
    };
    if let Some(before) = &page.cursor {
        query = query.filter(pa::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(pa::id.desc()).limit(page.limit).load(conn)?;
    rows.into_iter().map(|row| row.record(now)).collect()
}

/// One authorization: for its grantor, its grantee, and the account managers and auditors of its
/// agency; not found for anyone else.
pub fn get(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &ProxyAuthorizationId,
) -> Result<ProxyAuthorization, BrokerError> {
    match find(conn, id)? {
        Some(row) if row.visible_to(caller) => row.record(now),
        _ => Err(not_found()),
    }
}

/// Revokes an authorization before its end: its grantor or an account manager of its agency, with
/// a reason. Revoking twice, or after it ended, is a conflict.
pub fn revoke(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &ProxyAuthorizationId,
    reason: &str,
) -> Result<ProxyAuthorization, BrokerError> {
    conn.write_transaction(|conn| {
        let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
        if row.grantor_user_id != caller.user_id && !caller.has(roles::ACCOUNT_MANAGER) {
            return Err(BrokerError::NotGrantor);
        }
        row.status_at(now).transition(ProxyStatus::Revoked)?;
        // The guard makes a concurrent second revocation update nothing.
        let updated = diesel::update(pa::table.filter(pa::id.eq(id)).filter(pa::revoked_at.is_null()))
            .set((pa::revoked_at.eq(to_db(now)), pa::revoked_by.eq(&caller.user_id), pa::revocation_reason.eq(reason)))
            .execute(conn)?;
        if updated != 1 {
            return Err(BrokerError::AlreadyRevoked);
        }
        let event = outbox::event(
            crate::SERVICE,
            kind::PROXY_AUTHORIZATION_REVOKED,
            now,
            caller,
            id.as_str(),
            None,
            json!({
                "grantor_user_id": row.grantor_user_id,
                "grantee_user_id": row.grantee_user_id,
                "case_number": row.case_number,
                "reason": reason,
            }),
        );
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, id)
}

/// What a lookup on another's behalf runs under: the audit record names both users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyGrant {
    pub id: ProxyAuthorizationId,
    pub grantor_user_id: UserId,
    pub grantee_user_id: UserId,
}

/// R-QRY-06: the authorization `id` must exist in the caller's agency, have been issued to the caller
/// (who runs the lookup), be neither revoked nor outside its validity period at `now`, be for
/// `case_number`, and cover `query_type`. Otherwise refused naming the condition that failed
/// ([`ProxyRefusal`]). An unknown id and an id of another agency get the same answer.
pub fn authorization_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &ProxyAuthorizationId,
    case_number: &CaseNumber,
    query_type: QueryType,
) -> Result<ProxyGrant, BrokerError> {
    let refuse = |refusal: ProxyRefusal| Err(BrokerError::ProxyAuthorizationInvalid(refusal));
    let Some(row) = find(conn, id)?.filter(|row| row.agency == caller.agency) else {
        return refuse(ProxyRefusal::Unknown);
    };
    if row.grantee_user_id != caller.user_id {
        return refuse(ProxyRefusal::IssuedToAnother);
    }
    match row.status_at(now) {
        ProxyStatus::Active => {}
        ProxyStatus::Revoked => return refuse(ProxyRefusal::Revoked { at: row.revoked_at.map(from_db) }),
        ProxyStatus::NotYetValid => return refuse(ProxyRefusal::NotYetValid { from: from_db(row.valid_from) }),
        ProxyStatus::Expired => return refuse(ProxyRefusal::Expired { at: from_db(row.valid_until) }),
    }
    if row.case_number != *case_number {
        return refuse(ProxyRefusal::OtherCase { issued_for: row.case_number, declared: case_number.clone() });
    }
    let covered = row.query_types()?;
    if !covered.contains(&query_type) {
        return refuse(ProxyRefusal::NotCovered { query_type, covered });
    }
    Ok(ProxyGrant { id: row.id, grantor_user_id: row.grantor_user_id, grantee_user_id: row.grantee_user_id })
}

/// Why a proxy authorization does not serve a lookup (R-QRY-06).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// No such id in the caller's agency (an id of another agency is the same answer).
    Unknown,
    IssuedToAnother,
    Revoked {
        at: Option<DateTime<Utc>>,
    },
    NotYetValid {
        from: DateTime<Utc>,
    },
    Expired {
        at: DateTime<Utc>,
    },
    OtherCase {
        issued_for: CaseNumber,
        declared: CaseNumber,
    },
    NotCovered {
        query_type: QueryType,
        covered: Vec<QueryType>,
    },
    /// The grantor no longer holds an active account in the agency (R-ACC-05).
    GrantorInactive,
}

impl std::fmt::Display for ProxyRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyRefusal::Unknown => {
                f.write_str("no proxy authorization (代查授權單) with this id exists in your agency")
            }
            ProxyRefusal::IssuedToAnother => {
                f.write_str("this proxy authorization was issued to another user; only its grantee may use it")
            }
            ProxyRefusal::Revoked { at } => write!(
                f,
                "this proxy authorization was revoked at {}",
                at.map(|at| at.to_rfc3339()).unwrap_or_default()
            ),
            ProxyRefusal::NotYetValid { from } => {
                write!(f, "this proxy authorization is not valid before {}", from.to_rfc3339())
            }
            ProxyRefusal::Expired { at } => write!(f, "this proxy authorization expired at {}", at.to_rfc3339()),
            ProxyRefusal::OtherCase { issued_for, declared } => write!(
                f,
                "this proxy authorization is for case {:?}, not for case {:?}",
                issued_for.as_str(),
                declared.as_str()
            ),
            ProxyRefusal::NotCovered { query_type, covered } => {
                let listed: Vec<&str> = covered.iter().map(|q| q.code()).collect();
                write!(
                    f,
                    "this proxy authorization does not cover {} (it covers {})",
                    query_type.code(),
                    listed.join(", ")
                )
            }
            ProxyRefusal::GrantorInactive => f.write_str(
                "the user this proxy authorization was issued by no longer holds an active account in your agency",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::colleagues::AccountStatus;
    use crate::domain::testkit::{caller, conn, summary, t0, TestConn};

    const GRANTOR: &str = "01930000-0000-7000-8000-000000000001";
    const GRANTEE: &str = "01930000-0000-7000-8000-000000000002";
    const THIRD: &str = "01930000-0000-7000-8000-000000000003";

    fn grantor() -> Caller {
        caller(GRANTOR, "TPE-SW", Some("unit-a"), &["caseworker"])
    }

    fn grantee_caller() -> Caller {
        caller(GRANTEE, "TPE-SW", Some("unit-a"), &["caseworker"])
    }

    fn new(valid_from: Option<DateTime<Utc>>, valid_until: DateTime<Utc>) -> NewProxyAuthorization {
        NewProxyAuthorization {
            grantee_user_id: UserId::new(GRANTEE),
            case_number: CaseNumber::new("TPE-2026-7"),
            query_types: vec![QueryType::EntryExitLastYear, QueryType::TravelerHistory],
            validity: validity(t0(), valid_from, Some(valid_until)).unwrap(),
            reason: Some("出差".into()),
        }
    }

    fn issued(conn: &mut TestConn, new: NewProxyAuthorization) -> ProxyAuthorization {
        let me = summary(GRANTOR, "TPE-SW", AccountStatus::Active);
        let them = summary(GRANTEE, "TPE-SW", AccountStatus::Active);
        issue(conn, t0(), &grantor(), Some(&me), Some(&them), &new).unwrap()
    }

    fn thirty_days() -> NewProxyAuthorization {
        new(None, t0() + Duration::days(30))
    }

    fn check(conn: &mut TestConn, id: &ProxyAuthorizationId, at: DateTime<Utc>) -> Result<ProxyGrant, BrokerError> {
        check_as(conn, &grantee_caller(), id, "TPE-2026-7", QueryType::EntryExitLastYear, at)
    }

    fn check_as(
        conn: &mut TestConn,
        who: &Caller,
        id: &ProxyAuthorizationId,
        case: &str,
        query_type: QueryType,
        at: DateTime<Utc>,
    ) -> Result<ProxyGrant, BrokerError> {
        authorization_for(conn, at, who, id, &CaseNumber::new(case), query_type)
    }

    fn refusal(result: Result<ProxyGrant, BrokerError>) -> ProxyRefusal {
        match result {
            Err(BrokerError::ProxyAuthorizationInvalid(refusal)) => refusal,
            other => panic!("not a proxy refusal: {other:?}"),
        }
    }

    fn invalid_field(result: Result<impl std::fmt::Debug, BrokerError>) -> String {
        match result {
            Err(BrokerError::Invalid { field, rule: Some(RULE), .. }) => field,
            Err(BrokerError::Missing { field, rule: Some(RULE) }) => field,
            Err(BrokerError::UnknownQueryType { field, rule: RULE, .. }) => field,
            other => panic!("not a refusal naming R-QRY-06: {other:?}"),
        }
    }

    #[test]
    fn r_qry_06_the_form_is_checked_field_by_field() {
        let me = grantor();
        assert_eq!(invalid_field(grantee(&me, Some(GRANTOR.into()))), "grantee_user_id");
        assert_eq!(invalid_field(grantee(&me, None)), "grantee_user_id");
        assert_eq!(grantee(&me, Some(format!(" {GRANTEE} "))).unwrap(), UserId::new(GRANTEE));
        assert_eq!(invalid_field(query_types(Some(vec![]))), "query_types");
        assert_eq!(invalid_field(query_types(None)), "query_types");
        assert_eq!(
            invalid_field(query_types(Some(vec!["entry_exit_last_year".into(), "gossip".into()]))),
            "query_types[1]"
        );
        let twice = vec!["eid_photo".into(), "missing_persons".into(), "eid_photo".into()];
        assert_eq!(invalid_field(query_types(Some(twice))), "query_types[2]");
        assert_eq!(invalid_field(validity(t0(), None, None)), "valid_until");
        assert_eq!(invalid_field(validity(t0(), None, Some(t0()))), "valid_until");
        let too_long = t0() + Duration::days(90) + Duration::seconds(1);
        assert_eq!(invalid_field(validity(t0(), None, Some(too_long))), "valid_until");
        let backdated = Some(t0() - Duration::days(1));
        assert_eq!(invalid_field(validity(t0(), backdated, Some(t0() + Duration::days(1)))), "valid_from");
        let later = Some(t0() + Duration::days(10));
        assert_eq!(invalid_field(validity(t0(), later, Some(t0() + Duration::days(101)))), "valid_until");
        assert_eq!(invalid_field(reason(Some("x".repeat(501)))), "reason");
        assert_eq!(invalid_field(revocation_reason(None)), "reason");

        // Exactly 90 days is allowed; a start a moment ago counts as now (never backdated).
        let moment_ago = Some(t0() - Duration::seconds(30));
        let period = validity(t0(), moment_ago, Some(t0() + Duration::days(90))).unwrap();
        assert_eq!(period, Validity { from: t0(), until: t0() + Duration::days(90) });
    }

    #[test]
    fn r_qry_06_the_grantee_is_an_active_colleague_of_the_same_agency() {
        let me = grantor();
        assert_eq!(invalid_field(check_grantee(&me, None)), "grantee_user_id");
        let unknown = check_grantee(&me, None).unwrap_err().to_string();
        let elsewhere = summary(GRANTEE, "HLN-HR", AccountStatus::Active);
        let other_agency = check_grantee(&me, Some(&elsewhere)).unwrap_err().to_string();
        assert_eq!(other_agency, unknown, "same answer as an unknown id");
        let suspended = summary(GRANTEE, "TPE-SW", AccountStatus::Suspended);
        assert_eq!(invalid_field(check_grantee(&me, Some(&suspended))), "grantee_user_id");
        let mut unknown_state = summary(GRANTEE, "TPE-SW", AccountStatus::Active);
        unknown_state.status = None;
        assert!(check_grantee(&me, Some(&unknown_state)).is_err(), "an unknown status is not active");
        let myself = summary(GRANTOR, "TPE-SW", AccountStatus::Active);
        assert!(check_grantee(&me, Some(&myself)).is_err());
        let colleague = summary(GRANTEE, "TPE-SW", AccountStatus::Active);
        assert!(check_grantee(&me, Some(&colleague)).is_ok());
    }

    #[test]
    fn r_qry_06_a_lookup_on_behalf_of_a_grantor_no_longer_active_in_the_agency_is_refused() {
        let tpe = AgencyCode::new("TPE-SW");
        assert!(check_grantor(Some(&summary(GRANTOR, "TPE-SW", AccountStatus::Active)), &tpe).is_ok());
        for grantor in [
            Some(summary(GRANTOR, "TPE-SW", AccountStatus::Suspended)),
            Some(summary(GRANTOR, "TPE-SW", AccountStatus::Cancelled)),
            Some(summary(GRANTOR, "HLN-HR", AccountStatus::Active)),
            None,
        ] {
            let refused = check_grantor(grantor.as_ref(), &tpe);
            assert!(
                matches!(refused, Err(BrokerError::ProxyAuthorizationInvalid(ProxyRefusal::GrantorInactive))),
                "{grantor:?}"
            );
        }
    }

    #[test]
    fn r_ven_08_contractor_personnel_neither_issue_a_proxy_authorization_nor_have_one_serve() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let tpe = AgencyCode::new("TPE-SW");
        let mut staff = summary(GRANTOR, "TPE-SW", AccountStatus::Active);
        staff.roles = vec![roles::VENDOR_STAFF.into()];
        let mut conflicted = summary(GRANTOR, "TPE-SW", AccountStatus::Active);
        conflicted.link = Some(super::super::link::LinkStanding {
            refusal: Some(super::super::link::Refusal {
                reason: super::super::link::LinkRefusal::ContractorConflict,
                detail: "registered as contractor personnel".into(),
            }),
            query_types: Vec::new(),
        });
        let them = summary(GRANTEE, "TPE-SW", AccountStatus::Active);
        for contractor in [&staff, &conflicted] {
            let refused = issue(&mut conn, t0(), &grantor(), Some(contractor), Some(&them), &thirty_days());
            assert!(matches!(refused, Err(BrokerError::ContractorGrantor)), "{refused:?}");
            assert!(matches!(check_grantor(Some(contractor), &tpe), Err(BrokerError::ContractorGrantor)));
        }
        assert!(outbox::pending(&mut conn, 10).unwrap().is_empty(), "nothing was issued");
    }

    #[test]
    fn r_qry_06_issuing_records_both_users_and_an_audit_event() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = issued(&mut conn, thirty_days());
        assert_eq!((record.grantor_user_id.as_str(), record.grantee_user_id.as_str()), (GRANTOR, GRANTEE));
        assert_eq!((record.grantor_name.as_str(), record.grantee_name.as_str()), ("name of 0001", "name of 0002"));
        assert_eq!(record.query_types, [QueryType::EntryExitLastYear, QueryType::TravelerHistory]);
        assert_eq!(record.status, ProxyStatus::Active);
        assert_eq!(record.validity.from, t0());
        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, kind::PROXY_AUTHORIZATION_ISSUED);
        assert_eq!(events[0].correlation_id.as_deref(), Some(record.id.as_str()));
        assert_eq!(events[0].payload["grantee_user_id"], GRANTEE);
        assert_eq!(events[0].payload["grantor_user_id"], GRANTOR);
        assert_eq!(events[0].payload["case_number"], "TPE-2026-7");
    }

    #[test]
    fn r_qry_06_a_valid_authorization_names_both_users() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = issued(&mut conn, thirty_days());
        let grant = check(&mut conn, &record.id, t0() + Duration::days(1)).unwrap();
        assert_eq!(
            grant,
            ProxyGrant {
                id: record.id.clone(),
                grantor_user_id: UserId::new(GRANTOR),
                grantee_user_id: UserId::new(GRANTEE)
            }
        );
        let other_type =
            check_as(&mut conn, &grantee_caller(), &record.id, "TPE-2026-7", QueryType::TravelerHistory, t0());
        assert!(other_type.is_ok(), "every query type it covers");
    }

    #[test]
    fn r_qry_06_each_failed_condition_is_named() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = issued(&mut conn, thirty_days());
        let id = &record.id;
        let at = t0() + Duration::hours(1);

        let dead = ProxyAuthorizationId::new("01930000-0000-7000-8000-00000000dead");
        let unknown = refusal(check(&mut conn, &dead, at));
        assert_eq!(unknown, ProxyRefusal::Unknown);
        assert!(unknown.to_string().contains("no proxy authorization"), "{unknown}");
        let foreign = caller(GRANTEE, "HLN-HR", None, &["caseworker"]);
        let other_agency = refusal(check_as(&mut conn, &foreign, id, "TPE-2026-7", QueryType::EntryExitLastYear, at));
        assert_eq!(other_agency, ProxyRefusal::Unknown, "another agency's id looks unknown");
        let third = caller(THIRD, "TPE-SW", Some("unit-a"), &["caseworker"]);
        let not_grantee = refusal(check_as(&mut conn, &third, id, "TPE-2026-7", QueryType::EntryExitLastYear, at));
        assert!(not_grantee.to_string().contains("only its grantee"), "{not_grantee}");
        let by_grantor = check_as(&mut conn, &grantor(), id, "TPE-2026-7", QueryType::EntryExitLastYear, at);
        assert_eq!(refusal(by_grantor), ProxyRefusal::IssuedToAnother, "the grantor is not the grantee");
        let other_case =
            refusal(check_as(&mut conn, &grantee_caller(), id, "TPE-2026-8", QueryType::EntryExitLastYear, at));
        assert!(other_case.to_string().contains("not for case \"TPE-2026-8\""), "{other_case}");
        let not_covered = refusal(check_as(&mut conn, &grantee_caller(), id, "TPE-2026-7", QueryType::EidPhoto, at));
        assert!(not_covered.to_string().contains("does not cover eid_photo"), "{not_covered}");
        let expired = refusal(check(&mut conn, id, t0() + Duration::days(30)));
        assert!(expired.to_string().contains("expired"), "{expired}");
        assert!(check(&mut conn, id, t0() + Duration::days(30) - Duration::seconds(1)).is_ok(), "end is exclusive");

        let later = issued(&mut conn, new(Some(t0() + Duration::days(2)), t0() + Duration::days(30)));
        let early = refusal(check(&mut conn, &later.id, t0() + Duration::days(1)));
        assert!(early.to_string().contains("not valid before"), "{early}");
        assert!(check(&mut conn, &later.id, t0() + Duration::days(2)).is_ok(), "start is inclusive");

        revoke(&mut conn, at, &grantor(), id, "案件已結").unwrap();
        let revoked = refusal(check(&mut conn, id, at));
        assert!(revoked.to_string().contains("revoked"), "{revoked}");
    }

    #[test]
    fn r_qry_06_revocation_by_the_grantor_or_an_account_manager_once() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let first = issued(&mut conn, thirty_days());
        let err = revoke(&mut conn, t0(), &grantee_caller(), &first.id, "不需要").unwrap_err();
        assert!(matches!(err, BrokerError::NotGrantor), "{err:?}");
        let foreign_manager = caller(THIRD, "HLN-HR", None, &["account_manager"]);
        let err = revoke(&mut conn, t0(), &foreign_manager, &first.id, "x").unwrap_err();
        assert!(matches!(err, BrokerError::NotFound(_)), "{err:?}");

        let record = revoke(&mut conn, t0() + Duration::hours(2), &grantor(), &first.id, "案件已結").unwrap();
        assert_eq!(record.status, ProxyStatus::Revoked);
        assert_eq!(record.revoked_by, Some(UserId::new(GRANTOR)));
        assert_eq!(record.revoked_at, Some(t0() + Duration::hours(2)));
        assert_eq!(record.revocation_reason.as_deref(), Some("案件已結"));
        let again = revoke(&mut conn, t0() + Duration::hours(3), &grantor(), &first.id, "再撤").unwrap_err();
        assert!(matches!(again, BrokerError::AlreadyRevoked), "{again:?}");

        let second = issued(&mut conn, thirty_days());
        let manager = caller(THIRD, "TPE-SW", None, &["account_manager"]);
        assert_eq!(revoke(&mut conn, t0(), &manager, &second.id, "離職").unwrap().status, ProxyStatus::Revoked);

        let third = issued(&mut conn, thirty_days());
        let after_end = revoke(&mut conn, t0() + Duration::days(31), &grantor(), &third.id, "x").unwrap_err();
        assert!(matches!(after_end, BrokerError::AlreadyExpired), "{after_end:?}");

        let kinds: Vec<String> = outbox::pending(&mut conn, 20).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == kind::PROXY_AUTHORIZATION_REVOKED).count(), 2);
    }

    #[test]
    fn r_qry_06_only_a_revocation_before_the_end_is_a_legal_move() {
        use ProxyStatus::*;
        assert_eq!(Active.transition(Revoked).unwrap(), Revoked);
        assert_eq!(NotYetValid.transition(Revoked).unwrap(), Revoked);
        assert!(matches!(Revoked.transition(Revoked), Err(BrokerError::AlreadyRevoked)));
        assert!(matches!(Expired.transition(Revoked), Err(BrokerError::AlreadyExpired)));
        for (from, to) in [(Active, Expired), (NotYetValid, Active), (Active, Active)] {
            assert!(matches!(from.transition(to), Err(BrokerError::IllegalTransition { .. })), "{from} → {to}");
        }
    }

    #[test]
    fn r_qry_06_lists_and_reads_are_scoped_to_the_two_users_and_overseers() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let first = issued(&mut conn, thirty_days());
        let second = issued(&mut conn, new(None, t0() + Duration::days(1)));
        let third = issued(&mut conn, thirty_days());
        revoke(&mut conn, t0(), &grantor(), &third.id, "x").unwrap();

        let ids = |records: Vec<ProxyAuthorization>| records.into_iter().map(|v| v.id).collect::<Vec<_>>();
        let grantee = caller(GRANTEE, "TPE-SW", Some("unit-b"), &["caseworker"]);
        let stranger = caller(THIRD, "TPE-SW", Some("unit-a"), &["caseworker", "unit_supervisor"]);
        let auditor = caller(THIRD, "TPE-SW", None, &["auditor"]);
        let foreign_auditor = caller(THIRD, "HLN-HR", None, &["auditor"]);
        let all = ProxyFilter::default();
        let first_page = Page::first();
        let later = t0() + Duration::days(2);
        let mut list =
            |who: &Caller, filter: &ProxyFilter, page: &Page| list(&mut conn, later, who, filter, page).unwrap();

        assert_eq!(ids(list(&grantor(), &all, &first_page)), [third.id.clone(), second.id.clone(), first.id.clone()]);
        assert_eq!(list(&grantee, &all, &first_page).len(), 3);
        assert!(list(&stranger, &all, &first_page).is_empty());
        assert_eq!(list(&auditor, &all, &first_page).len(), 3);
        assert!(list(&foreign_auditor, &all, &first_page).is_empty());

        let by = |status| ProxyFilter { status: Some(status) };
        assert_eq!(ids(list(&grantee, &by(ProxyStatus::Active), &first_page)), std::slice::from_ref(&first.id));
        assert_eq!(ids(list(&grantee, &by(ProxyStatus::Expired), &first_page)), std::slice::from_ref(&second.id));
        assert_eq!(ids(list(&grantee, &by(ProxyStatus::Revoked), &first_page)), std::slice::from_ref(&third.id));
        let page = Page { limit: 1, cursor: Some(third.id.to_string()) };
        assert_eq!(ids(list(&grantor(), &all, &page)), std::slice::from_ref(&second.id));

        assert_eq!(get(&mut conn, later, &grantee, &first.id).unwrap().status, ProxyStatus::Active);
        assert_eq!(get(&mut conn, later, &auditor, &second.id).unwrap().status, ProxyStatus::Expired);
        assert!(matches!(get(&mut conn, later, &stranger, &first.id), Err(BrokerError::NotFound(_))));
        assert!(matches!(get(&mut conn, later, &foreign_auditor, &first.id), Err(BrokerError::NotFound(_))));
    }

    #[test]
    fn r_qry_06_the_terms_cannot_be_edited_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let record = issued(&mut conn, thirty_days());
        let edited = diesel::update(pa::table.filter(pa::id.eq(&record.id)))
            .set(pa::case_number.eq("OTHER"))
            .execute(&mut *conn);
        assert!(edited.is_err(), "the terms are read-only");
        revoke(&mut conn, t0(), &grantor(), &record.id, "x").unwrap();
        let rewritten = diesel::update(pa::table.filter(pa::id.eq(&record.id)))
            .set(pa::revocation_reason.eq("y"))
            .execute(&mut *conn);
        assert!(rewritten.is_err(), "a revocation is recorded once");
    }
}
