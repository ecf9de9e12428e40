//! Unit-supervisor approval of "other business" purposes (seed 002 pt 4(4); R-QRY-10): a lookup for a
//! purpose whose catalogue entry `requires_supervisor_approval` runs only under a recorded approval by
//! a supervisor of the requester's unit, for that user, case and purpose, until it lapses. Nobody
//! decides their own request; a decision is made once and never edited.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::catalogue;
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::forms::{self, Caller, Lines};
use super::{outbox, BrokerError};
use crate::schema::purpose_approvals as pa;

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

/// A caseworker's request for approval.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({
    "purpose_code": "hr_other_approved",
    "case_number": "HLN-HR-2026-0042",
    "business_description": "受理初設戶籍登記，需確認申請人最近一年在臺居住期間"
}))]
pub struct PurposeApprovalBody {
    /// A purpose whose catalogue entry requires supervisor approval.
    #[schema(schema_with = catalogue::purpose_code_schema, required = true)]
    pub purpose_code: Option<String>,
    /// The case the lookups serve (案號).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 64)]
    pub case_number: Option<String>,
    /// The business the lookups serve, for the supervisor to judge (at most 500 characters).
    #[schema(required = true, nullable = false, min_length = 1, max_length = 500)]
    pub business_description: Option<String>,
}

/// A request that passed every input rule.
#[derive(Debug, Clone)]
pub struct NewPurposeApproval {
    pub purpose_code: String,
    pub case_number: String,
    pub business_description: String,
}

impl NewPurposeApproval {
    pub fn parse(body: PurposeApprovalBody) -> Result<Self, BrokerError> {
        Self::parse_fields(body).map_err(|err| err.or_rule(RULE))
    }

    fn parse_fields(body: PurposeApprovalBody) -> Result<Self, BrokerError> {
        let purpose_code =
            forms::required(body.purpose_code, "purpose_code", 64, Lines::One).map_err(|err| err.rule(RULE))?;
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
        Ok(Self {
            purpose_code,
            case_number: forms::case_number(body.case_number, RULE)?,
            business_description: forms::required(
                body.business_description,
                "business_description",
                MAX_DESCRIPTION,
                Lines::Many,
            )?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    fn code(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [ApprovalStatus::Pending, ApprovalStatus::Approved, ApprovalStatus::Rejected]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

/// A unit supervisor's decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[schema(example = json!({"decision": "approved", "valid_until": "2026-12-23T00:00:00+08:00"}))]
pub struct DecisionBody {
    #[schema(required = true, nullable = false)]
    pub decision: Option<Decision>,
    /// Required when rejecting.
    pub reason: Option<String>,
    /// Approvals only: when it lapses (RFC 3339); default 30 days after the decision, at most 90.
    pub valid_until: Option<DateTime<Utc>>,
}

/// A decision that passed every input rule.
#[derive(Debug, Clone)]
pub struct ParsedDecision {
    pub decision: Decision,
    pub reason: Option<String>,
    pub valid_until: Option<DateTime<Utc>>,
}

impl ParsedDecision {
    pub fn parse(body: DecisionBody, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        Self::parse_fields(body, now).map_err(|err| err.or_rule(RULE))
    }

    fn parse_fields(body: DecisionBody, now: DateTime<Utc>) -> Result<Self, BrokerError> {
        let decision = body.decision.ok_or_else(|| BrokerError::missing("decision"))?;
        match decision {
            Decision::Rejected => {
                if body.valid_until.is_some() {
                    return Err(BrokerError::invalid("valid_until", "only an approval has a validity period"));
                }
                let reason = forms::required(body.reason, "reason", MAX_REASON, Lines::Many)?;
                Ok(Self { decision, reason: Some(reason), valid_until: None })
            }
            Decision::Approved => {
                let valid_until = body.valid_until.unwrap_or(now + Duration::days(DEFAULT_VALIDITY_DAYS));
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
                let reason = forms::optional(body.reason, "reason", MAX_REASON, Lines::Many)?;
                Ok(Self { decision, reason, valid_until: Some(valid_until) })
            }
        }
    }
}

/// A request for approval of an "other business" purpose and its decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PurposeApprovalView {
    pub id: String,
    pub agency: String,
    /// The requester's unit when they asked; a supervisor of this unit decides.
    pub unit: String,
    pub requester_user_id: String,
    pub purpose_code: String,
    pub case_number: String,
    pub business_description: String,
    pub status: ApprovalStatus,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decision_reason: Option<String>,
    /// When an approval lapses.
    pub valid_until: Option<DateTime<Utc>>,
    /// Approved and not lapsed at the time of the answer: lookups may run under it.
    pub in_force: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = pa)]
struct Row {
    id: String,
    agency: String,
    unit: String,
    requester_user_id: String,
    purpose_code: String,
    case_number: String,
    business_description: String,
    status: String,
    requested_at: NaiveDateTime,
    decided_at: Option<NaiveDateTime>,
    decided_by: Option<String>,
    decision_reason: Option<String>,
    valid_until: Option<NaiveDateTime>,
}

impl Row {
    fn status(&self) -> Result<ApprovalStatus, BrokerError> {
        ApprovalStatus::parse(&self.status)
            .ok_or_else(|| BrokerError::Internal(format!("purpose approval {} has status {:?}", self.id, self.status)))
    }

    fn visible_to(&self, caller: &Caller) -> bool {
        self.agency == caller.agency
            && (self.requester_user_id == caller.user_id
                || caller.is_in_unit_as(roles::UNIT_SUPERVISOR, Some(&self.unit))
                || caller.has_any(&OVERSEERS))
    }

    fn view(self, now: DateTime<Utc>) -> Result<PurposeApprovalView, BrokerError> {
        let status = self.status()?;
        let valid_until = self.valid_until.map(from_db);
        Ok(PurposeApprovalView {
            in_force: status == ApprovalStatus::Approved && valid_until.is_some_and(|until| now < until),
            status,
            valid_until,
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
        })
    }
}

fn find(conn: &mut DbConn, id: &str) -> Result<Option<Row>, BrokerError> {
    Ok(pa::table.filter(pa::id.eq(id)).select(Row::as_select()).first(conn).optional()?)
}

fn not_found() -> BrokerError {
    BrokerError::NotFound("the purpose approval")
}

/// A caseworker asks for approval; the request records their unit, whose supervisor decides.
pub fn request(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    new: &NewPurposeApproval,
) -> Result<PurposeApprovalView, BrokerError> {
    if !caller.has(roles::CASEWORKER) {
        return Err(BrokerError::CaseworkerRequired);
    }
    let unit = caller.unit.clone().ok_or(BrokerError::NoUnit)?;
    let id = forms::new_id();
    let event = forms::event(
        kind::PURPOSE_APPROVAL_REQUESTED,
        now,
        caller,
        &id,
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
            .filter(pa::status.eq(ApprovalStatus::Pending.code()))
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
                pa::status.eq(ApprovalStatus::Pending.code()),
                pa::requested_at.eq(to_db(now)),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            Err(err) if forms::is_unique_violation(&err) => return Err(BrokerError::AlreadyPending),
            Err(err) => return Err(err.into()),
        }
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, &id)
}

/// A unit supervisor of the requester's unit (recorded at request time) approves or rejects a
/// pending request. Nobody decides their own (separation of duties); a decided request is a conflict.
pub fn decide(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    decision: &ParsedDecision,
) -> Result<PurposeApprovalView, BrokerError> {
    conn.write_transaction(|conn| {
        let row = find(conn, id)?.filter(|row| row.agency == caller.agency).ok_or_else(not_found)?;
        if !caller.has(roles::UNIT_SUPERVISOR) {
            return Err(BrokerError::UnitSupervisorRequired);
        }
        if row.requester_user_id == caller.user_id {
            return Err(BrokerError::OwnRequest);
        }
        if caller.unit.as_deref() != Some(row.unit.as_str()) {
            return Err(BrokerError::OtherUnit);
        }
        if row.status()? != ApprovalStatus::Pending {
            return Err(BrokerError::AlreadyDecided);
        }
        let status = match decision.decision {
            Decision::Approved => ApprovalStatus::Approved,
            Decision::Rejected => ApprovalStatus::Rejected,
        };
        // The guard makes a concurrent second decision update nothing.
        let updated =
            diesel::update(pa::table.filter(pa::id.eq(id)).filter(pa::status.eq(ApprovalStatus::Pending.code())))
                .set((
                    pa::status.eq(status.code()),
                    pa::decided_at.eq(to_db(now)),
                    pa::decided_by.eq(&caller.user_id),
                    pa::decision_reason.eq(&decision.reason),
                    pa::valid_until.eq(decision.valid_until.map(to_db)),
                ))
                .execute(conn)?;
        if updated != 1 {
            return Err(BrokerError::AlreadyDecided);
        }
        let event = forms::event(
            kind::PURPOSE_APPROVAL_DECIDED,
            now,
            caller,
            id,
            None,
            json!({
                "decision": status.code(),
                "requester_user_id": row.requester_user_id,
                "purpose_code": row.purpose_code,
                "case_number": row.case_number,
                "reason": decision.reason,
                "valid_until": decision.valid_until,
            }),
        );
        outbox::enqueue(conn, now, &event)
    })?;
    get(conn, now, caller, id)
}

/// `GET /v1/purpose-approvals` filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalFilter {
    pub status: Option<ApprovalStatus>,
    /// At most this many (1–500, default 100), newest first.
    pub limit: Option<i64>,
    /// Only those older than the one with this id (paging).
    pub before: Option<String>,
}

/// The caller's own requests; a unit supervisor also sees their unit's, account managers and
/// auditors their agency's.
pub fn list(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    filter: &ApprovalFilter,
) -> Result<Vec<PurposeApprovalView>, BrokerError> {
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
        query = query.filter(pa::status.eq(status.code()));
    }
    if let Some(before) = &filter.before {
        query = query.filter(pa::id.lt(before.clone()));
    }
    let rows: Vec<Row> = query.order(pa::id.desc()).limit(forms::page_size(filter.limit)).load(conn)?;
    rows.into_iter().map(|row| row.view(now)).collect()
}

/// One request: for its requester, the supervisors of its unit, and the account managers and
/// auditors of its agency; 404 for anyone else.
pub fn get(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
) -> Result<PurposeApprovalView, BrokerError> {
    match find(conn, id)? {
        Some(row) if row.visible_to(caller) => row.view(now),
        _ => Err(not_found()),
    }
}

/// R-QRY-10: the id of an approved approval in force at `now` for `user_id` in `agency`, for
/// `case_number` and `purpose_code`. Otherwise 403 `supervisor_approval_required` on the field
/// `purpose_code`, saying whether a request is pending, was rejected, has lapsed or was never made.
/// Call it for purposes that [`requires_approval`].
pub fn approval_for(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    user_id: &str,
    agency: &str,
    case_number: &str,
    purpose_code: &str,
) -> Result<String, BrokerError> {
    let case_number = case_number.trim();
    let rows: Vec<Row> = pa::table
        .filter(pa::agency.eq(agency))
        .filter(pa::requester_user_id.eq(user_id))
        .filter(pa::case_number.eq(case_number))
        .filter(pa::purpose_code.eq(purpose_code))
        .select(Row::as_select())
        .order(pa::id.desc())
        .load(conn)?;
    let in_force = rows.iter().filter(|row| row.status == ApprovalStatus::Approved.code()).find(|row| {
        row.valid_until.map(from_db).is_some_and(|until| now < until)
            && row.decided_at.map(from_db).is_some_and(|at| at <= now)
    });
    if let Some(row) = in_force {
        return Ok(row.id.clone());
    }
    // The newest request says why there is none in force.
    let because = match rows.first() {
        None => MissingBecause::NoneRecorded,
        Some(row) => match row.status()? {
            ApprovalStatus::Pending => MissingBecause::Pending,
            ApprovalStatus::Rejected => MissingBecause::Rejected,
            ApprovalStatus::Approved => MissingBecause::Lapsed { at: row.valid_until.map(from_db) },
        },
    };
    Err(BrokerError::SupervisorApprovalRequired(ApprovalMissing {
        purpose_code: purpose_code.to_owned(),
        case_number: case_number.to_owned(),
        because,
    }))
}

/// Why no supervisor approval is in force for a lookup's purpose and case (R-QRY-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalMissing {
    pub purpose_code: String,
    pub case_number: String,
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
                "purpose {purpose_code} needs a unit supervisor's approval for case {case_number:?}; none is recorded"
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
    use immilink_shared::ApiError;

    use super::*;
    use crate::domain::forms::testkit::{caller, conn, t0, TestConn};
    use immilink_shared::testing::TestDb;

    const WORKER: &str = "01930000-0000-7000-8000-00000000000a";
    const BOSS: &str = "01930000-0000-7000-8000-00000000000b";
    const OTHER_BOSS: &str = "01930000-0000-7000-8000-00000000000c";

    fn worker() -> Caller {
        caller(WORKER, "HLN-HR", Some("unit-a"), &["caseworker"])
    }

    fn boss() -> Caller {
        caller(BOSS, "HLN-HR", Some("unit-a"), &["unit_supervisor", "caseworker"])
    }

    fn body() -> PurposeApprovalBody {
        PurposeApprovalBody {
            purpose_code: Some("hr_other_approved".into()),
            case_number: Some("HLN-2026-42".into()),
            business_description: Some("初設戶籍登記，需確認在臺居住期間".into()),
        }
    }

    fn requested(conn: &mut TestConn, who: &Caller) -> PurposeApprovalView {
        request(conn, t0(), who, &NewPurposeApproval::parse(body()).unwrap()).unwrap()
    }

    fn approve(valid_until: Option<DateTime<Utc>>) -> ParsedDecision {
        ParsedDecision::parse(DecisionBody { decision: Some(Decision::Approved), reason: None, valid_until }, t0())
            .unwrap()
    }

    fn check(conn: &mut TestConn, at: DateTime<Utc>) -> Result<String, BrokerError> {
        approval_for(conn, at, WORKER, "HLN-HR", "HLN-2026-42", "hr_other_approved")
    }

    fn refusal(result: Result<String, BrokerError>) -> String {
        let problem = result.map_err(ApiError::from).unwrap_err().to_problem();
        assert_eq!(
            (problem.status, problem.code.as_str(), problem.field.as_deref(), problem.rule.as_deref()),
            (403, "supervisor_approval_required", Some("purpose_code"), Some("R-QRY-10"))
        );
        assert!(problem.hint.as_deref().is_some_and(|h| h.contains("POST /v1/purpose-approvals")));
        problem.detail
    }

    #[test]
    fn r_qry_10_only_purposes_that_need_approval_can_be_requested() {
        let mut b = body();
        b.purpose_code = Some("hr_nationality_change".into());
        let err = NewPurposeApproval::parse(b).map_err(ApiError::from).unwrap_err();
        assert_eq!(
            (err.field_name(), err.to_problem().detail.as_str()),
            (Some("purpose_code"), "this purpose needs no approval")
        );
        let mut b = body();
        b.purpose_code = Some("curiosity".into());
        assert_eq!(
            NewPurposeApproval::parse(b).map_err(ApiError::from).unwrap_err().field_name(),
            Some("purpose_code")
        );
        let mut b = body();
        b.business_description = None;
        assert_eq!(
            NewPurposeApproval::parse(b).map_err(ApiError::from).unwrap_err().field_name(),
            Some("business_description")
        );
        let mut b = body();
        b.business_description = Some("長".repeat(501));
        assert_eq!(
            NewPurposeApproval::parse(b).map_err(ApiError::from).unwrap_err().field_name(),
            Some("business_description")
        );
        let mut b = body();
        b.case_number = None;
        assert_eq!(NewPurposeApproval::parse(b).map_err(ApiError::from).unwrap_err().field_name(), Some("case_number"));
        assert!(requires_approval("hr_other_approved"));
        assert!(!requires_approval("hr_nationality_change"));
    }

    #[test]
    fn r_qry_10_decisions_are_checked() {
        let parse = |decision, reason: Option<&str>, valid_until| {
            ParsedDecision::parse(DecisionBody { decision, reason: reason.map(str::to_owned), valid_until }, t0())
        };
        assert_eq!(parse(None, None, None).map_err(ApiError::from).unwrap_err().field_name(), Some("decision"));
        assert_eq!(
            parse(Some(Decision::Rejected), None, None).map_err(ApiError::from).unwrap_err().field_name(),
            Some("reason")
        );
        assert_eq!(
            parse(Some(Decision::Rejected), Some("不符"), Some(t0() + Duration::days(1)))
                .map_err(ApiError::from)
                .unwrap_err()
                .field_name(),
            Some("valid_until")
        );
        let default = parse(Some(Decision::Approved), None, None).unwrap();
        assert_eq!(default.valid_until, Some(t0() + Duration::days(30)));
        assert!(parse(Some(Decision::Approved), None, Some(t0() + Duration::days(90))).is_ok());
        assert_eq!(
            parse(Some(Decision::Approved), None, Some(t0() + Duration::days(91)))
                .map_err(ApiError::from)
                .unwrap_err()
                .field_name(),
            Some("valid_until")
        );
        assert_eq!(
            parse(Some(Decision::Approved), None, Some(t0())).map_err(ApiError::from).unwrap_err().field_name(),
            Some("valid_until")
        );
    }

    #[test]
    fn r_qry_10_the_requesters_unit_supervisor_approves_and_the_approval_is_found() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let none = refusal(check(&mut conn, t0()));
        assert!(none.contains("none is recorded"), "{none}");

        let pending = requested(&mut conn, &worker());
        assert_eq!(
            (pending.status, pending.unit.as_str(), pending.in_force),
            (ApprovalStatus::Pending, "unit-a", false)
        );
        assert!(refusal(check(&mut conn, t0())).contains("pending"));
        let again = request(&mut conn, t0(), &worker(), &NewPurposeApproval::parse(body()).unwrap())
            .map_err(ApiError::from)
            .unwrap_err();
        assert_eq!((again.status().as_u16(), again.code()), (409, "already_pending"));

        let decided = decide(&mut conn, t0(), &boss(), &pending.id, &approve(None)).unwrap();
        assert_eq!(decided.status, ApprovalStatus::Approved);
        assert_eq!(decided.decided_by.as_deref(), Some(BOSS));
        assert_eq!(decided.valid_until, Some(t0() + Duration::days(30)));
        assert!(decided.in_force);
        assert_eq!(check(&mut conn, t0() + Duration::days(1)).unwrap(), pending.id);
        // Only for that user, case and purpose, in that agency.
        assert!(approval_for(&mut conn, t0(), BOSS, "HLN-HR", "HLN-2026-42", "hr_other_approved").is_err());
        assert!(approval_for(&mut conn, t0(), WORKER, "HLN-HR", "HLN-2026-43", "hr_other_approved").is_err());
        assert!(approval_for(&mut conn, t0(), WORKER, "TPE-SW", "HLN-2026-42", "hr_other_approved").is_err());
        // It lapses.
        let lapsed = refusal(check(&mut conn, t0() + Duration::days(30)));
        assert!(lapsed.contains("lapsed"), "{lapsed}");
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
        let err = decide(&mut conn, t0(), &boss(), &own.id, &approve(None)).map_err(ApiError::from).unwrap_err();
        assert_eq!((err.status().as_u16(), err.code()), (403, "own_request"));
        assert_eq!(err.to_problem().rule.as_deref(), Some("R-QRY-10"));

        let pending = requested(&mut conn, &worker());
        let other_unit = caller(OTHER_BOSS, "HLN-HR", Some("unit-b"), &["unit_supervisor"]);
        assert_eq!(
            decide(&mut conn, t0(), &other_unit, &pending.id, &approve(None))
                .map_err(ApiError::from)
                .unwrap_err()
                .code(),
            "other_unit"
        );
        let no_unit = caller(OTHER_BOSS, "HLN-HR", None, &["unit_supervisor"]);
        assert_eq!(
            decide(&mut conn, t0(), &no_unit, &pending.id, &approve(None)).map_err(ApiError::from).unwrap_err().code(),
            "other_unit"
        );
        let manager = caller(OTHER_BOSS, "HLN-HR", Some("unit-a"), &["account_manager"]);
        assert_eq!(
            decide(&mut conn, t0(), &manager, &pending.id, &approve(None)).map_err(ApiError::from).unwrap_err().code(),
            "role_required"
        );
        let colleague = caller(OTHER_BOSS, "HLN-HR", Some("unit-a"), &["caseworker"]);
        assert_eq!(
            decide(&mut conn, t0(), &colleague, &pending.id, &approve(None))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            403
        );
        let foreign = caller(OTHER_BOSS, "TPE-SW", Some("unit-a"), &["unit_supervisor"]);
        assert_eq!(
            decide(&mut conn, t0(), &foreign, &pending.id, &approve(None))
                .map_err(ApiError::from)
                .unwrap_err()
                .status(),
            404
        );

        let reject = ParsedDecision::parse(
            DecisionBody {
                decision: Some(Decision::Rejected),
                reason: Some("與戶政業務無關".into()),
                valid_until: None,
            },
            t0(),
        )
        .unwrap();
        let rejected = decide(&mut conn, t0(), &boss(), &pending.id, &reject).unwrap();
        assert_eq!(
            (rejected.status, rejected.decision_reason.as_deref()),
            (ApprovalStatus::Rejected, Some("與戶政業務無關"))
        );
        assert!(refusal(check(&mut conn, t0())).contains("rejected"));
        let twice = decide(&mut conn, t0(), &boss(), &pending.id, &approve(None)).map_err(ApiError::from).unwrap_err();
        assert_eq!((twice.status().as_u16(), twice.code()), (409, "already_decided"));

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
        let new = NewPurposeApproval::parse(body()).unwrap();
        let unitless = caller(WORKER, "HLN-HR", None, &["caseworker"]);
        assert_eq!(
            request(&mut conn, t0(), &unitless, &new).map_err(ApiError::from).unwrap_err().code(),
            "unit_required"
        );
        let auditor = caller(WORKER, "HLN-HR", Some("unit-a"), &["auditor"]);
        assert_eq!(
            request(&mut conn, t0(), &auditor, &new).map_err(ApiError::from).unwrap_err().code(),
            "role_required"
        );
    }

    #[test]
    fn r_qry_10_lists_are_scoped_to_requester_unit_and_agency() {
        let test_db = TestDb::new();
        let mut conn = conn(&test_db);
        let mine = requested(&mut conn, &worker());
        let elsewhere = requested(&mut conn, &caller(OTHER_BOSS, "HLN-HR", Some("unit-b"), &["caseworker"]));
        decide(&mut conn, t0(), &boss(), &mine.id, &approve(None)).unwrap();

        let ids = |views: Vec<PurposeApprovalView>| views.into_iter().map(|v| v.id).collect::<Vec<_>>();
        let all = ApprovalFilter::default();
        assert_eq!(ids(list(&mut conn, t0(), &worker(), &all).unwrap()), [mine.id.as_str()]);
        assert_eq!(ids(list(&mut conn, t0(), &boss(), &all).unwrap()), [mine.id.as_str()]);
        let auditor = caller(BOSS, "HLN-HR", None, &["auditor"]);
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &all).unwrap()), [elsewhere.id.as_str(), mine.id.as_str()]);
        let foreign = caller(BOSS, "TPE-SW", None, &["account_manager"]);
        assert!(list(&mut conn, t0(), &foreign, &all).unwrap().is_empty());
        let pending = ApprovalFilter { status: Some(ApprovalStatus::Pending), ..ApprovalFilter::default() };
        assert_eq!(ids(list(&mut conn, t0(), &auditor, &pending).unwrap()), [elsewhere.id.as_str()]);

        assert!(get(&mut conn, t0(), &boss(), &mine.id).is_ok());
        assert_eq!(get(&mut conn, t0(), &boss(), &elsewhere.id).map_err(ApiError::from).unwrap_err().status(), 404);
        assert_eq!(get(&mut conn, t0(), &worker(), &elsewhere.id).map_err(ApiError::from).unwrap_err().status(), 404);
        assert_eq!(get(&mut conn, t0(), &foreign, &mine.id).map_err(ApiError::from).unwrap_err().status(), 404);
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
        decide(&mut conn, t0(), &boss(), &pending.id, &approve(None)).unwrap();
        let extended = diesel::update(pa::table.filter(pa::id.eq(&pending.id)))
            .set(pa::valid_until.eq(to_db(t0() + Duration::days(365))))
            .execute(&mut *conn);
        assert!(extended.is_err(), "a decision is recorded once");
    }
}
