//! The audit service's rules: the hash chain ([`chain`]: append, verify, search) and who may read it
//! ([`records`]). Domain functions take a connection, the time, the shared `Caller` and parsed
//! domain types, and fail with a case of [`AuditError`]; `routes::problems` is the one place a case
//! becomes a problem.

pub mod accesses;
pub mod bundle;
pub mod chain;
pub mod checkpoints;
pub mod compliance;
pub mod findings;
pub mod notifications;
pub mod projection;
pub mod query_records;
pub mod records;
pub mod retention;
pub mod reviews;
pub mod samples;
pub mod self_audits;
pub mod tree;

use immilink_shared::db::DbError;

/// Every way an audit operation can fail, one case per reason.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The caller holds none of the roles that read the audit log.
    #[error("this action needs one of the roles: {}", .roles.join(", "))]
    RoleRequired { roles: &'static [&'static str] },
    /// An agency-bound reader asked for another agency's records.
    #[error("you may only read your own agency's records")]
    OtherAgency,
    /// A unit supervisor asked for another unit's records.
    #[error("a unit supervisor reads only their own unit's records")]
    OtherUnit,
    /// Missing, or not the caller's to see (which is not revealed).
    #[error("{0} was not found")]
    NotFound(&'static str),
    /// A field is present but its value is not acceptable.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    /// A legal hold is lifted by someone other than who placed it.
    #[error("a legal hold is lifted by someone other than who placed it")]
    LiftedByPlacer,
    /// The legal hold was lifted already.
    #[error("the legal hold was lifted already")]
    HoldAlreadyLifted,
    /// A checkpoint could not be signed.
    #[error("the checkpoint could not be signed: {0}")]
    Signing(String),
    /// The witness did not cosign, or its answer is not a valid cosignature of a trusted witness.
    #[error("the witness did not cosign the checkpoint: {0}")]
    WitnessRefused(String),
    /// The witness has cosigned a larger tree than this log holds: records were removed.
    #[error("the witness has cosigned {witness} records but the log holds {log}")]
    WitnessAhead { witness: u64, log: u64 },
    /// The stored Merkle tree hashes do not form the tree of the records (tampering, or a bug).
    #[error("the audit log's Merkle tree is inconsistent: {0}")]
    TreeInconsistent(String),
    /// Nobody reviews, samples or judges their own lookups (R-AUD-04, R-AUD-06).
    #[error("{0}")]
    OwnLookup(&'static str),
    /// The act does not fit the state its object is in (a review already marked, a finding closed).
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for AuditError {
    fn from(err: diesel::result::Error) -> Self {
        AuditError::Db(DbError::Query(err))
    }
}
