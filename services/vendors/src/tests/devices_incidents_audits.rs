//! Dedicated machines (R-VEN-07), incidents (R-VEN-03) and vendor audits (R-VEN-05) over HTTP: the
//! refusals' wire answers (status, code, field, rule), the roles, and another agency's 404 on every
//! endpoint family. The clock rules (due dates, the sweep) are proven by the domain tests with an
//! injected clock.

use chrono::{Duration, SecondsFormat};

use super::*;

/// A user token with its own subject, so that two managers of one agency are two people.
fn token_as(sub: &str, agency: &str, roles: &[&str]) -> String {
    let now = Utc::now().timestamp();
    let claims = AccessClaims {
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        sub: sub.into(),
        sid: format!("session-{sub}"),
        agency: agency.into(),
        unit: None,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        iat: now,
        exp: now + 600,
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(KID.into());
    let der = hex_decode(TEST_KEY_DER);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
}

fn ago(duration: Duration) -> String {
    (Utc::now() - duration).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A problem's status, code, field and rule.
async fn problem_of<B: actix_web::body::MessageBody>(
    response: actix_web::dev::ServiceResponse<B>,
) -> (u16, String, Option<String>, Option<String>) {
    let status = response.status().as_u16();
    let problem: Problem = actix_test::read_body_json(response).await;
    (status, problem.code, problem.field, problem.rule)
}

/// The problem `app` answers to `request`.
macro_rules! refusal {
    ($app:expr, $request:expr) => {
        problem_of(actix_test::call_service($app, $request.to_request()).await)
    };
}

fn answer(
    status: u16,
    code: &str,
    field: Option<&str>,
    rule: Option<&str>,
) -> (u16, String, Option<String>, Option<String>) {
    (status, code.to_owned(), field.map(str::to_owned), rule.map(str::to_owned))
}

/// Registers a vendor of the token's agency and two draft contracts; answers the vendor's path and
/// the two contracts' paths.
macro_rules! vendor_with_contracts {
    ($app:expr, $manager:expr) => {{
        let (app, manager) = ($app, $manager);
        let vendor: Value = actix_test::call_and_read_body_json(
            app,
            post("/v1/vendors", manager, json!({"name": "臺灣資訊服務股份有限公司", "business_number": "22099131"}))
                .to_request(),
        )
        .await;
        let vendor = format!("/v1/vendors/{}", vendor["id"].as_str().unwrap());
        let mut contracts = Vec::new();
        for title in ["維護案", "開發案"] {
            let body = json!({"title": title, "scope": "系統維護", "starts_on": "2026-01-01", "ends_on": "2027-12-31",
                "custom_development": false});
            let created =
                actix_test::call_service(app, post(&format!("{vendor}/contracts"), manager, body).to_request()).await;
            assert_eq!(created.status(), 201);
            let contract: Value = actix_test::read_body_json(created).await;
            contracts.push(format!("{vendor}/contracts/{}", contract["id"].as_str().unwrap()));
        }
        let b = contracts.pop().unwrap();
        let a = contracts.pop().unwrap();
        (vendor, a, b)
    }};
}

/// R-VEN-07 at the HTTP edge: a second assignment is 409 naming the rule and the field; an online
/// machine or an unlicensed program is 422 naming the field and the rule, and writes nothing; the
/// vendor's staff attests, pushing the due date by 90 days.
#[actix_web::test]
async fn r_ven_07_over_http_a_second_assignment_and_bad_attestations_are_refused_naming_the_rule() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let (_, a, b) = vendor_with_contracts!(&app, &tpe);
    let machine = json!({"asset_tag": "TPE-IT-0042", "serial_number": "5CG1234XYZ", "description": "開發用筆電"});
    let created = actix_test::call_service(&app, post(&format!("{a}/devices"), &tpe, machine).to_request()).await;
    assert_eq!(created.status(), 201);
    let device: Value = actix_test::read_body_json(created).await;
    assert_eq!(
        (&device["status"], &device["attestation"], &device["overdue"]),
        (&json!("registered"), &Value::Null, &json!(false))
    );
    let device_path = format!("{a}/devices/{}", device["id"].as_str().unwrap());

    let again = json!({"asset_tag": "TPE-IT-0099", "serial_number": "5cg1234xyz", "description": "同一台"});
    assert_eq!(
        refusal!(&app, post(&format!("{b}/devices"), &tpe, again)).await,
        answer(409, "device_already_assigned", Some("serial_number"), Some("R-VEN-07"))
    );
    let attestations = format!("{device_path}/attestations");
    let windows = json!({"name": "Windows 11 Pro", "licence_ref": "MS-VL-0012"});
    for (body, field) in [
        (json!({"offline": false, "software": [windows.clone()]}), "offline"),
        (json!({"offline": true, "software": [windows.clone(), {"name": "WinRAR"}]}), "software[1].licence_ref"),
    ] {
        assert_eq!(
            refusal!(&app, post(&attestations, &tpe, body)).await,
            answer(422, "attestation_refused", Some(field), Some("R-VEN-07"))
        );
    }
    assert_eq!(
        refusal!(&app, post(&attestations, &tpe, json!({"software": []}))).await,
        answer(422, "missing_field", Some("offline"), None)
    );
    let listed: Value =
        actix_test::call_and_read_body_json(&app, get(&format!("{a}/devices"), &tpe).to_request()).await;
    assert_eq!(
        (&listed[0]["status"], &listed[0]["attestation"]),
        (&json!("registered"), &Value::Null),
        "nothing written"
    );
    let on_b: Value = actix_test::call_and_read_body_json(&app, get(&format!("{b}/devices"), &tpe).to_request()).await;
    assert_eq!(on_b, json!([]));

    let staff = token_as("staff-1", "TPE-SW", &["vendor_staff"]);
    let attested = actix_test::call_service(
        &app,
        post(&attestations, &staff, json!({"offline": true, "software": [windows]})).to_request(),
    )
    .await;
    assert_eq!(attested.status(), 200);
    let attested: Value = actix_test::read_body_json(attested).await;
    let due = immilink_shared::clock::business_date(Utc::now()) + Duration::days(90);
    assert_eq!(attested["attestation_due_on"], json!(due));
    assert_eq!(
        (&attested["attestation"]["offline"], &attested["attestation"]["attested_by"]),
        (&json!(true), &json!("staff-1"))
    );
    assert_eq!(attested["attestation"]["software"][0]["licence_ref"], "MS-VL-0012");
    // Staff neither register nor retire.
    let retirement = format!("{device_path}/retirement");
    assert_eq!(refusal!(&app, post(&retirement, &staff, json!({}))).await, answer(403, "role_required", None, None));

    let overdue: Value =
        actix_test::call_and_read_body_json(&app, get("/v1/vendor-devices?overdue=true", &staff).to_request()).await;
    assert_eq!(overdue, json!([]));
    let in_use: Value =
        actix_test::call_and_read_body_json(&app, get("/v1/vendor-devices?overdue=false", &tpe).to_request()).await;
    assert_eq!(in_use[0]["id"], device["id"]);
    let retired = actix_test::call_service(&app, post(&retirement, &tpe, json!({"reason": "報廢"})).to_request()).await;
    assert_eq!(retired.status(), 200);
    let retired: Value = actix_test::read_body_json(retired).await;
    assert_eq!((&retired["status"], &retired["retirement_reason"]), (&json!("retired"), &json!("報廢")));
    assert_eq!(
        refusal!(&app, post(&attestations, &tpe, json!({"offline": true, "software": []}))).await,
        answer(409, "illegal_status_change", None, None)
    );
}

/// R-VEN-03 at the HTTP edge: a report more than an hour after learning is flagged late, one within
/// it is not; `learned_at` after now or before `occurred_at` is 422 naming it.
#[actix_web::test]
async fn r_ven_03_over_http_a_late_report_is_flagged_and_learned_at_is_checked() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let (vendor, _, _) = vendor_with_contracts!(&app, &tpe);
    let incidents = format!("{vendor}/incidents");
    let staff = token_as("staff-1", "TPE-SW", &["vendor_staff"]);
    let report = |occurred: Duration, learned: Duration| {
        json!({"occurred_at": ago(occurred), "learned_at": ago(learned), "description": "專屬設備遭植入惡意程式",
            "measures": "已隔離設備並更換密碼"})
    };
    let late = actix_test::call_service(
        &app,
        post(&incidents, &staff, report(Duration::hours(5), Duration::hours(2))).to_request(),
    )
    .await;
    assert_eq!(late.status(), 201);
    let late: Value = actix_test::read_body_json(late).await;
    let on_time: Value = actix_test::call_and_read_body_json(
        &app,
        post(&incidents, &tpe, report(Duration::hours(1), Duration::minutes(5))).to_request(),
    )
    .await;
    assert_eq!(
        (&late["late"], &on_time["late"], &late["report_limit_minutes"]),
        (&json!(true), &json!(false), &json!(60))
    );
    assert_eq!(late["reported_by"], "staff-1");

    for body in [report(Duration::hours(1), -Duration::hours(1)), report(Duration::hours(1), Duration::hours(2))] {
        assert_eq!(
            refusal!(&app, post(&incidents, &tpe, body)).await,
            answer(422, "invalid_field", Some("learned_at"), Some("R-VEN-03"))
        );
    }
    let without_measures =
        json!({"occurred_at": ago(Duration::hours(1)), "learned_at": ago(Duration::hours(1)), "description": "x"});
    assert_eq!(
        refusal!(&app, post(&incidents, &tpe, without_measures)).await,
        answer(422, "missing_field", Some("measures"), None)
    );
    let listed: Value = actix_test::call_and_read_body_json(&app, get(&incidents, &tpe).to_request()).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(refusal!(&app, get(&incidents, &staff)).await, answer(403, "role_required", None, None));
}

/// R-VEN-05 at the HTTP edge: a finding is remediated, refused closure by its remediator (403 naming
/// the rule), closed by another manager, and listed by status.
#[actix_web::test]
async fn r_ven_05_over_http_a_finding_is_closed_by_someone_other_than_its_remediator() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let first = token_as("manager-1", "TPE-SW", &["vendor_manager"]);
    let second = token_as("manager-2", "TPE-SW", &["account_manager"]);
    let (vendor, _, _) = vendor_with_contracts!(&app, &first);
    let body = json!({"audited_on": immilink_shared::clock::business_date(Utc::now()), "auditor": "資訊室 陳稽核",
        "scope": "專屬設備", "summary": "一項缺失", "findings": [{"description": "未安裝防毒軟體"}]});
    let recorded = actix_test::call_service(&app, post(&format!("{vendor}/audits"), &first, body).to_request()).await;
    assert_eq!(recorded.status(), 201);
    let recorded: Value = actix_test::read_body_json(recorded).await;
    let finding = recorded["findings"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(recorded["findings"][0]["status"], "open");
    let (remediation, closure) =
        (format!("/v1/vendor-findings/{finding}/remediation"), format!("/v1/vendor-findings/{finding}/closure"));

    assert_eq!(
        refusal!(&app, post(&closure, &second, json!({}))).await,
        answer(409, "finding_status", None, Some("R-VEN-05"))
    );
    assert_eq!(
        refusal!(&app, post(&remediation, &first, json!({"remediation": " "}))).await,
        answer(422, "missing_field", Some("remediation"), None)
    );
    let remediated =
        actix_test::call_service(&app, post(&remediation, &first, json!({"remediation": "已安裝"})).to_request()).await;
    assert_eq!(remediated.status(), 200);
    assert_eq!(
        refusal!(&app, post(&closure, &first, json!({}))).await,
        answer(403, "four_eyes", None, Some("R-VEN-05"))
    );
    let closed: Value =
        actix_test::call_and_read_body_json(&app, post(&closure, &second, json!({"note": "複查確認"})).to_request())
            .await;
    assert_eq!(
        (&closed["status"], &closed["remediated_by"], &closed["closed_by"]),
        (&json!("closed"), &json!("manager-1"), &json!("manager-2"))
    );

    let closed_list: Value =
        actix_test::call_and_read_body_json(&app, get("/v1/vendor-findings?status=closed", &first).to_request()).await;
    assert_eq!(closed_list.as_array().map(Vec::len), Some(1));
    let open_list: Value =
        actix_test::call_and_read_body_json(&app, get("/v1/vendor-findings?status=open", &first).to_request()).await;
    assert_eq!(open_list, json!([]));
    let audits: Value =
        actix_test::call_and_read_body_json(&app, get(&format!("{vendor}/audits"), &second).to_request()).await;
    assert_eq!(audits[0]["findings"][0]["status"], "closed");
}

/// The vendor manager of agency A manages A's vendors only: another agency's manager (or staff) gets
/// 404 from every device, incident, audit and finding endpoint, and empty agency lists.
#[actix_web::test]
async fn another_agencys_manager_gets_404_from_every_device_incident_and_audit_endpoint() {
    let test_db = TestDb::new();
    let app = app!(test_db);
    let tpe = token("TPE-SW", &["vendor_manager"]);
    let (vendor, a, _) = vendor_with_contracts!(&app, &tpe);
    let device: Value = actix_test::call_and_read_body_json(
        &app,
        post(
            &format!("{a}/devices"),
            &tpe,
            json!({"asset_tag": "T-1", "serial_number": "SN-1", "description": "筆電"}),
        )
        .to_request(),
    )
    .await;
    let device_path = format!("{a}/devices/{}", device["id"].as_str().unwrap());
    let recorded: Value = actix_test::call_and_read_body_json(
        &app,
        post(
            &format!("{vendor}/audits"),
            &tpe,
            json!({"audited_on": "2026-01-05", "auditor": "a", "scope": "s",
            "summary": "x", "findings": [{"description": "d"}]}),
        )
        .to_request(),
    )
    .await;
    let finding = recorded["findings"][0]["id"].as_str().unwrap().to_owned();
    let incident = json!({"occurred_at": ago(Duration::minutes(20)), "learned_at": ago(Duration::minutes(10)),
        "description": "d", "measures": "m"});

    let hln = token("HLN-HR", &["vendor_manager", "account_manager"]);
    let hln_staff = token_as("staff-h", "HLN-HR", &["vendor_staff"]);
    let requests = [
        post(&format!("{a}/devices"), &hln, json!({"asset_tag": "H-1", "serial_number": "SN-9", "description": "x"})),
        get(&format!("{a}/devices"), &hln),
        post(&format!("{device_path}/attestations"), &hln, json!({"offline": true, "software": []})),
        post(&format!("{device_path}/attestations"), &hln_staff, json!({"offline": true, "software": []})),
        post(&format!("{device_path}/retirement"), &hln, json!({})),
        post(&format!("{vendor}/incidents"), &hln, incident.clone()),
        post(&format!("{vendor}/incidents"), &hln_staff, incident),
        get(&format!("{vendor}/incidents"), &hln),
        post(
            &format!("{vendor}/audits"),
            &hln,
            json!({"audited_on": "2026-01-05", "auditor": "a", "scope": "s", "summary": "x"}),
        ),
        get(&format!("{vendor}/audits"), &hln),
        post(&format!("/v1/vendor-findings/{finding}/remediation"), &hln, json!({"remediation": "r"})),
        post(&format!("/v1/vendor-findings/{finding}/closure"), &hln, json!({})),
    ];
    for request in requests {
        let (status, code, _, _) = refusal!(&app, request).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
    }
    for uri in ["/v1/vendor-devices", "/v1/vendor-findings"] {
        let listed: Value = actix_test::call_and_read_body_json(&app, get(uri, &hln).to_request()).await;
        assert_eq!(listed, json!([]), "{uri}");
    }
    // Nothing changed for agency A.
    let ours: Value =
        actix_test::call_and_read_body_json(&app, get("/v1/vendor-findings?status=open", &tpe).to_request()).await;
    assert_eq!(ours[0]["id"], json!(finding));
    let devices: Value = actix_test::call_and_read_body_json(&app, get("/v1/vendor-devices", &tpe).to_request()).await;
    assert_eq!((&devices[0]["status"], devices.as_array().map(Vec::len)), (&json!("registered"), Some(1)));
}

#[test]
fn device_incident_and_audit_routes_are_documented() {
    let doc = crate::openapi();
    for path in [
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/attestations",
        "/v1/vendors/{vendor_id}/contracts/{contract_id}/devices/{device_id}/retirement",
        "/v1/vendor-devices",
        "/v1/vendors/{vendor_id}/incidents",
        "/v1/vendors/{vendor_id}/audits",
        "/v1/vendor-findings/{finding_id}/remediation",
        "/v1/vendor-findings/{finding_id}/closure",
        "/v1/vendor-findings",
    ] {
        assert!(doc.paths.paths.contains_key(path), "{path}");
    }
}
