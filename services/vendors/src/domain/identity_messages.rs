//! Messages to identity about contractor personnel, in a transactional outbox (`identity_messages`):
//! an **offboarded** message when a person departs, changes role or their contract ends (R-VEN-06:
//! identity cancels every account the person holds and ends their sessions), a **registered** message
//! when a person becomes active personnel (R-VEN-08: identity suspends the lookup grants of any account
//! the person already holds). A message is written by [`enqueue`] in the transaction of the change it
//! announces, so it commits or rolls back with it; `crate::identity_relay` delivers it at least once,
//! oldest first, and identity applies each message id once.
//!
//! The message carries the person's national ID (identity finds the accounts by it), so the row and
//! its `Debug` form are personal data: the `Debug` form redacts it, and nothing here logs it.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use immilink_shared::text_enum;
use immilink_shared::typed::AgencyCode;

use super::personnel::Person;
use super::{new_id, PersonId, VendorId, VendorsError};
use crate::schema::identity_messages;

text_enum! {
    /// What identity is told.
    pub enum MessageKind {
        /// Disable every account the person holds, at once (R-VEN-06).
        Offboarded = "offboarded",
        /// The person became active contractor personnel (R-VEN-08).
        Registered = "registered",
    }
}

text_enum! {
    /// Why: the three offboardings of R-VEN-06, or a registration.
    pub enum MessageReason {
        /// The person left the contractor.
        Departure = "departure",
        /// The person's role on the contract changed: their accounts go, they stay personnel.
        RoleChange = "role_change",
        /// The person's contract ended.
        ContractEnd = "contract_end",
        /// The person was added to a contractor's staff.
        Registered = "registered",
    }
}

impl MessageReason {
    /// A registration announces itself; every other reason is an offboarding.
    pub const fn kind(self) -> MessageKind {
        match self {
            MessageReason::Registered => MessageKind::Registered,
            MessageReason::Departure | MessageReason::RoleChange | MessageReason::ContractEnd => {
                MessageKind::Offboarded
            }
        }
    }
}

/// A message as stored.
#[derive(Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = identity_messages)]
pub struct StoredMessage {
    /// UUIDv7: the delivery order, and identity's idempotency key.
    pub id: String,
    pub kind: MessageKind,
    /// The person's national ID or UI number, canonical.
    pub national_id: String,
    /// The agency the person's vendor is registered with.
    pub agency: AgencyCode,
    pub vendor_id: VendorId,
    pub person_id: PersonId,
    pub reason: MessageReason,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
    /// Identity refused the message as malformed; set aside for an operator.
    pub rejected_at: Option<NaiveDateTime>,
    /// Delivery attempts so far.
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredMessage")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("national_id", &"<redacted>")
            .field("agency", &self.agency)
            .field("vendor_id", &self.vendor_id)
            .field("person_id", &self.person_id)
            .field("reason", &self.reason)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Writes the message about `person` for `reason`. Part of the caller's transaction. Call it after
/// the statement that changed the person's row: on PostgreSQL that statement holds the row lock, so
/// two changes of one person take their ids (their delivery order) in the order they commit.
pub fn enqueue(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    person: &Person,
    reason: MessageReason,
) -> Result<String, VendorsError> {
    let id = new_id();
    diesel::insert_into(identity_messages::table)
        .values((
            identity_messages::id.eq(&id),
            identity_messages::kind.eq(reason.kind()),
            identity_messages::national_id.eq(&person.national_id),
            identity_messages::agency.eq(&person.agency),
            identity_messages::vendor_id.eq(&person.vendor_id),
            identity_messages::person_id.eq(&person.id),
            identity_messages::reason.eq(reason),
            identity_messages::created_at.eq(to_db(now)),
            identity_messages::attempts.eq(0),
        ))
        .execute(conn)?;
    Ok(id)
}

/// The oldest messages waiting for delivery (neither delivered nor set aside), at most `limit`, in
/// id order.
pub fn pending(conn: &mut DbConn, limit: i64) -> Result<Vec<StoredMessage>, VendorsError> {
    Ok(identity_messages::table
        .filter(identity_messages::delivered_at.is_null())
        .filter(identity_messages::rejected_at.is_null())
        .order(identity_messages::id.asc())
        .limit(limit)
        .select(StoredMessage::as_select())
        .load(conn)?)
}

/// Marks a message delivered, counting the attempt.
pub fn mark_delivered(conn: &mut DbConn, now: DateTime<Utc>, id: &str) -> Result<(), VendorsError> {
    diesel::update(identity_messages::table.filter(identity_messages::id.eq(id)))
        .set((
            identity_messages::delivered_at.eq(to_db(now)),
            identity_messages::attempts.eq(identity_messages::attempts + 1),
            identity_messages::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Counts a failed attempt and keeps why; the message stays pending and goes again.
pub fn mark_failed(conn: &mut DbConn, id: &str, error: &str) -> Result<(), VendorsError> {
    diesel::update(identity_messages::table.filter(identity_messages::id.eq(id)))
        .set((identity_messages::attempts.eq(identity_messages::attempts + 1), identity_messages::last_error.eq(error)))
        .execute(conn)?;
    Ok(())
}

/// Sets a message identity refused as malformed aside: it is not sent again (an operator may clear
/// `rejected_at` once the cause is fixed), and the messages after it are not held up.
pub fn mark_rejected(conn: &mut DbConn, now: DateTime<Utc>, id: &str, error: &str) -> Result<(), VendorsError> {
    diesel::update(identity_messages::table.filter(identity_messages::id.eq(id)))
        .set((
            identity_messages::rejected_at.eq(to_db(now)),
            identity_messages::attempts.eq(identity_messages::attempts + 1),
            identity_messages::last_error.eq(error),
        ))
        .execute(conn)?;
    Ok(())
}

/// How many messages wait for delivery.
pub fn backlog(conn: &mut DbConn) -> Result<i64, VendorsError> {
    Ok(identity_messages::table
        .filter(identity_messages::delivered_at.is_null())
        .filter(identity_messages::rejected_at.is_null())
        .count()
        .get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_is_the_only_reason_that_is_not_an_offboarding() {
        for &reason in MessageReason::ALL {
            let expected =
                if reason == MessageReason::Registered { MessageKind::Registered } else { MessageKind::Offboarded };
            assert_eq!(reason.kind(), expected, "{reason}");
        }
    }
}
