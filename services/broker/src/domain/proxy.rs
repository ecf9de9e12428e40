//! Proxy authorisations (移民資料代查授權單, seed 001 pt 5(6); R-QRY-06). A user who needs immigration
//! data for a case asks a colleague of the same agency to run the lookup for them. The authorisation
//! names both users, the case, the query types it covers and a validity period of at most 90 days;
//! its terms are never edited (a revocation is its own recorded act), and a lookup on another's behalf
//! runs only under one that holds at that moment ([`authorisation_for`]).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::catalogue::QueryType;
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::forms::{self, Caller, Lines};
use super::{outbox, BrokerError};
use crate::identity_client::UserSummary;
use crate::schema::proxy_authorizations as pa;

pub const RULE: &str = "R-QRY-06";
/// Longest validity period of one authorisation.
pub const MAX_VALIDITY_DAYS: i64 = 90;
/// A `valid_from` this far in the past is taken as "now" (clocks differ a little); further back is
/// refused: an authorisation is never backdated.
const CLOCK_TOLERANCE_MINUTES: i64 = 5;
const MAX_REASON: usize = 500;

/// Roles that see every authorisation of their agency.
const OVERSEERS: [&str; 2] = [roles::ACCOUNT_MANAGER, roles::AUDITOR];

// Option fields: a missing one is refused by name (422), not as a generic parse failure.
/// A proxy authorisation as the grantor fills it in.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "grantee_user_id": "0192f0c4-0000-7000-8000-000000000002",
    "case_number": "TPE-SW-2026-000123",
    "query_types": ["entry_exit_last_year"],
    "valid_until": "2026-12-23T00:00:00+08:00",
    "reason": "承辦人出差，請同科同仁代為查詢"
}))]
pub struct ProxyAuthorizationBody {
    /// The colleague (same agency, active account) who will run the lookups.
    #[schema(required = true, nullable = false)]
    pub grantee_user_id: Option<String>,
    /// The case the lookups serve (案號).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// The query types covered; at least one, each once.
    #[schema(value_type = Vec<QueryType>, required = true, nullable = false, min_items = 1)]
    pub query_types: Option<Vec<String>>,
    /// Start of validity (RFC 3339); default now. Never in the past.
    pub valid_from: Option<DateTime<Utc>>,
    /// End of validity (RFC 3339, exclusive): after `valid_from`, at most 90 days after it.
    #[schema(required = true, nullable = false)]
    pub valid_until: Option<DateTime<Utc>>,
    /// Why the grantor cannot run the lookups themselves.
    pub reason: Option<String>,
}

/// An authorisation that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewProxyAuthorization {
    pub grantee_user_id: String,
    pub case_number: String,
    pub query_types: Vec<QueryType>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub reason: Option<String>,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> BrokerError {
    BrokerError::invalid(field, detail).rule(RULE)
}

impl NewProxyAuthorization {
    /// Checks the body as filled in by `grantor` at `now`; 422 naming the first bad field.
    pub fn parse(body: ProxyAuthorizationBody, grantor: &Caller, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        Self::parse_fields(body, grantor, now).map_err(|err| err.or_rule(RULE))
    }

    fn parse_fields(body: ProxyAuthorizationBody, grantor: &Caller, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        let grantee_user_id = forms::required(body.grantee_user_id, "grantee_user_id", 64, Lines::One)?;
        if grantee_user_id == grantor.user_id {
            return Err(invalid("grantee_user_id", "you cannot authorise yourself: name the colleague who will query"));
        }
        let case_number = forms::case_number(body.case_number, RULE)?;
        let query_types = parse_query_types(body.query_types)?;
        let valid_from = match body.valid_from {
            None => now,
            Some(at) if at < now - Duration::minutes(CLOCK_TOLERANCE_MINUTES) => {
                return Err(invalid("valid_from", "an authorisation cannot start in the past"));
            }
            Some(at) if at > now + Duration::days(MAX_VALIDITY_DAYS) => {
                return Err(invalid("valid_from", format!("must be within {MAX_VALIDITY_DAYS} days from now")));
            }
            Some(at) => at.max(now),
        };
        let valid_until = body.valid_until.ok_or_else(|| BrokerError::missing("valid_until").rule(RULE))?;
        if valid_until <= valid_from {
            return Err(invalid("valid_until", "must be after valid_from"));
        }
        if valid_until > valid_from + Duration::days(MAX_VALIDITY_DAYS) {
            return Err(invalid("valid_until", format!("must be at most {MAX_VALIDITY_DAYS} days after valid_from")));
        }
        let reason = forms::optional(body.reason, "reason", MAX_REASON, Lines::Many)?;
        Ok(Self { grantee_user_id, case_number, query_types, valid_from, valid_until, reason })
    }
}

fn parse_query_types(raw: Option<Vec<String>>) -> Result<Vec<QueryType>, BrokerError> {
    let raw = raw.ok_or_else(|| BrokerError::missing("query_types").rule(RULE))?;
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

/// Where an authorisation stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyStatus {
    /// Within its validity period and not revoked: lookups may run under it.
    Active,
    /// Revoked by its grantor or an account manager.
    Revoked,
    /// Its validity period has ended.
    Expired,
    /// Its validity period has not started yet.
    NotYetValid,
}

/// A proxy authorisation (移民資料代查授權單).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProxyAuthorizationView {
    pub id: String,
    /// Agency code of both users.
    pub agency: String,
    /// Who needs the data and authorises the lookup (授權人).
    pub grantor_user_id: String,
    pub grantor_name: String,
    /// Who runs the lookup on the grantor's behalf (代查人).
    pub grantee_user_id: String,
    pub grantee_name: String,
    pub case_number: String,
    pub query_types: Vec<QueryType>,
    pub valid_from: DateTime<Utc>,
    /// Exclusive end of validity.
    pub valid_until: DateTime<Utc>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Computed from the clock at the time of the answer.
    pub status: ProxyStatus,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revocation_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pa)]
struct Row {
    id: String,
    agency: String,
    grantor_user_id: String,
    grantor_name: String,
    grantee_user_id: String,
    grantee_name: String,
    case_number: String,
    query_types: String,
    valid_from: NaiveDateTime,
    valid_until: NaiveDateTime,
    reason: Option<String>,
    created_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    revoked_by: Option<String>,
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

    fn view(self, now: DateTime<Utc>) -> Result<ProxyAuthorizationView, BrokerError> {
        Ok(ProxyAuthorizationView {
            query_types: self.query_types()?,
            status: self.status_at(now),
            valid_from: from_db(self.valid_from),
            valid_until: from_db(self.valid_until),
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

fn find(conn: &mut DbConn, id: &str) -> Result<Option<Row>, BrokerError> {
    Ok(pa::table.filter(pa::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the proxy authorization")
}

/// The grantee must be an active user of the grantor's agency, as identity knows them now. An id
/// identity does not know and a user of another agency get the same answer.
pub fn check_grantee<'a>(grantor: &Caller, grantee: Option<&'a UserSummary>) -> Result<&'a UserSummary, BrokerError> {
    let grantee = grantee
        .filter(|user| user.agency == grantor.agency)
        .ok_or_else(|| invalid("grantee_user_id", "no user with this id in your agency"))?;
    if grantee.user_id == grantor.user_id {
        return Err(invalid("grantee_user_id", "you cannot authorise yourself: name the colleague who will query"));
    }
    if grantee.status != "active" {
        return Err(invalid("grantee_user_id", format!("the grantee's account is not active ({})", grantee.status)));
    }
    Ok(grantee)
}

/// Issues an authorisation from the caller (the grantor) to `grantee`, as identity describes both,
/// with its `proxy_authorization.issued` event in the same transaction.
pub fn issue(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    grantor: Option<&UserSummary>,
    grantee: Option<&UserSummary>,
    new: &NewProxyAuthorization,
) -> Result<ProxyAuthorizationView, BrokerError> {
    let grantor = grantor
        .filter(|user| user.user_id == caller.user_id && user.agency == caller.agency)
        .ok_or(BrokerError::UnknownToIdentity)?;
    // Identity's summary carries the canonical form of the id the grantor typed.
    let grantee = check_grantee(caller, grantee)?;
    let id = forms::new_id();
    let codes: Vec<&str> = new.query_types.iter().map(|q| q.code()).collect();
    let codes_json = serde_json::to_string(&codes).map_err(|err| BrokerError::Internal(err.to_string()))?;
    let event = forms::event(
        kind::PROXY_AUTHORIZATION_ISSUED,
        now,
        caller,
        &id,
        None,
        json!({
            "grantor_user_id": grantor.user_id,
            "grantee_user_id": grantee.user_id,
            "case_number": new.case_number,
            "query_types": codes,
            "valid_from": new.valid_from,
            "valid_until": new.valid_until,
            "reason": new.reason,
        }),
    );
    conn.write_transaction(|conn| {
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
                pa::valid_from.eq(to_db(new.valid_from)),
                pa::valid_until.eq(to_db(new.valid_until)),
                pa::reason.eq(&new.reason),
                pa::created_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, &id)
}

/// `GET /v1/proxy-authorizations` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProxyFilter {
    /// Only authorisations in this state now.
    pub status: Option<ProxyStatus>,
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Only those older than the one with this id (paging).
    pub before: Option<String>,
}

/// The authorisations the caller gave or received; account managers and auditors see all of
/// their agency's.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &ProxyFilter,
) -> Result<Vec<ProxyAuthorizationView>, BrokerError> {
    let mut query = pa::table.filter(pa::agency.eq(caller.agency.clone())).select(Row::as_select()).into_boxed();
    if !caller.has_any(&OVERSEERS) {
        query = query
            .filter(pa::grantor_user_id.eq(caller.user_id.clone()).or(pa::grantee_user_id.eq(caller.user_id.clone())));
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
    if let Some(before) = &filter.before {
        query = query.filter(pa::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(pa::id.desc()).limit(forms::page_size(filter.limit)).load(conn)?;
    rows.into_iter().map(|row| row.view(now)).collect()
}

/// One authorisation: for its grantor, its grantee, and the account managers and auditors of its
/// agency; 404 for anyone else.
pub fn get(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
) -> Result<ProxyAuthorizationView, BrokerError> {
    match find(conn, id)? {
        Some(row) if row.visible_to(caller) => row.view(now),
        _ => Err(not_found()),
    }
}

/// Revokes an authorisation before its end: its grantor or an account manager of its agency, with
/// a reason. Revoking twice, or after it ended, is a conflict.
pub fn revoke(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    reason: Option<String>,
) -> Result<ProxyAuthorizationView, BrokerError> {
    let reason = forms::required(reason, "reason", MAX_REASON, Lines::Many).map_err(|err| err.or_rule(RULE))?;
    conn.write_transaction(|conn| {
        let row = find(conn, id)?.filter(|row| row.visible_to(caller)).ok_or_else(not_found)?;
        if row.grantor_user_id != caller.user_id && !caller.has(roles::ACCOUNT_MANAGER) {
            return Err(BrokerError::NotGrantor);
        }
        match row.status_at(now) {
            ProxyStatus::Revoked => return Err(BrokerError::AlreadyRevoked),
            ProxyStatus::Expired => return Err(BrokerError::AlreadyExpired),
            ProxyStatus::Active | ProxyStatus::NotYetValid => {}
        }
        // The guard makes a concurrent second revocation update nothing.
        let updated = diesel::update(pa::table.filter(pa::id.eq(id)).filter(pa::revoked_at.is_null()))
            .set((pa::revoked_at.eq(to_db(now)), pa::revoked_by.eq(&caller.user_id), pa::revocation_reason.eq(&reason)))
            .execute(conn)?;
        if updated != 1 {
            return Err(BrokerError::AlreadyRevoked);
        }
        let event = forms::event(
            kind::PROXY_AUTHORIZATION_REVOKED,
            now,
            caller,
            id,
            None,
            json!({
                "grantor_user_id": row.grantor_user_id,
                "grantee_user_id": row.grantee_user_id,
                "case_number": row.case_number,
                "reason": reason,
            }),
        );
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, id)
}

/// What a lookup on another's behalf runs under: the audit record names both users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyGrant {
    pub id: String,
    pub grantor_user_id: String,
    pub grantee_user_id: String,
}

/// R-QRY-06: the authorisation `id` must exist in `agency`, have been issued to `grantee_user_id`
/// (the user running the lookup), be neither revoked nor outside its validity period at `now`, be for
/// `case_number`, and cover `query_type`. Otherwise 403 `proxy_authorization_invalid` on the field
/// `proxy_authorization_id`, with a detail naming the condition that failed. An unknown id and an id
/// of another agency get the same answer.
pub fn authorisation_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    id: &str,
    grantee_user_id: &str,
    agency: &str,
    case_number: &str,
    query_type: QueryType,
) -> Result<ProxyGrant, BrokerError> {
    let refuse = |refusal: ProxyRefusal| Err(BrokerError::ProxyAuthorizationInvalid(refusal));
    let Some(row) = find(conn, id)?.filter(|row| row.agency == agency) else {
        return refuse(ProxyRefusal::Unknown);
    };
    if row.grantee_user_id != grantee_user_id {
        return refuse(ProxyRefusal::IssuedToAnother);
    }
    match row.status_at(now) {
        ProxyStatus::Active => {}
        ProxyStatus::Revoked => return refuse(ProxyRefusal::Revoked { at: row.revoked_at.map(from_db) }),
        ProxyStatus::NotYetValid => return refuse(ProxyRefusal::NotYetValid { from: from_db(row.valid_from) }),
        ProxyStatus::Expired => return refuse(ProxyRefusal::Expired { at: from_db(row.valid_until) }),
    }
    if row.case_number != case_number.trim() {
        return refuse(ProxyRefusal::OtherCase {
            issued_for: row.case_number,
            declared: case_number.trim().to_owned(),
        });
    }
    let covered = row.query_types()?;
    if !covered.contains(&query_type) {
        return refuse(ProxyRefusal::NotCovered { query_type, covered });
    }
    Ok(ProxyGrant { id: row.id, grantor_user_id: row.grantor_user_id, grantee_user_id: row.grantee_user_id })
}

/// Why a proxy authorization does not serve a lookup (R-QRY-06). An unknown id and an id of another
/// agency are the same answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRefusal {
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
        issued_for: String,
        declared: String,
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
            ProxyRefusal::OtherCase { issued_for, declared } => {
                write!(f, "this proxy authorization is for case {issued_for:?}, not for case {declared:?}")
            }
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
    use immilink_shared::ApiError;

    use super::*;
    use crate::domain::forms::testkit::{caller, conn, summary, t0, TestConn};
    use immilink_shared::testing::TestDb;

    const GRANTOR: &str = "01930000-0000-7000-8000-000000000001";
    const GRANTEE: &str = "01930000-0000-7000-8000-000000000002";
    const THIRD: &str = "01930000-0000-7000-8000-000000000003";

    fn grantor() -> Caller {
        caller(GRANTOR, "TPE-SW", Some("unit-a"), &["caseworker"])
    }

    fn body() -> ProxyAuthorizationBody {
        ProxyAuthorizationBody {
            grantee_user_id: Some(GRANTEE.into()),
            case_number: Some("TPE-2026-7".into()),
            query_types: Some(vec!["entry_exit_last_year".into(), "traveler_history".into()]),
            valid_from: None,
            valid_until: Some(t0() + Duration::days(30)),
            reason: Some("出差".into()),
        }
    }

    fn issued(conn: &mut TestConn, body: ProxyAuthorizationBody) -> ProxyAuthorizationView {
        let new = NewProxyAuthorization::parse(body, &grantor(), t0()).unwrap();
        let me = summary(GRANTOR, "TPE-SW", "active");
        let them = summary(GRANTEE, "TPE-SW", "active");
        issue(conn, t0(), &grantor(), Some(&me), Some(&them), &new).unwrap()
    }

    fn check(conn: &mut TestConn, id: &str, at: DateTime<Utc>) -> Result<ProxyGrant, BrokerError> {
        authorisation_for(conn, at, id, GRANTEE, "TPE-SW", "TPE-2026-7", QueryType::EntryExitLastYear)
    }

    fn refusal_detail(result: Result<ProxyGrant, BrokerError>) -> String {
        let err = result.map_err(ApiError::from).unwrap_err();
        let problem = err.to_problem();
        assert_eq!(problem.status, 403);
        assert_eq!(problem.code, "proxy_authorization_invalid");
        assert_eq!(problem.field.as_deref(), Some("proxy_authorization_id"));
        assert_eq!(problem.rule.as_deref(), Some("R-QRY-06"));
        problem.detail
    }

    #[test]
    fn r_qry_06_the_form_is_checked_field_by_field() {
        let me = grantor();
        let refused =
            |b: ProxyAuthorizationBody| NewProxyAuthorization::parse(b, &me, t0()).map_err(ApiError::from).unwrap_err();
        let field = |b: ProxyAuthorizationBody| refused(b).field_name().map(str::to_owned);

        let mut b = body();
        b.grantee_user_id = Some(GRANTOR.into());
        assert_eq!(field(b).as_deref(), Some("grantee_user_id"));
        let mut b = body();
        b.grantee_user_id = None;
        assert_eq!(field(b).as_deref(), Some("grantee_user_id"));
        let mut b = body();
        b.case_number = Some("x".repeat(65));
        assert_eq!(field(b).as_deref(), Some("case_number"));
        let mut b = body();
        b.query_types = Some(vec![]);
        assert_eq!(field(b).as_deref(), Some("query_types"));
        let mut b = body();
        b.query_types = Some(vec!["entry_exit_last_year".into(), "gossip".into()]);
        assert_eq!(field(b).as_deref(), Some("query_types[1]"));
        let mut b = body();
        b.query_types = Some(vec!["eid_photo".into(), "missing_persons".into(), "eid_photo".into()]);
        assert_eq!(field(b).as_deref(), Some("query_types[2]"));
        let mut b = body();
        b.valid_until = None;
        assert_eq!(refused(b).code(), "missing_field");
        let mut b = body();
        b.valid_until = Some(t0());
        assert_eq!(field(b).as_deref(), Some("valid_until"));
        let mut b = body();
        b.valid_until = Some(t0() + Duration::days(90) + Duration::seconds(1));
        assert_eq!(field(b).as_deref(), Some("valid_until"));
        let mut b = body();
        b.valid_from = Some(t0() - Duration::days(1));
        assert_eq!(field(b).as_deref(), Some("valid_from"));
        let err = refused({
            let mut b = body();
            b.valid_from = Some(t0() + Duration::days(10));
            b.valid_until = Some(t0() + Duration::days(101));
            b
        });
        assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-06"));

        // Exactly 90 days is allowed; a start a moment ago counts as now (never backdated).
        let mut b = body();
        b.valid_from = Some(t0() - Duration::seconds(30));
        b.valid_until = Some(t0() + Duration::days(90));
        let new = NewProxyAuthorization::parse(b, &me, t0()).unwrap();
        assert_eq!(new.valid_from, t0());
    }

    #[test]
    fn r_qry_06_the_grantee_is_an_active_colleague_of_the_same_agency() {
        let me = grantor();
        let err = check_grantee(&me, None).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.status().as_u16(), err.field_name()), (422, Some("grantee_user_id")));
        let elsewhere = summary(GRANTEE, "HLN-HR", "active");
        let other_agency = check_grantee(&me, Some(&elsewhere)).map_err(ApiError::from).unwrap_err();
        assert_eq!(other_agency.to_problem().detail, err.to_problem().detail, "same answer as an unknown id");
        let suspended = summary(GRANTEE, "TPE-SW", "suspended");
        assert_eq!(
            check_grantee(&me, Some(&suspended)).map_err(ApiError::from).unwrap_err().field_name(),
            Some("grantee_user_id")
        );
        let myself = summary(GRANTOR, "TPE-SW", "active");
        assert!(check_grantee(&me, Some(&myself)).is_err());
        let colleague = summary(GRANTEE, "TPE-SW", "active");
        assert!(check_grantee(&me, Some(&colleague)).is_ok());
    }

    #[test]
    fn r_qry_06_issuing_records_both_users_and_an_audit_event() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = issued(&mut conn, body());
        assert_eq!((view.grantor_user_id.as_str(), view.grantee_user_id.as_str()), (GRANTOR, GRANTEE));
        assert_eq!((view.grantor_name.as_str(), view.grantee_name.as_str()), ("name of 0001", "name of 0002"));
        assert_eq!(view.query_types, [QueryType::EntryExitLastYear, QueryType::TravelerHistory]);
        assert_eq!(view.status, ProxyStatus::Active);
        assert_eq!(view.valid_from, t0());
        let events = outbox::pending(&mut conn, 10).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, kind::PROXY_AUTHORIZATION_ISSUED);
        assert_eq!(events[0].correlation_id.as_deref(), Some(view.id.as_str()));
        assert_eq!(events[0].payload["grantee_user_id"], GRANTEE);
        assert_eq!(events[0].payload["grantor_user_id"], GRANTOR);
        assert_eq!(events[0].payload["case_number"], "TPE-2026-7");
    }

    #[test]
    fn r_qry_06_a_valid_authorisation_names_both_users() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = issued(&mut conn, body());
        let grant = check(&mut conn, &view.id, t0() + Duration::days(1)).unwrap();
        assert_eq!(
            grant,
            ProxyGrant { id: view.id.clone(), grantor_user_id: GRANTOR.into(), grantee_user_id: GRANTEE.into() }
        );
        // The case number is compared as a lookup declares it (trimmed).
        let padded =
            authorisation_for(&mut conn, t0(), &view.id, GRANTEE, "TPE-SW", " TPE-2026-7 ", QueryType::TravelerHistory);
        assert!(padded.is_ok());
    }

    #[test]
    fn r_qry_06_each_failed_condition_is_named() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = issued(&mut conn, body());
        let id = view.id.as_str();
        let at = t0() + Duration::hours(1);

        let unknown = refusal_detail(check(&mut conn, "01930000-0000-7000-8000-00000000dead", at));
        assert!(unknown.contains("no proxy authorization"), "{unknown}");
        let other_agency = refusal_detail(authorisation_for(
            &mut conn,
            at,
            id,
            GRANTEE,
            "HLN-HR",
            "TPE-2026-7",
            QueryType::EntryExitLastYear,
        ));
        assert_eq!(other_agency, unknown, "another agency's id looks unknown");
        let not_grantee = refusal_detail(authorisation_for(
            &mut conn,
            at,
            id,
            THIRD,
            "TPE-SW",
            "TPE-2026-7",
            QueryType::EntryExitLastYear,
        ));
        assert!(not_grantee.contains("only its grantee"), "{not_grantee}");
        let by_grantor =
            authorisation_for(&mut conn, at, id, GRANTOR, "TPE-SW", "TPE-2026-7", QueryType::EntryExitLastYear);
        assert!(by_grantor.is_err(), "the grantor is not the grantee");
        let other_case = refusal_detail(authorisation_for(
            &mut conn,
            at,
            id,
            GRANTEE,
            "TPE-SW",
            "TPE-2026-8",
            QueryType::EntryExitLastYear,
        ));
        assert!(other_case.contains("not for case \"TPE-2026-8\""), "{other_case}");
        let not_covered =
            refusal_detail(authorisation_for(&mut conn, at, id, GRANTEE, "TPE-SW", "TPE-2026-7", QueryType::EidPhoto));
        assert!(not_covered.contains("does not cover eid_photo"), "{not_covered}");
        let expired = refusal_detail(check(&mut conn, id, t0() + Duration::days(30)));
        assert!(expired.contains("expired"), "{expired}");
        assert!(check(&mut conn, id, t0() + Duration::days(30) - Duration::seconds(1)).is_ok(), "end is exclusive");

        let mut later = body();
        later.valid_from = Some(t0() + Duration::days(2));
        let later = issued(&mut conn, later);
        let early = refusal_detail(check(&mut conn, &later.id, t0() + Duration::days(1)));
        assert!(early.contains("not valid before"), "{early}");
        assert!(check(&mut conn, &later.id, t0() + Duration::days(2)).is_ok(), "start is inclusive");

        revoke(&mut conn, at, &grantor(), id, Some("案件已結".into())).unwrap();
        let revoked = refusal_detail(check(&mut conn, id, at));
        assert!(revoked.contains("revoked"), "{revoked}");
    }

    #[test]
    fn r_qry_06_revocation_by_the_grantor_or_an_account_manager_once() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let first = issued(&mut conn, body());
        let grantee = caller(GRANTEE, "TPE-SW", Some("unit-a"), &["caseworker"]);
        let err =
            revoke(&mut conn, t0(), &grantee, &first.id, Some("不需要".into())).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.status().as_u16(), err.code()), (403, "not_grantor"));
        let foreign_manager = caller(THIRD, "HLN-HR", None, &["account_manager"]);
        assert_eq!(
            revoke(&mut conn, t0(), &foreign_manager, &first.id, Some("x".into()))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            404
        );
        let err = revoke(&mut conn, t0(), &grantor(), &first.id, None).map_err(ApiError::from).unwrap_err();
        assert_eq!(err.field_name(), Some("reason"));

        let view =
            revoke(&mut conn, t0() + Duration::hours(2), &grantor(), &first.id, Some("案件已結".into())).unwrap();
        assert_eq!(view.status, ProxyStatus::Revoked);
        assert_eq!(view.revoked_by.as_deref(), Some(GRANTOR));
        assert_eq!(view.revoked_at, Some(t0() + Duration::hours(2)));
        assert_eq!(view.revocation_reason.as_deref(), Some("案件已結"));
        let again = revoke(&mut conn, t0() + Duration::hours(3), &grantor(), &first.id, Some("再撤".into()))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!((again.status().as_u16(), again.code()), (409, "already_revoked"));

        let second = issued(&mut conn, body());
        let manager = caller(THIRD, "TPE-SW", None, &["account_manager"]);
        assert_eq!(
            revoke(&mut conn, t0(), &manager, &second.id, Some("離職".into())).unwrap().status,
            ProxyStatus::Revoked
        );

        let third = issued(&mut conn, body());
        let after_end = revoke(&mut conn, t0() + Duration::days(31), &grantor(), &third.id, Some("x".into()))
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!(after_end.status().as_u16(), 409);

        let kinds: Vec<String> = outbox::pending(&mut conn, 20).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds.iter().filter(|k| *k == kind::PROXY_AUTHORIZATION_REVOKED).count(), 2);
    }

    #[test]
    fn r_qry_06_lists_and_reads_are_scoped_to_the_two_users_and_overseers() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let first = issued(&mut conn, body());
        let mut short = body();
        short.valid_until = Some(t0() + Duration::days(1));
        let second = issued(&mut conn, short);
        let third = issued(&mut conn, body());
        revoke(&mut conn, t0(), &grantor(), &third.id, Some("x".into())).unwrap();

        let ids = |views: Vec<ProxyAuthorizationView>| views.into_iter().map(|v| v.id).collect::<Vec<_>>();
        let grantee = caller(GRANTEE, "TPE-SW", Some("unit-b"), &["caseworker"]);
        let stranger = caller(THIRD, "TPE-SW", Some("unit-a"), &["caseworker", "unit_supervisor"]);
        let auditor = caller(THIRD, "TPE-SW", None, &["auditor"]);
        let foreign_auditor = caller(THIRD, "HLN-HR", None, &["auditor"]);
        let all = ProxyFilter::default();
        let later = t0() + Duration::days(2);

        assert_eq!(
            ids(list(&mut conn, later, &grantor(), &all).unwrap()),
            [third.id.clone(), second.id.clone(), first.id.clone()]
        );
        assert_eq!(list(&mut conn, later, &grantee, &all).unwrap().len(), 3);
        assert!(list(&mut conn, later, &stranger, &all).unwrap().is_empty());
        assert_eq!(list(&mut conn, later, &auditor, &all).unwrap().len(), 3);
        assert!(list(&mut conn, later, &foreign_auditor, &all).unwrap().is_empty());

        let by = |status| ProxyFilter { status: Some(status), ..ProxyFilter::default() };
        assert_eq!(ids(list(&mut conn, later, &grantee, &by(ProxyStatus::Active)).unwrap()), [first.id.as_str()]);
        assert_eq!(ids(list(&mut conn, later, &grantee, &by(ProxyStatus::Expired)).unwrap()), [second.id.as_str()]);
        assert_eq!(ids(list(&mut conn, later, &grantee, &by(ProxyStatus::Revoked)).unwrap()), [third.id.as_str()]);
        let page = ProxyFilter { limit: Some(1), before: Some(third.id.clone()), ..ProxyFilter::default() };
        assert_eq!(ids(list(&mut conn, later, &grantor(), &page).unwrap()), [second.id.as_str()]);

        assert_eq!(get(&mut conn, later, &grantee, &first.id).unwrap().status, ProxyStatus::Active);
        assert_eq!(get(&mut conn, later, &auditor, &second.id).unwrap().status, ProxyStatus::Expired);
        assert_eq!(get(&mut conn, later, &stranger, &first.id).map_err(ApiError::from).unwrap_err().status(), 404);
        assert_eq!(
            get(&mut conn, later, &foreign_auditor, &first.id).map_err(ApiError::from).unwrap_err().status(),
            404
        );
    }

    #[test]
    fn r_qry_06_the_terms_cannot_be_edited_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let view = issued(&mut conn, body());
        let edited =
            diesel::update(pa::table.filter(pa::id.eq(&view.id))).set(pa::case_number.eq("OTHER")).execute(&mut *conn);
        assert!(edited.is_err(), "the terms are read-only");
        revoke(&mut conn, t0(), &grantor(), &view.id, Some("x".into())).unwrap();
        let rewritten = diesel::update(pa::table.filter(pa::id.eq(&view.id)))
            .set(pa::revocation_reason.eq("y"))
            .execute(&mut *conn);
        assert!(rewritten.is_err(), "a revocation is recorded once");
    }
}
