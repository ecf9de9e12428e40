//! Agency links (seed 003): the lifecycle of an agency's link with the immigration agency, whether
//! it can be used now, and who may see and act on it. Applications and their per-item decisions live
//! in [`super::link_forms`], anomaly notices in [`super::anomalies`], the clock-driven moves in
//! [`super::link_sweep`].
//!
//! Every status change goes through [`move_link`]: [`LinkStatus::transition`] judges it, and the
//! change, its history row, its audit event and the notice to the agency's account managers commit
//! together. Whether lookups may run is decided in one place, [`standing`], which identity's
//! permission answer (and so the broker) follows.

use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::roles;
use immilink_shared::clock::{business_date, from_db, taipei_day_start, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::{text_enum, text_id};
use serde_json::json;

use super::accounts::{self, Actor};
use super::audit::{self, About};
use super::{new_id, notifications, AgencyCode, AgencyId, IdentityError, UserId};
use crate::schema::{
    agencies, agency_link_items, agency_links, anomaly_notices, link_resumption_requests, link_transitions, users,
};

text_id! {
    /// An agency link's id (UUIDv7).
    pub struct LinkId;
}

text_id! {
    /// A resumption request's id (UUIDv7).
    pub struct ResumptionRequestId;
}

/// Roles that act for an agency on its link (and for the agencies it sponsors, R-LINK-11).
pub const AGENCY_SIDE: &[&str] = &[roles::ACCOUNT_MANAGER, roles::AGENCY_HEAD];
/// The immigration agency's side.
pub const NIA_SIDE: &[&str] = &[roles::NIA_REVIEWER];
/// Who may read links: both sides.
pub const READERS: &[&str] = &[roles::NIA_REVIEWER, roles::ACCOUNT_MANAGER, roles::AGENCY_HEAD];

/// A suspension longer than this before remediation needs a new application (R-LINK-07).
pub const MAX_SUSPENSION_MONTHS: u32 = 6;
/// Termination notice is due at least this long before the termination date (R-LINK-08).
pub const TERMINATION_NOTICE_MONTHS: u32 = 1;
/// A link idle longer than this is dormant (R-LINK-10).
pub const DORMANT_AFTER_MONTHS: u32 = 12;
/// How long a necessity review holds before the next is due (R-LINK-09).
pub const NECESSITY_REVIEW_MONTHS: u32 = 12;

text_enum! {
    /// Where an agency's link stands. Every change is judged by [`LinkStatus::transition`].
    pub enum LinkStatus {
        /// Applied for; the immigration agency has not decided every item yet.
        Pending = "pending",
        /// Its approved items may be looked up within its usage period.
        Active = "active",
        /// No lookups until an approved resumption (R-LINK-06, R-LINK-07).
        Suspended = "suspended",
        /// Ended: by notice (R-LINK-08), a stop request (R-LINK-09) or dormancy (R-LINK-10). Final.
        Terminated = "terminated",
        /// Ended by the clock: its usage period ran out (R-LINK-12), or it stayed suspended too long
        /// (R-LINK-07). Final: a new application is needed.
        Lapsed = "lapsed",
        /// The immigration agency rejected every requested item. Final.
        Rejected = "rejected",
    }
}

impl LinkStatus {
    /// The one judge of link moves: a pending link becomes active or rejected; an active link can be
    /// suspended, terminated or lapse; a suspended link can be resumed (to active), terminated or
    /// lapse. Terminated, lapsed and rejected are final.
    pub fn transition(self, to: LinkStatus) -> Result<LinkStatus, IdentityError> {
        use LinkStatus::*;
        match (self, to) {
            (Pending, Active | Rejected)
            | (Active, Suspended | Terminated | Lapsed)
            | (Suspended, Active | Terminated | Lapsed) => Ok(to),
            (status, _) => Err(IdentityError::LinkStatusConflict { status, wanted: to }),
        }
    }

    /// A link that is neither final nor rejected: an agency has at most one.
    pub fn is_live(self) -> bool {
        matches!(self, LinkStatus::Pending | LinkStatus::Active | LinkStatus::Suspended)
    }
}

text_enum! {
    /// Why a link is where it is. Each cause names the SPEC rule behind it, which a refused lookup
    /// cites.
    pub enum LinkCause {
        /// A first application was filed (R-LINK-02).
        Applied = "applied",
        /// The immigration agency approved items (R-LINK-03).
        Approved = "approved",
        /// The immigration agency rejected every item (R-LINK-03).
        AllItemsRejected = "all_items_rejected",
        /// An anomaly notice passed its deadline unremediated (R-LINK-06, R-AUD-09).
        AnomalyUnremediated = "anomaly_unremediated",
        /// The immigration agency suspended it at once (003 pt 10).
        SuspendedByNia = "suspended_by_nia",
        /// An approved resumption request after remediation (R-LINK-07).
        Resumed = "resumed",
        /// Suspended for more than six months: a new application is required (R-LINK-07).
        SuspendedTooLong = "suspended_too_long",
        /// Its notified termination date came (R-LINK-08).
        TerminationDate = "termination_date",
        /// The agency asked to stop: its statutory purpose lapsed (R-LINK-09).
        StopRequested = "stop_requested",
        /// Idle for over a year and the agency confirmed no need (R-LINK-10).
        DormantNoNeed = "dormant_no_need",
        /// Its data usage period ended without extension (R-LINK-12).
        UsagePeriodEnded = "usage_period_ended",
    }
}

impl LinkCause {
    pub fn rule(self) -> &'static str {
        use LinkCause::*;
        match self {
            Applied => "R-LINK-02",
            Approved | AllItemsRejected => "R-LINK-03",
            AnomalyUnremediated | SuspendedByNia => "R-LINK-06",
            Resumed | SuspendedTooLong => "R-LINK-07",
            TerminationDate => "R-LINK-08",
            StopRequested => "R-LINK-09",
            DormantNoNeed => "R-LINK-10",
            UsagePeriodEnded => "R-LINK-12",
        }
    }
}

/// A link as stored (without its items).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = agency_links)]
pub struct LinkRow {
    pub id: LinkId,
    pub agency_id: AgencyId,
    pub status: LinkStatus,
    pub valid_from: NaiveDateTime,
    pub valid_until: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub sponsor_agency_id: Option<AgencyId>,
    pub status_cause: Option<LinkCause>,
    pub status_reason: Option<String>,
    pub status_changed_at: Option<NaiveDateTime>,
    pub suspended_at: Option<NaiveDateTime>,
    pub review_due_on: Option<NaiveDate>,
    pub review_notified_on: Option<NaiveDate>,
    pub termination_date: Option<NaiveDate>,
    pub termination_noticed_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub dormant_notified_at: Option<NaiveDateTime>,
    pub dormancy_confirmed_at: Option<NaiveDateTime>,
    pub activated_at: Option<NaiveDateTime>,
}

impl LinkRow {
    /// The first day of the data usage period (Taipei date).
    pub fn usage_from(&self) -> NaiveDate {
        business_date(from_db(self.valid_from))
    }

    /// The last day of the data usage period (inclusive; stored as the next day's start).
    pub fn usage_until(&self) -> NaiveDate {
        business_date(from_db(self.valid_until)).pred_opt().unwrap_or(NaiveDate::MIN)
    }

    /// Changes, notices, reviews and termination apply to a link in force: active or suspended.
    pub fn require_in_force(&self) -> Result<(), IdentityError> {
        match self.status {
            LinkStatus::Active | LinkStatus::Suspended => Ok(()),
            status => Err(IdentityError::LinkNotInForce { status }),
        }
    }

    /// Since when it has been idle: its last use, its activation or the agency's last answer to a
    /// dormancy notice, whichever is latest (R-LINK-10).
    pub fn idle_since(&self) -> NaiveDateTime {
        [self.last_used_at, self.activated_at, self.dormancy_confirmed_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.created_at)
    }
}

/// The stored bounds of a usage period given in Taipei dates, `until` inclusive.
pub fn usage_bounds(from: NaiveDate, until: NaiveDate) -> (NaiveDateTime, NaiveDateTime) {
    let end = until.succ_opt().unwrap_or(until);
    (to_db(taipei_day_start(from)), to_db(taipei_day_start(end)))
}

/// `date` plus whole months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb).
pub fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX)
}

/// Why a caller's lookups cannot run now: the rule, a stable code and a sentence. Mostly the
/// agency's link ([`standing`]); also the caller's own standing (R-VEN-08, `contractors::standing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRefusal {
    pub rule: &'static str,
    pub code: &'static str,
    pub detail: String,
}

/// Whether an agency's lookups may run now (R-LINK-06, 08, 12 and the rest of the lifecycle).
#[derive(Debug, Clone)]
pub enum Standing {
    /// The link is active and within its period: these query types may be looked up.
    Usable {
        link: LinkRow,
        query_types: Vec<String>,
    },
    Refused(LinkRefusal),
}

impl Standing {
    pub fn refusal(&self) -> Option<&LinkRefusal> {
        match self {
            Standing::Refused(refusal) => Some(refusal),
            Standing::Usable { .. } => None,
        }
    }
}

/// The agency's current link: its live one if it has one, else its latest.
pub fn current_link(conn: &mut DbConn, agency_id: &AgencyId) -> Result<Option<LinkRow>, IdentityError> {
    let links: Vec<LinkRow> = agency_links::table
        .filter(agency_links::agency_id.eq(agency_id))
        .order(agency_links::created_at.desc())
        .select(LinkRow::as_select())
        .load(conn)?;
    let live = links.iter().position(|link| link.status.is_live());
    Ok(match live {
        Some(index) => links.into_iter().nth(index),
        None => links.into_iter().next(),
    })
}

/// THE rule of whether an agency's lookups may run now. Refused: no live link (R-LINK-02), not yet
/// decided (R-LINK-03), suspended (R-LINK-06), ended (the rule of its cause), its termination date
/// reached (R-LINK-08) or outside its usage period (R-LINK-12).
pub fn standing(conn: &mut DbConn, now: DateTime<Utc>, agency_id: &AgencyId) -> Result<Standing, IdentityError> {
    let Some(link) = current_link(conn, agency_id)? else {
        return Ok(refused("R-LINK-02", "no_active_link", "the agency has no link with the immigration agency".into()));
    };
    let today = business_date(now);
    let standing = match link.status {
        LinkStatus::Pending => {
            refused("R-LINK-03", "link_pending", "the agency's link application is still under review".into())
        }
        LinkStatus::Rejected => {
            refused("R-LINK-02", "no_active_link", "the agency's link application was rejected".into())
        }
        LinkStatus::Suspended => refused(
            "R-LINK-06",
            "link_suspended",
            format!(
                "the agency's link is suspended since {}: {}",
                link.suspended_at.map(|at| business_date(from_db(at)).to_string()).unwrap_or_default(),
                link.status_reason.as_deref().unwrap_or("")
            ),
        ),
        LinkStatus::Terminated | LinkStatus::Lapsed => ended(&link),
        LinkStatus::Active if link.termination_date.is_some_and(|date| date <= today) => refused(
            "R-LINK-08",
            "link_terminated",
            format!("the agency's link terminated on {}", link.termination_date.unwrap_or(today)),
        ),
        LinkStatus::Active if to_db(now) < link.valid_from || to_db(now) >= link.valid_until => refused(
            "R-LINK-12",
            "outside_usage_period",
            format!("the link's data usage period is {} to {}", link.usage_from(), link.usage_until()),
        ),
        LinkStatus::Active => {
            let query_types = agency_link_items::table
                .filter(agency_link_items::link_id.eq(&link.id))
                .select(agency_link_items::query_type)
                .distinct()
                .order(agency_link_items::query_type)
                .load(conn)?;
            Standing::Usable { link, query_types }
        }
    };
    Ok(standing)
}

fn refused(rule: &'static str, code: &'static str, detail: String) -> Standing {
    Standing::Refused(LinkRefusal { rule, code, detail })
}

/// The refusal of an ended link names the rule that ended it.
fn ended(link: &LinkRow) -> Standing {
    let cause = link.status_cause.unwrap_or(LinkCause::UsagePeriodEnded);
    let code = match cause {
        LinkCause::TerminationDate => "link_terminated",
        LinkCause::StopRequested => "link_stopped",
        LinkCause::DormantNoNeed => "link_dormant_stopped",
        LinkCause::SuspendedTooLong => "link_lapsed",
        _ => "outside_usage_period",
    };
    let since = link.status_changed_at.map(|at| business_date(from_db(at)).to_string()).unwrap_or_default();
    refused(cause.rule(), code, format!("the agency's link ended on {since} ({cause})"))
}

/// Records that the agency used its link (the broker asked what a caller may look up for a
/// lookup), at most once per Taipei day, and clears a dormancy flag (R-LINK-10).
pub fn note_use(conn: &mut DbConn, now: DateTime<Utc>, link: &LinkRow) -> Result<(), IdentityError> {
    let used_today = link.last_used_at.is_some_and(|at| business_date(from_db(at)) == business_date(now));
    if used_today && link.dormant_notified_at.is_none() {
        return Ok(());
    }
    diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
        .set((agency_links::last_used_at.eq(to_db(now)), agency_links::dormant_notified_at.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    Ok(())
}

// --- who may see and act ---------------------------------------------------------------------------

/// Which side the actor acts for on this link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The immigration agency's reviewer.
    Nia,
    /// The agency itself, or its competent authority (its sponsor, R-LINK-11).
    Agency,
}

/// Whether the actor may see `link`, and as which side. Another agency's link is "not found" (its
/// existence is not revealed).
pub fn side_on(actor: &Actor, link: &LinkRow) -> Result<Side, IdentityError> {
    actor.require_any(READERS)?;
    if actor.has(roles::NIA_REVIEWER) {
        return Ok(Side::Nia);
    }
    let own = link.agency_id == actor.agency_id || link.sponsor_agency_id.as_ref() == Some(&actor.agency_id);
    if own {
        Ok(Side::Agency)
    } else {
        Err(IdentityError::NotFound("the agency link"))
    }
}

/// The actor must act for the link's agency (or its sponsor) with an agency-side role.
pub fn require_agency_side(actor: &Actor, link: &LinkRow) -> Result<(), IdentityError> {
    match side_on(actor, link)? {
        Side::Agency => actor.require_any(AGENCY_SIDE),
        Side::Nia => Err(IdentityError::RoleRequired { roles: AGENCY_SIDE }),
    }
}

/// The actor must be the immigration agency's reviewer.
pub fn require_nia(actor: &Actor) -> Result<(), IdentityError> {
    actor.require_any(NIA_SIDE)
}

/// Loads a link the actor may see. The role is checked before the link is looked for, so a caller
/// who may read no link cannot tell another agency's link from a missing one.
pub fn visible_link(conn: &mut DbConn, actor: &Actor, link_id: &LinkId) -> Result<(LinkRow, Side), IdentityError> {
    actor.require_any(READERS)?;
    let link = find(conn, link_id)?;
    let side = side_on(actor, &link)?;
    Ok((link, side))
}

pub fn find(conn: &mut DbConn, link_id: &LinkId) -> Result<LinkRow, IdentityError> {
    agency_links::table
        .filter(agency_links::id.eq(link_id))
        .select(LinkRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the agency link"))
}

/// Takes the link's row lock (a no-op update: SQLite's write transaction already holds the
/// database) and reads it, so two moves of one link are judged one after the other.
pub fn lock(conn: &mut DbConn, link_id: &LinkId) -> Result<LinkRow, IdentityError> {
    diesel::update(agency_links::table.filter(agency_links::id.eq(link_id)))
        .set(agency_links::status.eq(agency_links::status))
        .execute(conn)?;
    find(conn, link_id)
}

// --- moves -----------------------------------------------------------------------------------------

/// One status move of a link: judged by [`LinkStatus::transition`], stored with its cause, reason,
/// actor and time, recorded as an audit event and told to the agency's (and its sponsor's) account
/// managers, all in the caller's transaction. `actor` is `None` for the sweep.
pub fn move_link(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    to: LinkStatus,
    cause: LinkCause,
    reason: &str,
    actor: Option<&UserId>,
) -> Result<LinkRow, IdentityError> {
    let to = link.status.transition(to)?;
    let at = to_db(now);
    let suspended_at = match to {
        LinkStatus::Suspended => Some(at),
        _ => None,
    };
    let activated_at = match (link.status, to) {
        (LinkStatus::Pending, LinkStatus::Active) => Some(at),
        _ => link.activated_at,
    };
    diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
        .set((
            agency_links::status.eq(to),
            agency_links::status_cause.eq(cause),
            agency_links::status_reason.eq(reason),
            agency_links::status_changed_at.eq(at),
            agency_links::suspended_at.eq(suspended_at),
            agency_links::activated_at.eq(activated_at),
        ))
        .execute(conn)?;
    insert_transition(conn, now, &link.id, Some(link.status), to, cause, reason, actor)?;
    let payload = json!({
        "link_id": link.id, "from": link.status, "to": to, "cause": cause, "rule": cause.rule(), "reason": reason,
    });
    record(conn, now, link, kind::AGENCY_LINK_TRANSITIONED, actor, payload)?;
    let subject = format!("移民資訊連結狀態變更 Agency link {to}");
    let body = format!(
        "The agency link {} moved from {} to {to} ({}, {}): {reason}",
        link.id,
        link.status,
        cause,
        cause.rule()
    );
    tell_agency(conn, now, link, &subject, &body)?;
    find(conn, &link.id)
}

/// Records the first row of a link's history (it did not exist before).
pub fn record_creation(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    actor: &UserId,
) -> Result<(), IdentityError> {
    insert_transition(
        conn,
        now,
        &link.id,
        None,
        link.status,
        LinkCause::Applied,
        "first application filed",
        Some(actor),
    )
}

/// The one insert of a history row.
#[allow(clippy::too_many_arguments)]
fn insert_transition(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link_id: &LinkId,
    from: Option<LinkStatus>,
    to: LinkStatus,
    cause: LinkCause,
    reason: &str,
    actor: Option<&UserId>,
) -> Result<(), IdentityError> {
    diesel::insert_into(link_transitions::table)
        .values((
            link_transitions::id.eq(new_id()),
            link_transitions::link_id.eq(link_id),
            link_transitions::from_status.eq(from),
            link_transitions::to_status.eq(to),
            link_transitions::cause.eq(cause),
            link_transitions::reason.eq(reason),
            link_transitions::actor_id.eq(actor),
            link_transitions::at.eq(to_db(now)),
        ))
        .execute(conn)?;
    Ok(())
}

/// An audit event about a link, named with its agency's code.
pub fn record(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    kind: &str,
    actor: Option<&UserId>,
    payload: serde_json::Value,
) -> Result<(), IdentityError> {
    let agency = agency_code(conn, &link.agency_id)?;
    audit::record(
        conn,
        now,
        kind,
        About { actor, agency: Some(&agency), correlation_id: Some(link.id.as_str()) },
        payload,
    )
}

/// Tells the account managers of the link's agency and of its sponsor.
pub fn tell_agency(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    link: &LinkRow,
    subject: &str,
    body: &str,
) -> Result<(), IdentityError> {
    accounts::notify_managers(conn, now, &link.agency_id, subject, body)?;
    if let Some(sponsor) = &link.sponsor_agency_id {
        accounts::notify_managers(conn, now, sponsor, subject, body)?;
    }
    Ok(())
}

pub fn agency_code(conn: &mut DbConn, agency_id: &AgencyId) -> Result<AgencyCode, IdentityError> {
    Ok(agencies::table.filter(agencies::id.eq(agency_id)).select(agencies::code).first(conn)?)
}

/// The immigration agency suspends a link at once (003 pt 10): its lookups stop (R-LINK-06).
pub fn suspend(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    reason: &str,
) -> Result<LinkRow, IdentityError> {
    require_nia(actor)?;
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        move_link(conn, now, &link, LinkStatus::Suspended, LinkCause::SuspendedByNia, reason, Some(&actor.user_id))
    })
}

/// The agency gives notice of termination (R-LINK-08): the date must be at least a month after
/// today (Taipei); lookups stop on that date, and the sweep then terminates the link.
pub fn give_termination_notice(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    termination_date: NaiveDate,
    reason: &str,
) -> Result<LinkRow, IdentityError> {
    // The role first: another agency's link must answer as a missing one (see `visible_link`).
    actor.require_any(AGENCY_SIDE)?;
    let earliest = add_months(business_date(now), TERMINATION_NOTICE_MONTHS);
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        require_agency_side(actor, &link)?;
        link.require_in_force()?;
        if termination_date < earliest {
            return Err(IdentityError::TerminationNoticeTooShort { earliest });
        }
        diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
            .set((
                agency_links::termination_date.eq(Some(termination_date)),
                agency_links::termination_noticed_at.eq(Some(to_db(now))),
            ))
            .execute(conn)?;
        let payload = json!({ "link_id": link.id, "termination_date": termination_date, "reason": reason });
        record(conn, now, &link, kind::AGENCY_LINK_TERMINATION_NOTICED, Some(&actor.user_id), payload)?;
        let body = format!("Notice of termination of the agency link {} on {termination_date}: {reason}", link.id);
        tell_agency(conn, now, &link, "移民資訊連結終止通知 Link termination notice", &body)?;
        find(conn, &link.id)
    })
}

/// The agency's periodic necessity review (R-LINK-09): still needed → the next review is due in a
/// year; not needed (the statutory purpose lapsed) → the link stops at once.
pub fn review_necessity(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    still_needed: bool,
    note: &str,
) -> Result<LinkRow, IdentityError> {
    // The role first: another agency's link must answer as a missing one (see `visible_link`).
    actor.require_any(AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        require_agency_side(actor, &link)?;
        link.require_in_force()?;
        let next_due = still_needed.then(|| add_months(business_date(now), NECESSITY_REVIEW_MONTHS));
        let payload =
            json!({ "link_id": link.id, "still_needed": still_needed, "note": note, "next_review_due_on": next_due });
        record(conn, now, &link, kind::AGENCY_LINK_NECESSITY_REVIEWED, Some(&actor.user_id), payload)?;
        if still_needed {
            diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
                .set((agency_links::review_due_on.eq(next_due), agency_links::review_notified_on.eq(None::<NaiveDate>)))
                .execute(conn)?;
            find(conn, &link.id)
        } else {
            let reason = format!("necessity review: the statutory purpose lapsed. {note}");
            move_link(
                conn,
                now,
                &link,
                LinkStatus::Terminated,
                LinkCause::StopRequested,
                reason.trim(),
                Some(&actor.user_id),
            )
        }
    })
}

/// The agency answers a dormancy notice (R-LINK-10): still needed → idle counts from now; not
/// needed → the link stops.
pub fn confirm_dormancy(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    still_needed: bool,
    note: &str,
) -> Result<LinkRow, IdentityError> {
    // The role first: another agency's link must answer as a missing one (see `visible_link`).
    actor.require_any(AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        require_agency_side(actor, &link)?;
        if link.dormant_notified_at.is_none() || !link.status.is_live() {
            return Err(IdentityError::NotDormant);
        }
        let payload = json!({ "link_id": link.id, "still_needed": still_needed, "note": note });
        record(conn, now, &link, kind::AGENCY_LINK_DORMANCY_CONFIRMED, Some(&actor.user_id), payload)?;
        diesel::update(agency_links::table.filter(agency_links::id.eq(&link.id)))
            .set((
                agency_links::dormancy_confirmed_at.eq(Some(to_db(now))),
                agency_links::dormant_notified_at.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        if still_needed {
            find(conn, &link.id)
        } else {
            let link = find(conn, &link.id)?;
            let reason = format!("unused for over a year; the agency confirmed no need. {note}");
            move_link(
                conn,
                now,
                &link,
                LinkStatus::Terminated,
                LinkCause::DormantNoNeed,
                reason.trim(),
                Some(&actor.user_id),
            )
        }
    })
}

// --- resumption (R-LINK-07) ------------------------------------------------------------------------

text_enum! {
    /// Where a resumption request stands.
    pub enum ResumptionStatus {
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
    }
}

text_enum! {
    /// The immigration agency's answer to a request.
    pub enum NiaDecision {
        Approve = "approve",
        Reject = "reject",
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = link_resumption_requests)]
pub struct ResumptionRequest {
    pub id: ResumptionRequestId,
    pub link_id: LinkId,
    pub remediation: String,
    pub status: ResumptionStatus,
    pub requested_by: UserId,
    pub requested_at: NaiveDateTime,
    pub decided_by: Option<UserId>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_reason: Option<String>,
}

/// THE rule of R-LINK-07 at `at` (when the remediation is declared complete): every anomaly notice
/// of the link remediated, and the suspension no longer than six months.
pub fn check_resumable(conn: &mut DbConn, link: &LinkRow, at: DateTime<Utc>) -> Result<(), IdentityError> {
    if link.status != LinkStatus::Suspended {
        return Err(IdentityError::LinkStatusConflict { status: link.status, wanted: LinkStatus::Active });
    }
    let outstanding: i64 = anomaly_notices::table
        .filter(anomaly_notices::link_id.eq(&link.id))
        .filter(anomaly_notices::remediated_at.is_null())
        .count()
        .get_result(conn)?;
    if outstanding > 0 {
        return Err(IdentityError::RemediationOutstanding { notices: outstanding });
    }
    let suspended_on = link.suspended_at.map(|at| business_date(from_db(at))).unwrap_or_else(|| business_date(at));
    if business_date(at) > add_months(suspended_on, MAX_SUSPENSION_MONTHS) {
        return Err(IdentityError::ResumptionTooLate { suspended_on });
    }
    Ok(())
}

/// The agency asks to resume a suspended link after remediation (R-LINK-07).
pub fn request_resumption(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    remediation: &str,
) -> Result<ResumptionRequest, IdentityError> {
    // The role first: another agency's link must answer as a missing one (see `visible_link`).
    actor.require_any(AGENCY_SIDE)?;
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        require_agency_side(actor, &link)?;
        check_resumable(conn, &link, now)?;
        let pending: i64 = link_resumption_requests::table
            .filter(link_resumption_requests::link_id.eq(&link.id))
            .filter(link_resumption_requests::status.eq(ResumptionStatus::Pending))
            .count()
            .get_result(conn)?;
        if pending > 0 {
            return Err(IdentityError::RequestPending);
        }
        let id = ResumptionRequestId::new(new_id());
        diesel::insert_into(link_resumption_requests::table)
            .values((
                link_resumption_requests::id.eq(&id),
                link_resumption_requests::link_id.eq(&link.id),
                link_resumption_requests::remediation.eq(remediation),
                link_resumption_requests::status.eq(ResumptionStatus::Pending),
                link_resumption_requests::requested_by.eq(&actor.user_id),
                link_resumption_requests::requested_at.eq(to_db(now)),
            ))
            .execute(conn)?;
        let payload = json!({ "link_id": link.id, "request_id": id, "remediation": remediation });
        record(conn, now, &link, kind::AGENCY_LINK_RESUMPTION_REQUESTED, Some(&actor.user_id), payload)?;
        let body =
            format!("A request {id} to resume the agency link {} waits for your decision: {remediation}", link.id);
        let reviewers = nia_reviewer_emails(conn)?;
        notifications::enqueue_to_all(conn, now, &reviewers, "移民資訊連結回復申請待審 Resumption to decide", &body)?;
        resumption_request(conn, &id)
    })
}

/// The immigration agency decides a resumption request: approved → the link is active again. The
/// six months are counted to when the agency declared its remediation complete (the request).
pub fn decide_resumption(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    actor: &Actor,
    link_id: &LinkId,
    request_id: &ResumptionRequestId,
    decision: NiaDecision,
    reason: &str,
) -> Result<ResumptionRequest, IdentityError> {
    require_nia(actor)?;
    conn.write_transaction(|conn| {
        let link = lock(conn, link_id)?;
        let request = resumption_request(conn, request_id)?;
        if request.link_id != link.id {
            return Err(IdentityError::NotFound("the resumption request"));
        }
        if request.status != ResumptionStatus::Pending {
            return Err(IdentityError::AlreadyDecided);
        }
        let status = match decision {
            NiaDecision::Approve => {
                check_resumable(conn, &link, from_db(request.requested_at))?;
                let why = format!("resumption approved: {reason}");
                move_link(conn, now, &link, LinkStatus::Active, LinkCause::Resumed, why.trim(), Some(&actor.user_id))?;
                ResumptionStatus::Approved
            }
            NiaDecision::Reject => {
                if reason.trim().is_empty() {
                    return Err(IdentityError::missing("reason"));
                }
                ResumptionStatus::Rejected
            }
        };
        diesel::update(link_resumption_requests::table.filter(link_resumption_requests::id.eq(request_id)))
            .set((
                link_resumption_requests::status.eq(status),
                link_resumption_requests::decided_by.eq(Some(&actor.user_id)),
                link_resumption_requests::decided_at.eq(Some(to_db(now))),
                link_resumption_requests::decision_reason.eq(Some(reason)),
            ))
            .execute(conn)?;
        let payload = json!({ "link_id": link.id, "request_id": request_id, "decision": status, "reason": reason });
        record(conn, now, &link, kind::AGENCY_LINK_RESUMPTION_DECIDED, Some(&actor.user_id), payload)?;
        if status == ResumptionStatus::Rejected {
            let body =
                format!("The resumption request {request_id} for the agency link {} was rejected: {reason}", link.id);
            tell_agency(conn, now, &link, "移民資訊連結回復申請未獲同意 Resumption rejected", &body)?;
        }
        resumption_request(conn, request_id)
    })
}

fn resumption_request(conn: &mut DbConn, id: &ResumptionRequestId) -> Result<ResumptionRequest, IdentityError> {
    link_resumption_requests::table
        .filter(link_resumption_requests::id.eq(id))
        .select(ResumptionRequest::as_select())
        .first(conn)
        .optional()?
        .ok_or(IdentityError::NotFound("the resumption request"))
}

// --- reads -----------------------------------------------------------------------------------------

/// One approved item a link carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Queryable)]
pub struct LinkItem {
    pub legal_basis: String,
    pub purpose_code: String,
    pub query_type: String,
}

/// One row of a link's history.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = link_transitions)]
pub struct Transition {
    pub from_status: Option<LinkStatus>,
    pub to_status: LinkStatus,
    pub cause: LinkCause,
    pub reason: String,
    pub actor_id: Option<UserId>,
    pub at: NaiveDateTime,
}

/// A link with what it carries and its history.
#[derive(Debug, Clone)]
pub struct LinkDetail {
    pub link: LinkRow,
    pub agency_code: AgencyCode,
    pub agency_name: String,
    pub sponsor_code: Option<AgencyCode>,
    pub items: Vec<LinkItem>,
    pub transitions: Vec<Transition>,
    pub resumption_requests: Vec<ResumptionRequest>,
    pub applications: Vec<super::link_forms::LinkApplication>,
}

/// Links the actor may see: every agency's for the immigration agency's reviewer, the agency's own
/// (and those it sponsors) for its account managers and head.
pub fn list(conn: &mut DbConn, actor: &Actor) -> Result<Vec<(LinkRow, AgencyCode)>, IdentityError> {
    actor.require_any(READERS)?;
    let mut query = agency_links::table
        .inner_join(agencies::table.on(agencies::id.eq(agency_links::agency_id)))
        .select((LinkRow::as_select(), agencies::code))
        .order((agencies::code.asc(), agency_links::created_at.desc()))
        .into_boxed();
    if !actor.has(roles::NIA_REVIEWER) {
        query = query.filter(
            agency_links::agency_id.eq(&actor.agency_id).or(agency_links::sponsor_agency_id.eq(&actor.agency_id)),
        );
    }
    Ok(query.load(conn)?)
}

pub fn detail(conn: &mut DbConn, actor: &Actor, link_id: &LinkId) -> Result<LinkDetail, IdentityError> {
    let (link, _) = visible_link(conn, actor, link_id)?;
    load_detail(conn, link)
}

pub fn load_detail(conn: &mut DbConn, link: LinkRow) -> Result<LinkDetail, IdentityError> {
    let (code, agency_name): (AgencyCode, String) = agencies::table
        .filter(agencies::id.eq(&link.agency_id))
        .select((agencies::code, agencies::name))
        .first(conn)?;
    let sponsor_code = match &link.sponsor_agency_id {
        Some(sponsor) => Some(agency_code(conn, sponsor)?),
        None => None,
    };
    let items = agency_link_items::table
        .filter(agency_link_items::link_id.eq(&link.id))
        .select((agency_link_items::legal_basis, agency_link_items::purpose_code, agency_link_items::query_type))
        .order((agency_link_items::query_type, agency_link_items::legal_basis, agency_link_items::purpose_code))
        .load(conn)?;
    let transitions = link_transitions::table
        .filter(link_transitions::link_id.eq(&link.id))
        .order((link_transitions::at.asc(), link_transitions::id.asc()))
        .select(Transition::as_select())
        .load(conn)?;
    let resumption_requests = link_resumption_requests::table
        .filter(link_resumption_requests::link_id.eq(&link.id))
        .order(link_resumption_requests::requested_at.asc())
        .select(ResumptionRequest::as_select())
        .load(conn)?;
    let applications = super::link_forms::applications_of(conn, &link.id)?;
    Ok(LinkDetail {
        link,
        agency_code: code,
        agency_name,
        sponsor_code,
        items,
        transitions,
        resumption_requests,
        applications,
    })
}

/// The e-mail addresses of the immigration agency's active reviewers (told of new applications).
pub fn nia_reviewer_emails(conn: &mut DbConn) -> Result<Vec<String>, IdentityError> {
    let emails: Vec<Option<String>> = users::table
        .inner_join(crate::schema::user_roles::table)
        .filter(crate::schema::user_roles::role.eq(roles::NIA_REVIEWER))
        .filter(users::status.eq(accounts::AccountStatus::Active))
        .select(users::email)
        .load(conn)?;
    Ok(emails.into_iter().flatten().collect())
}
