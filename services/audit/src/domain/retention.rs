//! Retention, legal holds and disposal (R-AUD-01; seeds 003 pt 6, 001 pt 7(1), 002 pt 7; PDPA art.
//! 11). Records are kept at least the retention period, which cannot be set below five years. A
//! legal hold keeps the records it covers past retention until someone other than who placed it
//! lifts it. The disposal job then removes the content of what is past retention and not held,
//! keeping each record's hash and leaf so every checkpoint and proof stays verifiable, and records
//! the disposal in the log. No endpoint deletes anything.

use chrono::{DateTime, Months, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::ids;
use immilink_shared::typed::AgencyCode;
use serde_json::json;

use super::chain::{self, Ranges};
use super::{tree, AuditError};
use crate::schema::{audit_legal_holds, audit_records};

/// The shortest retention the regulations allow.
pub const MINIMUM_YEARS: u32 = 5;

/// How long records are kept before their content may be disposed of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    years: u32,
}

impl Retention {
    /// Refused below five years (003 pt 6, 001 pt 7(1), 002 pt 7).
    pub fn years(years: u32) -> Result<Self, AuditError> {
        if years < MINIMUM_YEARS {
            return Err(AuditError::Invalid {
                field: "retention_years".into(),
                detail: format!("records are kept at least {MINIMUM_YEARS} years; {years} is too short"),
            });
        }
        Ok(Self { years })
    }

    pub fn in_years(&self) -> u32 {
        self.years
    }

    /// Records recorded before this instant are past retention at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_sub_months(Months::new(self.years * 12)).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Who may place and lift legal holds: the agency's overseers and the immigration agency.
pub const HOLDERS: &[&str] = &[roles::AUDITOR, roles::ACCOUNT_MANAGER, roles::ETHICS_OFFICER, roles::NIA_REVIEWER];

/// What a hold keeps: an agency's records (every agency's when `agency` is none, the immigration
/// agency only), narrowed to one subject, one case or a sequence range, or not narrowed.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldScope {
    Agency,
    Subject(String),
    Case(String),
    Sequences { from: i64, to: i64 },
}

/// A hold as asked for, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct HoldRequest {
    pub agency: Option<String>,
    pub subject_id: Option<String>,
    pub case_number: Option<String>,
    pub from_sequence: Option<i64>,
    pub to_sequence: Option<i64>,
    pub reason: String,
}

/// A stored hold.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = audit_legal_holds)]
pub struct LegalHold {
    pub id: String,
    pub agency: Option<String>,
    pub subject_id: Option<String>,
    pub case_number: Option<String>,
    pub from_sequence: Option<i64>,
    pub to_sequence: Option<i64>,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: NaiveDateTime,
    pub lifted_by: Option<String>,
    pub lifted_at: Option<NaiveDateTime>,
    pub lift_reason: Option<String>,
}

impl LegalHold {
    /// Whether this hold, while in force, keeps `record`.
    fn keeps(&self, record: &chain::AuditRecord) -> bool {
        if self.lifted_at.is_some() {
            return false;
        }
        if self.agency.as_ref().is_some_and(|agency| record.agency.as_ref() != Some(agency)) {
            return false;
        }
        if let Some(subject) = &self.subject_id {
            return record.subject_id.as_ref() == Some(subject);
        }
        if let Some(case) = &self.case_number {
            let payload: serde_json::Value = serde_json::from_str(&record.payload).unwrap_or_default();
            return payload.get("case_number").and_then(|c| c.as_str()) == Some(case.as_str());
        }
        if let (Some(from), Some(to)) = (self.from_sequence, self.to_sequence) {
            return (from..=to).contains(&record.sequence);
        }
        true
    }
}

/// Longest reason or case number kept.
const MAX_TEXT: usize = 500;

fn text(field: &str, value: &str, max: usize) -> Result<String, AuditError> {
    let value = value.trim();
    let invalid = |detail: &str| AuditError::Invalid { field: field.into(), detail: detail.into() };
    if value.is_empty() {
        return Err(invalid("is required"));
    }
    if value.chars().count() > max {
        return Err(invalid(&format!("at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(value.to_owned())
}

impl HoldRequest {
    /// The agency and scope of the hold, as the caller may place it.
    fn parse(&self, caller: &Caller) -> Result<(Option<AgencyCode>, HoldScope, String), AuditError> {
        if !caller.has_any(HOLDERS) {
            return Err(AuditError::RoleRequired { roles: HOLDERS });
        }
        let reason = text("reason", &self.reason, MAX_TEXT)?;
        let agency = match (&self.agency, caller.has_any(&[roles::NIA_REVIEWER])) {
            (Some(agency), true) => Some(AgencyCode::new(text("agency", agency, 32)?)),
            (None, true) => None,
            (Some(agency), false) if agency.trim() != caller.agency.as_str() => return Err(AuditError::OtherAgency),
            _ => Some(caller.agency.clone()),
        };
        let narrowings = [
            self.subject_id.is_some(),
            self.case_number.is_some(),
            self.from_sequence.is_some() || self.to_sequence.is_some(),
        ];
        if narrowings.iter().filter(|n| **n).count() > 1 {
            return Err(AuditError::Invalid {
                field: "subject_id".into(),
                detail: "name one of subject_id, case_number or a sequence range, not several".into(),
            });
        }
        let scope = if let Some(subject) = &self.subject_id {
            // A subject identifier as records carry it: well formed, so bounded (not any text).
            let subject = ids::SubjectId::parse_any(subject)
                .map_err(|err| AuditError::Invalid { field: "subject_id".into(), detail: err.to_string() })?;
            HoldScope::Subject(subject.as_str().to_owned())
        } else if let Some(case) = &self.case_number {
            HoldScope::Case(text("case_number", case, 64)?)
        } else if self.from_sequence.is_some() || self.to_sequence.is_some() {
            let sequence = |field: &str, value: Option<i64>| {
                value.filter(|v| *v >= 1).ok_or_else(|| AuditError::Invalid {
                    field: field.into(),
                    detail: "a sequence range needs from_sequence and to_sequence, each at least 1".into(),
                })
            };
            let (from, to) =
                (sequence("from_sequence", self.from_sequence)?, sequence("to_sequence", self.to_sequence)?);
            if from > to {
                return Err(AuditError::Invalid {
                    field: "to_sequence".into(),
                    detail: "must not be below from_sequence".into(),
                });
            }
            HoldScope::Sequences { from, to }
        } else {
            HoldScope::Agency
        };
        Ok((agency, scope, reason))
    }
}

/// The audit service's own act, recorded in its log in the same transaction as the act.
pub(crate) fn own_act(
    kind: &str,
    now: DateTime<Utc>,
    caller: Option<&Caller>,
    agency: Option<String>,
    correlation_id: &str,
    payload: serde_json::Value,
) -> AuditEvent {
    AuditEvent {
        actor_user_id: caller.map(|c| c.user_id.to_string()),
        agency,
        correlation_id: Some(correlation_id.to_owned()),
        ..AuditEvent::new(crate::SERVICE, kind, now, payload)
    }
}

/// Places a legal hold, recorded in the log.
pub fn place_hold(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    request: &HoldRequest,
) -> Result<LegalHold, AuditError> {
    let (agency, scope, reason) = request.parse(caller)?;
    let (subject_id, case_number, from_sequence, to_sequence) = match &scope {
        HoldScope::Agency => (None, None, None, None),
        HoldScope::Subject(subject) => (Some(subject.clone()), None, None, None),
        HoldScope::Case(case) => (None, Some(case.clone()), None, None),
        HoldScope::Sequences { from, to } => (None, None, Some(*from), Some(*to)),
    };
    let hold = LegalHold {
        id: uuid::Uuid::now_v7().to_string(),
        agency: agency.map(|a| a.to_string()),
        subject_id,
        case_number,
        from_sequence,
        to_sequence,
        reason,
        placed_by: caller.user_id.to_string(),
        placed_at: to_db(now),
        lifted_by: None,
        lifted_at: None,
        lift_reason: None,
    };
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        diesel::insert_into(audit_legal_holds::table)
            .values((
                audit_legal_holds::id.eq(&hold.id),
                audit_legal_holds::agency.eq(&hold.agency),
                audit_legal_holds::subject_id.eq(&hold.subject_id),
                audit_legal_holds::case_number.eq(&hold.case_number),
                audit_legal_holds::from_sequence.eq(hold.from_sequence),
                audit_legal_holds::to_sequence.eq(hold.to_sequence),
                audit_legal_holds::reason.eq(&hold.reason),
                audit_legal_holds::placed_by.eq(&hold.placed_by),
                audit_legal_holds::placed_at.eq(hold.placed_at),
            ))
            .execute(conn)?;
        // The act names the scope but not the subject's ID: the log's hold records carry no personal data.
        let payload = json!({
            "hold_id": hold.id,
            "scope": match scope { HoldScope::Agency => "agency", HoldScope::Subject(_) => "subject", HoldScope::Case(_) => "case", HoldScope::Sequences { .. } => "sequences" },
            "case_number": hold.case_number,
            "from_sequence": hold.from_sequence,
            "to_sequence": hold.to_sequence,
            "reason": hold.reason,
        });
        let act = own_act(kind::AUDIT_HOLD_PLACED, now, Some(caller), hold.agency.clone(), &hold.id, payload);
        chain::append_locked(conn, now, &[act])?;
        Ok(hold.clone())
    })
}

/// Lifts a hold: by someone other than who placed it, who may see it, once.
pub fn lift_hold(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    id: &str,
    reason: &str,
) -> Result<LegalHold, AuditError> {
    if !caller.has_any(HOLDERS) {
        return Err(AuditError::RoleRequired { roles: HOLDERS });
    }
    let reason = text("reason", reason, MAX_TEXT)?;
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let hold = visible_hold(conn, caller, id)?;
        if hold.lifted_at.is_some() {
            return Err(AuditError::HoldAlreadyLifted);
        }
        if hold.placed_by == caller.user_id.as_str() {
            return Err(AuditError::LiftedByPlacer);
        }
        diesel::update(audit_legal_holds::table.filter(audit_legal_holds::id.eq(id)))
            .set((
                audit_legal_holds::lifted_by.eq(caller.user_id.as_str()),
                audit_legal_holds::lifted_at.eq(to_db(now)),
                audit_legal_holds::lift_reason.eq(&reason),
            ))
            .execute(conn)?;
        let payload = json!({ "hold_id": id, "reason": reason, "placed_by": hold.placed_by });
        let act = own_act(kind::AUDIT_HOLD_LIFTED, now, Some(caller), hold.agency.clone(), id, payload);
        chain::append_locked(conn, now, &[act])?;
        visible_hold(conn, caller, id)
    })
}

fn visible_hold(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<LegalHold, AuditError> {
    let hold: Option<LegalHold> = audit_legal_holds::table
        .filter(audit_legal_holds::id.eq(id))
        .select(LegalHold::as_select())
        .first(conn)
        .optional()?;
    hold.filter(|hold| caller.has_any(&[roles::NIA_REVIEWER]) || hold.agency.as_deref() == Some(caller.agency.as_str()))
        .ok_or(AuditError::NotFound("the legal hold"))
}

/// The holds the caller may see (their agency's; the immigration agency every one), newest first.
pub fn list_holds(conn: &mut DbConn, caller: &Caller, active_only: bool) -> Result<Vec<LegalHold>, AuditError> {
    if !caller.has_any(HOLDERS) {
        return Err(AuditError::RoleRequired { roles: HOLDERS });
    }
    let mut found = audit_legal_holds::table.select(LegalHold::as_select()).into_boxed();
    if !caller.has_any(&[roles::NIA_REVIEWER]) {
        found = found.filter(audit_legal_holds::agency.eq(caller.agency.to_string()));
    }
    if active_only {
        found = found.filter(audit_legal_holds::lifted_at.is_null());
    }
    Ok(found.order(audit_legal_holds::placed_at.desc()).limit(1000).load(conn)?)
}

/// What a disposal did.
#[derive(Debug, Clone, PartialEq)]
pub struct Disposal {
    pub disposed: u64,
    pub held: u64,
    pub ranges: Ranges,
    /// The disposal record's sequence (none when nothing was due).
    pub record_sequence: Option<i64>,
}

/// Records per page while looking for what is due.
const DISPOSAL_PAGE: i64 = 1000;

/// Removes the content of every record past retention at `now` that no hold keeps, and appends a
/// disposal record naming them and the tree they stay in, in one transaction. Disposal records
/// themselves carry no personal data and are never disposed of, so the log always says what left it.
pub fn dispose(conn: &mut DbConn, now: DateTime<Utc>, retention: Retention) -> Result<Disposal, AuditError> {
    let cutoff = to_db(retention.cutoff(now));
    conn.write_transaction(|conn| {
        conn.plan_for_actual_values()?;
        chain::lock_chain(conn)?;
        let holds: Vec<LegalHold> = audit_legal_holds::table
            .filter(audit_legal_holds::lifted_at.is_null())
            .select(LegalHold::as_select())
            .load(conn)?;
        let mut due = Vec::new();
        let mut held = 0_u64;
        let mut after = 0_i64;
        loop {
            let page: Vec<chain::AuditRecord> = audit_records::table
                .filter(audit_records::disposed_at.is_null())
                .filter(audit_records::recorded_at.lt(cutoff))
                .filter(audit_records::occurred_at.lt(cutoff))
                .filter(audit_records::kind.ne(kind::AUDIT_RECORDS_DISPOSED))
                .filter(audit_records::sequence.gt(after))
                .order(audit_records::sequence.asc())
                .limit(DISPOSAL_PAGE)
                .select(chain::AuditRecord::as_select())
                .load(conn)?;
            let Some(last) = page.last() else { break };
            after = last.sequence;
            for record in page {
                if holds.iter().any(|hold| hold.keeps(&record)) {
                    held += 1;
                } else {
                    due.push(record.sequence);
                }
            }
        }
        if due.is_empty() {
            return Ok(Disposal { disposed: 0, held, ranges: Ranges::default(), record_sequence: None });
        }
        for chunk in due.chunks(DISPOSAL_PAGE as usize) {
            diesel::update(audit_records::table.filter(audit_records::sequence.eq_any(chunk)))
                .set((
                    audit_records::actor_user_id.eq(None::<String>),
                    audit_records::correlation_id.eq(None::<String>),
                    audit_records::subject_id.eq(None::<String>),
                    audit_records::payload.eq(""),
                    audit_records::disposed_at.eq(to_db(now)),
                ))
                .execute(conn)?;
            super::projection::forget_lookups(conn, chunk)?;
        }
        super::projection::forget_sessions_before(conn, cutoff)?;
        let mut ranges = Ranges::default();
        due.iter().for_each(|sequence| ranges.push(*sequence));
        let size = tree::size(conn)?;
        let root = tree::root(conn, size)?;
        let payload = json!({
            "count": due.len(),
            "ranges": ranges.0,
            "retention_years": retention.in_years(),
            "recorded_before": from_db(cutoff).to_rfc3339(),
            "held": held,
            "tree_size": size,
            "root_hash": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, root.0),
        });
        let act = own_act(kind::AUDIT_RECORDS_DISPOSED, now, None, None, &uuid::Uuid::now_v7().to_string(), payload);
        chain::append_locked(conn, now, &[act])?;
        let sequence = chain::head(conn)?.next_sequence - 1;
        Ok(Disposal { disposed: due.len() as u64, held, ranges, record_sequence: Some(sequence) })
    })
}
