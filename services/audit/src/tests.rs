//! Integration tests of the audit service against its real database (SQLite, or PostgreSQL when
//! TEST_DATABASE_URL is set): the chain, idempotent ingestion, and readiness.

use actix_web::{test as actix_test, web, App};
use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use immilink_shared::clock::{Clock, ManualClock};
use immilink_shared::db::{Db, DbConn, DbSettings};
use immilink_shared::events::AuditEvent;
use immilink_shared::server::ServiceName;
use immilink_shared::testing::TestDb;
use serde_json::json;

use crate::domain::chain::{self, RecordQuery};
use crate::schema::audit_records;
use crate::MIGRATIONS;
use immilink_shared::extractors::Page;

fn event(n: u32) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        kind: "lookup.requested".into(),
        occurred_at: Utc.with_ymd_and_hms(2026, 11, 23, 1, 0, n).unwrap(),
        source: "broker".into(),
        actor_user_id: Some(format!("user-{n}")),
        agency: Some("TPE-SW".into()),
        correlation_id: Some(format!("lookup-{n}")),
        subject_id: Some("A123456789".into()),
        unit: Some("unit-1".into()),
        payload: json!({"case_number": format!("C-{n}"), "purpose_code": "sw_statutory_business"}),
    }
}

fn db(test_db: &TestDb) -> Db {
    Db::connect(&DbSettings::new(test_db.url()), &MIGRATIONS).expect("test database")
}

#[test]
fn r_aud_02_chain_of_appended_records_verifies() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let now = ManualClock::starting_at(Utc::now()).now();
    let receipt = chain::append(&mut conn, now, &(1..=5).map(event).collect::<Vec<_>>()).unwrap();
    assert_eq!(receipt.appended, 5);
    let verification = chain::verify(&mut conn, None).unwrap();
    assert!(verification.ok);
    assert_eq!(verification.records, 5);
    assert_eq!(verification.first_bad_sequence, None);
}

/// Acts as someone with write access to the database would: the append-only triggers are turned
/// off (PostgreSQL) or dropped (SQLite) first, as such a person could.
fn as_intruder(conn: &mut DbConn, tamper: impl FnOnce(&mut DbConn)) {
    let statements: &[&str] = match conn {
        DbConn::Pg(_) => {
            &["ALTER TABLE audit_records DISABLE TRIGGER USER", "ALTER TABLE audit_tree_hashes DISABLE TRIGGER USER"]
        }
        DbConn::Sqlite(_) => &[
            "DROP TRIGGER IF EXISTS audit_records_no_update",
            "DROP TRIGGER IF EXISTS audit_records_no_delete",
            "DROP TRIGGER IF EXISTS audit_tree_hashes_no_update",
            "DROP TRIGGER IF EXISTS audit_tree_hashes_no_delete",
        ],
    };
    for statement in statements {
        diesel::sql_query(*statement).execute(conn).unwrap();
    }
    tamper(conn);
}

fn logged(conn: &mut DbConn, records: u32) {
    chain::append(conn, Utc::now(), &(1..=records).map(event).collect::<Vec<_>>()).unwrap();
    assert!(chain::verify(conn, None).unwrap().ok);
}

fn broken_at(conn: &mut DbConn) -> (Option<i64>, String) {
    let verification = chain::verify(conn, None).unwrap();
    assert!(!verification.ok, "tampering went unnoticed: {verification:?}");
    (verification.first_bad_sequence, verification.reason.unwrap_or_default())
}

#[test]
fn r_aud_02_the_database_refuses_to_change_or_remove_a_record() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    logged(&mut conn, 3);
    let edit = diesel::update(audit_records::table.filter(audit_records::sequence.eq(2)))
        .set(audit_records::subject_id.eq("B223456789"))
        .execute(&mut conn);
    assert!(edit.is_err(), "an UPDATE of a record was accepted");
    let removal = diesel::delete(audit_records::table.filter(audit_records::sequence.eq(3))).execute(&mut conn);
    assert!(removal.is_err(), "a DELETE of a record was accepted");
    let hashes = diesel::delete(crate::schema::audit_tree_hashes::table).execute(&mut conn);
    assert!(hashes.is_err(), "a DELETE of the tree's hashes was accepted");
    if test_db.is_postgres() {
        assert!(diesel::sql_query("TRUNCATE audit_records").execute(&mut conn).is_err(), "TRUNCATE accepted");
    }
    let kept: i64 = audit_records::table.count().get_result(&mut conn).unwrap();
    assert_eq!(kept, 3);
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

/// Changes the subject of record `sequence`, as an intruder would.
fn edit_record_at(conn: &mut DbConn, sequence: i64) {
    diesel::update(audit_records::table.filter(audit_records::sequence.eq(sequence)))
        .set(audit_records::subject_id.eq("Z999999999"))
        .execute(conn)
        .unwrap();
}

/// Sets one column of record 3 to a different value, as an intruder would.
fn edit_record_3(conn: &mut DbConn, field: &str) {
    use audit_records as r;
    let later = Utc.with_ymd_and_hms(2026, 11, 24, 1, 0, 0).unwrap().naive_utc();
    let on_3 = audit_records::table.filter(r::sequence.eq(3));
    let edited = match field {
        "kind" => diesel::update(on_3).set(r::kind.eq("lookup.refused")).execute(conn),
        "occurred_at" => diesel::update(on_3).set(r::occurred_at.eq(later)).execute(conn),
        "recorded_at" => diesel::update(on_3).set(r::recorded_at.eq(later)).execute(conn),
        "source" => diesel::update(on_3).set(r::source.eq("vendors")).execute(conn),
        "actor_user_id" => diesel::update(on_3).set(r::actor_user_id.eq("user-9")).execute(conn),
        "agency" => diesel::update(on_3).set(r::agency.eq("HLN-HR")).execute(conn),
        "correlation_id" => diesel::update(on_3).set(r::correlation_id.eq("lookup-9")).execute(conn),
        "subject_id" => diesel::update(on_3).set(r::subject_id.eq("B223456789")).execute(conn),
        "payload" => diesel::update(on_3)
            .set(r::payload.eq(r#"{"case_number":"C-3","purpose_code":"hr_other_approved"}"#))
            .execute(conn),
        "hash_scheme" => diesel::update(on_3).set(r::hash_scheme.eq(1_i16)).execute(conn),
        "unit" => diesel::update(on_3).set(r::unit.eq("unit-9")).execute(conn),
        other => panic!("no edit for {other}"),
    };
    assert_eq!(edited.unwrap(), 1);
}

#[test]
fn r_aud_02_an_edit_of_any_stored_field_is_detected_and_located() {
    let fields = [
        "kind",
        "occurred_at",
        "recorded_at",
        "source",
        "actor_user_id",
        "agency",
        "correlation_id",
        "subject_id",
        "payload",
        "hash_scheme",
        "unit",
    ];
    let test_db = TestDb::new();
    let database = db(&test_db);
    for field in fields {
        // A fresh log per field, in the same database: the previous one is emptied first.
        let mut conn = database.get().unwrap();
        as_intruder(&mut conn, |conn| {
            for table in ["audit_records", "audit_tree_hashes", "audit_checkpoints"] {
                diesel::sql_query(format!("DELETE FROM {table}")).execute(conn).unwrap();
            }
            diesel::sql_query(format!(
                "UPDATE audit_chain_head SET next_sequence = 1, tree_size = 0, last_hash = '{}'",
                chain::GENESIS_HASH
            ))
            .execute(conn)
            .unwrap();
        });
        logged(&mut conn, 5);
        as_intruder(&mut conn, |conn| edit_record_3(conn, field));
        let (first_bad, reason) = broken_at(&mut conn);
        assert_eq!(first_bad, Some(3), "an edited {field}: {reason}");
    }
}

#[test]
fn r_aud_02_a_record_deleted_in_the_middle_is_located() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    logged(&mut conn, 4);
    as_intruder(&mut conn, |conn| {
        diesel::delete(audit_records::table.filter(audit_records::sequence.eq(2))).execute(conn).unwrap();
    });
    assert_eq!(broken_at(&mut conn).0, Some(2));
}

#[test]
fn r_aud_02_a_truncated_tail_is_caught_by_the_chain_head() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    logged(&mut conn, 6);
    // The newest two records go: what is left is an unbroken chain, but not the whole log.
    as_intruder(&mut conn, |conn| {
        diesel::delete(audit_records::table.filter(audit_records::sequence.gt(4))).execute(conn).unwrap();
    });
    let (first_bad, reason) = broken_at(&mut conn);
    assert_eq!(first_bad, Some(5));
    assert!(reason.contains("6 records, 4 are stored"), "{reason}");
}

#[test]
fn r_aud_02_reordered_records_are_located() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    logged(&mut conn, 5);
    as_intruder(&mut conn, |conn| {
        let renumber = |conn: &mut DbConn, from: i64, to: i64| {
            diesel::update(audit_records::table.filter(audit_records::sequence.eq(from)))
                .set(audit_records::sequence.eq(to))
                .execute(conn)
                .unwrap();
        };
        renumber(conn, 2, -2);
        renumber(conn, 3, 2);
        renumber(conn, -2, 3);
    });
    assert_eq!(broken_at(&mut conn).0, Some(2));
}

#[test]
fn r_aud_02_a_tree_that_is_not_the_tree_of_the_records_is_caught() {
    use crate::schema::audit_tree_hashes;
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    logged(&mut conn, 5);
    as_intruder(&mut conn, |conn| {
        diesel::update(audit_tree_hashes::table.filter(audit_tree_hashes::hash_index.eq(0)))
            .set(audit_tree_hashes::hash.eq(vec![0_u8; 32]))
            .execute(conn)
            .unwrap();
    });
    let (_, reason) = broken_at(&mut conn);
    assert!(reason.contains("Merkle tree"), "{reason}");
}

#[test]
fn redelivered_events_are_stored_once() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let batch: Vec<_> = (1..=3).map(event).collect();
    chain::append(&mut conn, Utc::now(), &batch).unwrap();
    let again = chain::append(&mut conn, Utc::now(), &batch).unwrap();
    assert_eq!((again.appended, again.duplicates), (0, 3));
    let all = chain::search(&mut conn, &RecordQuery::default(), &Page::first()).unwrap();
    assert_eq!(all.len(), 3);
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn concurrent_appends_keep_one_unbroken_chain() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let database = database.clone();
            std::thread::spawn(move || {
                let mut conn = database.get().unwrap();
                for n in 0..10 {
                    chain::append(&mut conn, Utc::now(), &[event(w * 10 + n)]).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let verification = chain::verify(&mut database.get().unwrap(), None).unwrap();
    assert!(verification.ok, "{verification:?}");
    assert_eq!(verification.records, 40);
}

#[test]
fn r_aud_02_a_log_verified_while_it_grows_is_read_as_one_snapshot() {
    let test_db = TestDb::new();
    let database = db(&test_db);
    chain::append(&mut database.get().unwrap(), Utc::now(), &(1..=3).map(event).collect::<Vec<_>>()).unwrap();
    let appender = {
        let database = database.clone();
        std::thread::spawn(move || {
            let mut conn = database.get().unwrap();
            for n in 0..40 {
                chain::append(&mut conn, Utc::now(), &[event(n)]).unwrap();
            }
        })
    };
    // Each verification sees the head and the records of one moment, never a head older than the
    // records it then walks (which would read as a tampered tail).
    let mut conn = database.get().unwrap();
    let mut seen = Vec::new();
    while !appender.is_finished() || seen.len() < 5 {
        let verification = chain::verify(&mut conn, None).unwrap();
        assert!(verification.ok, "{verification:?}");
        seen.push(verification.records);
    }
    appender.join().unwrap();
    assert_eq!(chain::verify(&mut conn, None).unwrap().records, 43);
}

#[actix_web::test]
async fn readyz_fails_when_the_database_does_not_answer() {
    let test_db = TestDb::new();
    let mut settings = DbSettings::new(test_db.url());
    settings.pool_size = 1;
    settings.connect_timeout = std::time::Duration::from_millis(300);
    let database = Db::connect(&settings, &MIGRATIONS).unwrap();
    let app = actix_test::init_service(
        App::new()
            .app_data(web::Data::new(ServiceName(crate::SERVICE)))
            .app_data(web::Data::new(database.clone()))
            .service(immilink_shared::server::readyz),
    )
    .await;
    let ready = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(ready.status(), 200);
    // Hold the only connection: the database no longer answers this service.
    let held = database.get().unwrap();
    let unready = actix_test::call_service(&app, actix_test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(unready.status(), 503);
    drop(held);
}

fn reader(agency: &str, roles: &[&str]) -> immilink_shared::auth::Caller {
    immilink_shared::auth::Caller {
        user_id: immilink_shared::typed::UserId::new("reader-1"),
        session_id: immilink_shared::typed::SessionId::new("session-1"),
        agency: immilink_shared::typed::AgencyCode::new(agency),
        unit: None,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
    }
}

#[test]
fn readers_see_their_own_agency_and_only_the_immigration_agency_sees_all() {
    use crate::domain::records;
    use crate::domain::AuditError;
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut hln = event(9);
    hln.agency = Some("HLN-HR".into());
    let hln_id = hln.id.clone();
    let mut batch: Vec<_> = (1..=3).map(event).collect();
    batch.push(hln);
    chain::append(&mut conn, Utc::now(), &batch).unwrap();
    let everything = Page::first();
    let other =
        || RecordQuery { agency: Some(immilink_shared::typed::AgencyCode::new("HLN-HR")), ..RecordQuery::default() };
    // Every agency-bound reader, the auditor included, reads Taipei's records and nothing of Hualien's:
    // not by search, not by id, not as a proof.
    for role in ["auditor", "account_manager", "ethics_officer", "unit_supervisor"] {
        let tpe = immilink_shared::auth::Caller {
            unit: Some(immilink_shared::typed::UnitId::new("unit-1")),
            ..reader("TPE-SW", &[role])
        };
        let own = records::search(&mut conn, &tpe, RecordQuery::default(), &everything).unwrap();
        assert_eq!(own.len(), 3, "{role}");
        assert!(own.iter().all(|r| r.agency.as_deref() == Some("TPE-SW")), "{role}");
        assert!(
            matches!(records::search(&mut conn, &tpe, other(), &everything), Err(AuditError::OtherAgency)),
            "{role}"
        );
        assert!(matches!(records::get(&mut conn, &tpe, &hln_id), Err(AuditError::NotFound(_))), "{role}");
        let proof = records::inclusion_proof(&mut conn, &tpe, &hln_id, None);
        assert!(matches!(proof, Err(AuditError::NotFound(_))), "{role}");
    }
    let nia = reader("NIA", &["nia_reviewer"]);
    assert_eq!(records::search(&mut conn, &nia, RecordQuery::default(), &everything).unwrap().len(), 4);
    assert_eq!(records::get(&mut conn, &nia, &hln_id).unwrap().agency.as_deref(), Some("HLN-HR"));
    assert_eq!(records::inclusion_proof(&mut conn, &nia, &hln_id, Some(4)).unwrap().index, 3);
    // Without a tree size, the proof is in the latest checkpoint's tree, and there is none yet.
    let unsigned = records::inclusion_proof(&mut conn, &nia, &hln_id, None);
    assert!(matches!(unsigned, Err(AuditError::Invalid { field, .. }) if field == "tree_size"));
    let caseworker = reader("TPE-SW", &["caseworker"]);
    assert!(matches!(records::verify(&mut conn, &caseworker, None), Err(AuditError::RoleRequired { .. })));
    assert!(matches!(records::consistency_proof(&mut conn, &caseworker, 1, 2), Err(AuditError::RoleRequired { .. })));
    assert!(records::verify(&mut conn, &reader("TPE-SW", &["auditor"]), None).unwrap().ok);
}

/// RFC 6962 section 2.1, written from the text and independent of `tlog_tiles`: the hash of a
/// list of leaf hashes.
fn textbook_root(leaves: &[tlog_tiles::Hash]) -> tlog_tiles::Hash {
    use sha2::{Digest, Sha256};
    match leaves.len() {
        0 => tlog_tiles::Hash(Sha256::digest(b"").into()),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - (n - 1).leading_zeros() - 1);
            let (left, right) = (textbook_root(&leaves[..k]), textbook_root(&leaves[k..]));
            tlog_tiles::Hash(
                Sha256::new().chain_update([1]).chain_update(left.0).chain_update(right.0).finalize().into(),
            )
        }
    }
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new().chain_update([1]).chain_update(left).chain_update(right).finalize().into()
}

/// RFC 9162 section 2.1.3.2, step by step: does `proof` show `leaf` at `index` in the tree of
/// `size` leaves with root `root`?
fn textbook_inclusion(index: u64, size: u64, leaf: [u8; 32], proof: &[[u8; 32]], root: [u8; 32]) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, leaf);
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == root
}

/// RFC 9162 section 2.1.4.2, step by step: does `proof` show the tree of `second` leaves (root
/// `second_root`) extends the tree of `first` leaves (root `first_root`)?
fn textbook_consistency(
    first: u64,
    second: u64,
    first_root: [u8; 32],
    second_root: [u8; 32],
    proof: &[[u8; 32]],
) -> bool {
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if proof.is_empty() {
        return false;
    }
    let mut path = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, first_root);
    }
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node(c, &fr);
            sr = node(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == first_root && sr == second_root && snode == 0
}

#[test]
fn r_aud_02_every_proof_checks_out_with_an_independent_rfc_9162_verifier() {
    use crate::domain::{records, tree};
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let nia = reader("NIA", &["nia_reviewer"]);
    let mut leaves = Vec::new();
    let mut ids = Vec::new();
    // Appended in uneven batches, so stored hashes cross batch boundaries.
    for batch in [1_u32, 2, 4, 6] {
        let events: Vec<_> = (0..batch).map(|n| event(n + leaves.len() as u32)).collect();
        chain::append(&mut conn, Utc::now(), &events).unwrap();
        let stored = chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(500), None).unwrap()).unwrap();
        leaves = stored.iter().map(|r| tree::leaf_hash(&r.hash).unwrap()).collect();
        ids = stored.iter().map(|r| r.id.clone()).collect();
    }
    assert_eq!(leaves.len(), 13);
    for size in 1..=13_u64 {
        let root = tree::root(&mut conn, size).unwrap();
        assert_eq!(root, textbook_root(&leaves[..size as usize]), "root of {size}");
        for index in 0..size {
            let proof = records::inclusion_proof(&mut conn, &nia, &ids[index as usize], Some(size)).unwrap();
            let path: Vec<[u8; 32]> = proof.hashes.iter().map(|h| h.0).collect();
            assert!(textbook_inclusion(index, size, leaves[index as usize].0, &path, root.0), "{index} in {size}");
            assert!(!textbook_inclusion(index, size, [7; 32], &path, root.0), "a foreign leaf must not prove");
        }
        for first in 1..=size {
            let proof = records::consistency_proof(&mut conn, &nia, first, size).unwrap();
            let path: Vec<[u8; 32]> = proof.iter().map(|h| h.0).collect();
            let first_root = tree::root(&mut conn, first).unwrap();
            assert!(textbook_consistency(first, size, first_root.0, root.0, &path), "{first} to {size}");
        }
    }
    // Sizes outside the tree are refused naming the parameter, not answered.
    let refused = records::inclusion_proof(&mut conn, &nia, &ids[5], Some(5));
    assert!(matches!(refused, Err(crate::domain::AuditError::Invalid { field, .. }) if field == "tree_size"));
    let refused = records::consistency_proof(&mut conn, &nia, 3, 14);
    assert!(matches!(refused, Err(crate::domain::AuditError::Invalid { field, .. }) if field == "second"));
    let refused = records::consistency_proof(&mut conn, &nia, 0, 4);
    assert!(matches!(refused, Err(crate::domain::AuditError::Invalid { field, .. }) if field == "first"));
}

#[test]
fn the_tree_matches_the_rfc_6962_test_vectors() {
    use crate::domain::tree;
    // The leaves and roots of RFC 6962's reference test data (certificate-transparency, merkle_tree_test).
    let leaves: Vec<Vec<u8>> =
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| hex::decode(h).unwrap())
            .collect();
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut running = tree::RunningRoot::default();
    for (n, leaf) in leaves.iter().enumerate() {
        let leaf = tlog_tiles::record_hash(leaf);
        // Stored hashes (as appends write them) and the streaming root (as verify computes it).
        conn.write_transaction(|conn| tree::extend(conn, n as u64, &[leaf])).unwrap();
        running.push(leaf);
        let expected = roots[n];
        assert_eq!(hex::encode(tree::root(&mut conn, n as u64 + 1).unwrap().0), expected, "stored, size {}", n + 1);
        assert_eq!(hex::encode(running.root().0), expected, "running, size {}", n + 1);
    }
}

#[test]
fn records_stored_before_the_tree_existed_join_it_and_still_verify() {
    use crate::domain::chain::{record_hash, AuditRecord, HashScheme};
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    // Three records as the previous version stored them: hashed without recorded_at, no tree.
    let mut prev = chain::GENESIS_HASH.to_owned();
    for sequence in 1..=3_i64 {
        let e = event(sequence as u32);
        let mut record = AuditRecord {
            sequence,
            id: e.id,
            kind: e.kind,
            occurred_at: e.occurred_at.naive_utc(),
            recorded_at: e.occurred_at.naive_utc(),
            source: e.source,
            actor_user_id: e.actor_user_id,
            agency: e.agency,
            correlation_id: e.correlation_id,
            subject_id: e.subject_id,
            payload: e.payload.to_string(),
            prev_hash: prev.clone(),
            hash: String::new(),
            hash_scheme: HashScheme::WithoutRecordedAt as i16,
            disposed_at: None,
            unit: None,
        };
        record.hash = record_hash(&record).unwrap();
        prev = record.hash.clone();
        diesel::insert_into(audit_records::table)
            .values((
                audit_records::sequence.eq(record.sequence),
                audit_records::id.eq(&record.id),
                audit_records::kind.eq(&record.kind),
                audit_records::occurred_at.eq(record.occurred_at),
                audit_records::recorded_at.eq(record.recorded_at),
                audit_records::source.eq(&record.source),
                audit_records::actor_user_id.eq(&record.actor_user_id),
                audit_records::agency.eq(&record.agency),
                audit_records::correlation_id.eq(&record.correlation_id),
                audit_records::subject_id.eq(&record.subject_id),
                audit_records::payload.eq(&record.payload),
                audit_records::prev_hash.eq(&record.prev_hash),
                audit_records::hash.eq(&record.hash),
                audit_records::hash_scheme.eq(record.hash_scheme),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    diesel::sql_query(format!("UPDATE audit_chain_head SET next_sequence = 4, last_hash = '{prev}'"))
        .execute(&mut conn)
        .unwrap();
    let before = chain::verify(&mut conn, None).unwrap();
    assert_eq!(before.reason.as_deref(), Some("the Merkle tree covers 0 of the 3 records"));
    assert_eq!(chain::complete_tree(&mut conn).unwrap(), 3);
    assert!(chain::verify(&mut conn, None).unwrap().ok);
    // New records follow under the scheme that covers every field, in the same tree.
    logged(&mut conn, 2);
    let verification = chain::verify(&mut conn, None).unwrap();
    assert_eq!((verification.ok, verification.records), (true, 5));
}

#[test]
fn a_unit_supervisor_reads_only_their_own_units_records() {
    use crate::domain::records;
    use crate::domain::AuditError;
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let other_unit = AuditEvent { unit: Some("unit-2".into()), ..event(4) };
    let other_id = other_unit.id.clone();
    let no_unit = AuditEvent { unit: None, kind: "session.opened".into(), ..event(5) };
    let mut batch: Vec<_> = (1..=3).map(event).collect();
    batch.extend([other_unit, no_unit]);
    chain::append(&mut conn, Utc::now(), &batch).unwrap();
    let unit = |id: &str| Some(immilink_shared::typed::UnitId::new(id));
    let supervisor = immilink_shared::auth::Caller { unit: unit("unit-1"), ..reader("TPE-SW", &["unit_supervisor"]) };
    let everything = Page::first();
    let seen = records::search(&mut conn, &supervisor, RecordQuery::default(), &everything).unwrap();
    assert_eq!(seen.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 2, 3], "unit-1's lookups only");
    let asked = RecordQuery { unit: Some("unit-2".into()), ..RecordQuery::default() };
    assert!(matches!(records::search(&mut conn, &supervisor, asked, &everything), Err(AuditError::OtherUnit)));
    assert!(matches!(records::get(&mut conn, &supervisor, &other_id), Err(AuditError::NotFound(_))));
    assert!(matches!(records::inclusion_proof(&mut conn, &supervisor, &other_id, None), Err(AuditError::NotFound(_))));
    // Without a unit, a unit supervisor sees nothing; with an agency-wide role too, the whole agency.
    let unitless = reader("TPE-SW", &["unit_supervisor"]);
    assert!(records::search(&mut conn, &unitless, RecordQuery::default(), &everything).unwrap().is_empty());
    let manager = immilink_shared::auth::Caller {
        unit: unit("unit-1"),
        ..reader("TPE-SW", &["unit_supervisor", "account_manager"])
    };
    assert_eq!(records::search(&mut conn, &manager, RecordQuery::default(), &everything).unwrap().len(), 5);
    // The unit is hashed with the record like every other field.
    assert!(chain::verify(&mut conn, None).unwrap().ok);
}

#[test]
fn records_are_read_a_page_at_a_time_after_a_sequence() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    chain::append(&mut conn, Utc::now(), &(1..=5).map(event).collect::<Vec<_>>()).unwrap();
    let first = chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(2), None).unwrap()).unwrap();
    assert_eq!(first.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 2]);
    let next = chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(2), Some(2)).unwrap()).unwrap();
    assert_eq!(next.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3, 4]);
    // The limit is every list's: out of range is refused, not clamped.
    for bad in [0, 501] {
        assert!(Page::<i64>::new(Some(bad), None).is_err(), "{bad}");
    }
}

#[test]
fn a_delivery_is_checked_before_anything_is_appended() {
    use crate::domain::records::{Batch, MAX_BATCH};
    use crate::domain::AuditError;
    let mut nameless = event(1);
    nameless.kind = " ".into();
    let refused = Batch::parse("broker", vec![event(2), nameless]);
    assert!(matches!(refused, Err(AuditError::Invalid { field, .. }) if field == "events[1]"));
    let too_many = Batch::parse("broker", (0..=MAX_BATCH as u32).map(|n| event(n % 60)).collect());
    assert!(matches!(too_many, Err(AuditError::Invalid { field, .. }) if field == "events"));
    assert_eq!(Batch::parse("broker", vec![event(3)]).unwrap().len(), 1);
}

/// Audit intake admits each service for its own source only: vendors delivering an event that claims
/// to be the broker's is refused whole (422 naming the event's `source`) and nothing is stored;
/// its own events are stored; a service that records no audited acts is refused.
#[actix_web::test]
async fn a_service_delivers_only_events_of_its_own_source() {
    use actix_web::dev::Service as _;
    use immilink_shared::auth::CallingService;
    use immilink_shared::problem::Problem;
    let test_db = TestDb::new();
    let database = db(&test_db);
    let clock: immilink_shared::clock::SharedClock =
        std::sync::Arc::new(ManualClock::starting_at(Utc.with_ymd_and_hms(2026, 12, 2, 1, 0, 0).unwrap()));
    // Stands in for `verify_service_caller`: the caller named in `x-test-service` has a verified token.
    let app = actix_test::init_service(
        immilink_shared::server::base_app()
            .wrap_fn(|req, srv| {
                let service = req.headers().get("x-test-service").and_then(|v| v.to_str().ok()).map(str::to_owned);
                if let Some(service) = service {
                    actix_web::HttpMessage::extensions_mut(&req).insert(CallingService(service));
                }
                srv.call(req)
            })
            .app_data(web::Data::new(crate::State {
                db: database.clone(),
                clock,
                keys: std::sync::Arc::new(
                    crate::domain::checkpoints::LogKeys::new(
                        "immilink.test/audit",
                        &ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
                        Vec::new(),
                    )
                    .unwrap(),
                ),
                witness: None,
            }))
            .configure(crate::routes::configure_internal),
    )
    .await;
    let deliver = |service: &str, events: Vec<AuditEvent>| {
        actix_test::TestRequest::post()
            .uri("/internal/v1/events")
            .insert_header(("x-test-service", service.to_owned()))
            .set_json(json!({ "events": events }))
            .to_request()
    };
    let stored = || -> i64 { audit_records::table.count().get_result(&mut database.get().unwrap()).unwrap() };
    let vendors_event = |n: u32| AuditEvent { source: "vendors".into(), subject_id: None, ..event(n) };

    let forged = actix_test::call_service(&app, deliver("vendors", vec![vendors_event(1), event(2)])).await;
    assert_eq!(forged.status(), 422);
    let problem: Problem = actix_test::read_body_json(forged).await;
    assert_eq!(problem.field.as_deref(), Some("events[1].source"));
    assert_eq!(stored(), 0, "nothing of the delivery is appended");

    let own = actix_test::call_service(&app, deliver("vendors", vec![vendors_event(1), vendors_event(2)])).await;
    assert_eq!(own.status(), 200);
    assert_eq!(stored(), 2);
    let identity_event = AuditEvent { source: "identity".into(), ..event(3) };
    let identity = actix_test::call_service(&app, deliver("identity", vec![identity_event])).await;
    assert_eq!(identity.status(), 200);
    let broker = actix_test::call_service(&app, deliver("broker", vec![event(4)])).await;
    assert_eq!(broker.status(), 200);
    assert_eq!(stored(), 4);

    let gateway_event = AuditEvent { source: "gateway".into(), ..event(5) };
    let gateway = actix_test::call_service(&app, deliver("gateway", vec![gateway_event])).await;
    assert_eq!(gateway.status(), 403, "the gateway records no audited acts");
    assert_eq!(stored(), 4);
}

mod checkpoints {
    use ed25519_dalek::SigningKey;
    use immilink_shared::transparency::Cosigner;
    use signed_note::Note;

    use super::*;
    use crate::domain::chain::Anchors;
    use crate::domain::checkpoints::{self, LogKeys};

    const ORIGIN: &str = "immilink.test/audit";

    fn witness() -> Cosigner {
        Cosigner::new("nia.witness.test/immilink", SigningKey::from_bytes(&[4; 32]), 1_764_640_000)
    }

    fn keys() -> LogKeys {
        LogKeys::new(ORIGIN, &SigningKey::from_bytes(&[1; 32]), vec![witness().verifier_key()]).unwrap()
    }

    /// The witness's cosignature of a stored checkpoint, stored as the checkpointer stores it.
    fn cosign(conn: &mut DbConn, keys: &LogKeys, note: &str) -> String {
        let mut cosigned = Note::from_bytes(note.as_bytes()).unwrap();
        cosigned.add_sigs(&[&witness()]).unwrap();
        let text = String::from_utf8(cosigned.to_bytes()).unwrap();
        let line = text.lines().last().unwrap().to_owned() + "\n";
        checkpoints::record_cosignature(conn, Utc::now(), keys, note, &line).unwrap();
        checkpoints::latest_witnessed(conn).unwrap().unwrap().note
    }

    /// What someone with database access (and, in the worst case, the log's key) can do: drop the
    /// records from `from` on and append others in their place through the real append, so every
    /// hash, the chain head and the tree are recomputed and consistent.
    fn rewrite_from(conn: &mut DbConn, from: i64, records: u32) {
        use crate::schema::{audit_chain_head, audit_tree_hashes};
        as_intruder(conn, |conn| {
            diesel::delete(audit_records::table.filter(audit_records::sequence.ge(from))).execute(conn).unwrap();
            let keep = tlog_tiles::stored_hash_index(0, (from - 1) as u64) as i64;
            diesel::delete(audit_tree_hashes::table.filter(audit_tree_hashes::hash_index.ge(keep)))
                .execute(conn)
                .unwrap();
            let last: String = audit_records::table
                .filter(audit_records::sequence.eq(from - 1))
                .select(audit_records::hash)
                .first(conn)
                .unwrap();
            diesel::update(audit_chain_head::table)
                .set((
                    audit_chain_head::next_sequence.eq(from),
                    audit_chain_head::last_hash.eq(last),
                    audit_chain_head::tree_size.eq(from - 1),
                ))
                .execute(conn)
                .unwrap();
        });
        let forged: Vec<_> =
            (0..records).map(|n| AuditEvent { subject_id: Some("B223456789".into()), ..event(50 + n) }).collect();
        chain::append(conn, Utc::now(), &forged).unwrap();
    }

    #[test]
    fn r_aud_02_a_checkpoint_is_signed_by_the_log_and_verifies_with_its_key() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        assert_eq!(checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap(), None, "no checkpoint of an empty log");
        logged(&mut conn, 5);
        let first = checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap();
        assert_eq!(first.tree_size, 5);
        let lines: Vec<&str> = first.note.lines().collect();
        assert_eq!(&lines[..3], &[ORIGIN, "5", first.root_hash.as_str()]);
        assert!(lines[4].starts_with(&format!("— {ORIGIN} ")), "{}", first.note);
        let checked = checkpoints::check_note(&keys, &first.note).unwrap();
        assert!(checked.signed_by_log && !checked.cosigned);
        // Nothing new, nothing issued; growth, a new checkpoint.
        assert_eq!(checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap().tree_size, 5);
        logged(&mut conn, 2);
        assert_eq!(checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap().tree_size, 7);
        // Another key's checkpoint is not this log's.
        let other = LogKeys::new(ORIGIN, &SigningKey::from_bytes(&[2; 32]), Vec::new()).unwrap();
        assert!(!checkpoints::check_note(&other, &first.note).unwrap().signed_by_log);
        let anchors = Anchors { keys: &keys, witness_view: None };
        let verification = chain::verify(&mut conn, Some(&anchors)).unwrap();
        assert!(verification.ok, "{verification:?}");
        assert_eq!(verification.checkpoint, Some((7, true)));
        assert!(!verification.witnessed, "nothing was cosigned yet");
    }

    #[test]
    fn r_aud_02_a_rewrite_with_every_hash_recomputed_is_caught_by_the_signed_checkpoint() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        logged(&mut conn, 8);
        checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap();
        rewrite_from(&mut conn, 5, 4);
        // The records, chain head and tree agree with each other again…
        assert!(chain::verify(&mut conn, None).unwrap().ok, "the rewrite is self-consistent");
        // …but not with the checkpoint the log signed, which the intruder cannot re-sign.
        let anchors = Anchors { keys: &keys, witness_view: None };
        let verification = chain::verify(&mut conn, Some(&anchors)).unwrap();
        assert!(!verification.ok);
        assert_eq!(verification.checkpoint, Some((8, false)));
        assert!(verification.reason.unwrap().contains("latest checkpoint (8 records)"));
    }

    #[test]
    fn r_aud_02_a_rewrite_re_signed_with_the_log_key_is_caught_by_the_witness() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        logged(&mut conn, 8);
        let issued = checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap();
        let witness_holds = cosign(&mut conn, &keys, &issued.note);
        let honest =
            chain::verify(&mut conn, Some(&Anchors { keys: &keys, witness_view: Some(witness_holds.clone()) }))
                .unwrap();
        assert!(honest.ok && honest.witnessed, "{honest:?}");
        // The worst case: the intruder also holds the log's key. They rewrite from record 5, remove
        // every checkpoint and sign a fresh one of the rewritten tree.
        rewrite_from(&mut conn, 5, 6);
        as_intruder(&mut conn, |conn| {
            diesel::delete(crate::schema::audit_checkpoints::table).execute(conn).unwrap();
        });
        checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap();
        let here_only = chain::verify(&mut conn, Some(&Anchors { keys: &keys, witness_view: None })).unwrap();
        assert!(here_only.ok && !here_only.witnessed, "nothing here is witnessed any more: {here_only:?}");
        // What the witness holds outside the agency no longer matches.
        let asked =
            chain::verify(&mut conn, Some(&Anchors { keys: &keys, witness_view: Some(witness_holds) })).unwrap();
        assert!(!asked.ok && !asked.witnessed, "{asked:?}");
        assert_eq!(asked.reason.as_deref(), Some("the records are not the tree the witness cosigned at 8 records"));
    }

    #[test]
    fn r_aud_02_a_truncated_tail_with_a_rewritten_head_is_caught_by_the_checkpoint() {
        use crate::schema::{audit_chain_head, audit_tree_hashes};
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        logged(&mut conn, 6);
        checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap();
        as_intruder(&mut conn, |conn| {
            diesel::delete(audit_records::table.filter(audit_records::sequence.gt(4))).execute(conn).unwrap();
            let keep = tlog_tiles::stored_hash_index(0, 4) as i64;
            diesel::delete(audit_tree_hashes::table.filter(audit_tree_hashes::hash_index.ge(keep)))
                .execute(conn)
                .unwrap();
            let last: String = audit_records::table
                .filter(audit_records::sequence.eq(4))
                .select(audit_records::hash)
                .first(conn)
                .unwrap();
            diesel::update(audit_chain_head::table)
                .set((
                    audit_chain_head::next_sequence.eq(5),
                    audit_chain_head::last_hash.eq(last),
                    audit_chain_head::tree_size.eq(4),
                ))
                .execute(conn)
                .unwrap();
        });
        assert!(chain::verify(&mut conn, None).unwrap().ok, "without the checkpoint the cut is invisible");
        let verification = chain::verify(&mut conn, Some(&Anchors { keys: &keys, witness_view: None })).unwrap();
        assert!(!verification.ok);
        assert_eq!(verification.first_bad_sequence, Some(5));
        assert_eq!(verification.reason.as_deref(), Some("the latest checkpoint covers 6 records, 4 are stored"));
    }

    #[test]
    fn r_aud_02_an_incremental_verify_checks_what_came_after_a_checkpoint_and_guards_the_next() {
        use crate::schema::audit_tree_hashes;
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        logged(&mut conn, 6);
        let first = checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap();
        let root = tlog_tiles::Hash::parse_hash(&first.root_hash).unwrap();
        chain::append(&mut conn, Utc::now(), &(10..13).map(event).collect::<Vec<_>>()).unwrap();
        let since = chain::verify_since(&mut conn, 6, root).unwrap();
        assert_eq!((since.ok, since.records), (true, 3), "only the three new records are walked");
        assert_eq!(chain::verify_since(&mut conn, 0, tlog_tiles::EMPTY_HASH).unwrap().records, 9);
        // A record changed after the checkpoint: found, and no checkpoint is signed over it.
        as_intruder(&mut conn, |conn| edit_record_at(conn, 8));
        let broken = chain::verify_since(&mut conn, 6, root).unwrap();
        assert_eq!((broken.ok, broken.first_bad_sequence), (false, Some(8)));
        assert!(matches!(
            checkpoints::issue(&mut conn, Utc::now(), &keys),
            Err(crate::domain::AuditError::TreeInconsistent(_))
        ));
        assert_eq!(checkpoints::latest(&mut conn).unwrap().unwrap().tree_size, 6);
        // The stored tree beneath the checkpoint changed (the root of its first four records): its
        // root no longer comes out.
        let first_four = tlog_tiles::stored_hash_index(2, 0) as i64;
        as_intruder(&mut conn, |conn| {
            diesel::update(audit_tree_hashes::table.filter(audit_tree_hashes::hash_index.eq(first_four)))
                .set(audit_tree_hashes::hash.eq(vec![1_u8; 32]))
                .execute(conn)
                .unwrap();
        });
        let beneath = chain::verify_since(&mut conn, 6, root).unwrap();
        assert!(!beneath.ok);
        assert!(beneath.reason.unwrap().contains("no longer gives the root"));
    }

    #[test]
    fn a_cosignature_is_kept_only_when_a_trusted_witness_made_it_over_that_checkpoint() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let keys = keys();
        logged(&mut conn, 3);
        let issued = checkpoints::issue(&mut conn, Utc::now(), &keys).unwrap().unwrap();
        let stranger = Cosigner::new("someone.else/w", SigningKey::from_bytes(&[9; 32]), 1);
        let mut note = Note::from_bytes(issued.note.as_bytes()).unwrap();
        note.add_sigs(&[&stranger]).unwrap();
        let line = String::from_utf8(note.to_bytes()).unwrap().lines().last().unwrap().to_owned();
        let refused = checkpoints::record_cosignature(&mut conn, Utc::now(), &keys, &issued.note, &line);
        assert!(matches!(refused, Err(crate::domain::AuditError::WitnessRefused(_))));
        assert_eq!(checkpoints::latest_witnessed(&mut conn).unwrap(), None);
        let kept = cosign(&mut conn, &keys, &issued.note);
        assert!(checkpoints::check_note(&keys, &kept).unwrap().cosigned);
    }
}

mod retention {
    use chrono::{DateTime, Duration, Months};
    use immilink_shared::events::kind;

    use super::*;
    use crate::domain::retention::{self, HoldRequest, Retention};
    use crate::domain::{tree, AuditError};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 3, 0, 0).unwrap()
    }

    fn five_years() -> Retention {
        Retention::years(5).unwrap()
    }

    /// Appends records that happened at `at`, of `subject`, in case `case`, recorded at `at`.
    fn logged_at(conn: &mut DbConn, at: DateTime<Utc>, subjects: &[(&str, &str)]) {
        let events: Vec<_> = subjects
            .iter()
            .enumerate()
            .map(|(n, (subject, case))| AuditEvent {
                occurred_at: at,
                subject_id: Some((*subject).into()),
                payload: json!({"case_number": case, "purpose_code": "sw_statutory_business"}),
                ..event(n as u32)
            })
            .collect();
        chain::append(conn, at, &events).unwrap();
    }

    fn record(conn: &mut DbConn, sequence: i64) -> chain::AuditRecord {
        audit_records::table
            .filter(audit_records::sequence.eq(sequence))
            .select(chain::AuditRecord::as_select())
            .first(conn)
            .unwrap()
    }

    #[test]
    fn r_aud_01_a_record_is_kept_five_years_and_its_content_disposed_of_after_with_proofs_intact() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        logged_at(&mut conn, t0(), &[("A123456789", "C-1"), ("B223456789", "C-2"), ("A123456789", "C-3")]);
        let size = tree::size(&mut conn).unwrap();
        let root = tree::root(&mut conn, size).unwrap();
        let five = t0().checked_add_months(Months::new(60)).unwrap();
        let kept = retention::dispose(&mut conn, five - Duration::days(1), five_years()).unwrap();
        assert_eq!((kept.disposed, kept.record_sequence), (0, None), "five years less a day: kept");
        assert_eq!(record(&mut conn, 2).subject_id.as_deref(), Some("B223456789"));
        let done = retention::dispose(&mut conn, five + Duration::days(1), five_years()).unwrap();
        assert_eq!(done.disposed, 3);
        assert_eq!(done.ranges.0, vec![(1, 3)]);
        for sequence in 1..=3 {
            let gone = record(&mut conn, sequence);
            assert_eq!(
                (gone.subject_id, gone.actor_user_id, gone.correlation_id, gone.payload.as_str()),
                (None, None, None, "")
            );
            assert!(gone.disposed_at.is_some());
        }
        // The disposal is in the log, and the log still verifies, as does every earlier proof.
        let disposal = record(&mut conn, done.record_sequence.unwrap());
        assert_eq!((disposal.kind.as_str(), disposal.source.as_str()), (kind::AUDIT_RECORDS_DISPOSED, "audit"));
        let payload: serde_json::Value = serde_json::from_str(&disposal.payload).unwrap();
        assert_eq!((payload["count"].as_u64(), payload["retention_years"].as_u64()), (Some(3), Some(5)));
        assert_eq!(payload["ranges"], json!([[1, 3]]));
        assert!(chain::verify(&mut conn, None).unwrap().ok);
        let leaf = tree::leaf_hash(&record(&mut conn, 2).hash).unwrap();
        let proof = tree::inclusion_proof(&mut conn, 1, size).unwrap();
        tlog_tiles::check_record(&proof, size, root, 1, leaf).expect("a disposed record's proof still checks");
        // A second run finds nothing due and writes nothing.
        let again = retention::dispose(&mut conn, five + Duration::days(2), five_years()).unwrap();
        assert_eq!((again.disposed, again.record_sequence), (0, None));
    }

    #[test]
    fn r_aud_01_a_retention_below_five_years_is_refused() {
        assert!(matches!(Retention::years(4), Err(AuditError::Invalid { field, .. }) if field == "retention_years"));
        let refused = crate::LogSettings::retention(4).unwrap_err();
        assert_eq!(refused.name, "IMMILINK_AUDIT_RETENTION_YEARS");
        assert_eq!(crate::LogSettings::retention(7).unwrap().in_years(), 7);
        // Seven years keep a record that five would let go.
        let six_years_on = t0().checked_add_months(Months::new(72)).unwrap();
        assert!(Retention::years(7).unwrap().cutoff(six_years_on) < t0());
        assert!(five_years().cutoff(six_years_on) > t0());
    }

    #[test]
    fn r_aud_01_nothing_deletes_a_record_and_only_a_disposal_may_clear_its_content() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        logged_at(&mut conn, t0(), &[("A123456789", "C-1"), ("B223456789", "C-2")]);
        let on_1 = || audit_records::table.filter(audit_records::sequence.eq(1));
        assert!(diesel::delete(on_1()).execute(&mut conn).is_err(), "DELETE refused");
        assert!(
            diesel::update(on_1()).set(audit_records::subject_id.eq(None::<String>)).execute(&mut conn).is_err(),
            "clearing without disposal refused"
        );
        let later = (t0() + Duration::days(1)).naive_utc();
        let rewrite = diesel::update(on_1())
            .set((
                audit_records::payload.eq(""),
                audit_records::subject_id.eq(None::<String>),
                audit_records::actor_user_id.eq(None::<String>),
                audit_records::correlation_id.eq(None::<String>),
                audit_records::disposed_at.eq(later),
                audit_records::hash.eq("00"),
            ))
            .execute(&mut conn);
        assert!(rewrite.is_err(), "a 'disposal' that changes the hash is refused");
        assert_eq!(record(&mut conn, 1).subject_id.as_deref(), Some("A123456789"));
        // Clearing content the way a disposal does, but outside the disposal job, is allowed by the
        // database and caught by verification: no disposal record names it.
        diesel::update(on_1())
            .set((
                audit_records::payload.eq(""),
                audit_records::subject_id.eq(None::<String>),
                audit_records::actor_user_id.eq(None::<String>),
                audit_records::correlation_id.eq(None::<String>),
                audit_records::disposed_at.eq(later),
            ))
            .execute(&mut conn)
            .unwrap();
        let verification = chain::verify(&mut conn, None).unwrap();
        assert!(!verification.ok);
        assert_eq!(verification.first_bad_sequence, Some(1));
        assert_eq!(
            verification.reason.as_deref(),
            Some("the content of record 1 was removed, but no disposal record names it")
        );
    }

    #[test]
    fn r_aud_01_held_records_outlive_retention_until_someone_else_lifts_the_hold() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        logged_at(
            &mut conn,
            t0(),
            &[
                ("A123456789", "C-1"),
                ("B223456789", "C-2"),
                ("A123456789", "C-3"),
                ("D123456789", "C-4"),
                ("E123456789", "C-5"),
            ],
        );
        let auditor = reader("TPE-SW", &["auditor"]);
        let manager = reader("TPE-SW", &["account_manager"]);
        let manager =
            immilink_shared::auth::Caller { user_id: immilink_shared::typed::UserId::new("manager-1"), ..manager };
        let past = t0().checked_add_months(Months::new(61)).unwrap();
        // Holds placed a day before the disposal run (their own records are then within retention).
        let placed = past - Duration::days(1);
        let hold = |request: HoldRequest| {
            retention::place_hold(&mut db(&test_db).get().unwrap(), placed, &auditor, &request).unwrap()
        };
        let by_subject = hold(HoldRequest {
            subject_id: Some("a123456789".into()),
            reason: "地方法院調閱".into(),
            ..Default::default()
        });
        assert_eq!(by_subject.subject_id.as_deref(), Some("A123456789"), "normalised as IDs are");
        hold(HoldRequest { case_number: Some("C-2".into()), reason: "申訴調查".into(), ..Default::default() });
        hold(HoldRequest {
            from_sequence: Some(4),
            to_sequence: Some(4),
            reason: "稽核抽查".into(),
            ..Default::default()
        });
        let first = retention::dispose(&mut conn, past, five_years()).unwrap();
        assert_eq!((first.disposed, first.held), (1, 4), "only record 5 is free");
        assert_eq!(record(&mut conn, 5).subject_id, None);
        assert_eq!(record(&mut conn, 1).subject_id.as_deref(), Some("A123456789"));
        // The one who placed a hold cannot lift it; someone else can, once.
        let refused = retention::lift_hold(&mut conn, past, &auditor, &by_subject.id, "結案");
        assert!(matches!(refused, Err(AuditError::LiftedByPlacer)));
        let lifted = retention::lift_hold(&mut conn, past, &manager, &by_subject.id, "結案").unwrap();
        assert_eq!(lifted.lifted_by.as_deref(), Some("manager-1"));
        assert!(matches!(
            retention::lift_hold(&mut conn, past, &manager, &by_subject.id, "again"),
            Err(AuditError::HoldAlreadyLifted)
        ));
        let second = retention::dispose(&mut conn, past, five_years()).unwrap();
        assert_eq!((second.disposed, second.held), (2, 2));
        // Each act is in the log, and the log verifies.
        let kinds: Vec<String> =
            chain::search(&mut conn, &RecordQuery::default(), &Page::new(Some(500), None).unwrap())
                .unwrap()
                .into_iter()
                .filter(|r| r.source == "audit")
                .map(|r| r.kind)
                .collect();
        assert_eq!(
            kinds,
            [
                "audit.hold_placed",
                "audit.hold_placed",
                "audit.hold_placed",
                "audit.records_disposed",
                "audit.hold_lifted",
                "audit.records_disposed"
            ]
        );
        assert!(chain::verify(&mut conn, None).unwrap().ok);
        assert_eq!(retention::list_holds(&mut conn, &manager, true).unwrap().len(), 2);
    }

    #[test]
    fn holds_are_checked_and_kept_to_the_callers_agency() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let auditor = reader("TPE-SW", &["auditor"]);
        let refused = |conn: &mut DbConn, caller: &immilink_shared::auth::Caller, request: HoldRequest| {
            retention::place_hold(conn, t0(), caller, &request).unwrap_err()
        };
        let reason = || "調閱".to_owned();
        assert!(
            matches!(refused(&mut conn, &auditor, HoldRequest::default()), AuditError::Invalid { field, .. } if field == "reason")
        );
        assert!(matches!(
            refused(
                &mut conn,
                &auditor,
                HoldRequest { agency: Some("HLN-HR".into()), reason: reason(), ..Default::default() }
            ),
            AuditError::OtherAgency
        ));
        assert!(
            matches!(refused(&mut conn, &auditor, HoldRequest { subject_id: Some("A 1".into()), reason: reason(), ..Default::default() }), AuditError::Invalid { field, .. } if field == "subject_id")
        );
        assert!(
            matches!(refused(&mut conn, &auditor, HoldRequest { from_sequence: Some(5), to_sequence: Some(2), reason: reason(), ..Default::default() }), AuditError::Invalid { field, .. } if field == "to_sequence")
        );
        assert!(
            matches!(refused(&mut conn, &auditor, HoldRequest { from_sequence: Some(5), reason: reason(), ..Default::default() }), AuditError::Invalid { field, .. } if field == "to_sequence")
        );
        assert!(matches!(
            refused(
                &mut conn,
                &auditor,
                HoldRequest {
                    subject_id: Some("A123456789".into()),
                    case_number: Some("C-1".into()),
                    reason: reason(),
                    ..Default::default()
                }
            ),
            AuditError::Invalid { .. }
        ));
        assert!(matches!(
            refused(
                &mut conn,
                &reader("TPE-SW", &["caseworker"]),
                HoldRequest { reason: reason(), ..Default::default() }
            ),
            AuditError::RoleRequired { .. }
        ));
        let count: i64 = crate::schema::audit_legal_holds::table.count().get_result(&mut conn).unwrap();
        assert_eq!(count, 0, "nothing refused was stored");
        // The immigration agency may hold any agency's records, or every agency's.
        let nia = reader("NIA", &["nia_reviewer"]);
        let across =
            retention::place_hold(&mut conn, t0(), &nia, &HoldRequest { reason: reason(), ..Default::default() })
                .unwrap();
        assert_eq!(across.agency, None);
        assert!(retention::list_holds(&mut conn, &auditor, false).unwrap().is_empty(), "not Taipei's hold");
        assert!(matches!(
            retention::lift_hold(&mut conn, t0(), &auditor, &across.id, "x"),
            Err(AuditError::NotFound(_))
        ));
    }
}

mod bundles {
    use ed25519_dalek::SigningKey;
    use immilink_shared::transparency::Cosigner;
    use signed_note::Note;

    use super::*;
    use crate::domain::bundle::{self, Bundle};
    use crate::domain::checkpoints::{self, LogKeys};

    fn witness() -> Cosigner {
        Cosigner::new("nia.witness.test/immilink", SigningKey::from_bytes(&[4; 32]), 1_764_640_000)
    }

    fn keys() -> LogKeys {
        LogKeys::new("immilink.test/audit", &SigningKey::from_bytes(&[1; 32]), vec![witness().verifier_key()]).unwrap()
    }

    /// Eight records, a cosigned checkpoint, and Taipei's bundle of them.
    fn exported(conn: &mut DbConn) -> Bundle {
        let keys = keys();
        let mut hln = event(7);
        hln.agency = Some("HLN-HR".into());
        let mut events: Vec<_> = (1..=7).map(event).collect();
        events.insert(3, hln);
        chain::append(conn, Utc::now(), &events).unwrap();
        let issued = checkpoints::issue(conn, Utc::now(), &keys).unwrap().unwrap();
        let mut note = Note::from_bytes(issued.note.as_bytes()).unwrap();
        note.add_sigs(&[&witness()]).unwrap();
        let line = String::from_utf8(note.to_bytes()).unwrap().lines().last().unwrap().to_owned();
        let cosigned = checkpoints::record_cosignature(conn, Utc::now(), &keys, &issued.note, &line).unwrap();
        bundle::export(conn, Utc::now(), &reader("TPE-SW", &["auditor"]), &keys, &cosigned, None, None).unwrap()
    }

    #[test]
    fn r_aud_02_an_exported_bundle_checks_offline_and_names_the_first_failure() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let bundle = exported(&mut conn);
        assert_eq!(bundle.records.len(), 7, "Taipei's records only");
        assert!(bundle.records.iter().all(|r| r.agency.as_deref() == Some("TPE-SW")));
        let log_key = keys().verifier_key().to_owned();
        let witness_key = witness().verifier_key();
        let report = bundle::check(&bundle, Some(&log_key), std::slice::from_ref(&witness_key)).unwrap();
        assert_eq!((report.records, report.tree_size, report.witnessed), (7, 8, true));
        // The export is itself in the log.
        let exports = chain::search(
            &mut conn,
            &RecordQuery { kind: Some("audit.exported".into()), ..Default::default() },
            &Page::first(),
        )
        .unwrap();
        assert_eq!(exports.len(), 1);
        // Each tampering names what failed.
        let mut edited = bundle.clone();
        edited.records[2].subject_id = Some("B223456789".into());
        let failure = bundle::check(&edited, None, &[]).unwrap_err();
        assert_eq!(
            failure,
            format!("record {} (sequence 3): its content does not match its hash", edited.records[2].id)
        );
        let mut moved = bundle.clone();
        moved.records[1].proof.swap(0, 1);
        assert!(bundle::check(&moved, None, &[])
            .unwrap_err()
            .ends_with("its inclusion proof does not lead to the checkpoint's root"));
        let mut grown = bundle.clone();
        grown.checkpoint.tree_size = 9;
        assert_eq!(
            bundle::check(&grown, None, &[]).unwrap_err(),
            "the checkpoint's size or root differs from the signed note"
        );
        let other_log = LogKeys::new("immilink.test/audit", &SigningKey::from_bytes(&[2; 32]), Vec::new()).unwrap();
        let mut resigned = bundle.clone();
        resigned.log_key = other_log.verifier_key().to_owned();
        assert_eq!(
            bundle::check(&resigned, Some(&log_key), &[]).unwrap_err(),
            "the bundle's log key is not the one you trust"
        );
        assert_eq!(bundle::check(&resigned, None, &[]).unwrap_err(), "the checkpoint is not signed by the log's key");
        let mut unwitnessed = bundle.clone();
        unwitnessed.checkpoint.note =
            unwitnessed.checkpoint.note.lines().filter(|l| !l.contains("nia.witness")).collect::<Vec<_>>().join("\n")
                + "\n";
        assert!(!bundle::check(&unwitnessed, None, &[]).unwrap().witnessed);
        assert_eq!(
            bundle::check(&unwitnessed, None, &[witness_key]).unwrap_err(),
            "the checkpoint carries no valid cosignature of the witness you trust"
        );
    }

    #[test]
    fn verify_bundle_exits_zero_when_intact_one_when_not_and_two_on_misuse() {
        let test_db = TestDb::new();
        let mut conn = db(&test_db).get().unwrap();
        let bundle = exported(&mut conn);
        let dir = tempfile::tempdir().unwrap();
        let intact = dir.path().join("bundle.json");
        std::fs::write(&intact, serde_json::to_vec(&bundle).unwrap()).unwrap();
        let mut broken = bundle.clone();
        broken.records[0].payload = "{}".into();
        let tampered = dir.path().join("tampered.json");
        std::fs::write(&tampered, serde_json::to_vec(&broken).unwrap()).unwrap();
        let run = |args: &[&str]| crate::verify_bundle_command(args.iter().map(|a| (*a).to_owned()).collect());
        let log_key = keys().verifier_key().to_owned();
        assert_eq!(run(&[intact.to_str().unwrap(), "--log-key", &log_key]), 0);
        assert_eq!(run(&[tampered.to_str().unwrap()]), 1);
        assert_eq!(run(&[dir.path().join("missing.json").to_str().unwrap()]), 1);
        assert_eq!(run(&[]), 2);
        assert_eq!(run(&[intact.to_str().unwrap(), "--log-key"]), 2, "a flag without its value");
        assert_eq!(run(&[intact.to_str().unwrap(), "other.json"]), 2, "two files");
        assert_eq!(run(&[intact.to_str().unwrap(), "--verbose"]), 2, "an unknown flag");
    }
}

mod accesses;
mod findings;
mod oversight;
mod samples;
mod self_audits;
