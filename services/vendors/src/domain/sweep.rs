//! The vendors sweep: the clock rules of dedicated machines and vendor audit findings. Machines whose
//! attestation fell overdue (R-VEN-07) and findings past their deadline (R-VEN-05) are flagged once
//! each, with an audit event. Idempotent: run it as often as wanted (the service's timer,
//! `IMMILINK_VENDORS_SWEEP_INTERVAL_SECS`, and the `immilink-vendors sweep` CronJob).

use chrono::{DateTime, Utc};
use immilink_shared::db::DbConn;

use super::{audits, devices, DeviceId, FindingId, VendorsError};

/// What one run flagged.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepRun {
    /// Machines whose attestation due date passed, flagged by this run.
    pub devices_overdue: Vec<DeviceId>,
    /// Findings past their deadline and not closed, flagged by this run.
    pub findings_overdue: Vec<FindingId>,
}

impl SweepRun {
    pub fn is_empty(&self) -> bool {
        self.devices_overdue.is_empty() && self.findings_overdue.is_empty()
    }
}

/// One sweep as of `now` (its Taipei date): each part in its own transaction.
pub fn sweep(conn: &mut DbConn, now: DateTime<Utc>) -> Result<SweepRun, VendorsError> {
    Ok(SweepRun {
        devices_overdue: devices::flag_overdue(conn, now)?,
        findings_overdue: audits::flag_overdue(conn, now)?,
    })
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use immilink_shared::events::kind;
    use immilink_shared::outbox::pending;
    use immilink_shared::testing::TestDb;

    use super::*;
    use crate::domain::audits::{record_audit, FindingInput, NewAudit};
    use crate::domain::devices::fixtures::{contract, db, manager, now, vendor};
    use crate::domain::devices::{register, NewDevice};

    /// One run flags what fell overdue, machines and findings, each once; a second run at the same
    /// time or later flags nothing more.
    #[test]
    fn r_ven_07_r_ven_05_the_sweep_flags_each_overdue_machine_and_finding_once() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let acme = vendor(&mut conn, "TPE-SW", "22099131");
        let a = contract(&mut conn, &acme, "維護案 A");
        let tpe = manager("TPE-SW");
        let machine = NewDevice::parse(
            acme.id.clone(),
            a.id.clone(),
            Some("T-1".into()),
            Some("SN-1".into()),
            Some("筆電".into()),
        )
        .unwrap();
        let device = register(&mut conn, now(), &tpe, &machine).unwrap();
        let findings = vec![FindingInput { description: Some("缺失".into()), deadline: Some("2026-12-06".into()) }];
        let audit = NewAudit::parse(
            acme.id.clone(),
            Some("2026-12-05".into()),
            Some("a".into()),
            Some("s".into()),
            Some("x".into()),
            Some(findings),
        )
        .unwrap();
        let finding = record_audit(&mut conn, now(), &tpe, &audit).unwrap().findings[0].id.clone();

        assert!(sweep(&mut conn, now()).unwrap().is_empty());
        let run = sweep(&mut conn, now() + Duration::days(2)).unwrap();
        assert_eq!(run, SweepRun { devices_overdue: vec![device.id], findings_overdue: vec![finding] });
        assert!(sweep(&mut conn, now() + Duration::days(2)).unwrap().is_empty());
        assert!(sweep(&mut conn, now() + Duration::days(40)).unwrap().is_empty());
        let kinds: Vec<String> = pending(&mut conn, 100).unwrap().into_iter().map(|e| e.kind).collect();
        let flagged = |k: &str| kinds.iter().filter(|kind| kind.as_str() == k).count();
        assert_eq!((flagged(kind::VENDOR_DEVICE_ATTESTATION_OVERDUE), flagged(kind::VENDOR_FINDING_OVERDUE)), (1, 1));
    }
}
