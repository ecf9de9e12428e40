//! Identity's audit events. Every state change (applications and their reviews, the account
//! lifecycle, logins, failed logins and session ends) writes one to the outbox in the transaction
//! that makes the change; the relay delivers them to the audit service under the source
//! `identity`. None names a subject: these are not lookups of anyone's immigration data. None carries
//! a password or a national ID.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::db::DbConn;
use immilink_shared::events::AuditEvent;
use immilink_shared::outbox::{self, OutboxError};

use super::{AgencyCode, IdentityError, UserId};
use crate::schema::{agencies, users};

impl From<OutboxError> for IdentityError {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Db(db) => IdentityError::Db(db),
            OutboxError::Serialise(detail) => IdentityError::Internal(detail),
        }
    }
}

/// Who acted, for which agency, on which business object (the application, account or session id).
#[derive(Debug, Clone, Copy, Default)]
pub struct About<'a> {
    pub actor: Option<&'a UserId>,
    pub agency: Option<&'a AgencyCode>,
    pub correlation_id: Option<&'a str>,
}

/// Writes one audit event of `kind` to the outbox. Part of the caller's transaction: the event
/// commits or rolls back with the change it records.
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    kind: &str,
    about: About<'_>,
    payload: serde_json::Value,
) -> Result<(), IdentityError> {
    let event = AuditEvent {
        actor_user_id: about.actor.map(ToString::to_string),
        agency: about.agency.map(ToString::to_string),
        correlation_id: about.correlation_id.map(str::to_owned),
        subject_id: None,
        ..AuditEvent::new(crate::SERVICE, kind, now, payload)
    };
    Ok(outbox::enqueue(conn, now, &event)?)
}

/// The agency code of an account (events name the agency by its code, as tokens do).
pub fn agency_of(conn: &mut DbConn, user_id: &UserId) -> Result<AgencyCode, IdentityError> {
    Ok(users::table.inner_join(agencies::table).filter(users::id.eq(user_id)).select(agencies::code).first(conn)?)
}
