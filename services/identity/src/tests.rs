//! Identity's domain rules against its real database (SQLite, or PostgreSQL with TEST_DATABASE_URL).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use immilink_shared::db::{Db, DbSettings, PooledConn};
use immilink_shared::extractors::Page;
use immilink_shared::testing::TestDb;

use crate::domain::accounts::{self, load_actor, AccountEventKind, AccountStatus, Actor, Grant, HrEvent};
use crate::domain::applications::{
    self, ApplicationStatus, AppliedRole, Decision, NewApplication, OutsideDecision, ReviewDecision, ReviewStep,
};
use crate::domain::contractors::ContractorStatus::NotPersonnel;
use crate::domain::demo::{self, demo_national_id, DEMO_PASSWORD};
use crate::domain::fields::RegisteredIps;
use crate::domain::sessions::{
    check_live, end_session, login, LoginAttempt, SessionEndReason, SessionRefusal, MAX_FAILED_LOGINS,
};
use crate::domain::{notifications, permissions, AgencyCode, ApplicationId, IdentityError, UnitId, UserId};
use crate::schema::{sessions, units, users};
use crate::MIGRATIONS;

fn seeded(test_db: &TestDb) -> PooledConn {
    let db = Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database");
    let mut conn = db.get().unwrap();
    demo::seed(&mut conn, Utc::now()).unwrap();
    conn
}

fn attempt(username: &str) -> LoginAttempt {
    LoginAttempt {
        username: username.into(),
        password: DEMO_PASSWORD.into(),
        certificate_serial: format!("DEMO-{username}"),
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: "test".into(),
    }
}

fn actor(conn: &mut PooledConn, username: &str) -> Actor {
    let id = user_id(conn, username);
    load_actor(conn, &id).unwrap()
}

fn user_id(conn: &mut PooledConn, username: &str) -> UserId {
    users::table.filter(users::username.eq(username)).select(users::id).first(conn).unwrap()
}

fn status_of(conn: &mut PooledConn, username: &str) -> AccountStatus {
    users::table.filter(users::username.eq(username)).select(users::status).first(conn).unwrap()
}

fn unit_of(conn: &mut PooledConn, username: &str) -> UnitId {
    users::table
        .filter(users::username.eq(username))
        .select(users::unit_id)
        .first::<Option<UnitId>>(conn)
        .unwrap()
        .unwrap()
}

fn grant(query_type: &str, purpose_code: &str) -> Grant {
    Grant { query_type: query_type.into(), purpose_code: purpose_code.into() }
}

/// A new caseworker applying to TPE-SW (or HLN-HR with `hln`), for two query types.
fn application(conn: &mut PooledConn, agency: &str, username: &str, person: u32) -> NewApplication {
    let (supervisor, purpose, basis) = match agency {
        "HLN-HR" => ("hln.supervisor", "hr_nationality_change", "household_registration_act"),
        _ => ("tpe.supervisor", "sw_statutory_business", "social_assistance_act"),
    };
    NewApplication {
        agency_code: AgencyCode::new(agency),
        unit_id: unit_of(conn, supervisor),
        username: username.into(),
        display_name: "新同仁".into(),
        national_id: demo_national_id(person),
        email: format!("{username}@example.gov.tw"),
        certificate_serial: format!("CERT-{username}"),
        ips: RegisteredIps::parse(Some(vec!["127.0.0.1".into()])).unwrap(),
        legal_basis: basis.into(),
        business_handled: "資格審查".into(),
        grants: vec![grant("entry_exit_last_year", purpose), grant("foreigner_residence", purpose)],
        submitted_ip: "127.0.0.1".parse().unwrap(),
        role: AppliedRole::Caseworker,
    }
}

fn nia(approved: bool) -> OutsideDecision {
    OutsideDecision {
        step: ReviewStep::NiaReview,
        reviewer_name: "NIA".into(),
        approved,
        reason: if approved { "ok".into() } else { "not within statutory duties".into() },
        reference: Some("NIA-REF".into()),
    }
}

/// The password of accounts the tests apply for.
const NEW_PASSWORD: &str = "a-long-passphrase-2026";

fn submit(conn: &mut PooledConn, now: DateTime<Utc>, new: &NewApplication) -> ApplicationId {
    let hash = crate::domain::sessions::hash_password(NEW_PASSWORD).unwrap();
    applications::submit(conn, now, new, &hash, NotPersonnel).unwrap().id
}

fn apply(conn: &mut PooledConn, now: DateTime<Utc>, agency: &str, username: &str, person: u32) -> ApplicationId {
    let new = application(conn, agency, username, person);
    submit(conn, now, &new)
}

fn approve(conn: &mut PooledConn, now: DateTime<Utc>, reviewer: &str, id: &ApplicationId) -> applications::Application {
    let reviewer = actor(conn, reviewer);
    applications::review(conn, now, &reviewer, id, Decision::Approve, "業務需要", None).unwrap()
}

#[test]
fn demo_seed_is_idempotent_and_has_every_role() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let counts = |conn: &mut PooledConn| -> (i64, i64, i64) {
        (
            users::table.count().get_result(conn).unwrap(),
            crate::schema::agency_link_items::table.count().get_result(conn).unwrap(),
            crate::schema::user_grants::table.count().get_result(conn).unwrap(),
        )
    };
    // TPE-SW: 11 bases x 1 purpose x 8 types; HLN-HR: 2 bases x 4 purposes x 2 types. Grants: the
    // TPE-SW caseworker's 8 x 1, the HLN-HR clerk's 1 x 4.
    assert_eq!(counts(&mut conn), (14, 88 + 16, 8 + 4));
    assert_eq!(demo::seed(&mut conn, Utc::now()).unwrap(), 0);
    assert_eq!(counts(&mut conn), (14, 88 + 16, 8 + 4), "a second start adds nothing");
    let roles: std::collections::BTreeSet<String> = crate::schema::user_roles::table
        .select(crate::schema::user_roles::role)
        .load(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    for role in immilink_shared::auth::roles::ALL {
        assert!(roles.contains(role), "{role}");
    }
}

#[test]
fn r_acc_01_application_passes_supervisor_manager_and_nia_then_the_account_holds_exactly_the_granted_pairs() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let new = application(&mut conn, "TPE-SW", "tpe.newcomer", 900);
    let id = submit(&mut conn, now, &new);
    assert_eq!(approve(&mut conn, now, "tpe.supervisor", &id).status, ApplicationStatus::ManagerReview);
    // The account manager grants one of the two requested pairs.
    let manager = actor(&mut conn, "tpe.manager");
    let narrowed = vec![grant("entry_exit_last_year", "sw_statutory_business")];
    let view =
        applications::review(&mut conn, now, &manager, &id, Decision::Approve, "只需出入境", Some(narrowed.clone()))
            .unwrap();
    assert_eq!(view.status, ApplicationStatus::NiaReview, "TPE-SW needs no agency head");
    let view = applications::finish(&mut conn, now, &id, &nia(true)).unwrap();
    assert_eq!(view.status, ApplicationStatus::Approved);
    let steps: Vec<(ReviewStep, ReviewDecision)> = view.reviews.iter().map(|r| (r.step, r.decision)).collect();
    let approved = ReviewDecision::Approved;
    assert_eq!(
        steps,
        vec![
            (ReviewStep::SupervisorReview, approved),
            (ReviewStep::ManagerReview, approved),
            (ReviewStep::NiaReview, approved)
        ]
    );
    assert!(view.reviews[..2].iter().all(|r| r.reviewer_id.is_some() && !r.reason.is_empty()));
    // Active, with exactly the granted pair, and able to log in with the bound certificate.
    let mut login_attempt = attempt("tpe.newcomer");
    login_attempt.password = "a-long-passphrase-2026".into();
    login_attempt.certificate_serial = "CERT-tpe.newcomer".into();
    let session = login(&mut conn, now, &login_attempt).unwrap();
    let profile = permissions::profile(&mut conn, now, &session.user_id).unwrap();
    assert_eq!(profile.query_types, vec!["entry_exit_last_year"]);
    assert_eq!(profile.roles, vec!["caseworker"]);
    // The applicant was notified at every step: received, two reviews, active.
    let sent = notifications::for_recipient(&mut conn, "tpe.newcomer@example.gov.tw").unwrap();
    assert_eq!(sent.len(), 4, "{sent:?}");
    // Finishing again changes nothing.
    assert_eq!(applications::finish(&mut conn, now, &id, &nia(false)).unwrap().status, ApplicationStatus::Approved);
}

#[test]
fn r_acc_01_any_reviewer_may_reject_with_a_reason_and_the_nia_may_reject_too() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let id = apply(&mut conn, now, "TPE-SW", "tpe.rejected", 901);
    let supervisor = actor(&mut conn, "tpe.supervisor");
    let no_reason = applications::review(&mut conn, now, &supervisor, &id, Decision::Reject, " ", None);
    assert!(matches!(no_reason, Err(IdentityError::Invalid { field, .. }) if field == "reason"));
    let view = applications::review(&mut conn, now, &supervisor, &id, Decision::Reject, "非本科業務", None).unwrap();
    assert_eq!(view.status, ApplicationStatus::Rejected);
    let manager = actor(&mut conn, "tpe.manager");
    let late = applications::review(&mut conn, now, &manager, &id, Decision::Approve, "", None);
    assert!(matches!(late, Err(IdentityError::NotAwaitingReview { .. })));

    let id = apply(&mut conn, now, "TPE-SW", "tpe.niarejected", 902);
    approve(&mut conn, now, "tpe.supervisor", &id);
    approve(&mut conn, now, "tpe.manager", &id);
    let view = applications::finish(&mut conn, now, &id, &nia(false)).unwrap();
    assert_eq!(view.status, ApplicationStatus::Rejected);
    assert_eq!(view.user_id, None);
    let accounts: i64 =
        users::table.filter(users::username.eq("tpe.niarejected")).count().get_result(&mut conn).unwrap();
    assert_eq!(accounts, 0);
}

#[test]
fn r_acc_02_where_the_agency_requires_it_the_agency_head_approves_too() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let id = apply(&mut conn, now, "HLN-HR", "hln.newcomer", 903);
    approve(&mut conn, now, "hln.supervisor", &id);
    assert_eq!(approve(&mut conn, now, "hln.manager", &id).status, ApplicationStatus::HeadReview);
    // Nobody but the head can take this step.
    let manager = actor(&mut conn, "hln.manager");
    assert!(matches!(
        applications::review(&mut conn, now, &manager, &id, Decision::Approve, "", None),
        Err(IdentityError::NotYourStep { .. } | IdentityError::AlreadyReviewed)
    ));
    assert_eq!(approve(&mut conn, now, "hln.head", &id).status, ApplicationStatus::NiaReview);
}

#[test]
fn r_acc_04_nobody_reviews_their_own_application_nor_two_steps_of_one() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    // The unit supervisor applies for lookup access under their own national ID.
    let supervisor = actor(&mut conn, "tpe.supervisor");
    let mut own = application(&mut conn, "TPE-SW", "tpe.supervisor2", 0);
    own.national_id = supervisor.national_id.clone().unwrap();
    let id = submit(&mut conn, now, &own);
    let refused = applications::review(&mut conn, now, &supervisor, &id, Decision::Approve, "", None);
    assert!(matches!(refused, Err(IdentityError::OwnApplication)), "{refused:?}");

    // A person holding two reviewer roles reviews only one step of an application.
    let manager_id = user_id(&mut conn, "tpe.manager");
    diesel::insert_into(crate::schema::user_roles::table)
        .values((
            crate::schema::user_roles::user_id.eq(&manager_id),
            crate::schema::user_roles::role.eq("unit_supervisor"),
        ))
        .execute(&mut conn)
        .unwrap();
    let id = apply(&mut conn, now, "TPE-SW", "tpe.twosteps", 904);
    approve(&mut conn, now, "tpe.manager", &id);
    let manager = actor(&mut conn, "tpe.manager");
    let second = applications::review(&mut conn, now, &manager, &id, Decision::Approve, "", None);
    assert!(matches!(second, Err(IdentityError::AlreadyReviewed)), "{second:?}");
}

#[test]
fn r_acc_01_the_first_review_belongs_to_the_applicants_unit_supervisor_and_steps_go_in_order() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let id = apply(&mut conn, now, "TPE-SW", "tpe.order", 905);
    let manager = actor(&mut conn, "tpe.manager");
    let early = applications::review(&mut conn, now, &manager, &id, Decision::Approve, "", None);
    assert!(matches!(early, Err(IdentityError::NotYourStep { .. })));
    // Another unit's supervisor of the same agency may not either.
    let tpe_agency: String =
        users::table.filter(users::username.eq("tpe.supervisor")).select(users::agency_id).first(&mut conn).unwrap();
    let other_unit = crate::domain::new_id();
    diesel::insert_into(units::table)
        .values((units::id.eq(&other_unit), units::agency_id.eq(&tpe_agency), units::name.eq("老人福利科")))
        .execute(&mut conn)
        .unwrap();
    let mut elsewhere = actor(&mut conn, "tpe.supervisor");
    elsewhere.unit_id = Some(UnitId::new(other_unit));
    let wrong_unit = applications::review(&mut conn, now, &elsewhere, &id, Decision::Approve, "", None);
    assert!(matches!(wrong_unit, Err(IdentityError::NotApplicantsSupervisor)));
    // Another agency's supervisor does not even see it.
    let hln = actor(&mut conn, "hln.supervisor");
    assert!(matches!(
        applications::review(&mut conn, now, &hln, &id, Decision::Approve, "", None),
        Err(IdentityError::NotFound(_))
    ));
    assert!(matches!(applications::get(&mut conn, &hln, &id), Err(IdentityError::NotFound(_))));
    // The manager may narrow grants but not widen them.
    approve(&mut conn, now, "tpe.supervisor", &id);
    let widened = vec![grant("eid_photo", "sw_statutory_business")];
    let refused = applications::review(&mut conn, now, &manager, &id, Decision::Approve, "", Some(widened));
    assert!(matches!(refused, Err(IdentityError::Invalid { field, .. }) if field == "grants"));
}

/// R-ACC-03: the applicant binds their certificate, and a certificate binds one live account or
/// pending application; a closed (here: terminated) account's certificate may be bound again.
#[test]
fn r_acc_03_a_certificate_binds_one_live_account_or_pending_application() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let hash = crate::domain::sessions::hash_password("a-long-passphrase-2026").unwrap();
    let mut taken = application(&mut conn, "TPE-SW", "tpe.certcopy", 906);
    taken.certificate_serial = "DEMO-tpe.caseworker".into();
    let refused = applications::submit(&mut conn, now, &taken, &hash, NotPersonnel);
    assert!(matches!(refused, Err(IdentityError::CertificateInUse)), "{refused:?}");
    // A pending application holds its certificate too.
    let pending = application(&mut conn, "TPE-SW", "tpe.first", 907);
    submit(&mut conn, now, &pending);
    let mut second = application(&mut conn, "TPE-SW", "tpe.second", 908);
    second.certificate_serial = pending.certificate_serial.clone();
    let refused = applications::submit(&mut conn, now, &second, &hash, NotPersonnel);
    assert!(matches!(refused, Err(IdentityError::CertificateInUse)), "{refused:?}");
    // Once its account is terminated (R-ACC-09), the holder may bind the certificate anew.
    let caseworker = actor(&mut conn, "tpe.caseworker");
    accounts::report_certificate_lost(&mut conn, now, &caseworker, &caseworker.user_id, "").unwrap();
    submit(&mut conn, now, &taken);
}

#[test]
fn applications_need_a_free_username_and_declarations_that_fit_the_agency_and_store_nothing_otherwise() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let hash = crate::domain::sessions::hash_password("a-long-passphrase-2026").unwrap();
    let taken_name = application(&mut conn, "TPE-SW", "tpe.caseworker", 907);
    assert!(matches!(
        applications::submit(&mut conn, now, &taken_name, &hash, NotPersonnel),
        Err(IdentityError::UsernameTaken)
    ));
    // A household-registration purpose is not a social-welfare agency's.
    let mut wrong_purpose = application(&mut conn, "TPE-SW", "tpe.wrongpurpose", 908);
    wrong_purpose.grants = vec![grant("entry_exit_last_year", "hr_nationality_change")];
    let refused = applications::submit(&mut conn, now, &wrong_purpose, &hash, NotPersonnel);
    assert!(matches!(refused, Err(IdentityError::Invalid { field, .. }) if field == "grants[0].purpose_code"));
    let mut wrong_basis = application(&mut conn, "TPE-SW", "tpe.wrongbasis", 909);
    wrong_basis.legal_basis = "nationality_act".into();
    let refused = applications::submit(&mut conn, now, &wrong_basis, &hash, NotPersonnel);
    assert!(matches!(refused, Err(IdentityError::Invalid { field, .. }) if field == "legal_basis"));
    // Nothing was written by the refused submissions.
    let stored: i64 = crate::schema::account_applications::table.count().get_result(&mut conn).unwrap();
    assert_eq!(stored, 0);
}

#[test]
fn r_acc_12_every_session_records_login_and_logout_time() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let at = Utc::now();
    let session = login(&mut conn, at, &attempt("tpe.caseworker")).unwrap();
    let later = at + Duration::minutes(3);
    end_session(&mut conn, later, &session.session_id, SessionEndReason::Logout, None).unwrap();
    let (login_at, logout_at, reason): (
        chrono::NaiveDateTime,
        Option<chrono::NaiveDateTime>,
        Option<SessionEndReason>,
    ) = sessions::table
        .filter(sessions::id.eq(&session.session_id))
        .select((sessions::login_at, sessions::logout_at, sessions::end_reason))
        .first(&mut conn)
        .unwrap();
    assert_eq!(login_at.and_utc().timestamp(), at.timestamp());
    assert_eq!(logout_at.map(|t| t.and_utc().timestamp()), Some(later.timestamp()));
    assert_eq!(reason, Some(SessionEndReason::Logout));
    // Managers read them per account.
    let manager = actor(&mut conn, "tpe.manager");
    let records =
        accounts::sessions_of(&mut conn, &manager, &session.user_id, &Page::new(Some(10), None).unwrap()).unwrap();
    assert_eq!(records.len(), 1);
    assert!(records[0].logout_at.is_some());
}

#[test]
fn r_acc_03_wrong_certificate_and_r_acc_11_wrong_ip_refuse_login() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let mut wrong_certificate = attempt("tpe.caseworker");
    wrong_certificate.certificate_serial = "DEMO-tpe.manager".into();
    assert!(matches!(login(&mut conn, Utc::now(), &wrong_certificate), Err(IdentityError::LoginRefused)));
    let mut elsewhere = attempt("tpe.caseworker");
    elsewhere.ip = "10.1.2.3".parse::<IpAddr>().unwrap();
    assert!(matches!(login(&mut conn, Utc::now(), &elsewhere), Err(IdentityError::LoginRefused)));
}

#[test]
fn repeated_failures_lock_the_account_even_for_the_right_password_until_the_lockout_ends() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let mut wrong = attempt("tpe.caseworker");
    wrong.password = "guess".into();
    for _ in 0..MAX_FAILED_LOGINS {
        assert!(login(&mut conn, now, &wrong).is_err());
    }
    assert!(matches!(login(&mut conn, now, &attempt("tpe.caseworker")), Err(IdentityError::LoginRefused)));
    let later = now + Duration::minutes(16);
    assert!(login(&mut conn, later, &attempt("tpe.caseworker")).is_ok());
}

#[test]
fn r_acc_05_an_hr_event_cancels_the_account_the_same_day_and_ends_its_sessions() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    let target = user_id(&mut conn, "tpe.caseworker");
    let view = accounts::record_hr_event(&mut conn, now, &manager, &target, HrEvent::Transfer, "調任他機關").unwrap();
    assert_eq!(view.status, AccountStatus::Cancelled);
    assert_eq!(
        view.events.last().map(|e| (e.kind, e.effective_date)),
        Some((AccountEventKind::HrTransfer, immilink_shared::clock::business_date(now)))
    );
    let live = check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15));
    assert!(matches!(
        live,
        Err(IdentityError::SessionEnded(SessionRefusal::Ended(SessionEndReason::AccountCancelled)))
    ));
    assert!(matches!(login(&mut conn, now, &attempt("tpe.caseworker")), Err(IdentityError::LoginRefused)));
    // Only the account manager files HR events.
    let supervisor = actor(&mut conn, "tpe.supervisor");
    let other = user_id(&mut conn, "tpe.auditor");
    assert!(matches!(
        accounts::record_hr_event(&mut conn, now, &supervisor, &other, HrEvent::Leave, "x"),
        Err(IdentityError::RoleRequired { .. })
    ));
}

#[test]
fn r_acc_06_the_last_account_manager_hands_over_before_leaving() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let head = actor(&mut conn, "tpe.head");
    let manager_id = user_id(&mut conn, "tpe.manager");
    let head_manager = actor(&mut conn, "tpe.manager");
    // Nobody can cancel the only manager (not even the manager themselves).
    let refused = accounts::record_hr_event(&mut conn, now, &head_manager, &manager_id, HrEvent::Resignation, "離職");
    assert!(matches!(refused, Err(IdentityError::LastAccountManager)), "{refused:?}");
    // The agency head hands the role to the IT officer in one step.
    let it = user_id(&mut conn, "tpe.it");
    let view = accounts::hand_over_manager(&mut conn, now, &head, &manager_id, &it, "業務移交").unwrap();
    assert!(view.roles.contains(&"account_manager".to_owned()));
    assert!(!actor(&mut conn, "tpe.manager").has("account_manager"));
    // A caseworker cannot hand anything over.
    let caseworker = actor(&mut conn, "tpe.caseworker");
    assert!(matches!(
        accounts::hand_over_manager(&mut conn, now, &caseworker, &it, &manager_id, "x"),
        Err(IdentityError::HandoverNotPermitted)
    ));
    // Now the former manager may leave; the new one files it.
    let new_manager = actor(&mut conn, "tpe.it");
    accounts::record_hr_event(&mut conn, now, &new_manager, &manager_id, HrEvent::Resignation, "離職").unwrap();
}

#[test]
fn r_acc_07_a_second_session_from_another_ip_or_device_is_refused_and_flagged_and_the_manager_can_suspend() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let first = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let target = first.user_id.clone();
    // Another registered workstation of the same account.
    diesel::insert_into(crate::schema::user_ips::table)
        .values((crate::schema::user_ips::user_id.eq(&target), crate::schema::user_ips::ip.eq("127.0.0.2")))
        .execute(&mut conn)
        .unwrap();
    let mut other_ip = attempt("tpe.caseworker");
    other_ip.ip = "127.0.0.2".parse().unwrap();
    assert!(matches!(login(&mut conn, now, &other_ip), Err(IdentityError::LoginRefused)));
    let mut other_device = attempt("tpe.caseworker");
    other_device.user_agent = "another browser".into();
    assert!(matches!(login(&mut conn, now, &other_device), Err(IdentityError::LoginRefused)));
    let manager = actor(&mut conn, "tpe.manager");
    let flags = accounts::lending_flags(&mut conn, &manager, &Page::first()).unwrap();
    assert_eq!(flags.len(), 2);
    assert!(flags.iter().all(|f| f.kind == AccountEventKind::PossibleAccountLending));
    // The first session is untouched; the same workstation and browser may log in again.
    check_live(&mut conn, now, &first.session_id, None, Duration::minutes(15)).unwrap();
    let again = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    assert!(check_live(&mut conn, now, &first.session_id, None, Duration::minutes(15)).is_err(), "superseded");
    // The manager suspends: sessions end; reinstating lets the user back in.
    accounts::suspend(&mut conn, now, &manager, &target, "疑似帳號借用").unwrap();
    assert!(check_live(&mut conn, now, &again.session_id, None, Duration::minutes(15)).is_err());
    assert!(login(&mut conn, now, &attempt("tpe.caseworker")).is_err());
    accounts::reinstate(&mut conn, now, &manager, &target, "查明為誤判").unwrap();
    assert!(login(&mut conn, now, &attempt("tpe.caseworker")).is_ok());
    // An idle session from elsewhere does not block a login (it has ended in all but name).
    let later = now + Duration::minutes(20);
    assert!(login(&mut conn, later, &other_ip).is_ok());
}

#[test]
fn r_acc_09_a_lost_certificate_terminates_the_account_at_once() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("hln.clerk")).unwrap();
    // The holder reports it themselves.
    let clerk = actor(&mut conn, "hln.clerk");
    let view = accounts::report_certificate_lost(&mut conn, now, &clerk, &session.user_id, "").unwrap();
    assert_eq!(view.status, AccountStatus::Terminated);
    assert!(check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15)).is_err());
    // Terminated is final: the manager cannot reinstate it.
    let manager = actor(&mut conn, "hln.manager");
    assert!(matches!(
        accounts::reinstate(&mut conn, now, &manager, &session.user_id, "x"),
        Err(IdentityError::NotSuspended { .. })
    ));
    assert_eq!(status_of(&mut conn, "hln.clerk"), AccountStatus::Terminated);
}

#[test]
fn r_acc_11_ip_bindings_change_through_the_manager_and_sessions_from_removed_ips_end() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let caseworker = actor(&mut conn, "tpe.caseworker");
    let new_ip: IpAddr = "10.20.30.40".parse().unwrap();
    let new_ips = RegisteredIps::parse(Some(vec![new_ip.to_string()])).unwrap();
    assert!(matches!(
        accounts::set_ips(&mut conn, now, &caseworker, &session.user_id, &new_ips, "自行變更"),
        Err(IdentityError::RoleRequired { .. })
    ));
    let it = actor(&mut conn, "tpe.it");
    let view = accounts::set_ips(&mut conn, now, &it, &session.user_id, &new_ips, "更換工作站").unwrap();
    assert_eq!(view.ips, vec!["10.20.30.40"]);
    assert!(check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15)).is_err());
    assert!(login(&mut conn, now, &attempt("tpe.caseworker")).is_err());
    let mut from_new = attempt("tpe.caseworker");
    from_new.ip = new_ip;
    assert!(login(&mut conn, now, &from_new).is_ok());
}

#[test]
fn an_account_manager_of_one_agency_cannot_read_or_change_another_agencys_accounts() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let tpe_manager = actor(&mut conn, "tpe.manager");
    let hln_clerk = user_id(&mut conn, "hln.clerk");
    assert!(matches!(accounts::detail(&mut conn, &tpe_manager, &hln_clerk), Err(IdentityError::NotFound(_))));
    assert!(matches!(
        accounts::sessions_of(&mut conn, &tpe_manager, &hln_clerk, &Page::first()),
        Err(IdentityError::NotFound(_))
    ));
    assert!(matches!(
        accounts::suspend(&mut conn, now, &tpe_manager, &hln_clerk, "x"),
        Err(IdentityError::NotFound(_))
    ));
    assert!(matches!(
        accounts::record_hr_event(&mut conn, now, &tpe_manager, &hln_clerk, HrEvent::Resignation, "x"),
        Err(IdentityError::NotFound(_))
    ));
    let listed = accounts::list(&mut conn, &tpe_manager, &Page::first()).unwrap();
    assert!(listed.iter().all(|a| a.agency_code == "TPE-SW"));
    assert_eq!(status_of(&mut conn, "hln.clerk"), AccountStatus::Active);
}

#[test]
fn disabled_accounts_cannot_log_in_and_their_sessions_end() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("hln.clerk")).unwrap();
    diesel::update(users::table.filter(users::username.eq("hln.clerk")))
        .set(users::status.eq(AccountStatus::Cancelled))
        .execute(&mut conn)
        .unwrap();
    assert!(matches!(login(&mut conn, now, &attempt("hln.clerk")), Err(IdentityError::LoginRefused)));
    let live = check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15));
    assert!(matches!(live, Err(IdentityError::SessionEnded(SessionRefusal::Ended(SessionEndReason::AccountInactive)))));
}

#[test]
fn r_acc_10_idle_timeout_ends_the_session_and_activity_keeps_it() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let start = Utc::now();
    let idle = Duration::minutes(15);
    let session = login(&mut conn, start, &attempt("tpe.caseworker")).unwrap();
    // Activity every ten minutes keeps it alive past the first fifteen.
    for minutes in [10, 20, 30] {
        check_live(&mut conn, start + Duration::minutes(minutes), &session.session_id, None, idle).unwrap();
    }
    let after_idle = start + Duration::minutes(30) + Duration::minutes(16);
    let ended = check_live(&mut conn, after_idle, &session.session_id, None, idle);
    assert!(matches!(ended, Err(IdentityError::SessionEnded(SessionRefusal::Ended(SessionEndReason::IdleTimeout)))));
    // And it stays ended.
    assert!(check_live(&mut conn, after_idle, &session.session_id, None, idle).is_err());
}

#[test]
fn r_qry_02_permissions_are_link_approvals_intersected_with_user_grants() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    // HLN-HR's link approves entry/exit and traveller history; its clerk holds entry/exit only, and
    // a grant the link does not approve counts for nothing.
    let clerk = login(&mut conn, now, &attempt("hln.clerk")).unwrap();
    diesel::insert_into(crate::schema::user_grants::table)
        .values((
            crate::schema::user_grants::user_id.eq(&clerk.user_id),
            crate::schema::user_grants::query_type.eq("eid_photo"),
            crate::schema::user_grants::purpose_code.eq("hr_nationality_change"),
        ))
        .execute(&mut conn)
        .unwrap();
    let profile = permissions::profile(&mut conn, now, &clerk.user_id).unwrap();
    assert_eq!(profile.query_types, vec!["entry_exit_last_year"]);
    assert_eq!(profile.purposes.len(), 4, "{:?}", profile.purposes);
    // 2 legal bases x 4 purposes x 1 query type both approved and granted.
    assert_eq!(profile.permissions.len(), 8);
    // Outside the link's usage period nothing is permitted (R-LINK-12 groundwork).
    let expired = now + Duration::days(3 * 365);
    assert!(permissions::permitted(&mut conn, expired, &clerk.user_id, &profile.agency.id).unwrap().is_empty());
    let supervisor = login(&mut conn, now, &attempt("hln.supervisor")).unwrap();
    assert!(permissions::profile(&mut conn, now, &supervisor.user_id).unwrap().permissions.is_empty());
    // The summary other services read (a bulk job's submitter) carries the same permissions.
    let summary = crate::domain::accounts::summary(&mut conn, now, &clerk.user_id).unwrap().unwrap();
    assert_eq!((summary.agency.as_str(), summary.status), ("HLN-HR", AccountStatus::Active));
    assert_eq!(summary.permissions, profile.permissions);
    assert!(crate::domain::accounts::summary(&mut conn, now, &UserId::new("no-such-user")).unwrap().is_none());
}

/// Seed 001 pt 3(2): the Taipei social welfare department uses all eight query types of the cloud
/// query service, under each of the eleven laws of pt 3; the demo caseworker holds them all.
#[test]
fn the_demo_caseworker_of_tpe_sw_may_run_all_eight_query_types_under_every_legal_basis() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let caseworker = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let profile = permissions::profile(&mut conn, now, &caseworker.user_id).unwrap();
    let mut all: Vec<&str> = immilink_shared::catalogue::QueryType::ALL.iter().map(|q| q.code()).collect();
    all.sort_unstable();
    assert_eq!(profile.query_types, all);
    assert_eq!(profile.purposes, vec!["sw_statutory_business"]);
    let bases: std::collections::BTreeSet<&str> = profile.permissions.iter().map(|p| p.legal_basis.as_str()).collect();
    let social_welfare: std::collections::BTreeSet<String> = immilink_shared::catalogue::legal_bases()
        .into_iter()
        .filter(|b| b.agency_kind == immilink_shared::catalogue::AgencyKind::SocialWelfare)
        .map(|b| b.code)
        .collect();
    assert_eq!(social_welfare.len(), 11);
    assert!(bases.iter().all(|b| social_welfare.contains(*b)) && bases.len() == 11);
    // 11 legal bases x 1 purpose x 8 query types.
    assert_eq!(profile.permissions.len(), 88);
    assert_eq!(demo::linked_query_types("TPE-SW"), immilink_shared::catalogue::QueryType::ALL);
}

#[test]
fn demo_national_ids_carry_valid_check_digits() {
    for n in [0, 1, 99, 900, 1234567] {
        let id = demo_national_id(n);
        assert!(immilink_shared::ids::NationalId::parse(&id).is_ok(), "{id}");
    }
}

/// Key rotation: tokens signed with the retired key keep verifying while it is published beside the
/// new one, new tokens carry the new `kid`, and once the retired key is dropped its tokens fail.
#[actix_web::test]
async fn signing_key_rotation_keeps_old_tokens_valid_during_the_overlap_only() {
    use immilink_shared::auth::{AccessClaims, TokenVerifier, AUDIENCE, ISSUER};

    use crate::keys::SigningKeys;
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path) = (dir.path().join("old.pk8"), dir.path().join("new.pk8"));
    let old = SigningKeys::load(&old_path, true).unwrap();
    let sign = |keys: &SigningKeys| {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: "u1".into(),
            sid: "s1".into(),
            agency: "TPE-SW".into(),
            unit: None,
            roles: vec![],
            iat: now,
            exp: now + 600,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(keys.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, keys.encoding_key()).unwrap()
    };
    let before_rotation = sign(&old);
    let rotated = SigningKeys::load_with_previous(&new_path, true, std::slice::from_ref(&old_path)).unwrap();
    let overlap = TokenVerifier::from_jwks(&rotated.jwks()).unwrap();
    assert!(overlap.verify(&before_rotation).await.is_ok());
    let after_rotation = sign(&rotated);
    assert!(overlap.verify(&after_rotation).await.is_ok());
    let after_overlap = TokenVerifier::from_jwks(&SigningKeys::load(&new_path, false).unwrap().jwks()).unwrap();
    assert!(after_overlap.verify(&before_rotation).await.is_err());
    assert!(after_overlap.verify(&after_rotation).await.is_ok());
}

/// Lists come a page at a time in a fixed order, each page continuing after the last id of the one
/// before; an id that is not on the list is refused naming `before`.
#[test]
fn lists_page_in_their_order_after_the_last_id() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let manager = actor(&mut conn, "tpe.manager");
    let everyone = accounts::list(&mut conn, &manager, &Page::first()).unwrap();
    assert_eq!(everyone.len(), 9, "TPE-SW's demo users");
    let usernames: Vec<&str> = everyone.iter().map(|a| a.username.as_str()).collect();
    let mut sorted = usernames.clone();
    sorted.sort_unstable();
    assert_eq!(usernames, sorted);
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = accounts::list(&mut conn, &manager, &Page::new(Some(3), cursor).unwrap()).unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.user_id.to_string());
        paged.extend(page.into_iter().map(|a| a.username));
    }
    assert_eq!(paged, sorted);
    let stranger = Page::new(None, Some(user_id(&mut conn, "hln.clerk").to_string())).unwrap();
    assert!(
        matches!(accounts::list(&mut conn, &manager, &stranger), Err(IdentityError::Invalid { field, .. }) if field == "before")
    );

    // Applications: oldest first, and a unit supervisor's pages hold their unit's only.
    let ids: Vec<ApplicationId> =
        (0..3).map(|n| apply(&mut conn, now, "TPE-SW", &format!("tpe.page{n}"), 920 + n)).collect();
    let first = applications::list(&mut conn, &manager, None, &Page::new(Some(2), None).unwrap()).unwrap();
    assert_eq!(first.iter().map(|a| a.id.clone()).collect::<Vec<_>>(), ids[..2]);
    let rest = applications::list(&mut conn, &manager, None, &Page::new(Some(2), Some(ids[1].to_string())).unwrap());
    assert_eq!(rest.unwrap().iter().map(|a| a.id.clone()).collect::<Vec<_>>(), ids[2..]);
    let mut other_unit_supervisor = actor(&mut conn, "tpe.supervisor");
    other_unit_supervisor.unit_id = Some(UnitId::new("another-unit"));
    assert!(applications::list(&mut conn, &other_unit_supervisor, None, &Page::first()).unwrap().is_empty());
    let supervisor = actor(&mut conn, "tpe.supervisor");
    let waiting = Some(ApplicationStatus::SupervisorReview);
    assert_eq!(applications::list(&mut conn, &supervisor, waiting, &Page::first()).unwrap().len(), 3);
    assert!(applications::list(&mut conn, &supervisor, Some(ApplicationStatus::Approved), &Page::first())
        .unwrap()
        .is_empty());

    // Sessions: newest first.
    for minutes in [0, 1, 2] {
        login(&mut conn, now + Duration::minutes(minutes), &attempt("tpe.caseworker")).unwrap();
    }
    let caseworker = user_id(&mut conn, "tpe.caseworker");
    let newest = accounts::sessions_of(&mut conn, &manager, &caseworker, &Page::new(Some(2), None).unwrap()).unwrap();
    assert!(newest[0].login_at > newest[1].login_at);
    let older = Page::new(Some(2), Some(newest[1].session_id.to_string())).unwrap();
    let older = accounts::sessions_of(&mut conn, &manager, &caseworker, &older).unwrap();
    assert_eq!(older.len(), 1);
    assert!(older[0].login_at < newest[1].login_at);

    // The agency directory: by code, with each agency's units.
    let agencies = accounts::directory(&mut conn, &Page::new(Some(2), None).unwrap()).unwrap();
    assert_eq!(agencies.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["HLN-HR", "NIA"]);
    assert!(agencies.iter().all(|a| a.units.len() == 1));
    let after = Page::new(None, Some("NIA".into())).unwrap();
    assert_eq!(
        accounts::directory(&mut conn, &after).unwrap().iter().map(|a| a.code.as_str()).collect::<Vec<_>>(),
        ["TPE-SW"]
    );
}

// --- audit events through the outbox ----------------------------------------------------------------

/// The events waiting in identity's outbox, oldest first.
fn audit_events(conn: &mut PooledConn) -> Vec<immilink_shared::events::AuditEvent> {
    immilink_shared::outbox::pending(conn, 1000).unwrap()
}

fn kinds_since(conn: &mut PooledConn, seen: usize) -> Vec<String> {
    audit_events(conn).into_iter().skip(seen).map(|event| event.kind).collect()
}

/// Every account application step, login, logout, forced session end and account change writes its
/// audit event in the transaction of the change: source identity, the actor, the agency, the business
/// object as correlation, no subject, and what changed with its reason.
#[test]
fn every_account_change_writes_its_audit_event_in_the_same_transaction() {
    use immilink_shared::events::kind;
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    assert!(audit_events(&mut conn).is_empty(), "the demo seed is not an audited act");

    // The application and each review step, then the account it opens.
    let id = apply(&mut conn, now, "TPE-SW", "tpe.newcomer", 900);
    approve(&mut conn, now, "tpe.supervisor", &id);
    approve(&mut conn, now, "tpe.manager", &id);
    applications::finish(&mut conn, now, &id, &nia(true)).unwrap();
    let events = audit_events(&mut conn);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            kind::ACCOUNT_APPLICATION_SUBMITTED,
            kind::ACCOUNT_APPLICATION_REVIEWED,
            kind::ACCOUNT_APPLICATION_REVIEWED,
            kind::ACCOUNT_APPLICATION_REVIEWED,
            kind::ACCOUNT_ACTIVATED
        ]
    );
    assert!(events.iter().all(|e| e.source == "identity" && e.subject_id.is_none()));
    assert!(events.iter().all(|e| e.agency.as_deref() == Some("TPE-SW")));
    assert!(events[..4].iter().all(|e| e.correlation_id.as_deref() == Some(id.as_str())));
    let submitted = &events[0];
    assert_eq!(submitted.actor_user_id, None, "the applicant has no account yet");
    assert_eq!(submitted.payload["username"], "tpe.newcomer");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("a-long-passphrase-2026") && !text.contains("argon2"), "no password, no hash");
    assert!(!text.contains(&demo_national_id(900)), "no national ID");
    let supervisor_review = &events[1];
    assert_eq!(supervisor_review.actor_user_id.as_deref(), Some(user_id(&mut conn, "tpe.supervisor").as_str()));
    assert_eq!(supervisor_review.payload["step"], "supervisor_review");
    assert_eq!(supervisor_review.payload["decision"], "approved");
    assert_eq!(supervisor_review.payload["reason"], "業務需要");
    assert_eq!(supervisor_review.payload["status"], "manager_review");
    assert_eq!(events[3].payload["step"], "nia_review");
    assert_eq!(events[3].actor_user_id, None, "the immigration agency is not a local account");
    let newcomer = user_id(&mut conn, "tpe.newcomer");
    assert_eq!(events[4].correlation_id.as_deref(), Some(newcomer.as_str()));
    assert_eq!(events[4].payload["roles"], serde_json::json!(["caseworker"]));
    assert_eq!(events[4].payload["grants"].as_array().map(Vec::len), Some(2));

    // Login, logout, and sessions ended by the manager's acts.
    let seen = audit_events(&mut conn).len();
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    end_session(&mut conn, now, &session.session_id, SessionEndReason::Logout, Some(&session.user_id)).unwrap();
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    let target = session.user_id.clone();
    accounts::suspend(&mut conn, now, &manager, &target, "疑似帳號借用").unwrap();
    accounts::reinstate(&mut conn, now, &manager, &target, "查明為誤判").unwrap();
    login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let ips = RegisteredIps::parse(Some(vec!["10.0.0.9".into()])).unwrap();
    accounts::set_ips(&mut conn, now, &manager, &target, &ips, "更換工作站").unwrap();
    let it = user_id(&mut conn, "tpe.it");
    accounts::hand_over_manager(&mut conn, now, &manager, &manager.user_id, &it, "業務移交").unwrap();
    let new_manager = actor(&mut conn, "tpe.it");
    accounts::record_hr_event(&mut conn, now, &new_manager, &target, HrEvent::Transfer, "調任他機關").unwrap();
    let clerk = actor(&mut conn, "hln.clerk");
    accounts::report_certificate_lost(&mut conn, now, &clerk, &clerk.user_id, "遺失").unwrap();
    assert_eq!(
        kinds_since(&mut conn, seen),
        [
            kind::SESSION_OPENED,
            kind::SESSION_ENDED,
            kind::SESSION_OPENED,
            kind::SESSION_ENDED,
            kind::ACCOUNT_SUSPENDED,
            kind::ACCOUNT_REINSTATED,
            kind::SESSION_OPENED,
            kind::SESSION_ENDED,
            kind::ACCOUNT_IPS_CHANGED,
            kind::ACCOUNT_ROLE_REVOKED,
            kind::ACCOUNT_ROLE_GRANTED,
            kind::ACCOUNT_HR_EVENT,
            kind::ACCOUNT_CERTIFICATE_LOST,
        ]
    );
    let events: Vec<_> = audit_events(&mut conn).into_iter().skip(seen).collect();
    let (opened, logout, suspended_session) = (&events[0], &events[1], &events[3]);
    assert_eq!(opened.actor_user_id.as_deref(), Some(target.as_str()));
    assert_eq!(opened.payload["ip"], "127.0.0.1");
    assert_eq!(logout.correlation_id, opened.correlation_id, "a session's events share its id");
    assert_eq!(logout.payload["reason"], "logout");
    assert_eq!(suspended_session.payload["reason"], "account_suspended");
    assert_eq!(suspended_session.actor_user_id.as_deref(), Some(manager.user_id.as_str()), "forced by the manager");
    assert_eq!(events[4].payload["reason"], "疑似帳號借用");
    assert_eq!(events[4].payload["status"], "suspended");
    assert_eq!(events[7].payload["reason"], "ip_unregistered");
    assert_eq!(events[8].payload["ips"], serde_json::json!(["10.0.0.9"]));
    assert_eq!(events[10].payload["role"], "account_manager");
    assert_eq!(events[10].correlation_id.as_deref(), Some(it.as_str()));
    assert_eq!(events[11].payload["hr_event"], "transfer");
    assert_eq!(events[11].payload["status"], "cancelled");
    assert_eq!(events[12].agency.as_deref(), Some("HLN-HR"));

    // The idle timeout ends a session on its next use, with no actor.
    let seen = audit_events(&mut conn).len();
    let session = login(&mut conn, now, &attempt("tpe.auditor")).unwrap();
    let later = now + Duration::minutes(20);
    assert!(check_live(&mut conn, later, &session.session_id, None, Duration::minutes(15)).is_err());
    let events: Vec<_> = audit_events(&mut conn).into_iter().skip(seen).collect();
    assert_eq!(events.len(), 2);
    assert_eq!((events[1].kind.as_str(), events[1].actor_user_id.as_deref()), (kind::SESSION_ENDED, None));
    assert_eq!(events[1].payload["reason"], "idle_timeout");
}

/// A refused login is recorded, with or without an account behind the username, in a transaction of
/// its own; the event names who tried, from where and why, and never carries the password.
#[test]
fn a_failed_login_writes_an_event_without_the_password() {
    use immilink_shared::events::kind;
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let mut unknown = attempt("nobody.here");
    unknown.password = "secret-typed-by-mistake".into();
    assert!(matches!(login(&mut conn, now, &unknown), Err(IdentityError::LoginRefused)));
    let mut wrong = attempt("tpe.caseworker");
    wrong.password = "not-the-password".into();
    assert!(matches!(login(&mut conn, now, &wrong), Err(IdentityError::LoginRefused)));
    let events = audit_events(&mut conn);
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), [kind::LOGIN_FAILED, kind::LOGIN_FAILED]);
    let (stranger, caseworker) = (&events[0], &events[1]);
    assert_eq!((stranger.actor_user_id.as_deref(), stranger.agency.as_deref()), (None, None));
    assert_eq!(stranger.payload["username"], "nobody.here");
    assert_eq!(stranger.payload["reason"], "unknown username");
    let id = user_id(&mut conn, "tpe.caseworker");
    assert_eq!(caseworker.actor_user_id.as_deref(), Some(id.as_str()));
    assert_eq!(caseworker.agency.as_deref(), Some("TPE-SW"));
    assert_eq!(caseworker.payload["reason"], "wrong password");
    assert_eq!(caseworker.payload["ip"], "127.0.0.1");
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains("secret-typed-by-mistake") && !text.contains("not-the-password"));
    assert!(!text.contains("DEMO-tpe.caseworker"), "nor the certificate serial presented");
    // The failure count committed with its event.
    let failed: i32 = users::table.filter(users::id.eq(&id)).select(users::failed_logins).first(&mut conn).unwrap();
    assert_eq!(failed, 1);
}

/// The event and the change are one transaction: when the event cannot be written, the change is
/// not made either (no status change, no ended session, no account_events row, no new session).
#[test]
fn a_failed_audit_event_insert_rolls_back_the_account_change() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    let manager = actor(&mut conn, "tpe.manager");
    let history =
        |conn: &mut PooledConn| -> i64 { crate::schema::account_events::table.count().get_result(conn).unwrap() };
    let sessions_before: i64 = sessions::table.count().get_result(&mut conn).unwrap();
    let events_before = history(&mut conn);
    // Sabotage the outbox so the next event insert fails.
    diesel::sql_query("DROP TABLE outbox").execute(&mut conn).unwrap();

    assert!(accounts::suspend(&mut conn, now, &manager, &session.user_id, "疑似帳號借用").is_err());
    assert_eq!(status_of(&mut conn, "tpe.caseworker"), AccountStatus::Active);
    check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15)).unwrap();
    assert_eq!(history(&mut conn), events_before);

    assert!(matches!(login(&mut conn, now, &attempt("tpe.auditor")), Err(IdentityError::Db(_))));
    let mut wrong = attempt("tpe.auditor");
    wrong.password = "not-the-password".into();
    assert!(matches!(login(&mut conn, now, &wrong), Err(IdentityError::Db(_))));
    let failed: i32 =
        users::table.filter(users::username.eq("tpe.auditor")).select(users::failed_logins).first(&mut conn).unwrap();
    assert_eq!(failed, 0, "the failure count rolled back with its event");
    assert!(end_session(&mut conn, now, &session.session_id, SessionEndReason::Logout, None).is_err());
    check_live(&mut conn, now, &session.session_id, None, Duration::minutes(15)).unwrap();
    assert_eq!(sessions::table.count().get_result::<i64>(&mut conn).unwrap(), sessions_before);
    let new = application(&mut conn, "TPE-SW", "tpe.newcomer", 901);
    let hash = crate::domain::sessions::hash_password("a-long-passphrase-2026").unwrap();
    assert!(applications::submit(&mut conn, now, &new, &hash, NotPersonnel).is_err());
    assert_eq!(crate::schema::account_applications::table.count().get_result::<i64>(&mut conn).unwrap(), 0);
}

/// R-AUD-07 on identity's side: a notice from the audit service (a finding for the ethics and IT
/// units) becomes one notification per active holder of its roles in its agency (and unit), and a
/// redelivery of the same notice adds nothing.
#[test]
fn r_aud_07_a_notice_from_audit_tells_each_active_holder_of_its_roles_once() {
    use crate::domain::notices::{self, Intake, Notice};
    use crate::schema::notifications as outbox;
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let rows = |conn: &mut PooledConn| -> i64 { outbox::table.count().get_result(conn).unwrap() };
    let roles = |list: &[&str]| list.iter().map(|r| (*r).to_owned()).collect::<Vec<String>>();
    let finding_roles = roles(&["ethics_officer", "it_officer"]);
    let notice_id = uuid::Uuid::now_v7().to_string();
    let notice =
        Notice::parse(&notice_id, "TPE-SW", None, &finding_roles, "稽核發現 Audit finding", "查詢目的與業務不符")
            .unwrap();
    let before = rows(&mut conn);

    assert_eq!(notices::receive(&mut conn, now, &notice).unwrap(), Intake { queued: 2, duplicate: false });
    for who in ["tpe.ethics", "tpe.it"] {
        let sent = notifications::for_recipient(&mut conn, &format!("{who}@demo.immilink.invalid")).unwrap();
        assert_eq!(sent.len(), 1, "{who}");
        assert_eq!((sent[0].subject.as_str(), sent[0].body.as_str()), ("稽核發現 Audit finding", "查詢目的與業務不符"));
        // The row id keeps the notice's time prefix, so the outbox stays in time order.
        assert_eq!(sent[0].id.as_str()[..13], notice_id[..13]);
    }
    assert!(notifications::for_recipient(&mut conn, "tpe.manager@demo.immilink.invalid").unwrap().is_empty());
    // Redelivered (audit did not hear the answer): nothing is added.
    assert_eq!(notices::receive(&mut conn, now, &notice).unwrap(), Intake { queued: 0, duplicate: true });
    assert_eq!(rows(&mut conn), before + 2);

    // Only active holders: a suspended IT officer is not told of the next notice.
    diesel::update(users::table.filter(users::username.eq("tpe.it")))
        .set(users::status.eq(AccountStatus::Suspended))
        .execute(&mut conn)
        .unwrap();
    let next = Notice::parse(&uuid::Uuid::now_v7().to_string(), "TPE-SW", None, &finding_roles, "s", "b").unwrap();
    assert_eq!(notices::receive(&mut conn, now, &next).unwrap().queued, 1);
    // A unit narrows it; another agency's unit matches nobody; an unknown agency tells nobody.
    let tpe_unit = unit_of(&mut conn, "tpe.supervisor");
    let hln_unit = unit_of(&mut conn, "hln.supervisor");
    let managers = roles(&["account_manager", "account_manager"]);
    let in_unit =
        Notice::parse(&uuid::Uuid::now_v7().to_string(), "TPE-SW", Some(tpe_unit.as_str()), &managers, "s", "b")
            .unwrap();
    assert_eq!(in_unit.roles, ["account_manager"], "roles are taken once");
    assert_eq!(notices::receive(&mut conn, now, &in_unit).unwrap().queued, 1);
    let elsewhere =
        Notice::parse(&uuid::Uuid::now_v7().to_string(), "TPE-SW", Some(hln_unit.as_str()), &managers, "s", "b")
            .unwrap();
    assert_eq!(notices::receive(&mut conn, now, &elsewhere).unwrap(), Intake { queued: 0, duplicate: false });
    let unknown = Notice::parse(&uuid::Uuid::now_v7().to_string(), "NO-SUCH", None, &finding_roles, "s", "b").unwrap();
    assert_eq!(notices::receive(&mut conn, now, &unknown).unwrap(), Intake { queued: 0, duplicate: false });

    // A malformed notice is refused naming its field.
    let field = |result: Result<Notice, IdentityError>| match result {
        Err(IdentityError::Invalid { field, .. } | IdentityError::Missing { field }) => field,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(field(Notice::parse("not-a-uuid", "TPE-SW", None, &finding_roles, "s", "b")), "id");
    assert_eq!(
        field(Notice::parse(&notice_id, "TPE-SW", None, &roles(&["ethics_officer", "janitor"]), "s", "b")),
        "roles[1]"
    );
    assert_eq!(field(Notice::parse(&notice_id, "TPE-SW", None, &[], "s", "b")), "roles");
    assert_eq!(field(Notice::parse(&notice_id, "TPE-SW", None, &finding_roles, " ", "b")), "subject");
}

mod contractors;
mod links;
mod logins;
