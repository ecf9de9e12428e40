//! Notices from the audit service (a finding for the ethics and IT units, R-AUD-07; an overdue
//! review for its reviewers and the account managers, R-AUD-04). Audit knows the agency and the
//! roles to tell; identity knows who holds them. A notice becomes one row of the notification outbox
//! ([`super::notifications`]) per active user of the agency (and unit, when named) holding any of the
//! roles, delivered from there like every other notification.
//!
//! Audit delivers each notice at least once; identity adds its rows once. Each row's id is derived
//! from the notice id and the recipient's user id ([`notification_id`]), so a redelivery finds its
//! rows already there and adds nothing (the primary key would refuse them anyway). The derived id
//! keeps the notice's UUIDv7 time prefix, so the outbox, delivered in id order, stays in time order.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::clock::to_db;
use immilink_shared::db::DbConn;
use sha2::{Digest, Sha256};

use super::accounts::AccountStatus;
use super::{AgencyCode, AgencyId, IdentityError, NotificationId, UnitId, UserId};
use crate::schema::{agencies, notifications, user_roles, users};

/// Longest subject and body taken.
pub const MAX_SUBJECT: usize = 300;
pub const MAX_BODY: usize = 10_000;

/// A notice as checked: a UUID id, an agency code, the roles to tell (known roles, at least one).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub id: uuid::Uuid,
    pub agency: AgencyCode,
    pub unit: Option<UnitId>,
    pub roles: Vec<String>,
    pub subject: String,
    pub body: String,
}

impl Notice {
    /// Checks a notice as delivered, naming the field that is wrong.
    pub fn parse(
        id: &str,
        agency: &str,
        unit: Option<&str>,
        roles: &[String],
        subject: &str,
        body: &str,
    ) -> Result<Self, IdentityError> {
        let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| IdentityError::invalid("id", "must be a UUID"))?;
        let agency = agency.trim();
        if agency.is_empty() {
            return Err(IdentityError::missing("agency"));
        }
        let unit = match unit.map(str::trim) {
            Some("") => return Err(IdentityError::invalid("unit", "must not be blank")),
            unit => unit.map(UnitId::new),
        };
        if roles.is_empty() {
            return Err(IdentityError::invalid("roles", "name at least one role"));
        }
        let mut known = Vec::with_capacity(roles.len());
        for (at, role) in roles.iter().enumerate() {
            if !roles::ALL.contains(&role.as_str()) {
                return Err(IdentityError::invalid(format!("roles[{at}]"), format!("`{role}` is not a role")));
            }
            if !known.contains(role) {
                known.push(role.clone());
            }
        }
        let text = |field: &str, value: &str, max: usize| {
            let value = value.trim();
            if value.is_empty() {
                return Err(IdentityError::missing(field));
            }
            if value.chars().count() > max {
                return Err(IdentityError::invalid(field, format!("at most {max} characters")));
            }
            Ok(value.to_owned())
        };
        Ok(Self {
            id,
            agency: AgencyCode::new(agency),
            unit,
            roles: known,
            subject: text("subject", subject, MAX_SUBJECT)?,
            body: text("body", body, MAX_BODY)?,
        })
    }
}

/// What became of a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Notifications queued by this delivery.
    pub queued: usize,
    /// The notice had been taken before: nothing was added.
    pub duplicate: bool,
}

/// The id of the notification of `notice` to `user`: the notice's 48-bit UUIDv7 time, then 74 bits
/// of SHA-256(notice id ‖ 0x00 ‖ user id), as a UUIDv7.
pub fn notification_id(notice: &uuid::Uuid, user: &UserId) -> NotificationId {
    let digest = Sha256::new()
        .chain_update(notice.as_bytes())
        .chain_update([0_u8])
        .chain_update(user.as_str().as_bytes())
        .finalize();
    let mut bytes = [0_u8; 16];
    bytes[..6].copy_from_slice(&notice.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    NotificationId::new(uuid::Uuid::from_bytes(bytes).to_string())
}

/// Queues the notice for every active user of its agency (and unit) who holds one of its roles and
/// has an address, once: a redelivery adds nothing. A notice for an agency identity does not know is
/// taken with no recipients (and logged), so it cannot hold up the notices behind it.
pub fn receive(conn: &mut DbConn, now: DateTime<Utc>, notice: &Notice) -> Result<Intake, IdentityError> {
    conn.write_transaction(|conn| {
        let agency: Option<AgencyId> = agencies::table
            .filter(agencies::code.eq(&notice.agency))
            .select(agencies::id)
            .first(conn)
            .optional()?;
        let Some(agency) = agency else {
            tracing::warn!(notice = %notice.id, agency = %notice.agency, "notice for an unknown agency: nobody to tell");
            return Ok(Intake { queued: 0, duplicate: false });
        };
        let mut holders = users::table
            .inner_join(user_roles::table)
            .filter(users::agency_id.eq(&agency))
            .filter(users::status.eq(AccountStatus::Active))
            .filter(user_roles::role.eq_any(&notice.roles))
            .select((users::id, users::email))
            .into_boxed();
        if let Some(unit) = &notice.unit {
            holders = holders.filter(users::unit_id.eq(unit));
        }
        let mut holders: Vec<(UserId, Option<String>)> = holders.order(users::id.asc()).load(conn)?;
        holders.dedup_by(|a, b| a.0 == b.0);
        let recipients: Vec<(NotificationId, String)> = holders
            .into_iter()
            .filter_map(|(user, email)| email.map(|email| (notification_id(&notice.id, &user), email)))
            .collect();
        if recipients.is_empty() {
            tracing::warn!(notice = %notice.id, agency = %notice.agency, "notice: no active holder of its roles has an address");
            return Ok(Intake { queued: 0, duplicate: false });
        }
        let ids: Vec<&NotificationId> = recipients.iter().map(|(id, _)| id).collect();
        let taken: i64 = notifications::table.filter(notifications::id.eq_any(ids)).count().get_result(conn)?;
        if taken > 0 {
            return Ok(Intake { queued: 0, duplicate: true });
        }
        let rows: Vec<_> = recipients
            .iter()
            .map(|(id, email)| {
                (
                    notifications::id.eq(id),
                    notifications::recipient.eq(email),
                    notifications::subject.eq(&notice.subject),
                    notifications::body.eq(&notice.body),
                    notifications::created_at.eq(to_db(now)),
                )
            })
            .collect();
        immilink_shared::insert_rows!(conn, notifications::table, &rows);
        Ok(Intake { queued: rows.len(), duplicate: false })
    })
}
