//! The notification outbox: applicants and account holders are told of every step (R-ACC-01) and
//! every change to their account. A notification is written in the same transaction as the change it
//! reports, and a background task delivers it at least once (SMTP, or the log when none is set up).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;

use super::{new_id, IdentityError};
use crate::schema::notifications;

/// One message to one recipient (an e-mail address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// Queues a message. Call it inside the transaction that makes the change it reports.
pub fn enqueue(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    recipient: &str,
    subject: &str,
    body: &str,
) -> Result<(), IdentityError> {
    diesel::insert_into(notifications::table)
        .values((
            notifications::id.eq(new_id()),
            notifications::recipient.eq(recipient),
            notifications::subject.eq(subject),
            notifications::body.eq(body),
            notifications::created_at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// Undelivered messages, oldest first.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<Notification>, IdentityError> {
    let rows: Vec<(String, String, String, String)> = notifications::table
        .filter(notifications::delivered_at.is_null())
        .order(notifications::id.asc())
        .limit(limit)
        .select((notifications::id, notifications::recipient, notifications::subject, notifications::body))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, recipient, subject, body)| Notification { id, recipient, subject, body }).collect())
}

pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), IdentityError> {
    diesel::update(notifications::table.filter(notifications::id.eq(id)))
        .set((notifications::delivered_at.eq(to_db(now)), notifications::attempts.eq(notifications::attempts + 1)))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut DbConn, id: &str, error: &str) -> Result<(), IdentityError> {
    diesel::update(notifications::table.filter(notifications::id.eq(id)))
        .set((notifications::attempts.eq(notifications::attempts + 1), notifications::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// Every message queued for a recipient, oldest first (tests and support).
pub fn for_recipient(conn: &mut DbConn, recipient: &str) -> Result<Vec<Notification>, IdentityError> {
    let rows: Vec<(String, String, String, String)> = notifications::table
        .filter(notifications::recipient.eq(recipient))
        .order(notifications::id.asc())
        .select((notifications::id, notifications::recipient, notifications::subject, notifications::body))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, recipient, subject, body)| Notification { id, recipient, subject, body }).collect())
}
