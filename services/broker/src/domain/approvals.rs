//! Unit-supervisor approval of "other business" purposes (seed 002 pt 4(4); R-QRY-10): a lookup for a
//! purpose whose catalogue entry `requires_supervisor_approval` runs only under a recorded approval by
//! a supervisor of the requester's unit, for that user, case and purpose, until it lapses. Nobody
//! decides their own request; a decision is made once and never edited. Only a purpose the requester
//! may declare now (their agency's link carries it and it is granted to them) is asked for or
//! approved ([`check_declarable`]).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::catalogue::{self, QueryType};
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use immilink_shared::typed::{AgencyCode, CaseNumber, UnitId, UserId};
use serde_json::json;

use super::colleagues::{check_permitted, Entitlements, Permission, UserSummary};
use super::fields::{self, Lines};
use super::link::LinkStanding;
use super::{is_unique_violation, new_id, BrokerError, PurposeApprovalId};
use crate::schema::purpose_approvals as pa;
use immilink_shared::outbox;

pub const RULE: &str = "R-QRY-10";
/// An approval without an explicit end lapses this long after it is given.
pub const DEFAULT_VALIDITY_DAYS: i64 = 30;
pub const MAX_VALIDITY_DAYS: i64 = 90;
const MAX_DESCRIPTION: usize = 500;
const MAX_REASON: usize = 500;

const OVERSEERS: [&str; 2] = [roles::ACCOUNT_MANAGER, roles::AUDITOR];

/// Whether lookups for `purpose_code` need a recorded supervisor approval ([`approval_for`]).
pub fn requires_approval(purpose_code: &str) -> bool {
    catalogue::purpose(purpose_code).is_some_and(|p| p.requires_supervisor_approval)
}

text_enum! {
    /// A request for approval, from asking to the supervisor's decision.
    pub enum ApprovalStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

impl ApprovalStatus {
    /// A pending request is approved or rejected, once; a decided one is never decided again.
    pub fn transition(self, to: ApprovalStatus) -> Result<ApprovalStatus, BrokerError> {
        match (self, to) {
            (ApprovalStatus::Pending, ApprovalStatus::Approved | ApprovalStatus::Rejected) => Ok(to),
            (ApprovalStatus::Approved | ApprovalStatus::Rejected, _) => Err(BrokerError::AlreadyDecided),
            (from, to) => {
                Err(BrokerError::IllegalTransition { what: "purpose approval", from: from.as_str(), to: to.as_str() })
            }
        }
    }
}

text_enum! {
    /// A unit supervisor's decision on a request.
    pub enum Decision {
        Approved = "approved",
        Rejected = "rejected",
    }
}

impl Decision {
    /// The state the request takes.
    pub fn status(self) -> ApprovalStatus {
        match self {
            Decision::Approved => ApprovalStatus::Approved,
            Decision::Rejected => ApprovalStatus::Rejected,
        }
    }
}

/// A request that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewPurposeApproval {
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub business_description: String,
}

/// A purpose that needs a supervisor's approval: a known one whose catalogue entry says so.
pub fn approvable_purpose(value: Option<String>) -> Result<String, BrokerError> {
    let purpose_code = fields::required(value, "purpose_code", 64, Lines::One).map_err(|err| err.rule(RULE))?;
    let Some(purpose) = catalogue::purpose(&purpose_code) else {
        return Err(BrokerError::UnknownCode {
            field: "purpose_code".into(),
            value: purpose_code,
            catalogue: "GET /v1/catalogue/purposes",
            rule: RULE,
        });
    };
    if !purpose.requires_supervisor_approval {
        return Err(BrokerError::invalid("purpose_code", "this purpose needs no approval").rule(RULE));
    }
    Ok(purpose_code)
}

/// The business the lookups serve, for the supervisor to judge.
pub fn business_description(value: Option<String>) -> Result<String, BrokerError> {
    fields::required(value, "business_description", MAX_DESCRIPTION, Lines::Many).map_err(|err| err.or_rule(RULE))
}

/// Whose standing [`check_declarable`] reads: the caller's own, asking for an approval, or the
/// requester's, when a supervisor approves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    Own,
    Requesters,
}

/// The one rule of which purposes an approval may be asked for and given (R-QRY-10 with R-QRY-02):
/// a purpose the requester may declare now. Identity's permissions (the items of the agency's link ∩
/// the user's grants) must hold some (legal basis, purpose, query type) with this purpose that passes
/// the one rule of a declaration, [`check_permitted`] (the link serves it now). An approval of
/// anything else could never be used, and would record a supervisor approving a purpose outside the
/// agency's link. A link identity refuses outright is told as itself (R-LINK, R-VEN-08).
pub fn check_declarable(
    permissions: &[Permission],
    link: Option<&LinkStanding>,
    purpose_code: &str,
    whose: Whose,
) -> Result<(), BrokerError> {
    if let Some(link) = link {
        link.usable()?;
    }
    let declarable = permissions.iter().filter(|p| p.purpose_code == purpose_code).any(|p| {
        QueryType::parse(&p.query_type).is_some_and(|query_type| {
            check_permitted(permissions, link, &p.legal_basis, purpose_code, query_type).is_ok()
        })
    });
    if declarable {
        Ok(())
    } else {
        Err(BrokerError::PurposeNotPermitted(PurposeRefusal { purpose_code: purpose_code.to_owned(), whose }))
    }
}

/// The requester, as identity describes them now, may declare the request's purpose: an active member
/// of its agency ([`UserSummary::is_active_member_of`]) for whom it is [`check_declarable`]. `None`
/// (identity does not know them) may not.
fn check_requester_may_declare(requester: Option<&UserSummary>, row: &Row) -> Result<(), BrokerError> {
    match requester.filter(|user| user.user_id == row.requester_user_id && user.is_active_member_of(&row.agency)) {
        Some(user) => check_declarable(&user.permissions, user.link.as_ref(), &row.purpose_code, Whose::Requesters),
        None => Err(BrokerError::PurposeNotPermitted(PurposeRefusal {
            purpose_code: row.purpose_code.clone(),
            whose: Whose::Requesters,
        })),
    }
}

/// Why an approval of a purpose is not asked for or given: the requester may not declare it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRefusal {
    pub purpose_code: String,
    pub whose: Whose,
}

impl std::fmt::Display for PurposeRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let PurposeRefusal { purpose_code, whose } = self;
        match whose {
            Whose::Own => write!(
                f,
                "purpose {purpose_code} is not approved for your agency's link or not granted to you, so no \
                 approval can be asked for it"
            ),
            Whose::Requesters => write!(
                f,
                "purpose {purpose_code} cannot be approved: the requester may not declare it now (not approved for \
                 their agency's link, not granted to them, or their account is not active)"
            ),
        }
    }
}

/// A decision that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub decision: Decision,
    pub reason: Option<String>,
    /// Approvals only: when it lapses.
    pub valid_until: Option<DateTime<Utc>>,
}

/// A decision taken at `now`: a rejection needs a reason and has no validity period; an approval
/// lasts 30 days unless `valid_until` says otherwise, at most 90.
pub fn decision(
    now: DateTime<Utc>,
    decision: Option<Decision>,
    reason: Option<String>,
    valid_until: Option<DateTime<Utc>>,
) -> Result<NewDecision, BrokerError> {
    let decision = decision.ok_or_else(|| BrokerError::missing("decision").rule(RULE))?;
    let reason_text = |required: bool| {
        let parsed = if required {
            fields::required(reason.clone(), "reason", MAX_REASON, Lines::Many).map(Some)
        } else {
            fields::optional(reason.clone(), "reason", MAX_REASON, Lines::Many)
        };
        parsed.map_err(|err| err.or_rule(RULE))
    };
    match decision {
        Decision::Rejected => {
            if valid_until.is_some() {
                return Err(BrokerError::invalid("valid_until", "only an approval has a validity period").rule(RULE));
            }
            Ok(NewDecision { decision, reason: reason_text(true)?, valid_until: None })
        }
        Decision::Approved => {
            let valid_until = valid_until.unwrap_or(now + Duration::days(DEFAULT_VALIDITY_DAYS));
            if valid_until <= now {
                return Err(BrokerError::invalid("valid_until", "must be in the future").rule(RULE));
            }
            if valid_until > now + Duration::days(MAX_VALIDITY_DAYS) {
                return Err(BrokerError::invalid(
                    "valid_until",
                    format!("an approval lasts at most {MAX_VALIDITY_DAYS} days"),
                )
                .rule(RULE));
            }
            Ok(NewDecision { decision, reason: reason_text(false)?, valid_until: Some(valid_until) })
        }
    }
}

/// A request for approval of an "other business" purpose and its decision, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct PurposeApproval {
    pub id: PurposeApprovalId,
    pub agency: AgencyCode,
    /// The requester's unit when they asked; a supervisor of this unit decides.
    pub unit: UnitId,
    pub requester_user_id: UserId,
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub business_description: String,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<UserId>,
    pub decision_reason: Option<String>,
    /// When an approval lapses.
    pub valid_until: Option<DateTime<Utc>>,
    /// Approved and not lapsed at the time of reading: lookups may run under it.
    pub in_force: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pa)]
struct Row {
    id: PurposeApprovalId,
    agency: AgencyCode,
    unit: UnitId,
    requester_user_id: UserId,
    purpose_code: String,
    case_number: CaseNumber,
    business_description: String,
    status: ApprovalStatus,
    requested_at: NaiveDateTime,
    decided_at: Option<NaiveDateTime>,
    decided_by: Option<UserId>,
    decision_reason: Option<String>,
    valid_until: Option<NaiveDateTime>,
}

impl Row {
    fn visible_to(&self, caller: &Caller) -> bool {
        self.agency == caller.agency
            && (self.requester_user_id == caller.user_id
                || caller.is_in_unit_as(roles::UNIT_SUPERVISOR, Some(&self.unit))
                || caller.has_any(&OVERSEERS))
    }

    /// In force at `now`: approved, decided by then, and not lapsed.
    fn in_force_at(&self, now: DateTime<Utc>) -> bool {
        self.status == ApprovalStatus::Approved
            && self.valid_until.map(from_db).is_some_and(|until| now < until)
            && self.decided_at.map(from_db).is_some_and(|at| at <= now)
    }

    fn record(self, now: DateTime<Utc>) -> PurposeApproval {
        PurposeApproval {
            in_force: self.in_force_at(now),
            status: self.status,
            valid_until: self.valid_until.map(from_db),
            requested_at: from_db(self.requested_at),
            decided_at: self.decided_at.map(from_db),
            id: self.id,
            agency: self.agency,
            unit: self.unit,
            requester_user_id: self.requester_user_id,
            purpose_code: self.purpose_code,
            case_number: self.case_number,
            business_description: self.business_description,
            decided_by: self.decided_by,
            decision_reason: self.decision_reason,
        }
    }
}

fn find(conn: &mut DbConn, id: &PurposeApprovalId) -> Result<Option<Row>, BrokerError> {
    Ok(pa::table.filter(pa::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the purpose approval")
}

/// A caseworker asks for approval of a purpose they may declare now (`entitlements`: what identity
/// says they may look up, [`check_declarable`]); the request records their unit, whose supervisor
/// decides.
pub fn request(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    entitlements: &Entitlements,
    new: &NewPurposeApproval,
) -> Result<PurposeApproval, BrokerError> {
    if !caller.has(roles::CASEWORKER) {
        return Err(BrokerError::CaseworkerRequired);
    }
    let unit = caller.unit.clone().ok_or(BrokerError::NoUnit)?;
    check_declarable(&entitlements.permissions, entitlements.link.as_ref(), &new.purpose_code, Whose::Own)?;
    let id = PurposeApprovalId::new(new_id());
    let event = outbox::event(
        crate::SERVICE,
        kind::PURPOSE_APPROVAL_REQUESTED,
        now,
        caller,
        id.as_str(),
        None,
        json!({
            "purpose_code": new.purpose_code,
            "case_number": new.case_number,
            "business_description": new.business_description,
            "unit": unit,
        }),
    );
    conn.write_transaction(|conn| {
        let pending: i64 = pa::table
            .filter(pa::agency.eq(&caller.agency))
            .filter(pa::requester_user_id.eq(&caller.user_id))
            .filter(pa::case_number.eq(&new.case_number))
            .filter(pa::purpose_code.eq(&new.purpose_code))
            .filter(pa::status.eq(ApprovalStatus::Pending))
            .count()
            .get_result(conn)?;
        if pending > 0 {
            return Err(BrokerError::AlreadyPending);
        }
        // A unique index holds one pending request per user, case and purpose under concurrency.
        let inserted = diesel::insert_into(pa::table)
            .values((
                pa::id.eq(&id),
                pa::agency.eq(&caller.agency),
                pa::unit.eq(&unit),
                pa::requester_user_id.eq(&caller.user_id),
                pa::purpose_code.eq(&new.purpose_code),
                pa::case_number.eq(&new.case_number),
                pa::business_description.eq(&new.business_description),
                pa::status.eq(ApprovalStatus::Pending),
                pa::requested_at.eq(to_db(now)),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            Err(err) if is_unique_violation(&err) => return Err(BrokerError::AlreadyPending),
            Err(err) => return Err(err.into()),
        }
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, &id)
}

/// Who asked for the request `id`, for a caller of its agency: whom to ask identity about before
/// [`decide`] approves it.
pub fn requester_of(conn: &mut DbConn, caller: &Caller, id: &PurposeApprovalId) -> Result<UserId, BrokerError> {
    Ok(decidable(conn, caller, id)?.requester_user_id)
}

/// The request `id`, if it is of the caller's agency.
fn decidable(conn: &mut DbConn, caller: &Caller, id: &PurposeApprovalId) -> Result<Row, BrokerError> {
    find(conn, id)?.filter(|row| row.agency == caller.agency).ok_or_else(not_found)
}

/// A unit supervisor of the requester's unit (recorded at request time) approves or rejects a
/// pending request. Nobody decides their own (separation of duties); a decided request is a conflict.
/// An approval needs the requester, as identity describes them now (`requester`, see
/// [`requester_of`]; `None`: unknown to identity), to be able to declare the purpose now
/// ([`check_declarable`]); a rejection reads nothing of them.
pub fn decide(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &PurposeApprovalId,
    decision: &NewDecision,
    requester: Option<&UserSummary>,
) -> Result<PurposeApproval, BrokerError> {
    conn.write_transaction(|conn| {
        let row = decidable(conn, caller, id)?;
        if !caller.has(roles::UNIT_SUPERVISOR) {
            return Err(BrokerError::UnitSupervisorRequired);
        }
        if row.requester_user_id == caller.user_id {
            return Err(BrokerError::OwnRequest);
        }
        if caller.unit.as_ref() != Some(&row.unit) {
            return Err(BrokerError::OtherUnit);
        }
        let status = row.status.transition(decision.decision.status())?;
        if status == ApprovalStatus::Approved {
            check_requester_may_declare(requester, &row)?;
        }
        // The guard makes a concurrent second decision update nothing.
        let updated = diesel::update(pa::table.filter(pa::id.eq(id)).filter(pa::status.eq(row.status)))
            .set((
                pa::status.eq(status),
                pa::decided_at.eq(to_db(now)),
                pa::decided_by.eq(&caller.user_id),
                pa::decision_reason.eq(&decision.reason),
                pa::valid_until.eq(decision.valid_until.map(to_db)),
            ))
            .execute(conn)?;
        if updated != 1 {
            return Err(BrokerError::AlreadyDecided);
        }
        let event = outbox::event(
            crate::SERVICE,
            kind::PURPOSE_APPROVAL_DECIDED,
            now,
            caller,
            id.as_str(),
            None,
            json!({
                "decision": status,
                "requester_user_id": row.requester_user_id,
                "purpose_code": row.purpose_code,
                "case_number": row.case_number,
                "reason": decision.reason,
                "valid_until": decision.valid_until,
            }),
        );
        Ok(outbox::enqueue(conn, now, &event)?)
    })?;
    get(conn, now, caller, id)
}

/// Which requests a list shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
}

/// The caller's own requests, newest first; a unit supervisor also sees their unit's, account
/// managers and auditors their agency's.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &ApprovalFilter,
    page: &Page,
) -> Result<Vec<PurposeApproval>, BrokerError> {
    let mut query = pa::table.filter(pa::agency.eq(caller.agency.clone())).select(Row::as_select()).into_boxed();
    if !caller.has_any(&OVERSEERS) {
        match caller.unit.clone().filter(|_| caller.has(roles::UNIT_SUPERVISOR)) {
            Some(unit) => {
                query = query.filter(pa::requester_user_id.eq(caller.user_id.clone()).or(pa::unit.eq(unit)));
            }
            None => query = query.filter(pa::requester_user_id.eq(caller.user_id.clone())),
        }
    }
    if let Some(status) = filter.status {
        query = query.filter(pa::status.eq(status));
    }
    if let Some(before) = &page.cursor {
        query = query.filter(pa::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(pa::id.desc()).limit(page.limit).load(conn)?;
    Ok(rows.into_iter().map(|row| row.record(now)).collect())
}

/// One request: for its requester, the supervisors of its unit, and the account managers and
/// auditors of its agency; not found for anyone else.
pub fn get(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &PurposeApprovalId,
) -> Result<PurposeApproval, BrokerError> {
    match find(conn, id)? {
        Some(row) if row.visible_to(caller) => Ok(row.record(now)),
        _ => Err(not_found()),
    }
}

/// R-QRY-10 for a purpose that [`requires_approval`]: the approval in force for `user_id`'s
/// `case_number` ([`approval_for`]); `None` for a purpose that needs none.
pub fn approval_if_required(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    agency: &AgencyCode,
    case_number: &CaseNumber,
    purpose_code: &str,
) -> Result<Option<PurposeApprovalId>, BrokerError> {
    if requires_approval(purpose_code) {
        approval_for(conn, now, user_id, agency, case_number, purpose_code).map(Some)
    } else {
        Ok(None)
    }
}

/// R-QRY-10: the id of an approval in force at `now` for `user_id` in `agency`, for `case_number`
/// and `purpose_code`. Otherwise refused, saying whether a request is pending, was rejected, has
/// lapsed or was never made ([`ApprovalMissing`]).
pub fn approval_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &UserId,
    agency: &AgencyCode,
    case_number: &CaseNumber,
    purpose_code: &str,
) -> Result<PurposeApprovalId, BrokerError> {
    let rows: Vec<Row> = pa::table
        .filter(pa::agency.eq(agency))
        .filter(pa::requester_user_id.eq(user_id))
        .filter(pa::case_number.eq(case_number))
        .filter(pa::purpose_code.eq(purpose_code))
        .select(Row::as_select())
        .order(pa::id.desc())
        .load(conn)?;
    if let Some(row) = rows.iter().find(|row| row.in_force_at(now)) {
        return Ok(row.id.clone());
    }
    // The newest request says why there is none in force.
    let because = match rows.first() {
        None => MissingBecause::NoneRecorded,
        Some(row) => match row.status {
            ApprovalStatus::Pending => MissingBecause::Pending,
            ApprovalStatus::Rejected => MissingBecause::Rejected,
            ApprovalStatus::Approved => MissingBecause::Lapsed { at: row.valid_until.map(from_db) },
        },
    };
    Err(BrokerError::SupervisorApprovalRequired(ApprovalMissing {
        purpose_code: purpose_code.to_owned(),
        case_number: case_number.clone(),
        because,
    }))
}

/// Why no supervisor approval is in force for a lookup's purpose and case (R-QRY-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalMissing {
    pub purpose_code: String,
    pub case_number: CaseNumber,
    pub because: MissingBecause,
}

/// What the newest request for the purpose and case says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MissingBecause {
    NoneRecorded,
    Pending,
    Rejected,
    Lapsed { at: Option<DateTime<Utc>> },
}

impl std::fmt::Display for ApprovalMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ApprovalMissing { purpose_code, case_number, because } = self;
        match because {
            MissingBecause::NoneRecorded => write!(
                f,
                "purpose {purpose_code} needs a unit supervisor's approval for case {:?}; none is recorded",
                case_number.as_str()
            ),
            MissingBecause::Pending => f.write_str(
                "your request for approval of this purpose and case is still pending with your unit supervisor",
            ),
            MissingBecause::Rejected => {
                f.write_str("your unit supervisor rejected the request for approval of this purpose and case")
            }
            MissingBecause::Lapsed { at } => write!(
                f,
                "the approval of this purpose and case lapsed at {}",
                at.map(|at| at.to_rfc3339()).unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::colleagues::AccountStatus;
    use crate::domain::link::{LinkRefusal, Refusal};
    use crate::domain::testkit::{caller, conn, entitled, other_business_entitlements, t0, TestConn};

    const WORKER: &str = "01930000-0000-7000-8000-00000000000a";
    const BOSS: &str = "01930000-0000-7000-8000-00000000000b";
    const OTHER_BOSS: &str = "01930000-0000-7000-8000-00000000000c";

    fn worker() -> Caller {
        caller(WORKER, "HLN-HR", Some("unit-a"), &["caseworker"])
    }

    fn boss() -> Caller {
        caller(BOSS, "HLN-HR", Some("unit-a"), &["unit_supervisor", "caseworker"])
    }

    fn new() -> NewPurposeApproval {
        NewPurposeApproval {
            purpose_code: "hr_other_approved".into(),
            case_number: CaseNumber::new("HLN-2026-42"),
            business_description: "初設戶籍登記，需確認在臺居住期間".into(),
        }
    }

    fn requested(conn: &mut TestConn, who: &Caller) -> PurposeApproval {
        request(conn, t0(), who, &other_business_entitlements(), &new()).unwrap()
    }

    /// The worker, as identity describes them: they may declare "other business".
    fn requester() -> UserSummary {
        entitled(WORKER, "HLN-HR", &other_business_entitlements())
    }

    fn decide_for_worker(
        conn: &mut TestConn,
        who: &Caller,
        id: &PurposeApprovalId,
        decision: &NewDecision,
    ) -> Result<PurposeApproval, BrokerError> {
        decide(conn, t0(), who, id, decision, Some(&requester()))
    }

    fn approve(valid_until: Option<DateTime<Utc>>) -> NewDecision {
        decision(t0(), Some(Decision::Approved), None, valid_until).unwrap()
    }

    fn check(conn: &mut TestConn, at: DateTime<Utc>) -> Result<PurposeApprovalId, BrokerError> {
        approval_for(
            conn,
            at,
            &UserId::new(WORKER),
            &AgencyCode::new("HLN-HR"),
            &CaseNumber::new("HLN-2026-42"),
            "hr_other_approved",
        )
    }

    fn because(result: Result<PurposeApprovalId, BrokerError>) -> MissingBecause {
        match result {
            Err(BrokerError::SupervisorApprovalRequired(missing)) => missing.because,
            other => panic!("not a missing approval: {other:?}"),
        }
    }

    fn refused_field(result: Result<impl std::fmt::Debug, BrokerError>) -> String {
        match result {
            Err(BrokerError::Invalid { field, rule: Some(RULE), .. })
            | Err(BrokerError::Missing { field, rule: Some(RULE) })
            | Err(BrokerError::UnknownCode { field, rule: RULE, .. }) => field,
            other => panic!("not a refusal naming R-QRY-10: {other:?}"),
        }
    }

    #[test]
    fn r_qry_10_only_purposes_that_need_approval_can_be_requested() {
        let needs_none = approvable_purpose(Some("hr_nationality_change".into())).unwrap_err();
        assert_eq!(needs_none.to_string(), "this purpose needs no approval");
        assert_eq!(refused_field(approvable_purpose(Some("curiosity".into()))), "purpose_code");
        assert_eq!(refused_field(approvable_purpose(None)), "purpose_code");
        assert_eq!(refused_field(business_description(None)), "business_description");
        assert_eq!(refused_field(business_description(Some("長".repeat(501)))), "business_description");
        assert!(requires_approval("hr_other_approved"));
        assert!(!requires_approval("hr_nationality_change"));
    }

    #[test]
    fn r_qry_10_decisions_are_checked() {
        let decide = |decision_: Option<Decision>, reason: Option<&str>, valid_until| {
            decision(t0(), decision_, reason.map(str::to_owned), valid_until)
        };
        assert_eq!(refused_field(decide(None, None, None)), "decision");
        assert_eq!(refused_field(decide(Some(Decision::Rejected), None, None)), "reason");
        let rejected_with_period = decide(Some(Decision::Rejected), Some("不符"), Some(t0() + Duration::days(1)));
        assert_eq!(refused_field(rejected_with_period), "valid_until");
        let default = decide(Some(Decision::Approved), None, None).unwrap();
        assert_eq!(default.valid_until, Some(t0() + Duration::days(30)));
        assert!(decide(Some(Decision::Approved), None, Some(t0() + Duration::days(90))).is_ok());
        assert_eq!(
            refused_field(decide(Some(Decision::Approved), None, Some(t0() + Duration::days(91)))),
            "valid_until"
        );
        assert_eq!(refused_field(decide(Some(Decision::Approved), None, Some(t0()))), "valid_until");
    }

    #[test]
    fn r_qry_10_a_request_is_decided_once() {
        use ApprovalStatus::*;
        assert_eq!(Pending.transition(Approved).unwrap(), Approved);
        assert_eq!(Pending.transition(Rejected).unwrap(), Rejected);
        for (from, to) in [(Approved, Rejected), (Rejected, Approved), (Approved, Approved), (Rejected, Pending)] {
            assert!(matches!(from.transition(to), Err(BrokerError::AlreadyDecided)), "{from} → {to}");
        }
        assert!(matches!(Pending.transition(Pending), Err(BrokerError::IllegalTransition { .. })));
    }

    #[test]
    fn r_qry_10_the_requesters_unit_supervisor_approves_and_the_approval_is_found() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        assert_eq!(because(check(&mut conn, t0())), MissingBecause::NoneRecorded);
        let none = check(&mut conn, t0()).unwrap_err().to_string();
        assert!(none.contains("none is recorded"), "{none}");

        let pending = requested(&mut conn, &worker());
        assert_eq!(
            (pending.status, pending.unit.as_str(), pending.in_force),
            (ApprovalStatus::Pending, "unit-a", false)
        );
        assert_eq!(because(check(&mut conn, t0())), MissingBecause::Pending);
        let again = request(&mut conn, t0(), &worker(), &other_business_entitlements(), &new()).unwrap_err();
        assert!(matches!(again, BrokerError::AlreadyPending), "{again:?}");

        let decided = decide_for_worker(&mut conn, &boss(), &pending.id, &approve(None)).unwrap();
        assert_eq!(decided.status, ApprovalStatus::Approved);
        assert_eq!(decided.decided_by, Some(UserId::new(BOSS)));
        assert_eq!(decided.valid_until, Some(t0() + Duration::days(30)));
        assert!(decided.in_force);
        assert_eq!(check(&mut conn, t0() + Duration::days(1)).unwrap(), pending.id);
        // Only for that user, case and purpose, in that agency.
        let (hln, tpe) = (AgencyCode::new("HLN-HR"), AgencyCode::new("TPE-SW"));
        let (case, other_case) = (CaseNumber::new("HLN-2026-42"), CaseNumber::new("HLN-2026-43"));
        let (me, boss_id) = (UserId::new(WORKER), UserId::new(BOSS));
        assert!(approval_for(&mut conn, t0(), &boss_id, &hln, &case, "hr_other_approved").is_err());
        assert!(approval_for(&mut conn, t0(), &me, &hln, &other_case, "hr_other_approved").is_err());
        assert!(approval_for(&mut conn, t0(), &me, &tpe, &case, "hr_other_approved").is_err());
        // A purpose that needs none needs none.
        assert_eq!(approval_if_required(&mut conn, t0(), &me, &hln, &case, "hr_nationality_change").unwrap(), None);
        // It lapses.
        let lapsed = check(&mut conn, t0() + Duration::days(30));
        assert!(lapsed.unwrap_err().to_string().contains("lapsed"));
        assert!(!get(&mut conn, t0() + Duration::days(30), &worker(), &pending.id).unwrap().in_force);

        let events: Vec<String> = outbox::pending(&mut conn, 10).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(events, [kind::PURPOSE_APPROVAL_REQUESTED, kind::PURPOSE_APPROVAL_DECIDED]);
    }

    #[test]
    fn r_qry_10_separation_of_duties_and_unit_scoping() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        // A supervisor who is also a caseworker asks for themself: they cannot decide it.
        let own = requested(&mut conn, &boss());
        let err = decide_for_worker(&mut conn, &boss(), &own.id, &approve(None)).unwrap_err();
        assert!(matches!(err, BrokerError::OwnRequest), "{err:?}");

        let pending = requested(&mut conn, &worker());
        let mut try_as = |who: &Caller| decide_for_worker(&mut conn, who, &pending.id, &approve(None)).unwrap_err();
        let other_unit = caller(OTHER_BOSS, "HLN-HR", Some("unit-b"), &["unit_supervisor"]);
        assert!(matches!(try_as(&other_unit), BrokerError::OtherUnit));
        let no_unit = caller(OTHER_BOSS, "HLN-HR", None, &["unit_supervisor"]);
        assert!(matches!(try_as(&no_unit), BrokerError::OtherUnit));
        let manager = caller(OTHER_BOSS, "HLN-HR", Some("unit-a"), &["account_manager"]);
        assert!(matches!(try_as(&manager), BrokerError::UnitSupervisorRequired));
        let colleague = caller(OTHER_BOSS, "HLN-HR", Some("unit-a"), &["caseworker"]);
        assert!(matches!(try_as(&colleague), BrokerError::UnitSupervisorRequired));
        let foreign = caller(OTHER_BOSS, "TPE-SW", Some("unit-a"), &["unit_supervisor"]);
        assert!(matches!(try_as(&foreign), BrokerError::NotFound(_)));

        let reject = decision(t0(), Some(Decision::Rejected), Some("與戶政業務無關".into()), None).unwrap();
        // A rejection reads nothing of the requester.
        let rejected = decide(&mut conn, t0(), &boss(), &pending.id, &reject, None).unwrap();
        assert_eq!(
            (rejected.status, rejected.decision_reason.as_deref()),
            (ApprovalStatus::Rejected, Some("與戶政業務無關"))
        );
        assert_eq!(because(check(&mut conn, t0())), MissingBecause::Rejected);
        let twice = decide_for_worker(&mut conn, &boss(), &pending.id, &approve(None)).unwrap_err();
        assert!(matches!(twice, BrokerError::AlreadyDecided), "{twice:?}");

        // Nothing was written by the refused attempts: one decision event only.
        let decisions = outbox::pending(&mut conn, 20)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind::PURPOSE_APPROVAL_DECIDED)
            .count();
        assert_eq!(decisions, 1);
    }

    #[test]
    fn r_qry_10_requests_need_a_caseworker_with_a_unit() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let unitless = caller(WORKER, "HLN-HR", None, &["caseworker"]);
        let may_declare = other_business_entitlements();
        assert!(matches!(request(&mut conn, t0(), &unitless, &may_declare, &new()), Err(BrokerError::NoUnit)));
        let auditor = caller(WORKER, "HLN-HR", Some("unit-a"), &["auditor"]);
        assert!(matches!(
            request(&mut conn, t0(), &auditor, &may_declare, &new()),
            Err(BrokerError::CaseworkerRequired)
        ));
    }

    #[test]
    fn r_qry_10_lists_are_scoped_to_requester_unit_and_agency() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mine = requested(&mut conn, &worker());
        let elsewhere = requested(&mut conn, &caller(OTHER_BOSS, "HLN-HR", Some("unit-b"), &["caseworker"]));
        decide_for_worker(&mut conn, &boss(), &mine.id, &approve(None)).unwrap();

        let ids = |records: Vec<PurposeApproval>| records.into_iter().map(|v| v.id).collect::<Vec<_>>();
        let all = ApprovalFilter::default();
        let page = Page::first();
        assert_eq!(ids(list(&mut conn, t0(), &worker(), &all, &page).unwrap()), std::slice::from_ref(&mine.id));
        assert_eq!(ids(list(&mut conn, t0(), &boss(), &all, &page).unwrap()), std::slice::from_ref(&mine.id));
        let auditor = caller(BOSS, "HLN-HR", None, &["auditor"]);
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &all, &page).unwrap()), [elsewhere.id.clone(), mine.id.clone()]);
        let foreign = caller(BOSS, "TPE-SW", None, &["account_manager"]);
        assert!(list(&mut conn, t0(), &foreign, &all, &page).unwrap().is_empty());
        let pending = ApprovalFilter { status: Some(ApprovalStatus::Pending) };
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &pending, &page).unwrap()), std::slice::from_ref(&elsewhere.id));
        let second_page = Page { limit: 1, cursor: Some(elsewhere.id.to_string()) };
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &all, &second_page).unwrap()), std::slice::from_ref(&mine.id));

        assert!(get(&mut conn, t0(), &boss(), &mine.id).is_ok());
        assert!(matches!(get(&mut conn, t0(), &boss(), &elsewhere.id), Err(BrokerError::NotFound(_))));
        assert!(matches!(get(&mut conn, t0(), &worker(), &elsewhere.id), Err(BrokerError::NotFound(_))));
        assert!(matches!(get(&mut conn, t0(), &foreign, &mine.id), Err(BrokerError::NotFound(_))));
    }

    fn not_permitted(result: Result<impl std::fmt::Debug, BrokerError>) -> Whose {
        match result {
            Err(BrokerError::PurposeNotPermitted(PurposeRefusal { purpose_code, whose })) => {
                assert_eq!(purpose_code, "hr_other_approved");
                whose
            }
            other => panic!("not a purpose refusal: {other:?}"),
        }
    }

    fn link_refusal(result: Result<impl std::fmt::Debug, BrokerError>) -> LinkRefusal {
        match result {
            Err(BrokerError::LinkRefused { refusal, .. }) => refusal,
            other => panic!("not a link refusal: {other:?}"),
        }
    }

    /// The finding: a social-welfare caseworker asked for `hr_other_approved`, a household-registration
    /// purpose their agency's link does not carry, and their supervisor approved it. Only a purpose
    /// the requester may declare now (identity's link items ∩ grants, with the link usable) is asked
    /// for, and approved; a refused request writes nothing, a refused approval leaves it pending.
    #[test]
    fn r_qry_10_a_purpose_approval_for_a_purpose_the_link_does_not_carry_is_refused() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let social_welfare = Entitlements {
            permissions: vec![Permission {
                legal_basis: "social_assistance_act".into(),
                purpose_code: "sw_statutory_business".into(),
                query_type: "entry_exit_last_year".into(),
            }],
            link: Some(LinkStanding { refusal: None, query_types: vec!["entry_exit_last_year".into()] }),
        };
        let tpe_caseworker = caller(WORKER, "TPE-SW", Some("unit-a"), &["caseworker"]);
        let asked = request(&mut conn, t0(), &tpe_caseworker, &social_welfare, &new());
        assert_eq!(not_permitted(asked), Whose::Own);
        // Held, but the link no longer carries its query type (R-LINK-03): nothing to declare.
        let mut narrowed = other_business_entitlements();
        narrowed.link = Some(LinkStanding { refusal: None, query_types: vec!["eid_photo".into()] });
        assert_eq!(not_permitted(request(&mut conn, t0(), &worker(), &narrowed, &new())), Whose::Own);
        // A link identity refuses is told as itself; identity lists no permissions with it.
        let suspended = Entitlements {
            permissions: Vec::new(),
            link: Some(LinkStanding {
                refusal: Some(Refusal::from_identity("link_suspended", None)),
                query_types: vec!["entry_exit_last_year".into()],
            }),
        };
        assert_eq!(link_refusal(request(&mut conn, t0(), &worker(), &suspended, &new())), LinkRefusal::LinkSuspended);
        // An identity that does not report the link: the permissions alone decide.
        let unreported = Entitlements { link: None, ..other_business_entitlements() };
        assert_eq!(not_permitted(request(&mut conn, t0(), &worker(), &Entitlements::default(), &new())), Whose::Own);
        let detail = request(&mut conn, t0(), &tpe_caseworker, &social_welfare, &new()).unwrap_err().to_string();
        assert!(detail.contains("hr_other_approved") && detail.contains("your agency's link"), "{detail}");
        assert_eq!(pa::table.count().get_result::<i64>(&mut *conn).unwrap(), 0, "nothing written");
        assert!(outbox::pending(&mut conn, 10).unwrap().is_empty());

        // At the decision, what identity says about the requester now.
        let pending = request(&mut conn, t0(), &worker(), &unreported, &new()).unwrap();
        let approve_for = |conn: &mut TestConn, requester: Option<&UserSummary>| {
            decide(conn, t0(), &boss(), &pending.id, &approve(None), requester)
        };
        let welfare_now = entitled(WORKER, "HLN-HR", &social_welfare);
        assert_eq!(not_permitted(approve_for(&mut conn, Some(&welfare_now))), Whose::Requesters);
        assert_eq!(not_permitted(approve_for(&mut conn, None)), Whose::Requesters, "unknown to identity");
        let suspended_account = UserSummary { status: Some(AccountStatus::Suspended), ..requester() };
        assert_eq!(not_permitted(approve_for(&mut conn, Some(&suspended_account))), Whose::Requesters);
        let moved = UserSummary { agency: AgencyCode::new("TPE-SW"), ..requester() };
        assert_eq!(not_permitted(approve_for(&mut conn, Some(&moved))), Whose::Requesters);
        let someone_else = entitled(BOSS, "HLN-HR", &other_business_entitlements());
        assert_eq!(not_permitted(approve_for(&mut conn, Some(&someone_else))), Whose::Requesters);
        let link_refused = entitled(WORKER, "HLN-HR", &suspended);
        assert_eq!(link_refusal(approve_for(&mut conn, Some(&link_refused))), LinkRefusal::LinkSuspended);
        let still = get(&mut conn, t0(), &worker(), &pending.id).unwrap();
        assert_eq!((still.status, still.decided_by), (ApprovalStatus::Pending, None), "still pending");
        let kinds: Vec<String> = outbox::pending(&mut conn, 10).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [kind::PURPOSE_APPROVAL_REQUESTED], "no decision recorded");
        // The requester who may declare it is approved; a rejection never needed to ask.
        assert!(approve_for(&mut conn, Some(&requester())).unwrap().in_force);
    }

    #[test]
    fn r_qry_10_a_decision_cannot_be_rewritten_in_the_database() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let pending = requested(&mut conn, &worker());
        let sneaky = diesel::update(pa::table.filter(pa::id.eq(&pending.id)))
            .set(pa::business_description.eq("something else"))
            .execute(&mut *conn);
        assert!(sneaky.is_err(), "the request's terms are read-only");
        decide_for_worker(&mut conn, &boss(), &pending.id, &approve(None)).unwrap();
        let extended = diesel::update(pa::table.filter(pa::id.eq(&pending.id)))
            .set(pa::valid_until.eq(to_db(t0() + Duration::days(365))))
            .execute(&mut *conn);
        assert!(extended.is_err(), "a decision is recorded once");
    }
}
