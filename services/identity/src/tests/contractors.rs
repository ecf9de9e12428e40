//! Contractor personnel (R-VEN-06, R-VEN-08, R-ACC-08) against the real database: the vendors
//! service's personnel messages, the grant suspension and its resolution, vendor_staff accounts, and
//! the internal endpoint that takes the messages.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::db::PooledConn;
use immilink_shared::events::kind;
use immilink_shared::testing::TestDb;

use super::{
    actor, application, approve, attempt, audit_events, grant, nia, seeded, status_of, unit_of, user_id, NEW_PASSWORD,
};
use crate::domain::accounts::{self, AccountStatus};
use crate::domain::applications::{self, ApplicationForm, ApplicationStatus, AppliedRole, Decision, GrantForm};
use crate::domain::applications::{NewApplication, ReviewDecision, ReviewStep};
use crate::domain::contractors::{
    self, ContractorStatus, PersonnelEvent, PersonnelEventForm, Receipt, Resolution, CONFLICT_CODE, RULE,
};
use crate::domain::demo::demo_national_id;
use crate::domain::sessions::{check_live, login, SessionEndReason, SessionRefusal};
use crate::domain::{notifications, permissions, IdentityError, UserId};
use crate::schema::{account_events, user_grants, users};

/// A message of the vendors service about the person behind demo person `person`.
fn message(kind: &str, reason: &str, person: u32) -> PersonnelEvent {
    PersonnelEvent::parse(PersonnelEventForm {
        id: Some(uuid::Uuid::now_v7().to_string()),
        kind: Some(kind.into()),
        national_id: Some(demo_national_id(person)),
        agency: Some("TPE-SW".into()),
        vendor_id: Some("0193a000-0000-7000-8000-00000000000a".into()),
        person_id: Some("0193a000-0000-7000-8000-00000000000b".into()),
        reason: Some(reason.into()),
    })
    .unwrap()
}

fn idle() -> Duration {
    Duration::minutes(15)
}

fn account_event_count(conn: &mut PooledConn, user: &UserId) -> i64 {
    account_events::table.filter(account_events::user_id.eq(user)).count().get_result(conn).unwrap()
}

fn outbox_text(conn: &mut PooledConn) -> String {
    serde_json::to_string(&audit_events(conn)).unwrap()
}

fn demo_mail(username: &str) -> String {
    format!("{username}@demo.immilink.invalid")
}

/// An HLN-HR account for the person behind `person`, through the whole application.
fn hln_account(conn: &mut PooledConn, now: DateTime<Utc>, username: &str, person: u32) -> UserId {
    let id = super::apply(conn, now, "HLN-HR", username, person);
    for reviewer in ["hln.supervisor", "hln.manager", "hln.head"] {
        approve(conn, now, reviewer, &id);
    }
    applications::finish(conn, now, &id, &nia(true)).unwrap().user_id.unwrap()
}

fn login_as(conn: &mut PooledConn, now: DateTime<Utc>, username: &str, demo: bool) -> crate::domain::SessionId {
    let mut login_attempt = attempt(username);
    if !demo {
        login_attempt.password = NEW_PASSWORD.into();
        login_attempt.certificate_serial = format!("CERT-{username}");
    }
    login(conn, now, &login_attempt).unwrap().session_id
}

#[test]
fn r_ven_06_an_offboarding_cancels_every_account_of_the_person_and_ends_its_sessions() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    // The person behind tpe.caseworker (demo person 0) also holds an account in HLN-HR, and had a
    // third one in TPE-SW, terminated after a lost certificate.
    let caseworker = user_id(&mut conn, "tpe.caseworker");
    let moonlighting = hln_account(&mut conn, now, "hln.moonlight", 0);
    let old_id = super::apply(&mut conn, now, "TPE-SW", "tpe.old", 0);
    approve(&mut conn, now, "tpe.supervisor", &old_id);
    approve(&mut conn, now, "tpe.manager", &old_id);
    let old = applications::finish(&mut conn, now, &old_id, &nia(true)).unwrap().user_id.unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    accounts::report_certificate_lost(&mut conn, now, &manager, &old, "遺失").unwrap();
    let old_events = account_event_count(&mut conn, &old);
    let sessions = [login_as(&mut conn, now, "tpe.caseworker", true), login_as(&mut conn, now, "hln.moonlight", false)];
    let seen = audit_events(&mut conn).len();

    let later = now + Duration::seconds(1);
    let departure = message("offboarded", "departure", 0);
    assert_eq!(contractors::receive(&mut conn, later, &departure).unwrap(), Receipt::Applied { accounts: 2 });

    // Both open accounts cancelled, both sessions ended at once; the terminated one left as it was.
    assert_eq!(status_of(&mut conn, "tpe.caseworker"), AccountStatus::Cancelled);
    assert_eq!(status_of(&mut conn, "hln.moonlight"), AccountStatus::Cancelled);
    assert_eq!(status_of(&mut conn, "tpe.old"), AccountStatus::Terminated);
    assert_eq!(account_event_count(&mut conn, &old), old_events);
    for session in &sessions {
        let refused = check_live(&mut conn, later, session, Some("127.0.0.1".parse().unwrap()), idle());
        assert!(
            matches!(
                refused,
                Err(IdentityError::SessionEnded(SessionRefusal::Ended(SessionEndReason::ContractorOffboarded)))
            ),
            "{refused:?}"
        );
    }
    assert!(matches!(login(&mut conn, later, &attempt("tpe.caseworker")), Err(IdentityError::LoginRefused)));
    // Nobody else: the supervisor is untouched.
    assert_eq!(status_of(&mut conn, "tpe.supervisor"), AccountStatus::Active);

    // The account lifecycle: an account event each, the audit events, the managers told.
    let hln_manager = actor(&mut conn, "hln.manager");
    for (account, reader) in [(&caseworker, &manager), (&moonlighting, &hln_manager)] {
        let view = accounts::detail(&mut conn, reader, account).unwrap();
        let last = view.events.last().unwrap();
        assert_eq!(last.kind, accounts::AccountEventKind::ContractorOffboarded);
        assert!(last.actor_id.is_none(), "the vendors service's message, not a user");
        assert_eq!(view.status_reason.as_deref(), Some("contractor_offboarded"));
    }
    let events: Vec<_> = audit_events(&mut conn).into_iter().skip(seen).collect();
    let offboarded: Vec<_> = events.iter().filter(|e| e.kind == kind::ACCOUNT_CONTRACTOR_OFFBOARDED).collect();
    assert_eq!(offboarded.len(), 2);
    let agencies: Vec<_> = offboarded.iter().map(|e| e.agency.as_deref().unwrap()).collect();
    assert_eq!(agencies.len(), 2);
    assert!(agencies.contains(&"TPE-SW") && agencies.contains(&"HLN-HR"));
    for event in &offboarded {
        assert_eq!(event.payload["status"], "cancelled");
        assert_eq!(event.payload["personnel_reason"], "departure");
        assert_eq!(event.payload["vendor_agency"], "TPE-SW");
        assert_eq!(event.payload["vendor_id"], "0193a000-0000-7000-8000-00000000000a");
        assert_eq!(event.payload["person_id"], "0193a000-0000-7000-8000-00000000000b");
        assert!(event.actor_user_id.is_none());
    }
    let ended = events.iter().filter(|e| e.kind == kind::SESSION_ENDED).count();
    assert_eq!(ended, 2, "each session's end is recorded");
    assert!(!outbox_text(&mut conn).contains(&demo_national_id(0)), "no national ID in any audit event");
    for manager in ["tpe.manager", "hln.manager"] {
        let told = notifications::for_recipient(&mut conn, &demo_mail(manager)).unwrap();
        assert!(told.iter().any(|n| n.subject.contains("Contractor's account cancelled")), "{manager}");
        assert!(told.iter().all(|n| !n.body.contains(&demo_national_id(0))));
    }

    // A role change is an offboarding too; with nothing open left, it changes nothing.
    let role_change = message("offboarded", "role_change", 0);
    assert_eq!(contractors::receive(&mut conn, later, &role_change).unwrap(), Receipt::Applied { accounts: 0 });
}

#[test]
fn r_ven_06_a_redelivered_message_changes_nothing() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let rows = |conn: &mut PooledConn| -> (usize, i64, i64) {
        (
            audit_events(conn).len(),
            account_events::table.count().get_result(conn).unwrap(),
            crate::schema::notifications::table.count().get_result(conn).unwrap(),
        )
    };

    // An offboarding, delivered twice.
    let departure = message("offboarded", "contract_end", 7);
    assert_eq!(contractors::receive(&mut conn, now, &departure).unwrap(), Receipt::Applied { accounts: 1 });
    assert_eq!(status_of(&mut conn, "tpe.it"), AccountStatus::Cancelled);
    let after_first = rows(&mut conn);
    assert_eq!(contractors::receive(&mut conn, now, &departure).unwrap(), Receipt::Duplicate);
    assert_eq!(rows(&mut conn), after_first);

    // A registration, resolved by the manager, then delivered again: the grants stay usable.
    let registered = message("registered", "registered", 0);
    assert_eq!(contractors::receive(&mut conn, now, &registered).unwrap(), Receipt::Applied { accounts: 1 });
    let caseworker = user_id(&mut conn, "tpe.caseworker");
    let manager = actor(&mut conn, "tpe.manager");
    let not_contractor = Resolution::NotContractor(ContractorStatus::NotPersonnel);
    contractors::resolve(&mut conn, now, &manager, &caseworker, not_contractor, "同名誤報").unwrap();
    let resolved = rows(&mut conn);
    assert_eq!(contractors::receive(&mut conn, now, &registered).unwrap(), Receipt::Duplicate);
    assert_eq!(rows(&mut conn), resolved);
    let agency = manager.agency_id.clone();
    let (permitted, link, _) = permissions::lookup_rights(&mut conn, now, &caseworker, &agency).unwrap();
    assert!(link.refusal.is_none() && !permitted.is_empty(), "not suspended again");
}

#[test]
fn r_ven_08_a_registered_contractor_s_grants_are_suspended_and_lookups_refused_until_resolved() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let caseworker = user_id(&mut conn, "tpe.caseworker");
    let manager = actor(&mut conn, "tpe.manager");
    let agency = manager.agency_id.clone();
    let session = login_as(&mut conn, now, "tpe.caseworker", true);
    let (before, _, _) = permissions::lookup_rights(&mut conn, now, &caseworker, &agency).unwrap();
    assert!(!before.is_empty());
    let seen = audit_events(&mut conn).len();

    // Registered as a contractor's personnel: suspended, in the message's transaction.
    let registered = message("registered", "registered", 0);
    assert_eq!(contractors::receive(&mut conn, now, &registered).unwrap(), Receipt::Applied { accounts: 1 });
    let refused = |conn: &mut PooledConn| {
        let (permitted, link, in_use) = permissions::lookup_rights(conn, now, &caseworker, &agency).unwrap();
        assert!(permitted.is_empty(), "no permission while suspended");
        assert!(in_use.is_none());
        let refusal = link.refusal.expect("a refusal naming the rule");
        assert_eq!((refusal.rule, refusal.code), (RULE, CONFLICT_CODE));
        assert_eq!(RULE, "R-VEN-08");
        assert!(refusal.detail.contains("contractor"), "{}", refusal.detail);
    };
    refused(&mut conn);
    // The broker's two views say the same.
    let profile = permissions::profile(&mut conn, now, &caseworker).unwrap();
    assert!(profile.permissions.is_empty() && profile.link.refusal.is_some());
    let summary = accounts::summary(&mut conn, now, &caseworker).unwrap().unwrap();
    assert!(summary.permissions.is_empty());
    assert_eq!(summary.link.refusal.map(|r| r.rule), Some("R-VEN-08"));
    // The account still logs in: its session lives on.
    assert!(check_live(&mut conn, now, &session, Some("127.0.0.1".parse().unwrap()), idle()).is_ok());
    assert_eq!(status_of(&mut conn, "tpe.caseworker"), AccountStatus::Active);
    // The managers see the suspension on the account; the event, its audit event and the notices.
    let view = accounts::detail(&mut conn, &manager, &caseworker).unwrap();
    let suspension = view.grants_suspension.clone().expect("shown on the account");
    assert!(suspension.reason.contains("registered"), "{}", suspension.reason);
    assert_eq!(view.grants.len(), 8, "the grants are kept while suspended");
    assert_eq!(view.events.last().map(|e| e.kind), Some(accounts::AccountEventKind::GrantsSuspended));
    let events: Vec<_> = audit_events(&mut conn).into_iter().skip(seen).collect();
    let suspended: Vec<_> = events.iter().filter(|e| e.kind == kind::ACCOUNT_GRANTS_SUSPENDED).collect();
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].payload["grants"], 8);
    assert_eq!(suspended[0].payload["vendor_agency"], "TPE-SW");
    assert!(!outbox_text(&mut conn).contains(&demo_national_id(0)));
    for who in ["tpe.manager", "tpe.caseworker"] {
        let told = notifications::for_recipient(&mut conn, &demo_mail(who)).unwrap();
        assert!(told.iter().any(|n| n.subject.contains("Lookup grants suspended")), "{who}");
    }
    // Someone without grants has nothing to suspend.
    let supervisor_registered = message("registered", "registered", 1);
    assert_eq!(contractors::receive(&mut conn, now, &supervisor_registered).unwrap(), Receipt::Applied { accounts: 0 });
    // A second registration (another vendor) leaves the open conflict as it is.
    assert_eq!(
        contractors::receive(&mut conn, now, &message("registered", "registered", 0)).unwrap(),
        Receipt::Applied { accounts: 0 }
    );

    // Who may resolve: the agency's account manager only, never for their own account.
    let revoke = Resolution::RevokeGrants;
    let own = actor(&mut conn, "tpe.caseworker");
    assert!(matches!(
        contractors::resolve(&mut conn, now, &own, &caseworker, revoke, "x"),
        Err(IdentityError::RoleRequired { .. })
    ));
    let elsewhere = actor(&mut conn, "hln.manager");
    assert!(matches!(
        contractors::resolve(&mut conn, now, &elsewhere, &caseworker, revoke, "x"),
        Err(IdentityError::NotFound(_))
    ));
    assert!(matches!(contractors::conflict(&mut conn, &elsewhere, &caseworker), Err(IdentityError::NotFound(_))));
    assert!(matches!(
        contractors::resolve(&mut conn, now, &manager, &caseworker, revoke, " "),
        Err(IdentityError::Invalid { field, .. }) if field == "reason"
    ));
    // The vendors service is asked with the holder's ID (never shown).
    let conflict = contractors::conflict(&mut conn, &manager, &caseworker).unwrap();
    assert_eq!(conflict.national_id(), demo_national_id(0));
    assert!(!format!("{conflict:?}").contains(&demo_national_id(0)));

    // `not_contractor` while the vendors service still lists the person: refused, still suspended.
    let still = Resolution::NotContractor(ContractorStatus::ActivePersonnel);
    assert!(matches!(
        contractors::resolve(&mut conn, now, &manager, &caseworker, still, "本人稱已離職"),
        Err(IdentityError::StillContractorPersonnel)
    ));
    refused(&mut conn);
    // Once the person is no longer personnel: lifted, the grants count again.
    let no_longer = Resolution::NotContractor(ContractorStatus::NotPersonnel);
    let view = contractors::resolve(&mut conn, now, &manager, &caseworker, no_longer, "廠商確認已離職").unwrap();
    assert!(view.grants_suspension.is_none());
    assert_eq!(view.grants.len(), 8);
    let (permitted, link, _) = permissions::lookup_rights(&mut conn, now, &caseworker, &agency).unwrap();
    assert_eq!((permitted, link.refusal), (before.clone(), None));
    assert!(matches!(
        contractors::resolve(&mut conn, now, &manager, &caseworker, revoke, "再次"),
        Err(IdentityError::NoContractorConflict)
    ));
    assert!(matches!(
        contractors::conflict(&mut conn, &manager, &caseworker),
        Err(IdentityError::NoContractorConflict)
    ));

    // Registered again; this time the grants are revoked: no refusal, and nothing to look up.
    let again = message("registered", "registered", 0);
    assert_eq!(contractors::receive(&mut conn, now, &again).unwrap(), Receipt::Applied { accounts: 1 });
    refused(&mut conn);
    let view = contractors::resolve(&mut conn, now, &manager, &caseworker, revoke, "確為委外人員").unwrap();
    assert!(view.grants_suspension.is_none() && view.grants.is_empty());
    let (permitted, link, _) = permissions::lookup_rights(&mut conn, now, &caseworker, &agency).unwrap();
    assert!(permitted.is_empty() && link.refusal.is_none());
    let resolved: Vec<_> = audit_events(&mut conn)
        .into_iter()
        .filter(|e| e.kind == kind::ACCOUNT_CONTRACTOR_CONFLICT_RESOLVED)
        .map(|e| (e.payload["decision"].clone(), e.payload["grants_revoked"].clone(), e.actor_user_id))
        .collect();
    let by = Some(manager.user_id.to_string());
    assert_eq!(
        resolved,
        [
            (serde_json::json!("not_contractor"), serde_json::json!(0), by.clone()),
            (serde_json::json!("revoke_grants"), serde_json::json!(8), by)
        ]
    );
}

/// A certificate serial as an applicant sends it: letters, digits and dashes.
fn certificate(username: &str) -> String {
    format!("CERT-{}", username.replace('.', "-"))
}

fn vendor_staff_form(conn: &mut PooledConn, username: &str, person: u32) -> ApplicationForm {
    ApplicationForm {
        agency_code: Some("TPE-SW".into()),
        unit_id: Some(unit_of(conn, "tpe.supervisor").to_string()),
        username: Some(username.into()),
        display_name: Some("委外工程師".into()),
        national_id: Some(demo_national_id(person)),
        email: Some(format!("{username}@vendor.example.com")),
        password: Some(NEW_PASSWORD.into()),
        certificate_serial: Some(certificate(username)),
        ips: Some(vec!["127.0.0.1".into()]),
        legal_basis: None,
        business_handled: Some("系統維運".into()),
        grants: None,
        role: Some(AppliedRole::VendorStaff),
    }
}

#[test]
fn r_ven_08_vendor_staff_accounts_never_hold_lookup_grants() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let ip = "127.0.0.1".parse().unwrap();
    let wanted = || {
        Some(vec![GrantForm {
            query_type: Some("eid_photo".into()),
            purpose_code: Some("sw_statutory_business".into()),
        }])
    };

    // The application itself: a vendor_staff application asks for no grant and no legal basis.
    let with_grants = ApplicationForm { grants: wanted(), ..vendor_staff_form(&mut conn, "tpe.vs1", 950) };
    assert!(matches!(
        NewApplication::parse(with_grants, ip),
        Err(IdentityError::VendorStaffAccount { field: "grants" })
    ));
    let with_basis = ApplicationForm {
        legal_basis: Some("social_assistance_act".into()),
        ..vendor_staff_form(&mut conn, "tpe.vs1", 950)
    };
    assert!(
        matches!(NewApplication::parse(with_basis, ip), Err(IdentityError::Invalid { field, .. }) if field == "legal_basis")
    );
    let (staff, _) = NewApplication::parse(vendor_staff_form(&mut conn, "tpe.vs1", 950), ip).unwrap();
    assert_eq!((staff.role, staff.grants.len()), (AppliedRole::VendorStaff, 0));
    let no_role = ApplicationForm {
        role: None,
        grants: wanted(),
        legal_basis: Some("social_assistance_act".into()),
        ..vendor_staff_form(&mut conn, "tpe.cw1", 951)
    };
    assert_eq!(NewApplication::parse(no_role, ip).unwrap().0.role, AppliedRole::Caseworker, "the default");

    // Contractor personnel (as the vendors service answers): as a caseworker refused (R-ACC-08),
    // as vendor_staff taken.
    let hash = crate::domain::sessions::hash_password(NEW_PASSWORD).unwrap();
    let caseworker = application(&mut conn, "TPE-SW", "tpe.contractor", 950);
    let refused = applications::submit(&mut conn, now, &caseworker, &hash, ContractorStatus::ActivePersonnel);
    assert!(matches!(refused, Err(IdentityError::ContractorApplicant)));
    assert_eq!(
        applications::submit(&mut conn, now, &caseworker, &hash, ContractorStatus::NotPersonnel).map(|a| a.role).ok(),
        Some(AppliedRole::Caseworker),
        "the same application from someone else"
    );
    let id = applications::submit(&mut conn, now, &staff, &hash, ContractorStatus::ActivePersonnel).unwrap().id;
    approve(&mut conn, now, "tpe.supervisor", &id);
    // The manager cannot grant anything on it.
    let manager = actor(&mut conn, "tpe.manager");
    let granting = applications::review(
        &mut conn,
        now,
        &manager,
        &id,
        Decision::Approve,
        "ok",
        Some(vec![grant("eid_photo", "sw_statutory_business")]),
    );
    assert!(matches!(granting, Err(IdentityError::Invalid { field, .. }) if field == "grants"));
    assert_eq!(approve(&mut conn, now, "tpe.manager", &id).status, ApplicationStatus::NiaReview);
    // Approved by immilink itself: there is no query access for the immigration agency to review.
    let submission = applications::nia_submission(&mut conn, &id).unwrap().unwrap();
    let decided = applications::decide_locally(&submission, ContractorStatus::ActivePersonnel).unwrap();
    assert_eq!((decided.step, decided.approved), (ReviewStep::ContractorCheck, true));
    let view = applications::finish(&mut conn, now, &id, &decided).unwrap();
    assert_eq!(view.status, ApplicationStatus::Approved);
    assert_eq!(
        view.reviews.last().map(|r| (r.step, r.decision)),
        Some((ReviewStep::ContractorCheck, ReviewDecision::Approved))
    );
    let staff_id = view.user_id.unwrap();
    let account = accounts::detail(&mut conn, &manager, &staff_id).unwrap();
    assert_eq!((account.roles.clone(), account.grants.len()), (vec!["vendor_staff".to_owned()], 0));
    // It logs in; it may look nothing up.
    let mut staff_login = attempt("tpe.vs1");
    (staff_login.password, staff_login.certificate_serial) = (NEW_PASSWORD.into(), certificate("tpe.vs1"));
    login(&mut conn, now, &staff_login).unwrap();
    let profile = permissions::profile(&mut conn, now, &staff_id).unwrap();
    assert!(profile.permissions.is_empty());

    // A caseworker application at the same step: the contractor check rejects it when the applicant
    // became personnel meanwhile, and leaves it to the immigration agency otherwise.
    let cw = super::apply(&mut conn, now, "TPE-SW", "tpe.cw2", 952);
    approve(&mut conn, now, "tpe.supervisor", &cw);
    approve(&mut conn, now, "tpe.manager", &cw);
    let cw_submission = applications::nia_submission(&mut conn, &cw).unwrap().unwrap();
    assert!(applications::decide_locally(&cw_submission, ContractorStatus::NotPersonnel).is_none());
    let rejected = applications::decide_locally(&cw_submission, ContractorStatus::ActivePersonnel).unwrap();
    assert_eq!((rejected.step, rejected.approved), (ReviewStep::ContractorCheck, false));
    assert!(rejected.reason.contains("R-ACC-08"));

    // Every later path that would add a grant or a role to it refuses: the approval that creates an
    // account (grants smuggled into a vendor_staff application) ...
    let (second, _) = NewApplication::parse(vendor_staff_form(&mut conn, "tpe.vs2", 953), ip).unwrap();
    let smuggled = applications::submit(&mut conn, now, &second, &hash, ContractorStatus::ActivePersonnel).unwrap().id;
    approve(&mut conn, now, "tpe.supervisor", &smuggled);
    approve(&mut conn, now, "tpe.manager", &smuggled);
    diesel::update(
        crate::schema::account_applications::table.filter(crate::schema::account_applications::id.eq(&smuggled)),
    )
    .set(
        crate::schema::account_applications::requested_grants
            .eq(r#"[{"query_type":"eid_photo","purpose_code":"sw_statutory_business"}]"#),
    )
    .execute(&mut conn)
    .unwrap();
    let approve_anyway = super::nia(true);
    assert!(matches!(
        applications::finish(&mut conn, now, &smuggled, &approve_anyway),
        Err(IdentityError::VendorStaffAccount { field: "grants" })
    ));
    assert_eq!(users::table.filter(users::username.eq("tpe.vs2")).count().get_result::<i64>(&mut conn).unwrap(), 0);
    // ... and the account-manager handover.
    let refused = accounts::hand_over_manager(&mut conn, now, &manager, &manager.user_id, &staff_id, "交接");
    assert!(matches!(refused, Err(IdentityError::VendorStaffAccount { field: "to_user_id" })));
    assert_eq!(accounts::roles_of(&mut conn, &staff_id).unwrap(), ["vendor_staff"]);

    // A grant written behind the rules' back still counts for nothing (the demo contractor too).
    let demo_staff = user_id(&mut conn, "tpe.vendorstaff");
    diesel::insert_into(user_grants::table)
        .values((
            user_grants::user_id.eq(&demo_staff),
            user_grants::query_type.eq("eid_photo"),
            user_grants::purpose_code.eq("sw_statutory_business"),
        ))
        .execute(&mut conn)
        .unwrap();
    let (permitted, _, _) = permissions::lookup_rights(&mut conn, now, &demo_staff, &manager.agency_id).unwrap();
    assert!(permitted.is_empty());
}

// --- the internal endpoint -------------------------------------------------------------------------

pub(in crate::tests) mod endpoint {
    use std::sync::Arc;

    use actix_web::{test as actix_test, web};
    use chrono::Duration;
    use immilink_shared::auth::{ServiceTokens, TokenVerifier};
    use immilink_shared::clock::system_clock;
    use immilink_shared::context::{CLIENT_IP, SERVICE_TOKEN};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::problem::Problem;
    use immilink_shared::testing::TestDb;
    use serde_json::{json, Value};

    use crate::domain::accounts::AccountStatus;
    use crate::domain::demo::{self, demo_national_id};
    use crate::keys::SigningKeys;
    use crate::schema::users;
    use crate::{State, MIGRATIONS};
    use diesel::prelude::*;

    /// The service state for handler tests: no outside calls, the production defaults otherwise.
    pub(in crate::tests) fn state(db: &Db, keys: SigningKeys) -> State {
        let tokens = Arc::new(ServiceTokens::local(|| Err("no outside calls in tests".into())));
        let http = immilink_shared::server::outbound_client().expect("a client");
        State {
            db: db.clone(),
            keys,
            clock: system_clock(),
            token_ttl: Duration::seconds(900),
            idle_timeout: Duration::seconds(900),
            service_credentials: Default::default(),
            vendors: crate::clients::VendorsClient::new(http.clone(), "http://127.0.0.1:9", tokens.clone()),
            nia: crate::clients::NiaClient::new(http.clone(), "http://127.0.0.1:9", None),
            hasher: crate::workflow::PasswordHasher::new(1, std::time::Duration::from_secs(5)),
            notifier: crate::notifier::Notifier::Log,
            relay: immilink_shared::outbox::Relay::new(db.clone(), system_clock(), http, "http://127.0.0.1:9", tokens),
            login_failures: immilink_shared::rate_limit::RateLimiter::new(20, std::time::Duration::from_secs(60)),
            application_submissions: immilink_shared::rate_limit::RateLimiter::new(
                10,
                std::time::Duration::from_secs(60),
            ),
        }
    }

    /// A refusal's status, code and field; its body never shows the national ID.
    async fn refused<B: actix_web::body::MessageBody>(
        response: actix_web::dev::ServiceResponse<B>,
    ) -> (u16, String, Option<String>) {
        let status = response.status().as_u16();
        let bytes = actix_test::read_body(response).await;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(!text.contains(&demo_national_id(7)), "{text}");
        let problem: Problem = serde_json::from_str(&text).unwrap();
        (status, problem.code, problem.field)
    }

    fn body(kind: &str, reason: &str) -> Value {
        json!({
            "id": uuid::Uuid::now_v7().to_string(),
            "kind": kind,
            "national_id": demo_national_id(7),
            "agency": "TPE-SW",
            "vendor_id": "vendor-1",
            "person_id": "person-1",
            "reason": reason,
        })
    }

    /// The endpoint takes messages from the vendors service only (not another service, not a
    /// request forwarded for a user, not without a service token), refuses a malformed body naming
    /// the field (never echoing the national ID), and answers 204 to a message and its redelivery.
    #[actix_web::test]
    async fn r_ven_06_personnel_events_come_only_from_vendors_and_malformed_bodies_are_refused_by_field() {
        let test_db = TestDb::new();
        let db = Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).unwrap();
        demo::seed(&mut db.get().unwrap(), chrono::Utc::now()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let keys = SigningKeys::load(&dir.path().join("key.pk8"), true).unwrap();
        let verifier = TokenVerifier::from_jwks(&keys.jwks()).unwrap();
        let token = |service: &str| crate::tokens::issue_service(keys.kid(), keys.encoding_key(), service).unwrap();
        let (vendors, audit) = (token("vendors"), token("audit"));
        let app = actix_test::init_service(
            immilink_shared::server::base_app()
                .wrap(actix_web::middleware::from_fn(immilink_shared::auth::verify_service_caller))
                .app_data(web::Data::new(state(&db, keys)))
                .app_data(web::Data::new(db.clone()))
                .app_data(web::Data::new(verifier))
                .configure(crate::routes::configure_internal),
        )
        .await;
        let post = |token: Option<&str>, body: &Value| {
            let request = actix_test::TestRequest::post().uri("/internal/v1/personnel-events").set_json(body);
            match token {
                Some(token) => request.insert_header((SERVICE_TOKEN, token.to_owned())),
                None => request,
            }
        };
        let message = body("offboarded", "departure");

        // Only the vendors service.
        let none = actix_test::call_service(&app, post(None, &message).to_request()).await;
        assert_eq!(refused(none).await, (403, "internal_only".into(), None));
        let other = actix_test::call_service(&app, post(Some(&audit), &message).to_request()).await;
        assert_eq!(refused(other).await, (403, "service_not_permitted".into(), None));
        let forwarded = post(Some(&vendors), &message).insert_header((CLIENT_IP, "10.0.0.1")).to_request();
        let forwarded = actix_test::call_service(&app, forwarded).await;
        assert_eq!(refused(forwarded).await.0, 403);
        let forged = actix_test::try_call_service(&app, post(Some("not-a-token"), &message).to_request()).await;
        let forged = forged.err().map(|err| err.as_response_error().status_code().as_u16());
        assert_eq!(forged, Some(401));

        // Malformed bodies, each refused naming its field; nothing changes.
        let mut cases = Vec::new();
        for (field, value) in [
            ("kind", json!("promoted")),
            ("national_id", json!("A123456788")),
            ("id", json!("message-1")),
            ("reason", json!("registered")),
            ("agency", json!("")),
        ] {
            let mut bad = message.clone();
            bad[field] = value;
            cases.push((bad, field));
        }
        let mut missing = message.clone();
        missing.as_object_mut().unwrap().remove("person_id");
        cases.push((missing, "person_id"));
        let mut wrong_type = message.clone();
        wrong_type["vendor_id"] = json!(7);
        cases.push((wrong_type, "vendor_id"));
        for (bad, field) in cases {
            let response = actix_test::call_service(&app, post(Some(&vendors), &bad).to_request()).await;
            let (status, _, named) = refused(response).await;
            assert_eq!((status, named.as_deref()), (422, Some(field)), "{bad}");
        }
        let status_of_it = |db: &Db| -> AccountStatus {
            users::table
                .filter(users::username.eq("tpe.it"))
                .select(users::status)
                .first(&mut db.get().unwrap())
                .unwrap()
        };
        assert_eq!(status_of_it(&db), AccountStatus::Active);

        // The message, and its redelivery: 204 both times.
        for _ in 0..2 {
            let taken = actix_test::call_service(&app, post(Some(&vendors), &message).to_request()).await;
            assert_eq!(taken.status(), 204);
        }
        assert_eq!(status_of_it(&db), AccountStatus::Cancelled);
    }
}
