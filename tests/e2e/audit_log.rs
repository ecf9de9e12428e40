//! The audit log as an inspector meets it through the gateway: a lookup's record proven against a
//! checkpoint signed by the log and cosigned by the immigration agency (nia-mock as the witness),
//! checked here with the keys the API publishes; and readers kept to their own agency.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use immilink_shared::transparency::CosignatureVerifier;
use serde_json::Value;
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use crate::harness::{permitted_lookup, problem, TestStack};

fn hashes(value: &Value) -> Vec<Hash> {
    value.as_array().unwrap().iter().map(|h| Hash::parse_hash(h.as_str().unwrap()).unwrap()).collect()
}

/// Issues a checkpoint now and returns it, checked with the published keys: signed by the log,
/// cosigned by the witness, the size and root it states.
async fn witnessed_checkpoint(t: &TestStack, token: &str, keys: &Value) -> (u64, Hash, Value) {
    let checkpoint: Value = t.post(token, "/v1/audit/checkpoints", &Value::Null).await.json().await.unwrap();
    assert!(checkpoint["witnessed_at"].is_string(), "cosigned by the witness: {checkpoint}");
    let note = Note::from_bytes(checkpoint["note"].as_str().unwrap().as_bytes()).unwrap();
    let log = StandardVerifier::new(keys["log"].as_str().unwrap()).unwrap();
    note.verify(&VerifierList::new(vec![Box::new(log) as Box<dyn Verifier>])).expect("signed by the log");
    let witness = CosignatureVerifier::new(keys["witnesses"][0].as_str().unwrap()).unwrap();
    note.verify(&VerifierList::new(vec![Box::new(witness) as Box<dyn Verifier>])).expect("cosigned by the witness");
    let body = Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(body.size() as i64, checkpoint["tree_size"].as_i64().unwrap());
    assert_eq!(BASE64.encode(body.hash().0), checkpoint["root_hash"].as_str().unwrap());
    (body.size(), *body.hash(), checkpoint)
}

#[actix_web::test]
async fn r_aud_02_a_lookup_is_proven_against_a_checkpoint_the_witness_cosigned() {
    let t = TestStack::spawn().await;
    let caseworker = t.login("tpe.caseworker").await;
    let manager = t.login("tpe.manager").await;
    let lookup: Value = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await.json().await.unwrap();
    let record = t.wait_for_audit_record(&manager, lookup["audit_id"].as_str().unwrap()).await;

    let keys: Value = t.get(&manager, "/v1/audit/log-key").await.json().await.unwrap();
    assert_eq!(keys["witnesses"].as_array().unwrap().len(), 1, "{keys}");
    let (size, root, _) = witnessed_checkpoint(&t, &manager, &keys).await;
    // The log issues its own checkpoints every second too (and late events may arrive), so the
    // latest is this one or a later, larger one.
    let latest: Value = t.get(&manager, "/v1/audit/checkpoints/latest").await.json().await.unwrap();
    assert!(latest["tree_size"].as_u64().is_some_and(|latest| latest >= size), "{latest} covers {size}");

    // The record's inclusion, checked with nothing but its hash, the proof and the signed root.
    let id = record["id"].as_str().unwrap();
    let proof: Value =
        t.get(&manager, &format!("/v1/audit/records/{id}/proof?tree_size={size}")).await.json().await.unwrap();
    let index = proof["index"].as_u64().unwrap();
    assert_eq!(index, record["sequence"].as_u64().unwrap() - 1);
    let content: [u8; 32] = hex_decode(record["hash"].as_str().unwrap());
    let leaf = tlog_tiles::record_hash(&content);
    tlog_tiles::check_record(&hashes(&proof["hashes"]), size, root, index, leaf).expect("inclusion proof");

    // The log grows; the next checkpoint extends the last, as the consistency proof shows.
    t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await;
    let mut grown = (size, root);
    for _ in 0..100 {
        let next = witnessed_checkpoint(&t, &manager, &keys).await;
        if next.0 > size {
            grown = (next.0, next.1);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(grown.0 > size, "the second lookup's records reached the log");
    let path = format!("/v1/audit/consistency?first={size}&second={}", grown.0);
    let consistency: Value = t.get(&manager, &path).await.json().await.unwrap();
    tlog_tiles::check_tree(&hashes(&consistency["hashes"]), grown.0, grown.1, size, root).expect("consistency proof");

    let verify: Value = t.get(&manager, "/v1/audit/verify").await.json().await.unwrap();
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["witnessed"], true, "{verify}");
    assert_eq!(verify["checkpoint"]["ok"], true, "{verify}");
    // The export an inspector takes away, checked offline with the keys they were given.
    let export = t.get(&manager, "/v1/audit/export").await;
    assert_eq!(export.status(), 200);
    let bundle: Value = export.json().await.unwrap();
    assert!(bundle["records"].as_array().unwrap().iter().all(|r| r["agency"] == "TPE-SW"), "own agency only");
    assert!(bundle["records"].as_array().unwrap().iter().any(|r| r["id"] == record["id"]));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let args = |extra: &[&str]| {
        let mut args = vec![file.to_str().unwrap().to_owned()];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    let (log_key, witness_key) = (keys["log"].as_str().unwrap(), keys["witnesses"][0].as_str().unwrap());
    let verify_bundle = immilink_stack::audit::verify_bundle_command;
    assert_eq!(verify_bundle(args(&["--log-key", log_key, "--witness-key", witness_key])), 0);
    let mut forged = bundle.clone();
    forged["records"][0]["subject_id"] = Value::from("B223456789");
    std::fs::write(&file, serde_json::to_vec(&forged).unwrap()).unwrap();
    assert_eq!(verify_bundle(args(&["--log-key", log_key])), 1, "an edited record fails offline");
    // Proof parameters outside the tree are refused naming the parameter.
    let beyond = format!("/v1/audit/records/{id}/proof?tree_size={}", grown.0 + 10);
    assert_eq!(problem(t.get(&manager, &beyond).await, 422).await["field"], "tree_size");
    let backwards = format!("/v1/audit/consistency?first={}&second={size}", grown.0);
    assert_eq!(problem(t.get(&manager, &backwards).await, 422).await["field"], "first");
    t.stack.stop().await;
}

fn hex_decode(text: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect();
    bytes.try_into().unwrap()
}

#[actix_web::test]
async fn another_agencys_readers_are_refused_at_every_audit_endpoint_that_shows_records() {
    let t = TestStack::spawn().await;
    let caseworker = t.login("tpe.caseworker").await;
    let lookup: Value = t.post(&caseworker, "/v1/lookups", &permitted_lookup()).await.json().await.unwrap();
    let tpe_auditor = t.login("tpe.auditor").await;
    let record = t.wait_for_audit_record(&tpe_auditor, lookup["audit_id"].as_str().unwrap()).await;
    let id = record["id"].as_str().unwrap();
    // Taipei's auditor inspects Taipei, not Hualien (seed 003 pt 7, 9 give that to the NIA).
    let asked: Value = problem(t.get(&tpe_auditor, "/v1/audit/records?agency=HLN-HR").await, 403).await;
    assert_eq!(asked["field"], "agency");
    // Hualien's readers see nothing of Taipei's lookup, by any path.
    for reader in ["hln.manager", "hln.supervisor"] {
        let token = t.login(reader).await;
        problem(t.get(&token, "/v1/audit/records?agency=TPE-SW").await, 403).await;
        let own: Value = t.get(&token, "/v1/audit/records").await.json().await.unwrap();
        assert!(own.as_array().unwrap().iter().all(|r| r["agency"] == "HLN-HR"), "{reader}: {own}");
        let subject: Value = t.get(&token, "/v1/audit/records?subject_id=A123456789").await.json().await.unwrap();
        assert_eq!(subject.as_array().unwrap().len(), 0, "{reader}");
        problem(t.get(&token, &format!("/v1/audit/records/{id}")).await, 404).await;
        problem(t.get(&token, &format!("/v1/audit/records/{id}/proof")).await, 404).await;
    }
    // And Taipei's auditor walks every audit endpoint over a Hualien lookup, refused or shown
    // nothing each time; the log key and checkpoints carry no personal data and are any reader's.
    let clerk = t.login("hln.clerk").await;
    let hln_lookup = serde_json::json!({
        "query_type": "entry_exit_last_year", "subject_id": "F131104093",
        "legal_basis": "nationality_act", "purpose_code": "hr_nationality_change", "case_number": "HLN-2026-0077"
    });
    let answered = t.post(&clerk, "/v1/lookups", &hln_lookup).await;
    assert_eq!(answered.status(), 200, "the Hualien clerk's lookup");
    let hln: Value = answered.json().await.unwrap();
    let nia = t.login("nia.reviewer").await;
    let hln_record = t.wait_for_audit_record(&nia, hln["audit_id"].as_str().unwrap()).await;
    let hln_id = hln_record["id"].as_str().unwrap();
    problem(t.get(&tpe_auditor, &format!("/v1/audit/records/{hln_id}")).await, 404).await;
    problem(t.get(&tpe_auditor, &format!("/v1/audit/records/{hln_id}/proof")).await, 404).await;
    let by_subject: Value = t.get(&tpe_auditor, "/v1/audit/records?subject_id=F131104093").await.json().await.unwrap();
    assert_eq!(by_subject.as_array().unwrap().len(), 0, "{by_subject}");
    let by_case: Value = t
        .get(&tpe_auditor, &format!("/v1/audit/records?correlation_id={}", hln["lookup_id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_case.as_array().unwrap().len(), 0, "{by_case}");
    let bundle: Value = t.get(&tpe_auditor, "/v1/audit/export").await.json().await.unwrap();
    assert!(
        bundle["records"].as_array().unwrap().iter().all(|r| r["agency"] == "TPE-SW"),
        "no Hualien record exported"
    );
    let hold = serde_json::json!({"agency": "HLN-HR", "subject_id": "F131104093", "reason": "x"});
    problem(t.post(&tpe_auditor, "/v1/audit/holds", &hold).await, 403).await;
    for open in ["/v1/audit/log-key", "/v1/audit/checkpoints", "/v1/audit/verify"] {
        assert_eq!(t.get(&tpe_auditor, open).await.status(), 200, "{open}");
    }
    // The immigration agency's reviewer inspects every agency.
    assert_eq!(t.get(&nia, &format!("/v1/audit/records/{id}")).await.status(), 200);
    assert_eq!(t.get(&nia, "/v1/audit/records?agency=TPE-SW").await.status(), 200);
    // A caseworker reads no audit records at all.
    problem(t.get(&caseworker, &format!("/v1/audit/records/{id}")).await, 403).await;
    problem(t.get(&caseworker, "/v1/audit/consistency?first=1&second=1").await, 403).await;
    t.stack.stop().await;
}

#[actix_web::test]
async fn r_aud_01_a_legal_hold_is_placed_with_a_reason_and_lifted_only_by_someone_else() {
    let t = TestStack::spawn().await;
    let auditor = t.login("tpe.auditor").await;
    let manager = t.login("tpe.manager").await;
    let body = serde_json::json!({"subject_id": "A123456789", "reason": "臺北地方法院調閱"});
    let placed = t.post(&auditor, "/v1/audit/holds", &body).await;
    assert_eq!(placed.status(), 201);
    let hold: Value = placed.json().await.unwrap();
    assert_eq!((hold["agency"].as_str(), hold["lifted_at"].is_null()), (Some("TPE-SW"), true));
    // Bad input names the field; another agency's records cannot be held by Taipei's auditor.
    let missing = problem(t.post(&auditor, "/v1/audit/holds", &serde_json::json!({"reason": " "})).await, 422).await;
    assert_eq!(missing["field"], "reason");
    let other = serde_json::json!({"agency": "HLN-HR", "reason": "x"});
    assert_eq!(problem(t.post(&auditor, "/v1/audit/holds", &other).await, 403).await["field"], "agency");
    let lift = format!("/v1/audit/holds/{}/lift", hold["id"].as_str().unwrap());
    let own = problem(t.post(&auditor, &lift, &serde_json::json!({"reason": "結案"})).await, 403).await;
    assert_eq!(own["code"], "four_eyes");
    let lifted: Value = t.post(&manager, &lift, &serde_json::json!({"reason": "結案"})).await.json().await.unwrap();
    assert!(lifted["lifted_at"].is_string(), "{lifted}");
    problem(t.post(&manager, &lift, &serde_json::json!({"reason": "again"})).await, 409).await;
    let active: Value = t.get(&auditor, "/v1/audit/holds?active=true").await.json().await.unwrap();
    assert_eq!(active.as_array().unwrap().len(), 0);
    // Both acts are in the log under the audit service's own source.
    let placed_acts = t.audit_records(&auditor, "audit.hold_placed").await;
    let lifted_acts = t.audit_records(&auditor, "audit.hold_lifted").await;
    assert_eq!((placed_acts.len(), lifted_acts.len()), (1, 1));
    assert_eq!(placed_acts[0]["source"], "audit");
    assert_eq!(placed_acts[0]["subject_id"], Value::Null, "the hold's record carries no subject");
    t.stack.stop().await;
}
