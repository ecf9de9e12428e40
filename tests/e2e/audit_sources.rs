//! Every service's audited acts reach the one audit log under their own source: identity's (a login,
//! a failed login) and vendors' (a vendor registered), delivered by each service's outbox relay and
//! read back through `GET /v1/audit/records` by a reader of that agency.

use serde_json::{json, Value};

use crate::harness::{within, TestStack};

const TEST_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

#[actix_web::test]
async fn identity_and_vendors_events_reach_the_audit_log_under_their_own_source() {
    let t = TestStack::spawn().await;
    let ended = within(TEST_LIMIT, async {
        let caseworker = t.login("tpe.caseworker").await;
        let caseworker_id = t.user_id(&caseworker).await;
        let refused = t.login_response(&t.http, "tpe.supervisor", "not-the-password", "DEMO-tpe.supervisor").await;
        assert_eq!(refused.status(), 401);
        let vendor_manager = t.login("tpe.vendors").await;
        let registered = t
            .post(
                &vendor_manager,
                "/v1/vendors",
                &json!({ "name": "臺灣資訊服務股份有限公司", "business_number": "22099131" }),
            )
            .await;
        assert_eq!(registered.status(), 201);
        let vendor: Value = registered.json().await.expect("vendor");
        let vendor_id = vendor["id"].as_str().expect("vendor id").to_owned();

        // Read as the agency's account manager, who reads TPE-SW's records.
        let manager = t.login("tpe.manager").await;
        let login = t
            .wait_for_audit_record_of(&manager, "session.opened", |r| {
                r["actor_user_id"].as_str() == Some(caseworker_id.as_str())
            })
            .await;
        assert_eq!(login["source"], "identity");
        assert_eq!(login["agency"], "TPE-SW");
        assert_eq!(login["subject_id"], Value::Null);
        let failed =
            t.wait_for_audit_record_of(&manager, "login.failed", |r| payload(r)["username"] == "tpe.supervisor").await;
        assert_eq!(failed["source"], "identity");
        assert_eq!(payload(&failed)["reason"], "wrong password");
        assert!(!failed["payload"].as_str().unwrap_or_default().contains("not-the-password"));
        let vendor_record = t
            .wait_for_audit_record_of(&manager, "vendor.registered", |r| {
                r["correlation_id"].as_str() == Some(vendor_id.as_str())
            })
            .await;
        assert_eq!(vendor_record["source"], "vendors");
        assert_eq!(vendor_record["agency"], "TPE-SW");
        assert_eq!(payload(&vendor_record)["business_number"], "22099131");
        // The chain still verifies with every source in it.
        let verified: Value = t.get(&manager, "/v1/audit/verify").await.json().await.expect("verification");
        assert_eq!(verified["ok"], true, "{verified}");
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// A record's payload, stored as canonical JSON text.
fn payload(record: &Value) -> Value {
    serde_json::from_str(record["payload"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
}
