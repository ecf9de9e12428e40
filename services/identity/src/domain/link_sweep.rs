//! The link sweep: the clock-driven moves of seed 003, applied to every link whose date has come.
//! Each move is its own transaction that re-reads the link under its lock and does nothing when the
//! move no longer applies, so the sweep is idempotent and may run on a timer in the launcher and as a
//! Kubernetes CronJob at once. Every move is an audit event and a notice to the agency (through
//! [`links::move_link`] or the flag functions below).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{business_date, from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use serde::Serialize;
use serde_json::json;

use super::anomalies;
use super::links::{self, LinkCause, LinkId, LinkRow, LinkStatus};
use super::IdentityError;
use crate::schema::{agency_links, link_applications, link_resumption_requests};

/// What one sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepRun {
    /// Anomaly notices past their deadline unremediated (their links suspended, R-LINK-06).
    pub overdue_notices: usize,
    /// Links suspended longer than six months, lapsed (R-LINK-07).
    pub lapsed_suspensions: usize,
    /// Links whose termination date came (R-LINK-08).
    pub terminated: usize,
    /// Links whose usage period ended without extension (R-LINK-12).
    pub lapsed_periods: usize,
    /// Necessity reviews fallen due, the agency told (R-LINK-09).
    pub reviews_due: usize,
    /// Links idle over a year, flagged dormant and the agency told (R-LINK-10).
    pub dormant: usize,
}

/// One sweep at `now`.
pub fn sweep(conn: &mut DbConn, now: DateTime<Utc>) -> Result<SweepRun, IdentityError> {
    let mut run = SweepRun::default();
    for notice in anomalies::past_deadline(conn, now)? {
        run.overdue_notices += usize::from(anomalies::mark_overdue(conn, now, &notice)?);
    }
    let live: Vec<LinkId> = agency_links::table
        .filter(agency_links::status.eq_any([LinkStatus::Active, LinkStatus::Suspended]))
        .select(agency_links::id)
        .order(agency_links::id)
        .load(conn)?;
    for link_id in live {
        let moved = conn.write_transaction(|conn| {
            let link = links::lock(conn, &link_id)?;
            sweep_link(conn, now, &link)
        })?;
        match moved {
            Some(Swept::LapsedSuspension) => run.lapsed_suspensions += 1,
            Some(Swept::Terminated) => run.terminated += 1,
            Some(Swept::LapsedPeriod) => run.lapsed_periods += 1,
            Some(Swept::ReviewDue) => run.reviews_due += 1,
            Some(Swept::Dormant) => run.dormant += 1,
            None => {}
        }
    }
    Ok(run)
}

enum Swept {
    LapsedSuspension,
    Terminated,
    LapsedPeriod,
    ReviewDue,
    Dormant,
}

/// The first clock rule that applies to one link, applied. The ending moves come first: a link
/// that ends is not also flagged.
fn sweep_link(conn: &mut DbConn, now: DateTime<Utc>, link: &LinkRow) -> Result<Option<Swept>, IdentityError> {
    let today = business_date(now);
    if link.status == LinkStatus::Suspended && suspended_too_long(conn, link, today)? {
        let reason = format!(
            "suspended for more than {} months without an approved resumption: a new application is required",
            links::MAX_SUSPENSION_MONTHS
        );
        links::move_link(conn, now, link, LinkStatus::Lapsed, LinkCause::SuspendedTooLong, &reason, None)?;
        return Ok(Some(Swept::LapsedSuspension));
    }
    if let Some(date) = link.termination_date.filter(|date| *date <= today) {
        let reason = format!("termination date {date} as notified");
        links::move_link(conn, now, link, LinkStatus::Terminated, LinkCause::TerminationDate, &reason, None)?;
        return Ok(Some(Swept::Terminated));
    }
    if link.status == LinkStatus::Active && to_db(now) >= link.valid_until && !extension_pending(conn, &link.id)? {
        let reason = format!("the data usage period ended on {} without extension", link.usage_until());
        links::move_link(conn, now, link, LinkStatus::Lapsed, LinkCause::UsagePeriodEnded, &reason, None)?;
        return Ok(Some(Swept::LapsedPeriod));
    }
    if link.status != LinkStatus::Active {
        return Ok(None);
    }
    if link.review_due_on.is_some_and(|due| due <= today) && link.review_notified_on.is_none() {
        flag_review_due(conn, now, link, today)?;
        return Ok(Some(Swept::ReviewDue));
    }
    let idle_since = business_date(from_db(link.idle_since()));
    if today > links::add_months(idle_since, links::DORMANT_AFTER_MONTHS) && link.dormant_notified_at.is_none() {
        flag_dormant(conn, now, link, idle_since)?;
        return Ok(Some(Swept::Dormant));
    }
    Ok(None)
}

/// R-LINK-07: suspended more than six months, and no resumption request filed within them waits.
fn suspended_too_long(conn: &mut DbConn, link: &LinkRow, today: NaiveDate) -> Result<bool, IdentityError> {
    let Some(suspended_at) = link.suspended_at else {
        return Ok(false);
    };
    if today <= links::add_months(business_date(from_db(suspended_at)), links::MAX_SUSPENSION_MONTHS) {
        return Ok(false);
    }
    let waiting: i64 = link_resumption_requests::table
        .filter(link_resumption_requests::link_id.eq(&link.id))
        .filter(link_resumption_requests::status.eq(links::ResumptionStatus::Pending))
        .count()
        .get_result(conn)?;
    Ok(waiting == 0)
}

/// A change application under review may extend the period: the link waits for its decision
/// (lookups are refused meanwhile all the same, R-LINK-12).
fn extension_pending(conn: &mut DbConn, link_id: &LinkId) -> Result<bool, IdentityError> {
    let waiting: i64 = link_applications::table
        .filter(link_applications::link_id.eq(link_id))
        .filter(link_applications::status.eq(super::link_forms::LinkApplicationStatus::UnderReview))
        .count()
        .get_result(conn)?;
    Ok(waiting > 0)
}

fn flag_review_due(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    today: NaiveDate,
) -> Result<(), IdentityError> {
    diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
        .set(agency_links::review_notified_on.eq(Some(today)))
        .execute(conn)?;
    let payload = json!({ "link_id": link.id, "review_due_on": link.review_due_on });
    links::record(conn, now, link, kind::AGENCY_LINK_REVIEW_DUE, None, payload)?;
    let body = format!(
        "The necessity review of the agency link {} was due on {}. Review whether the statutory purpose still \
         holds; if it has lapsed, you must ask in writing to stop the link (003 pt 12).",
        link.id,
        link.review_due_on.map(|d| d.to_string()).unwrap_or_default()
    );
    links::tell_agency(conn, now, link, "移民資訊連結業務必要性審視 Necessity review due", &body)
}

fn flag_dormant(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    idle_since: NaiveDate,
) -> Result<(), IdentityError> {
    diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
        .set(agency_links::dormant_notified_at.eq(Some(to_db(now))))
        .execute(conn)?;
    let payload = json!({ "link_id": link.id, "idle_since": idle_since });
    links::record(conn, now, link, kind::AGENCY_LINK_DORMANT_FLAGGED, None, payload)?;
    let body = format!(
        "The agency link {} has not been used since {idle_since}, over a year. Confirm whether you still need \
         it; once you confirm you do not, it is stopped (003 pt 13).",
        link.id
    );
    links::tell_agency(conn, now, link, "移民資訊連結逾一年未使用 Link unused for over a year", &body)
}
