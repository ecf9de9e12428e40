//! The notification outbox: applicants and account holders are told of every step (R-ACC-01) and
//! every change to their account. A notification is written in the same transaction as the change it
//! reports, and a background task delivers it at least once (SMTP, or the log when none is set up).
//! A notification is pending until `delivered_at` is set; failed attempts are counted with their
//! last error. There is no other state.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;

use super::{new_id, IdentityError, NotificationId};
use crate::schema::notifications;

/// One message to one recipient (an e-mail address).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct Notification {
    pub id: NotificationId,
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
    enqueue_to_all(conn, now, &[recipient.to_owned()], subject, body)
}

/// Queues the same message to each recipient, in one insert.
pub fn enqueue_to_all(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    recipients: &[String],
    subject: &str,
    body: &str,
) -> Result<(), IdentityError> {
    if recipients.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = recipients
        .iter()
        .map(|recipient| {
            (
                notifications::id.eq(new_id()),
                notifications::recipient.eq(recipient),
                notifications::subject.eq(subject),
                notifications::body.eq(body),
                notifications::created_at.eq(to_db(now)),
            )
        })
        .collect();
    immilink_shared::insert_rows!(conn, notifications::table, &rows);
    Ok(())
}

/// Undelivered messages, oldest first.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<Notification>, IdentityError> {
    Ok(notifications::table
        .filter(notifications::delivered_at.is_null())
        .order(notifications::id.asc())
        .limit(limit)
        .select((notifications::id, notifications::recipient, notifications::subject, notifications::body))
        .load(conn)?)
}

pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, id: &NotificationId) -> Result<(), IdentityError> {
    diesel::update(notifications::table.filter(notifications::id.eq(id)))
        .set((notifications::delivered_at.eq(to_db(now)), notifications::attempts.eq(notifications::attempts + 1)))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut DbConn, id: &NotificationId, error: &str) -> Result<(), IdentityError> {
    diesel::update(notifications::table.filter(notifications::id.eq(id)))
        .set((notifications::attempts.eq(notifications::attempts + 1), notifications::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// Every message queued for a recipient, oldest first (tests and support).
pub fn for_recipient(conn: &mut DbConn, recipient: &str) -> Result<Vec<Notification>, IdentityError> {
    Ok(notifications::table
        .filter(notifications::recipient.eq(recipient))
        .order(notifications::id.asc())
        .select((notifications::id, notifications::recipient, notifications::subject, notifications::body))
        .load(conn)?)
}
