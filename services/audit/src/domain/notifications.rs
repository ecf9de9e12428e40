//! Notifications the audit service sends (a finding to the ethics and IT units, an overdue review to
//! its reviewers and the account managers). Identity knows who holds a role and their addresses, so
//! a notice names the agency (and unit) and the roles to tell; it is written in the transaction of
//! what it announces and delivered to identity at least once (idempotent by id).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;

use super::AuditError;
use crate::schema::audit_notifications;

/// A notice to the holders of `roles` in `agency` (in `unit` when given).
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub agency: &'a str,
    pub unit: Option<&'a str>,
    pub roles: &'a [&'a str],
    pub subject: String,
    pub body: String,
}

/// A stored notice.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = audit_notifications)]
pub struct StoredNotice {
    pub id: String,
    pub agency: String,
    pub unit: Option<String>,
    /// Comma-separated.
    pub recipient_roles: String,
    pub subject: String,
    pub body: String,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    pub attempts: i32,
}

/// Queues a notice inside the caller's transaction.
pub fn enqueue(conn: &mut DbConn, now: DateTime<Utc>, notice: Notice<'_>) -> Result<String, AuditError> {
    let id = uuid::Uuid::now_v7().to_string();
    diesel::insert_into(audit_notifications::table)
        .values((
            audit_notifications::id.eq(&id),
            audit_notifications::agency.eq(notice.agency),
            audit_notifications::unit.eq(notice.unit),
            audit_notifications::recipient_roles.eq(notice.roles.join(",")),
            audit_notifications::subject.eq(&notice.subject),
            audit_notifications::body.eq(&notice.body),
            audit_notifications::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The oldest undelivered notices, at most `limit`, in the order they were written.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<StoredNotice>, AuditError> {
    Ok(audit_notifications::table
        .filter(audit_notifications::delivered_at.is_null())
        .order((audit_notifications::created_at.asc(), audit_notifications::id.asc()))
        .limit(limit)
        .select(StoredNotice::as_select())
        .load(conn)?)
}

/// Marks a notice delivered, counting the attempt.
pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), AuditError> {
    diesel::update(audit_notifications::table.filter(audit_notifications::id.eq(id)))
        .set((
            audit_notifications::delivered_at.eq(to_db(now)),
            audit_notifications::attempts.eq(audit_notifications::attempts + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// Counts a failed attempt; the notice stays pending.
pub fn mark_failed(conn: &mut DbConn, id: &str) -> Result<(), AuditError> {
    diesel::update(audit_notifications::table.filter(audit_notifications::id.eq(id)))
        .set(audit_notifications::attempts.eq(audit_notifications::attempts + 1))
        .execute(conn)?;
    Ok(())
}

// --- the relay to identity ---------------------------------------------------------------------------
//
// Not a domain rule but its delivery: kept beside the table it reads. It is the only code here that
// speaks HTTP.
