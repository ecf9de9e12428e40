//! Login lockout and the address a failure comes from (R-ACC-11), in the domain and through the
//! login handler (where the per-address throttle lives).

use std::net::IpAddr;

use chrono::{Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use immilink_shared::events::kind;
use immilink_shared::testing::TestDb;

use super::{attempt, audit_events, seeded, user_id};
use crate::domain::sessions::{end_session, login, SessionEndReason, MAX_FAILED_LOGINS};
use crate::domain::IdentityError;
use crate::schema::users;

const UNBOUND: &str = "127.0.0.2";

/// R-ACC-11: a login from an address the account is not bound to is refused whatever it presents,
/// so its wrong passwords and certificates do not count towards the account's lockout: otherwise
/// anyone could lock the owner out of their own desk. Each is still recorded as `login.failed`,
/// naming the address. Failures from a bound address still lock the account, as before.
#[test]
fn r_acc_11_failures_from_an_unbound_address_do_not_lock_the_account() {
    let test_db = TestDb::new();
    let mut conn = seeded(&test_db);
    let now = Utc::now();
    let id = user_id(&mut conn, "tpe.caseworker");
    let unbound: IpAddr = UNBOUND.parse().unwrap();
    let refused = |conn: &mut _, attempt| matches!(login(conn, now, attempt), Err(IdentityError::LoginRefused));
    let lockout = |conn: &mut _| -> (i32, Option<NaiveDateTime>) {
        users::table.filter(users::id.eq(&id)).select((users::failed_logins, users::locked_until)).first(conn).unwrap()
    };

    let mut wrong_password = attempt("tpe.caseworker");
    wrong_password.password = "guess".into();
    wrong_password.ip = unbound;
    let mut wrong_certificate = attempt("tpe.caseworker");
    wrong_certificate.certificate_serial = "DEMO-tpe.manager".into();
    wrong_certificate.ip = unbound;
    for _ in 0..MAX_FAILED_LOGINS + 2 {
        assert!(refused(&mut conn, &wrong_password));
        assert!(refused(&mut conn, &wrong_certificate));
    }
    assert_eq!(lockout(&mut conn), (0, None), "nothing counted towards the lockout");
    let events = audit_events(&mut conn);
    assert_eq!(events.len(), 2 * (MAX_FAILED_LOGINS as usize + 2));
    for event in &events {
        assert_eq!(event.kind, kind::LOGIN_FAILED, "each refusal is recorded, and no lockout");
        assert_eq!(event.actor_user_id.as_deref(), Some(id.as_str()));
        assert_eq!(event.payload["ip"], UNBOUND);
        assert!(event.payload["reason"].as_str().unwrap().contains("unregistered IP"), "{}", event.payload);
    }
    assert_eq!(events[0].payload["reason"], "wrong password, from an unregistered IP (not counted)");
    // The right credentials from there are refused too (R-ACC-11)...
    let mut right_elsewhere = attempt("tpe.caseworker");
    right_elsewhere.ip = unbound;
    assert!(refused(&mut conn, &right_elsewhere));
    // ...and the owner logs in at their desk.
    let session = login(&mut conn, now, &attempt("tpe.caseworker")).unwrap();
    end_session(&mut conn, now, &session.session_id, SessionEndReason::Logout, Some(&id)).unwrap();

    // Failures from the bound address still lock the account, even for the right password.
    let mut wrong_at_the_desk = attempt("tpe.caseworker");
    wrong_at_the_desk.password = "guess".into();
    for _ in 0..MAX_FAILED_LOGINS - 1 {
        assert!(refused(&mut conn, &wrong_at_the_desk));
    }
    assert_eq!(lockout(&mut conn), (MAX_FAILED_LOGINS - 1, None), "each one counted");
    assert!(refused(&mut conn, &wrong_at_the_desk));
    assert!(lockout(&mut conn).1.is_some(), "locked");
    assert!(refused(&mut conn, &attempt("tpe.caseworker")));
    assert!(login(&mut conn, now + Duration::minutes(16), &attempt("tpe.caseworker")).is_ok());
}

/// Through the login handler: the failures from an unbound address count in that address's throttle
/// (it is told to wait, 429) but not towards the account's lockout, so the owner still logs in from
/// the bound address.
#[actix_web::test]
async fn r_acc_11_failures_from_an_unbound_address_count_in_its_throttle_not_in_the_lockout() {
    use actix_web::{test as actix_test, web};
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::rate_limit::RateLimiter;
    use serde_json::json;
    use utoipa_actix_web::AppExt;

    use crate::domain::demo::{self, DEMO_PASSWORD};
    use crate::keys::SigningKeys;
    use crate::MIGRATIONS;

    let test_db = TestDb::new();
    let db = Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).unwrap();
    demo::seed(&mut db.get().unwrap(), Utc::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = SigningKeys::load(&dir.path().join("key.pk8"), true).unwrap();
    let throttle = MAX_FAILED_LOGINS as u32 + 2;
    let mut state = super::contractors::endpoint::state(&db, keys);
    state.login_failures = RateLimiter::new(throttle, std::time::Duration::from_secs(60));
    let app = actix_test::init_service(
        immilink_shared::server::base_app()
            .app_data(web::Data::new(state))
            .into_utoipa_app()
            .configure(crate::routes::configure)
            .into_app(),
    )
    .await;
    let login = |ip: &str, password: &str| {
        actix_test::TestRequest::post()
            .uri("/v1/auth/login")
            .peer_addr(format!("{ip}:40000").parse().unwrap())
            .set_json(json!({
                "username": "tpe.caseworker",
                "password": password,
                "certificate_serial": "DEMO-tpe.caseworker",
            }))
            .to_request()
    };

    for _ in 0..throttle {
        let response = actix_test::call_service(&app, login(UNBOUND, "guess")).await;
        assert_eq!(response.status().as_u16(), 401);
    }
    let throttled = actix_test::call_service(&app, login(UNBOUND, DEMO_PASSWORD)).await;
    assert_eq!(throttled.status().as_u16(), 429, "the address counted every failure");
    let (failed, locked_until): (i32, Option<NaiveDateTime>) = users::table
        .filter(users::username.eq("tpe.caseworker"))
        .select((users::failed_logins, users::locked_until))
        .first(&mut db.get().unwrap())
        .unwrap();
    assert_eq!((failed, locked_until), (0, None), "the account counted none");
    let at_the_desk = actix_test::call_service(&app, login("127.0.0.1", DEMO_PASSWORD)).await;
    assert_eq!(at_the_desk.status().as_u16(), 200);
}
