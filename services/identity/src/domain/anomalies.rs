//! Anomaly notices (R-AUD-09, 003 pt 7 and 10): the immigration agency tells an agency of an anomaly
//! found in its use of the data, with a deadline for an explanation and remediation. The agency
//! answers with both; a notice still unanswered after its deadline is overdue and its link is
//! suspended by the sweep (R-LINK-06). A late answer still counts towards resumption (R-LINK-07).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::clock::{business_date, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::{text_enum, text_id};
use serde_json::json;

use super::accounts::Actor;
use super::links::{self, LinkCause, LinkId, LinkStatus};
use super::{new_id, notifications, AgencyCode, AgencyId, IdentityError, UserId};
use crate::schema::{agencies, agency_links, anomaly_notices};

text_id! {
    /// An anomaly notice's id (UUIDv7).
    pub struct AnomalyNoticeId;
}

text_enum! {
    /// Where an anomaly notice stands.
    pub enum AnomalyStatus {
        /// Waiting for the agency's explanation and remediation.
        Open = "open",
        /// Explained and remediated (possibly after the deadline).
        Remediated = "remediated",
        /// Its deadline passed unremediated: the link was suspended (R-LINK-06).
        Overdue = "overdue",
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = anomaly_notices)]
pub struct AnomalyNotice {
    pub id: AnomalyNoticeId,
    pub link_id: LinkId,
    pub agency_id: AgencyId,
    pub finding: String,
    pub deadline: NaiveDate,
    pub status: AnomalyStatus,
    pub issued_by: UserId,
    pub issued_at: NaiveDateTime,
    pub explanation: Option<String>,
    pub remediation: Option<String>,
    pub remediated_by: Option<UserId>,
    pub remediated_at: Option<NaiveDateTime>,
    pub overdue_at: Option<NaiveDateTime>,
}

/// The immigration agency notifies an anomaly on a live link, with a deadline after today.
pub fn issue(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    finding: &str,
    deadline: NaiveDate,
) -> Result<AnomalyNotice, IdentityError> {
    links::require_nia(actor)?;
    if deadline <= business_date(now) {
        return Err(IdentityError::invalid("deadline", "must be after today (Taipei)"));
    }
    conn.write_transaction(|conn| {
        let link = links::lock(conn, link_id).map_err(|_| IdentityError::invalid("link_id", "no such agency link"))?;
        link.require_in_force()?;
        let id = AnomalyNoticeId::new(new_id());
        diesel::insert_into(anomaly_notices::table)
            .values((
                anomaly_notices::id.eq(&id),
                anomaly_notices::link_id.eq(&link.id),
                anomaly_notices::agency_id.eq(&link.agency_id),
                anomaly_notices::finding.eq(finding),
                anomaly_notices::deadline.eq(deadline),
                anomaly_notices::status.eq(AnomalyStatus::Open),
                anomaly_notices::issued_by.eq(&actor.user_id),
                anomaly_notices::issued_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let payload = json!({ "notice_id": id, "link_id": link.id, "finding": finding, "deadline": deadline });
        links::record(conn, now, &link, kind::ANOMALY_NOTICE_ISSUED, Some(&actor.user_id), payload)?;
        let body = format!(
            "The immigration agency found an anomaly in your use of its data and asks for an explanation and \
             remediation by {deadline}; otherwise the link is suspended. Finding: {finding}"
        );
        links::tell_agency(conn, now, &link, "移民署異常通知 Anomaly notice", &body)?;
        find(conn, &id)
    })
}

/// The agency explains the anomaly and records its remediation (before or after the deadline).
pub fn remediate(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    notice_id: &AnomalyNoticeId,
    explanation: &str,
    remediation: &str,
) -> Result<AnomalyNotice, IdentityError> {
    // The role first: another agency's notice must answer as a missing one (see `links::visible_link`).
    actor.require_any(links::AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let notice = find(conn, notice_id)?;
        let link = links::lock(conn, &notice.link_id)?;
        links::require_agency_side(actor, &link)?;
        if notice.status == AnomalyStatus::Remediated {
            return Err(IdentityError::AlreadyDecided);
        }
        diesel::update(anomaly_notices::table.filter(anomaly_notices::id.eq(notice_id)))
            .set((
                anomaly_notices::status.eq(AnomalyStatus::Remediated),
                anomaly_notices::explanation.eq(Some(explanation)),
                anomaly_notices::remediation.eq(Some(remediation)),
                anomaly_notices::remediated_by.eq(Some(&actor.user_id)),
                anomaly_notices::remediated_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
        let late = business_date(now) > notice.deadline;
        let payload = json!({ "notice_id": notice_id, "link_id": link.id, "late": late });
        links::record(conn, now, &link, kind::ANOMALY_NOTICE_REMEDIATED, Some(&actor.user_id), payload)?;
        let body =
            format!("The agency answered the anomaly notice {notice_id}: {explanation}. Remediation: {remediation}");
        let reviewers = links::nia_reviewer_emails(conn)?;
        notifications::enqueue_to_all(conn, now, &reviewers, "異常通知已說明改善 Anomaly remediated", &body)?;
        find(conn, notice_id)
    })
}

/// One overdue notice: marked overdue and its link suspended (R-LINK-06), in one transaction. Does
/// nothing when the notice was remediated or marked meanwhile (the sweep is idempotent).
pub fn mark_overdue(conn: &mut DbConn, now: DateTime<Utc>, notice_id: &AnomalyNoticeId) -> Result<bool, IdentityError> {
    conn.write_transaction(|conn| {
        let notice = find(conn, notice_id)?;
        let link = links::lock(conn, &notice.link_id)?;
        if notice.status != AnomalyStatus::Open || notice.deadline >= business_date(now) {
            return Ok(false);
        }
        diesel::update(anomaly_notices::table.filter(anomaly_notices::id.eq(notice_id)))
            .set((anomaly_notices::status.eq(AnomalyStatus::Overdue), anomaly_notices::overdue_at.eq(Some(to_db(now)))))
            .execute(conn)?;
        let payload = json!({ "notice_id": notice_id, "link_id": link.id, "deadline": notice.deadline });
        links::record(conn, now, &link, kind::ANOMALY_NOTICE_OVERDUE, None, payload)?;
        if link.status == LinkStatus::Active {
            let reason = format!("anomaly notice {notice_id} unremediated by its deadline {}", notice.deadline);
            links::move_link(conn, now, &link, LinkStatus::Suspended, LinkCause::AnomalyUnremediated, &reason, None)?;
        }
        Ok(true)
    })
}

/// Open notices whose deadline (a Taipei date) has passed.
pub fn past_deadline(conn: &mut DbConn, now: DateTime<Utc>) -> Result<Vec<AnomalyNoticeId>, IdentityError> {
    Ok(anomaly_notices::table
        .filter(anomaly_notices::status.eq(AnomalyStatus::Open))
        .filter(anomaly_notices::deadline.lt(business_date(now)))
        .select(anomaly_notices::id)
        .order(anomaly_notices::id)
        .load(conn)?)
}

fn find(conn: &mut DbConn, id: &AnomalyNoticeId) -> Result<AnomalyNotice, IdentityError> {
    anomaly_notices::table
        .filter(anomaly_notices::id.eq(id))
        .select(AnomalyNotice::as_select())
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the anomaly notice"))
}

/// Notices the actor may see (the immigration agency: all; an agency: its own and its sponsored
/// agencies'), newest first, optionally of one link or status.
pub fn list(
    conn: &mut DbConn,
    actor: &Actor,
    link_id: Option<&LinkId>,
    status: Option<AnomalyStatus>,
) -> Result<Vec<(AnomalyNotice, AgencyCode)>, IdentityError> {
    actor.require_any(links::READERS)?;
    let mut query = anomaly_notices::table
        .inner_join(agency_links::table.on(agency_links::id.eq(anomaly_notices::link_id)))
        .inner_join(agencies::table.on(agencies::id.eq(anomaly_notices::agency_id)))
        .select((AnomalyNotice::as_select(), agencies::code))
        .order(anomaly_notices::issued_at.desc())
        .into_boxed();
    if !actor.has(roles::NIA_REVIEWER) {
        query = query.filter(
            agency_links::agency_id.eq(&actor.agency_id).or(agency_links::sponsor_agency_id.eq(&actor.agency_id)),
        );
    }
    if let Some(link_id) = link_id {
        query = query.filter(anomaly_notices::link_id.eq(link_id));
    }
    if let Some(status) = status {
        query = query.filter(anomaly_notices::status.eq(status));
    }
    Ok(query.load(conn)?)
}

/// The agency code of a notice's agency (for its view).
pub fn with_agency(conn: &mut DbConn, notice: AnomalyNotice) -> Result<(AnomalyNotice, AgencyCode), IdentityError> {
    let code = links::agency_code(conn, &notice.agency_id)?;
    Ok((notice, code))
}
