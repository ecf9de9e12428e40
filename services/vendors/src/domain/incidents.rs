//! Incidents (資安事件, R-VEN-03; seed 001 pt 8): a contractor reports an incident immediately, saying
//! when it happened, when the vendor learned of it and the measures taken. The report's time is the
//! time it is recorded here; a report made more than the configured limit after the vendor learned
//! of the incident is flagged `late`, stored, shown and said in its audit event.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{from_db, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::typed::{AgencyCode, UserId};
use serde_json::json;

use super::vendors;
use super::{new_id, record, require_manager, text, ContractId, IncidentId, VendorId, VendorsError};
use crate::schema::{vendor_contracts, vendor_incidents};

/// Who reports an incident: the agency's vendor and account managers, and the vendor's staff with an
/// account (role `vendor_staff`).
pub const REPORTERS: &[&str] = &[roles::VENDOR_MANAGER, roles::ACCOUNT_MANAGER, roles::VENDOR_STAFF];

/// How soon after learning of an incident a vendor must have reported it
/// (`IMMILINK_VENDOR_INCIDENT_REPORT_HOURS`, default 1 hour: "reported immediately").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimit(Duration);

impl ReportLimit {
    pub const DEFAULT_HOURS: u32 = 1;

    /// A limit of 1 to 720 hours.
    pub fn hours(hours: u32) -> Result<Self, String> {
        if (1..=720).contains(&hours) {
            Ok(Self(Duration::hours(i64::from(hours))))
        } else {
            Err(format!("an incident report limit is 1 to 720 hours, not {hours}"))
        }
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl Default for ReportLimit {
    fn default() -> Self {
        Self(Duration::hours(i64::from(Self::DEFAULT_HOURS)))
    }
}

/// A reported incident.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = vendor_incidents)]
pub struct Incident {
    pub id: IncidentId,
    pub vendor_id: VendorId,
    pub agency: AgencyCode,
    /// The contract it concerns, when the reporter named one.
    pub contract_id: Option<ContractId>,
    pub occurred_at: NaiveDateTime,
    /// When the vendor learned of it.
    pub learned_at: NaiveDateTime,
    /// When it was reported: the time it was recorded here.
    pub reported_at: NaiveDateTime,
    pub description: String,
    /// The measures taken.
    pub measures: String,
    /// Reported more than `report_limit_minutes` after the vendor learned of it.
    pub late: bool,
    /// The limit applied, in minutes.
    pub report_limit_minutes: i64,
    pub reported_by: UserId,
}

const MAX_DESCRIPTION: usize = 4000;
const MAX_MEASURES: usize = 4000;

/// A time as the API writes it: RFC 3339 with an offset (`2026-12-05T09:30:00+08:00`).
pub fn parse_time(value: Option<String>, field: &str) -> Result<DateTime<Utc>, VendorsError> {
    let value =
        value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| VendorsError::missing(field))?;
    DateTime::parse_from_rfc3339(&value).map(|at| at.with_timezone(&Utc)).map_err(|_| {
        VendorsError::invalid(field, "must be a time in RFC 3339 with its offset, e.g. 2026-12-05T09:30:00+08:00")
    })
}

/// An incident as reported, built at the edge.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub vendor_id: VendorId,
    pub contract_id: Option<ContractId>,
    pub occurred_at: DateTime<Utc>,
    pub learned_at: DateTime<Utc>,
    pub description: String,
    pub measures: String,
}

impl NewIncident {
    /// The report from what the caller sent; each refusal names its field. The times are checked
    /// against each other and the report's time by [`report`].
    pub fn parse(
        vendor_id: VendorId,
        contract_id: Option<String>,
        occurred_at: Option<String>,
        learned_at: Option<String>,
        description: Option<String>,
        measures: Option<String>,
    ) -> Result<Self, VendorsError> {
        let contract_id = contract_id.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).map(ContractId::new);
        Ok(Self {
            vendor_id,
            contract_id,
            occurred_at: parse_time(occurred_at, "occurred_at")?,
            learned_at: parse_time(learned_at, "learned_at")?,
            description: text(description, "description", MAX_DESCRIPTION)?,
            measures: text(measures, "measures", MAX_MEASURES)?,
        })
    }
}

/// Records an incident of a vendor of the caller's agency, reported now (R-VEN-03), by a manager or
/// the vendor's staff. `learned_at` must not be after now nor before `occurred_at`; the report is
/// `late` when now is more than `limit` after `learned_at`.
pub fn report(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    limit: ReportLimit,
    new: &NewIncident,
) -> Result<Incident, VendorsError> {
    if !caller.has_any(REPORTERS) {
        return Err(VendorsError::RoleRequired { roles: REPORTERS });
    }
    if new.learned_at > now {
        return Err(VendorsError::IncidentTimes {
            field: "learned_at",
            detail: "must not be after the time of the report (now)".into(),
        });
    }
    if new.learned_at < new.occurred_at {
        return Err(VendorsError::IncidentTimes {
            field: "learned_at",
            detail: "must not be before occurred_at: a vendor learns of an incident once it has happened".into(),
        });
    }
    let delay = now - new.learned_at;
    let late = delay > limit.as_duration();
    conn.write_transaction(|conn| {
        vendors::of_caller(conn, caller, &new.vendor_id)?;
        if let Some(contract_id) = &new.contract_id {
            let found: Option<ContractId> = vendor_contracts::table
                .filter(vendor_contracts::id.eq(contract_id))
                .filter(vendor_contracts::vendor_id.eq(&new.vendor_id))
                .select(vendor_contracts::id)
                .first(conn)
                .optional()?;
            if found.is_none() {
                return Err(VendorsError::invalid("contract_id", "not a contract of this vendor"));
            }
        }
        let incident = Incident {
            id: IncidentId::new(new_id()),
            vendor_id: new.vendor_id.clone(),
            agency: caller.agency.clone(),
            contract_id: new.contract_id.clone(),
            occurred_at: to_db(new.occurred_at),
            learned_at: to_db(new.learned_at),
            reported_at: to_db(now),
            description: new.description.clone(),
            measures: new.measures.clone(),
            late,
            report_limit_minutes: limit.as_duration().num_minutes(),
            reported_by: caller.user_id.clone(),
        };
        diesel::insert_into(vendor_incidents::table)
            .values((
                vendor_incidents::id.eq(&incident.id),
                vendor_incidents::vendor_id.eq(&incident.vendor_id),
                vendor_incidents::agency.eq(&incident.agency),
                vendor_incidents::contract_id.eq(&incident.contract_id),
                vendor_incidents::occurred_at.eq(incident.occurred_at),
                vendor_incidents::learned_at.eq(incident.learned_at),
                vendor_incidents::reported_at.eq(incident.reported_at),
                vendor_incidents::description.eq(&incident.description),
                vendor_incidents::measures.eq(&incident.measures),
                vendor_incidents::late.eq(incident.late),
                vendor_incidents::report_limit_minutes.eq(incident.report_limit_minutes),
                vendor_incidents::reported_by.eq(&incident.reported_by),
            ))
            .execute(conn)?;
        let payload = json!({
            "incident_id": incident.id,
            "vendor_id": incident.vendor_id,
            "contract_id": incident.contract_id,
            "occurred_at": from_db(incident.occurred_at),
            "learned_at": from_db(incident.learned_at),
            "reported_at": from_db(incident.reported_at),
            "description": incident.description,
            "measures": incident.measures,
            "late": incident.late,
            "minutes_after_learning": delay.num_minutes(),
            "report_limit_minutes": incident.report_limit_minutes,
        });
        record(conn, now, kind::VENDOR_INCIDENT_REPORTED, caller, incident.id.as_str(), payload)?;
        if late {
            tracing::warn!(incident_id = %incident.id, vendor_id = %incident.vendor_id, minutes = delay.num_minutes(),
                "vendor incident reported late");
        } else {
            tracing::info!(incident_id = %incident.id, vendor_id = %incident.vendor_id, "vendor incident reported");
        }
        Ok(incident)
    })
}

/// A vendor's incidents, newest report first (`cursor`: the last id of the previous page); managers
/// only.
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    vendor_id: &VendorId,
    page: &Page,
) -> Result<Vec<Incident>, VendorsError> {
    require_manager(caller)?;
    vendors::of_caller(conn, caller, vendor_id)?;
    let mut query = vendor_incidents::table
        .filter(vendor_incidents::vendor_id.eq(vendor_id))
        .filter(vendor_incidents::agency.eq(&caller.agency))
        .select(Incident::as_select())
        .into_boxed();
    if let Some(before) = &page.cursor {
        query = query.filter(vendor_incidents::id.lt(before.clone()));
    }
    Ok(query.order(vendor_incidents::id.desc()).limit(page.limit).load(conn)?)
}

#[cfg(test)]
mod db_tests {
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::devices::fixtures::{contract, db, manager, now, staff, vendor};
    use crate::domain::testing::caller;

    fn incident(vendor_id: &VendorId, occurred_ago: Duration, learned_ago: Duration) -> NewIncident {
        NewIncident {
            vendor_id: vendor_id.clone(),
            contract_id: None,
            occurred_at: now() - occurred_ago,
            learned_at: now() - learned_ago,
            description: "專屬設備遭植入惡意程式".into(),
            measures: "已隔離設備並更換密碼".into(),
        }
    }

    /// R-VEN-03: "reported immediately": a report more than the limit after the vendor learned of the
    /// incident is flagged late (stored, and said in its audit event); one within it is not.
    #[test]
    fn r_ven_03_a_report_later_than_the_limit_after_learning_is_flagged_late() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let limit = ReportLimit::default();
        let late = report(
            &mut conn,
            now(),
            &manager("TPE-SW"),
            limit,
            &incident(&acme.id, Duration::hours(3), Duration::minutes(61)),
        )
        .unwrap();
        let on_time = report(
            &mut conn,
            now(),
            &staff("TPE-SW"),
            limit,
            &incident(&acme.id, Duration::hours(3), Duration::minutes(60)),
        )
        .unwrap();
        let longer = ReportLimit::hours(4).unwrap();
        let within_longer = report(
            &mut conn,
            now(),
            &staff("TPE-SW"),
            longer,
            &incident(&acme.id, Duration::hours(3), Duration::hours(3)),
        )
        .unwrap();
        assert_eq!((late.late, on_time.late, within_longer.late), (true, false, false));
        assert_eq!((late.report_limit_minutes, within_longer.report_limit_minutes), (60, 240));
        assert_eq!((late.reported_at, late.learned_at), (to_db(now()), to_db(now() - Duration::minutes(61))));
        assert_eq!(on_time.reported_by, staff("TPE-SW").user_id);

        let events = pending(&mut conn, 100).unwrap();
        let reported: Vec<_> = events.iter().filter(|e| e.kind == kind::VENDOR_INCIDENT_REPORTED).collect();
        assert_eq!(reported.len(), 3);
        assert_eq!(
            (reported[0].payload["late"].clone(), reported[0].payload["minutes_after_learning"].clone()),
            (json!(true), json!(61))
        );
        assert_eq!(reported[1].payload["late"], false);
        assert_eq!(reported[0].correlation_id.as_deref(), Some(late.id.as_str()));
        assert_eq!(reported[0].payload["measures"], "已隔離設備並更換密碼");

        let listed = list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap();
        assert_eq!(listed, [within_longer, on_time, late], "newest first");
    }

    /// R-VEN-03: when the vendor learned of it cannot lie after the report nor before the incident;
    /// the refusal names `learned_at` and nothing is written.
    #[test]
    fn r_ven_03_learned_at_after_now_or_before_the_incident_is_refused_naming_it() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let limit = ReportLimit::default();
        let future = incident(&acme.id, Duration::hours(1), -Duration::minutes(5));
        let before_it_happened = incident(&acme.id, Duration::hours(1), Duration::hours(2));
        for new in [future, before_it_happened] {
            let refused = report(&mut conn, now(), &manager("TPE-SW"), limit, &new);
            assert!(matches!(refused, Err(VendorsError::IncidentTimes { field: "learned_at", .. })), "{refused:?}");
        }
        // Learned the moment it happened, reported the moment it was learned: fine.
        let instant = incident(&acme.id, Duration::zero(), Duration::zero());
        assert!(!report(&mut conn, now(), &manager("TPE-SW"), limit, &instant).unwrap().late);
        assert_eq!(list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap().len(), 1);

        let field = |result: Result<NewIncident, VendorsError>| match result {
            Err(VendorsError::Missing { field } | VendorsError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let parse = |occurred: Option<&str>, learned: Option<&str>, measures: Option<&str>| {
            NewIncident::parse(
                acme.id.clone(),
                None,
                occurred.map(str::to_owned),
                learned.map(str::to_owned),
                Some("x".into()),
                measures.map(str::to_owned),
            )
        };
        let at = Some("2026-12-05T09:00:00+08:00");
        assert_eq!(field(parse(None, at, Some("m"))), "occurred_at");
        assert_eq!(field(parse(at, Some("2026-12-05 09:00"), Some("m"))), "learned_at");
        assert_eq!(field(parse(at, at, None)), "measures");
        let parsed = parse(at, Some("2026-12-05T01:30:00Z"), Some("m")).unwrap();
        assert_eq!(parsed.learned_at - parsed.occurred_at, Duration::minutes(30));
    }

    /// Managers and the vendor's staff of the agency report; only managers read; another agency's
    /// vendor is "not found"; a contract named must be the vendor's.
    #[test]
    fn incidents_are_reported_within_the_agency_and_by_role() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let other = vendor(&mut conn, "TPE-SW", "10458575");
        let theirs = contract(&mut conn, &other, "他案");
        let ours = contract(&mut conn, &acme, "本案");
        let limit = ReportLimit::default();
        let new = incident(&acme.id, Duration::hours(1), Duration::minutes(10));
        for hln in [manager("HLN-HR"), staff("HLN-HR")] {
            let refused = report(&mut conn, now(), &hln, limit, &new);
            assert!(matches!(refused, Err(VendorsError::NotFound("the vendor"))), "{refused:?}");
        }
        let refused = list(&mut conn, &manager("HLN-HR"), &acme.id, &Page::first());
        assert!(matches!(refused, Err(VendorsError::NotFound("the vendor"))), "{refused:?}");
        let caseworker = caller("TPE-SW", &["caseworker"]);
        assert!(matches!(report(&mut conn, now(), &caseworker, limit, &new), Err(VendorsError::RoleRequired { .. })));
        assert!(matches!(
            list(&mut conn, &staff("TPE-SW"), &acme.id, &Page::first()),
            Err(VendorsError::RoleRequired { .. })
        ));

        let wrong = NewIncident { contract_id: Some(theirs.id.clone()), ..new.clone() };
        let refused = report(&mut conn, now(), &manager("TPE-SW"), limit, &wrong);
        assert!(matches!(&refused, Err(VendorsError::Invalid { field, .. }) if field == "contract_id"), "{refused:?}");
        let named = NewIncident { contract_id: Some(ours.id.clone()), ..new };
        let reported = report(&mut conn, now(), &staff("TPE-SW"), limit, &named).unwrap();
        assert_eq!(reported.contract_id, Some(ours.id));
        assert_eq!(list(&mut conn, &manager("TPE-SW"), &acme.id, &Page::first()).unwrap(), [reported]);
    }
}
