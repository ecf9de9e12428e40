//! Who reads the audit log, and what reaches it. Every reader sees their own agency's records only,
//! except the immigration agency's reviewer, who inspects every agency (seed 003 pt 7, 9): one
//! agency's auditor never reads another's. A unit supervisor sees their own unit's records. Proofs follow the record's visibility; proofs between
//! tree sizes carry only hashes. Deliveries are checked as a batch before anything is appended.

use chrono::{DateTime, Utc};
use immilink_shared::auth::{roles, Caller};
use immilink_shared::db::DbConn;
use immilink_shared::events::{AuditEvent, BatchReceipt};
use immilink_shared::extractors::Page;
use immilink_shared::typed::AgencyCode;

use super::chain::{self, AuditRecord, RecordQuery, Verification};
use super::{tree, AuditError};

/// Roles that may read the audit log.
pub const READERS: &[&str] =
    &[roles::AUDITOR, roles::ACCOUNT_MANAGER, roles::ETHICS_OFFICER, roles::NIA_REVIEWER, roles::UNIT_SUPERVISOR];
/// Roles that see every agency's records; the others see their own agency's only.
pub const CROSS_AGENCY: &[&str] = &[roles::NIA_REVIEWER];
/// Roles that see their whole agency's records; a unit supervisor without one of them sees only
/// the records of acts done for their own unit.
pub const AGENCY_WIDE: &[&str] = &[roles::AUDITOR, roles::ACCOUNT_MANAGER, roles::ETHICS_OFFICER];

/// Which records a reader sees; the oversight reads (query records, reviews, samples, findings,
/// accesses) use the same reach.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    Everything,
    Agency(String),
    Unit { agency: String, unit: Option<String> },
}

pub fn scope_of(caller: &Caller) -> Scope {
    if caller.has_any(CROSS_AGENCY) {
        Scope::Everything
    } else if caller.has_any(AGENCY_WIDE) {
        Scope::Agency(caller.agency.to_string())
    } else {
        Scope::Unit { agency: caller.agency.to_string(), unit: caller.unit.as_ref().map(|u| u.to_string()) }
    }
}

/// An agency and unit a read is narrowed to; `None` for "every".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Narrowed {
    pub agency: Option<String>,
    pub unit: Option<String>,
}

impl Scope {
    /// Narrows the agency and unit a reader asked for to what they may read: an agency-bound reader
    /// gets their own agency (naming another is refused), a unit supervisor their own unit (naming
    /// another is refused). `None`: the reader sees nothing (a supervisor with no unit).
    pub fn narrow(&self, agency: Option<String>, unit: Option<String>) -> Result<Option<Narrowed>, AuditError> {
        match self {
            Scope::Everything => Ok(Some(Narrowed { agency, unit })),
            Scope::Agency(own) => match agency {
                Some(asked) if asked != *own => Err(AuditError::OtherAgency),
                _ => Ok(Some(Narrowed { agency: Some(own.clone()), unit })),
            },
            Scope::Unit { agency: own, unit: own_unit } => {
                if agency.as_ref().is_some_and(|asked| asked != own) {
                    return Err(AuditError::OtherAgency);
                }
                match (unit, own_unit) {
                    (_, None) => Ok(None),
                    (Some(asked), Some(mine)) if asked != *mine => Err(AuditError::OtherUnit),
                    (_, Some(mine)) => Ok(Some(Narrowed { agency: Some(own.clone()), unit: Some(mine.clone()) })),
                }
            }
        }
    }

    /// Whether an object of `agency` (and `unit`) is the reader's to see.
    pub fn covers(&self, agency: &str, unit: Option<&str>) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Agency(own) => own == agency,
            Scope::Unit { agency: own, unit: own_unit } => {
                own == agency && own_unit.is_some() && own_unit.as_deref() == unit
            }
        }
    }

    fn sees(&self, record: &AuditRecord) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Agency(agency) => record.agency.as_deref() == Some(agency),
            Scope::Unit { agency, unit } => {
                record.agency.as_deref() == Some(agency) && unit.is_some() && record.unit == *unit
            }
        }
    }
}

pub fn require_reader(caller: &Caller) -> Result<(), AuditError> {
    if caller.has_any(READERS) {
        Ok(())
    } else {
        Err(AuditError::RoleRequired { roles: READERS })
    }
}

/// Searches the records the caller may read: an agency-bound reader's search is narrowed to their
/// own agency, and naming another is refused.
pub fn search(
    conn: &mut DbConn,
    caller: &Caller,
    mut query: RecordQuery,
    page: &Page<i64>,
) -> Result<Vec<AuditRecord>, AuditError> {
    require_reader(caller)?;
    let asked = query.agency.take().map(|agency| agency.to_string());
    let Some(narrowed) = scope_of(caller).narrow(asked, query.unit.take())? else {
        return Ok(Vec::new());
    };
    query.agency = narrowed.agency.map(AgencyCode::new);
    query.unit = narrowed.unit;
    chain::search(conn, &query, page)
}

/// One record by id (the `audit_id` a lookup returns), if the caller may read it; another agency's
/// record is "not found".
pub fn get(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<AuditRecord, AuditError> {
    require_reader(caller)?;
    let scope = scope_of(caller);
    chain::find(conn, id)?.filter(|record| scope.sees(record)).ok_or(AuditError::NotFound("the audit record"))
}

/// A record's place in the tree and the RFC 9162 inclusion proof of it.
#[derive(Debug, Clone, PartialEq)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub hashes: Vec<tlog_tiles::Hash>,
}

/// The inclusion proof of a record the caller may read, in the tree of `tree_size` records, which
/// must contain it. By default the tree of the latest checkpoint: the root a proof is checked
/// against should be one the log signed.
pub fn inclusion_proof(
    conn: &mut DbConn,
    caller: &Caller,
    id: &str,
    tree_size: Option<u64>,
) -> Result<InclusionProof, AuditError> {
    let record = get(conn, caller, id)?;
    let index = (record.sequence - 1) as u64;
    let size = tree::size(conn)?;
    let invalid = |detail: String| AuditError::Invalid { field: "tree_size".into(), detail };
    let tree_size = match tree_size {
        Some(tree_size) => tree_size,
        None => match super::checkpoints::latest(conn)? {
            Some(latest) if latest.tree_size as u64 > index => latest.tree_size as u64,
            _ => {
                return Err(invalid(
                    "no signed checkpoint covers this record yet: ask for one (POST /v1/audit/checkpoints) or name a tree_size".into(),
                ))
            }
        },
    };
    if tree_size <= index || tree_size > size {
        return Err(invalid(format!(
            "must be between {} (the tree holding this record) and {size} (the whole tree)",
            index + 1
        )));
    }
    let hashes = tree::inclusion_proof(conn, index, tree_size)?;
    Ok(InclusionProof { index, tree_size, hashes })
}

/// The RFC 9162 consistency proof between two tree sizes, 1 <= first <= second <= the tree's size.
pub fn consistency_proof(
    conn: &mut DbConn,
    caller: &Caller,
    first: u64,
    second: u64,
) -> Result<Vec<tlog_tiles::Hash>, AuditError> {
    require_reader(caller)?;
    let size = tree::size(conn)?;
    let invalid = |field: &str, detail: String| AuditError::Invalid { field: field.into(), detail };
    if second == 0 || second > size {
        return Err(invalid("second", format!("must be between 1 and {size} (the tree's size)")));
    }
    if first == 0 || first > second {
        return Err(invalid("first", format!("must be between 1 and second ({second})")));
    }
    tree::consistency_proof(conn, first, second)
}

/// Checks the whole log for a reader (R-AUD-02), against its checkpoints and witness when given.
pub fn verify(
    conn: &mut DbConn,
    caller: &Caller,
    anchors: Option<&chain::Anchors>,
) -> Result<Verification, AuditError> {
    require_reader(caller)?;
    chain::verify(conn, anchors)
}

/// Most events one delivery may carry.
pub const MAX_BATCH: usize = 1000;

/// The services that deliver events, each for its own `source` only.
pub const SOURCES: &[&str] = &["broker", "identity", "vendors"];

/// A delivery that may be appended: at most [`MAX_BATCH`] events, each with an id and a kind, and
/// each recorded by the service that delivers it.
#[derive(Debug, Clone)]
pub struct Batch(Vec<AuditEvent>);

impl Batch {
    /// A delivery from the service `caller` (as its service token names it). An event whose `source`
    /// is another service's refuses the whole delivery: a service writes only its own events
    /// (vendors cannot write one that claims to be the broker's).
    pub fn parse(caller: &str, events: Vec<AuditEvent>) -> Result<Self, AuditError> {
        if let Some(index) = events.iter().position(|e| e.source != caller) {
            return Err(AuditError::Invalid {
                field: format!("events[{index}].source"),
                detail: format!("the {caller} service delivers only its own events (source `{caller}`)"),
            });
        }
        if events.len() > MAX_BATCH {
            return Err(AuditError::Invalid {
                field: "events".into(),
                detail: format!("at most {MAX_BATCH} events per batch"),
            });
        }
        if let Some(index) = events.iter().position(|e| e.id.trim().is_empty() || e.kind.trim().is_empty()) {
            return Err(AuditError::Invalid {
                field: format!("events[{index}]"),
                detail: "id and kind are required".into(),
            });
        }
        Ok(Self(events))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends a delivery (idempotent by event id, atomic).
pub fn ingest(conn: &mut DbConn, now: DateTime<Utc>, batch: &Batch) -> Result<BatchReceipt, AuditError> {
    chain::append(conn, now, &batch.0)
}
