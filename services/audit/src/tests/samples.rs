//! Sampling (R-AUD-06): the published formula, the rank rule checked against an independent
//! computation, reproducibility from the recorded seed, the drawer's own lookups left out, the
//! draw and its results as records in the log, findings from non-compliant results, risk strata on
//! top of the uniform sample, and the HTTP surface.

use std::collections::HashSet;

use actix_web::{test as actix_test, web};
use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::ManualClock;
use immilink_shared::db::DbConn;
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::extractors::Page;
use immilink_shared::problem::Problem;
use immilink_shared::testing::TestDb;
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::db;
use crate::domain::findings::FindingOrigin;
use crate::domain::samples::{self, DrawRequest, DrawnSample, Ratio, ResultRequest, SampleOutcome, Stratum};
use crate::domain::{chain, AuditError};
use crate::schema::{
    audit_notifications, audit_records, findings, oversight_lookups, sample_records, samples as samples_table,
};

const AGENCY: &str = "TPE-SW";
const SEED: &str = "R-AUD-06 fixed seed 2026-12";

/// An instant given as Taipei local time.
fn taipei(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    immilink_shared::clock::taipei().with_ymd_and_hms(y, m, d, h, min, 0).unwrap().with_timezone(&Utc)
}

/// When draws happen in these tests (the injected clock).
fn now() -> DateTime<Utc> {
    taipei(2026, 12, 2, 10, 0)
}

fn person(user: &str, agency: &str, role_list: &[&str]) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new(format!("s-{user}")),
        agency: AgencyCode::new(agency),
        unit: Some(UnitId::new("unit-1")),
        roles: role_list.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn auditor() -> Caller {
    person("u-auditor", AGENCY, &[roles::AUDITOR])
}

fn nia() -> Caller {
    person("u-nia", "NIA", &[roles::NIA_REVIEWER])
}

/// A `lookup.requested` event as the broker records it.
fn lookup_event(agency: &str, user: &str, at: DateTime<Utc>, proxy: bool) -> AuditEvent {
    lookup_of(agency, user, "A123456789", at, proxy)
}

/// A `lookup.requested` event of `subject`.
fn lookup_of(agency: &str, user: &str, subject: &str, at: DateTime<Utc>, proxy: bool) -> AuditEvent {
    let lookup_id = uuid::Uuid::now_v7().to_string();
    AuditEvent {
        actor_user_id: Some(user.into()),
        agency: Some(agency.into()),
        correlation_id: Some(lookup_id),
        subject_id: Some(subject.into()),
        unit: Some("unit-1".into()),
        ..AuditEvent::new(
            "broker",
            kind::LOOKUP_REQUESTED,
            at,
            json!({
                "query_type": "entry_exit_last_year", "legal_basis": "sw_social_assistance_act",
                "purpose_code": "sw_statutory_business", "case_number": "C-115-001", "remarks": null,
                "session_id": format!("s-{user}"), "actor_roles": ["caseworker"],
                "proxy_authorization_id": if proxy { Some("proxy-1") } else { None }, "batch_id": null,
            }),
        )
    }
}

/// `count` lookups by `user` of `agency`, the i-th at `start + i × 37 minutes` (every hour of the
/// day and every weekday comes round), every 7th under a proxy authorization. Returns their record ids.
fn lookups(conn: &mut DbConn, agency: &str, user: &str, start: DateTime<Utc>, count: usize) -> Vec<String> {
    let events: Vec<AuditEvent> =
        (0..count).map(|i| lookup_event(agency, user, start + Duration::minutes(37 * i as i64), i % 7 == 3)).collect();
    let ids = events.iter().map(|e| e.id.clone()).collect();
    for chunk in events.chunks(500) {
        chain::append(conn, now(), chunk).unwrap();
    }
    ids
}

/// November 2026 in Taipei, as the sample's period.
fn november(agency: &str, ratio: f64, seed: Option<&str>) -> DrawRequest {
    DrawRequest {
        agency: Some(agency.into()),
        from: Some("2026-11-01T00:00:00+08:00".into()),
        to: Some("2026-12-01T00:00:00+08:00".into()),
        ratio: Some(ratio),
        seed: seed.map(str::to_owned),
        ..DrawRequest::default()
    }
}

/// A population of 300 of TPE-SW's lookups in November, by two caseworkers; around it, lookups that
/// are not in it (October, December, another agency). Returns the population's record ids.
fn november_population(conn: &mut DbConn) -> Vec<String> {
    let mut ids = lookups(conn, AGENCY, "u-clerk-1", taipei(2026, 11, 1, 0, 0), 150);
    ids.extend(lookups(conn, AGENCY, "u-clerk-2", taipei(2026, 11, 10, 3, 0), 150));
    lookups(conn, AGENCY, "u-clerk-1", taipei(2026, 10, 31, 23, 0), 1);
    lookups(conn, AGENCY, "u-clerk-1", taipei(2026, 12, 1, 0, 0), 3);
    lookups(conn, "HLN-HR", "u-hln", taipei(2026, 11, 5, 9, 0), 20);
    ids
}

/// The rank rule computed here, independently of the service: SHA-256(seed || 0x00 || id), compared
/// as a 256-bit big-endian number (ties by id), smallest first.
fn independent_ranking(seed: &str, ids: &[String]) -> Vec<String> {
    let mut ranked: Vec<(Vec<u8>, String)> = ids
        .iter()
        .map(|id| {
            let mut input = seed.as_bytes().to_vec();
            input.push(0);
            input.extend_from_slice(id.as_bytes());
            (Sha256::digest(&input).to_vec(), id.clone())
        })
        .collect();
    ranked.sort();
    ranked.into_iter().map(|(_, id)| id).collect()
}

fn invalid_field(result: Result<DrawnSample, AuditError>) -> String {
    match result {
        Err(AuditError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal naming a field, got {other:?}"),
    }
}

fn stored_samples(conn: &mut DbConn) -> i64 {
    samples_table::table.count().get_result(conn).unwrap()
}

#[test]
fn r_aud_06_a_ratio_below_one_in_a_thousand_is_refused_naming_ratio() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    lookups(&mut conn, AGENCY, "u-clerk-1", taipei(2026, 11, 2, 9, 0), 12);
    for below in [0.000_999, 0.0005, 0.0, -0.01] {
        let refused = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, below, Some(SEED)));
        assert_eq!(invalid_field(refused), "ratio", "{below}");
    }
    for above in [1.000_001, 2.0, f64::INFINITY, f64::NAN] {
        let refused = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, above, Some(SEED)));
        assert_eq!(invalid_field(refused), "ratio", "{above}");
    }
    let missing = DrawRequest { ratio: None, ..november(AGENCY, 0.01, Some(SEED)) };
    assert_eq!(invalid_field(samples::draw(&mut conn, now(), &auditor(), &missing)), "ratio");
    assert_eq!(stored_samples(&mut conn), 0, "a refused draw stores nothing");
    // Exactly 1/1000 is the floor, and is accepted; so is 1 (every record).
    let floor = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.001, Some(SEED))).unwrap();
    assert_eq!((floor.sample.ratio.as_str(), floor.sample.size), ("0.001", 10));
    let all = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 1.0, Some(SEED))).unwrap();
    assert_eq!((all.sample.ratio.as_str(), all.sample.size), ("1", 12));
}

#[test]
fn r_aud_06_the_other_inputs_are_checked_by_name_before_anything_is_drawn() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let draw = |conn: &mut DbConn, request: DrawRequest| samples::draw(conn, now(), &auditor(), &request);
    let base = || november(AGENCY, 0.01, Some(SEED));
    let cases: Vec<(DrawRequest, &str)> = vec![
        (DrawRequest { agency: None, ..base() }, "agency"),
        (DrawRequest { agency: Some("  ".into()), ..base() }, "agency"),
        (DrawRequest { from: None, ..base() }, "from"),
        (DrawRequest { from: Some("2026-11-01".into()), ..base() }, "from"),
        (DrawRequest { to: Some("yesterday".into()), ..base() }, "to"),
        (DrawRequest { to: Some("2026-11-01T00:00:00+08:00".into()), ..base() }, "to"),
        (DrawRequest { to: Some("2026-10-01T00:00:00+08:00".into()), ..base() }, "to"),
        (DrawRequest { seed: Some(String::new()), ..base() }, "seed"),
        (DrawRequest { seed: Some("種".repeat(257)), ..base() }, "seed"),
        (DrawRequest { strata: vec!["proxy".into(), "weekend".into()], ..base() }, "strata[1]"),
        (DrawRequest { strata: vec!["proxy".into(), "proxy".into()], ..base() }, "strata[1]"),
        (DrawRequest { strata: vec!["uniform".into()], ..base() }, "strata[0]"),
        (DrawRequest { strata: vec!["proxy".into()], stratum_size: Some(0), ..base() }, "stratum_size"),
    ];
    for (request, field) in cases {
        assert_eq!(invalid_field(draw(&mut conn, request)), field);
    }
    // 256 characters of any script is a seed.
    assert!(draw(&mut conn, DrawRequest { seed: Some("種".repeat(256)), ..base() }).is_ok());
    // Who draws: an auditor for their own agency, the immigration agency's reviewer for any.
    let other = samples::draw(&mut conn, now(), &auditor(), &november("HLN-HR", 0.01, Some(SEED)));
    assert!(matches!(other, Err(AuditError::OtherAgency)));
    for role in [roles::ACCOUNT_MANAGER, roles::ETHICS_OFFICER, roles::UNIT_SUPERVISOR, roles::CASEWORKER] {
        let refused = samples::draw(&mut conn, now(), &person("u-x", AGENCY, &[role]), &base());
        assert!(matches!(refused, Err(AuditError::RoleRequired { .. })), "{role}");
    }
    assert!(samples::draw(&mut conn, now(), &nia(), &november("HLN-HR", 0.01, Some(SEED))).is_ok());
    assert_eq!(stored_samples(&mut conn), 2);
}

#[derive(Insertable)]
#[diesel(table_name = oversight_lookups)]
struct LookupRow {
    lookup_id: String,
    record_id: String,
    sequence: i64,
    agency: String,
    user_id: String,
    actor_roles: String,
    requested_at: chrono::NaiveDateTime,
    query_type: String,
    subject_id: String,
    legal_basis: String,
    purpose_code: String,
    case_number: String,
}

/// Fills the read model directly with `count` lookups of `agency` (the draw reads only the read
/// model; going through the log for 27,000 lookups would only slow the test).
fn read_model_rows(conn: &mut DbConn, agency: &str, count: usize, sequence: &mut i64) {
    let rows: Vec<LookupRow> = (0..count)
        .map(|i| {
            *sequence += 1;
            LookupRow {
                lookup_id: uuid::Uuid::now_v7().to_string(),
                record_id: uuid::Uuid::now_v7().to_string(),
                sequence: *sequence,
                agency: agency.into(),
                user_id: format!("u-{}", i % 13),
                actor_roles: "caseworker".into(),
                requested_at: (taipei(2026, 11, 2, 9, 0) + Duration::seconds(i as i64)).naive_utc(),
                query_type: "entry_exit_last_year".into(),
                subject_id: "A123456789".into(),
                legal_basis: "sw_social_assistance_act".into(),
                purpose_code: "sw_statutory_business".into(),
                case_number: "C-1".into(),
            }
        })
        .collect();
    for chunk in rows.chunks(1000) {
        match conn {
            DbConn::Pg(pg) => diesel::insert_into(oversight_lookups::table).values(chunk).execute(pg).unwrap(),
            DbConn::Sqlite(sqlite) => {
                diesel::insert_into(oversight_lookups::table).values(chunk).execute(sqlite).unwrap()
            }
        };
    }
}

#[test]
fn r_aud_06_sample_size_follows_the_published_formula() {
    // n = max(ceil(N × ratio), min(N, 10)): every record when fewer than 10.
    let table: [(u64, u64, u64); 8] = [
        // (N, n at 0.001, n at 0.01)
        (0, 0, 0),
        (1, 1, 1),
        (9, 9, 9),
        (10, 10, 10),
        (11, 10, 10),
        (1000, 10, 10),
        (1001, 10, 11),
        (25000, 25, 250),
    ];
    let (per_mille, per_cent) = (Ratio::parse(0.001).unwrap(), Ratio::parse(0.01).unwrap());
    for (population, at_per_mille, at_per_cent) in table {
        assert_eq!(per_mille.sample_size(population), at_per_mille, "N={population} ratio 0.001");
        assert_eq!(per_cent.sample_size(population), at_per_cent, "N={population} ratio 0.01");
    }
    // Exactly, not in floating point: 1000 × 0.07 is 70.00000000000001 as a double, but n is 70.
    assert_eq!(Ratio::parse(0.07).unwrap().sample_size(1000), 70);
    assert_eq!(Ratio::parse(0.0011).unwrap().sample_size(10_000), 11);
    assert_eq!(Ratio::parse(1.0).unwrap().sample_size(25_000), 25_000);

    // And the draws themselves: one agency per N, each drawn at both ratios.
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut sequence = 0;
    for (population, _, _) in table {
        read_model_rows(&mut conn, &format!("AG-{population}"), population as usize, &mut sequence);
    }
    for (population, at_per_mille, at_per_cent) in table {
        for (ratio, expected) in [(0.001, at_per_mille), (0.01, at_per_cent)] {
            let drawn =
                samples::draw(&mut conn, now(), &nia(), &november(&format!("AG-{population}"), ratio, Some(SEED)))
                    .unwrap();
            assert_eq!(drawn.sample.population, population as i64);
            assert_eq!(drawn.sample.size, expected as i64, "N={population} ratio {ratio}");
            assert_eq!(drawn.record_ids().len(), expected as usize);
            assert_eq!(drawn.record_ids().iter().collect::<HashSet<_>>().len(), expected as usize, "no record twice");
        }
    }
}

#[test]
fn r_aud_06_the_draw_is_the_n_smallest_ranks_checked_independently() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let population = november_population(&mut conn);
    let drawn = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    // N = 300, n = max(ceil(300 × 0.05), min(300, 10)) = 15.
    assert_eq!((drawn.sample.population, drawn.sample.size, drawn.sample.excluded_own), (300, 15, 0));
    // The population read back from the log itself, not from the read model.
    let from_the_log: Vec<String> = audit_records::table
        .filter(audit_records::kind.eq(kind::LOOKUP_REQUESTED))
        .filter(audit_records::agency.eq(AGENCY))
        .filter(audit_records::occurred_at.ge(taipei(2026, 11, 1, 0, 0).naive_utc()))
        .filter(audit_records::occurred_at.lt(taipei(2026, 12, 1, 0, 0).naive_utc()))
        .select(audit_records::id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(from_the_log.iter().collect::<HashSet<_>>(), population.iter().collect::<HashSet<_>>());
    let expected: Vec<String> = independent_ranking(SEED, &from_the_log).into_iter().take(15).collect();
    assert_eq!(drawn.record_ids(), expected, "the 15 smallest ranks, in rank order");
    // What the service says a rank is agrees too.
    let mut input = SEED.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(expected[0].as_bytes());
    assert_eq!(samples::rank(SEED, &expected[0]).to_vec(), Sha256::digest(&input).to_vec());
    // Stored in rank order, and read back the same.
    let again = samples::get(&mut conn, &auditor(), &drawn.sample.id).unwrap();
    assert_eq!(again, drawn);
    assert_eq!(again.records.iter().map(|r| r.position).collect::<Vec<_>>(), (1..=15).collect::<Vec<_>>());
}

#[test]
fn r_aud_06_the_same_seed_draws_the_same_sample_and_a_generated_seed_is_recorded() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    november_population(&mut conn);
    let first = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    let second =
        samples::draw(&mut conn, now() + Duration::hours(1), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    assert_ne!(first.sample.id, second.sample.id);
    assert_eq!(first.record_ids(), second.record_ids(), "same seed, same population: same sample");
    assert!(!first.sample.seed_generated);
    let other_seed =
        samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some("another seed"))).unwrap();
    assert_ne!(other_seed.record_ids(), first.record_ids());

    let generated = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, None)).unwrap();
    assert!(generated.sample.seed_generated);
    assert_eq!(generated.sample.seed.len(), 64, "32 random bytes in hex");
    assert!(generated.sample.seed.chars().all(|c| c.is_ascii_hexdigit()));
    let stored: (String, bool) = samples_table::table
        .filter(samples_table::id.eq(&generated.sample.id))
        .select((samples_table::seed, samples_table::seed_generated))
        .first(&mut conn)
        .unwrap();
    assert_eq!(stored, (generated.sample.seed.clone(), true));
    // Anyone can draw it again from the recorded seed.
    let redrawn =
        samples::draw(&mut conn, now(), &nia(), &november(AGENCY, 0.05, Some(&generated.sample.seed))).unwrap();
    assert_eq!(redrawn.record_ids(), generated.record_ids());
    let another = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, None)).unwrap();
    assert_ne!(another.sample.seed, generated.sample.seed);
}

#[test]
fn r_aud_06_the_auditors_own_lookups_are_excluded_and_reported() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let others = november_population(&mut conn);
    let own = lookups(&mut conn, AGENCY, "u-auditor", taipei(2026, 11, 20, 9, 0), 7);
    let drawn = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 1.0, Some(SEED))).unwrap();
    assert_eq!((drawn.sample.population, drawn.sample.excluded_own), (300, 7));
    let drawn_ids: HashSet<String> = drawn.record_ids().into_iter().collect();
    assert_eq!(drawn_ids, others.iter().cloned().collect::<HashSet<_>>(), "every other lookup, none of the auditor's");
    assert!(own.iter().all(|id| !drawn_ids.contains(id)));
    // Another auditor's draw holds them: only the drawer's own are left out.
    let colleague = person("u-auditor-2", AGENCY, &[roles::AUDITOR]);
    let theirs = samples::draw(&mut conn, now(), &colleague, &november(AGENCY, 1.0, Some(SEED))).unwrap();
    assert_eq!((theirs.sample.population, theirs.sample.excluded_own), (307, 0));
    // The sample's size follows the population without them: N = 300 at 0.05 is 15.
    let uniform = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    assert_eq!((uniform.sample.population, uniform.sample.size, uniform.sample.excluded_own), (300, 15, 7));
    // Nobody judges their own lookup: the auditor may not check one a colleague sampled.
    let own_sampled = theirs.record_ids().into_iter().find(|id| own.contains(id)).unwrap();
    let judged = samples::record_results(
        &mut conn,
        now(),
        &auditor(),
        &theirs.sample.id,
        &[ResultRequest { record_id: Some(own_sampled), outcome: Some(SampleOutcome::Compliant), note: None }],
    );
    assert!(matches!(judged, Err(AuditError::OwnLookup(_))), "{judged:?}");
}

fn payload_of(conn: &mut DbConn, kind: &str, correlation: &str) -> Vec<(Option<String>, Option<String>, Value)> {
    audit_records::table
        .filter(audit_records::kind.eq(kind))
        .filter(audit_records::correlation_id.eq(correlation))
        .order(audit_records::sequence.asc())
        .select((audit_records::actor_user_id, audit_records::agency, audit_records::payload))
        .load::<(Option<String>, Option<String>, String)>(conn)
        .unwrap()
        .into_iter()
        .map(|(actor, agency, payload)| (actor, agency, serde_json::from_str(&payload).unwrap()))
        .collect()
}

#[test]
fn r_aud_06_the_draw_and_results_are_records_in_the_log() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    november_population(&mut conn);
    lookups(&mut conn, AGENCY, "u-auditor", taipei(2026, 11, 20, 9, 0), 2);
    let drawn = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    let drawn_records = payload_of(&mut conn, "audit.sample_drawn", &drawn.sample.id);
    assert_eq!(drawn_records.len(), 1);
    let (actor, agency, payload) = &drawn_records[0];
    assert_eq!((actor.as_deref(), agency.as_deref()), (Some("u-auditor"), Some(AGENCY)));
    assert_eq!(payload["agency"], AGENCY);
    assert_eq!(payload["from"], "2026-10-31T16:00:00.000000Z");
    assert_eq!(payload["to"], "2026-11-30T16:00:00.000000Z");
    assert_eq!(payload["ratio"], json!(0.05));
    assert_eq!(payload["seed"], SEED);
    assert_eq!((payload["population"].as_i64(), payload["size"].as_i64()), (Some(300), Some(15)));
    assert_eq!(payload["excluded_own"], 2);
    assert_eq!(payload["record_ids"], json!(drawn.record_ids()));

    let ids = drawn.record_ids();
    let results = [
        ResultRequest { record_id: Some(ids[0].clone()), outcome: Some(SampleOutcome::Compliant), note: None },
        ResultRequest {
            record_id: Some(ids[1].clone()),
            outcome: Some(SampleOutcome::Compliant),
            note: Some("案號相符".into()),
        },
    ];
    let checked = samples::record_results(&mut conn, now(), &auditor(), &drawn.sample.id, &results).unwrap();
    assert_eq!(checked.records.iter().filter(|r| r.outcome.is_some()).count(), 2);
    let checked_records = payload_of(&mut conn, "audit.sample_checked", &drawn.sample.id);
    assert_eq!(checked_records.len(), 1);
    let (actor, _, payload) = &checked_records[0];
    assert_eq!(actor.as_deref(), Some("u-auditor"));
    assert_eq!(payload["results"][0]["record_id"], json!(ids[0]));
    assert_eq!(payload["results"][1]["outcome"], "compliant");
    assert_eq!(payload["results"][1]["note"], "案號相符");
    // The records are part of the chain like any other.
    let verification = chain::verify(&mut conn, None).unwrap();
    assert!(verification.ok, "{verification:?}");
}

#[test]
fn r_aud_06_a_non_compliant_result_opens_a_finding() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    november_population(&mut conn);
    let drawn = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    let ids = drawn.record_ids();
    let record = |id: &str, outcome: Option<SampleOutcome>, note: Option<&str>| ResultRequest {
        record_id: Some(id.to_owned()),
        outcome,
        note: note.map(str::to_owned),
    };
    let findings_count = |conn: &mut DbConn| -> i64 { findings::table.count().get_result(conn).unwrap() };
    let check = |conn: &mut DbConn, results: &[ResultRequest]| {
        samples::record_results(conn, now(), &auditor(), &drawn.sample.id, results)
    };
    let field = |result: Result<DrawnSample, AuditError>| match result {
        Err(AuditError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal naming a field, got {other:?}"),
    };

    // Refused whole, naming the result, with nothing written.
    let no_note = [
        record(&ids[0], Some(SampleOutcome::Compliant), None),
        record(&ids[1], Some(SampleOutcome::NonCompliant), Some("  ")),
    ];
    assert_eq!(field(check(&mut conn, &no_note)), "results[1].note");
    let stranger = [
        record(&ids[0], Some(SampleOutcome::Compliant), None),
        record("not-in-the-sample", Some(SampleOutcome::Compliant), None),
    ];
    assert_eq!(field(check(&mut conn, &stranger)), "results[1].record_id");
    assert_eq!(field(check(&mut conn, &[record(&ids[0], None, None)])), "results[0].outcome");
    assert_eq!(field(check(&mut conn, &[])), "results");
    let twice =
        [record(&ids[0], Some(SampleOutcome::Compliant), None), record(&ids[0], Some(SampleOutcome::Compliant), None)];
    assert_eq!(field(check(&mut conn, &twice)), "results[1].record_id");
    assert_eq!(findings_count(&mut conn), 0);
    assert!(samples::get(&mut conn, &auditor(), &drawn.sample.id).unwrap().records.iter().all(|r| r.outcome.is_none()));

    let note = "查詢目的為社會救助，但案號屬已結案件";
    let results = [
        record(&ids[0], Some(SampleOutcome::Compliant), None),
        record(&ids[1], Some(SampleOutcome::NonCompliant), Some(note)),
    ];
    let checked = check(&mut conn, &results).unwrap();
    let wrong = checked.records.iter().find(|r| r.record_id == ids[1]).unwrap();
    assert_eq!(wrong.outcome, Some(SampleOutcome::NonCompliant));
    assert_eq!(wrong.note.as_deref(), Some(note));
    assert_eq!(wrong.checked_by.as_deref(), Some("u-auditor"));
    let finding_id = wrong.finding_id.clone().expect("the finding's id is stored with the result");
    assert_eq!(checked.records.iter().find(|r| r.record_id == ids[0]).unwrap().finding_id, None);
    let (origin, origin_ref, agency, unit, description): (
        FindingOrigin,
        Option<String>,
        String,
        Option<String>,
        String,
    ) = findings::table
        .filter(findings::id.eq(&finding_id))
        .select((findings::origin, findings::origin_ref, findings::agency, findings::unit, findings::description))
        .first(&mut conn)
        .unwrap();
    assert_eq!(origin, FindingOrigin::Sample);
    assert_eq!(origin_ref, Some(format!("{}/{}", drawn.sample.id, ids[1])));
    assert_eq!((agency.as_str(), unit.as_deref()), (AGENCY, Some("unit-1")));
    assert!(description.contains(note), "{description}");
    assert_eq!(findings_count(&mut conn), 1);
    // The ethics and IT units were told in the same transaction, and the finding is in the log.
    let notices: i64 = audit_notifications::table.count().get_result(&mut conn).unwrap();
    assert_eq!(notices, 1);
    assert_eq!(payload_of(&mut conn, "audit.finding_opened", &finding_id).len(), 1);
    let logged = payload_of(&mut conn, "audit.sample_checked", &drawn.sample.id);
    assert_eq!(logged[0].2["results"][1]["finding_id"], json!(finding_id));

    // A record is checked once.
    let again = check(&mut conn, &[record(&ids[1], Some(SampleOutcome::Compliant), None)]);
    assert!(matches!(again, Err(AuditError::Conflict { code: "already_checked", .. })), "{again:?}");
    // Another agency's auditor does not find the sample; the immigration agency's reviewer may check.
    let hln = person("u-hln-auditor", "HLN-HR", &[roles::AUDITOR]);
    let foreign = samples::record_results(
        &mut conn,
        now(),
        &hln,
        &drawn.sample.id,
        &[record(&ids[2], Some(SampleOutcome::Compliant), None)],
    );
    assert!(matches!(foreign, Err(AuditError::NotFound(_))));
    let by_nia = samples::record_results(
        &mut conn,
        now(),
        &nia(),
        &drawn.sample.id,
        &[record(&ids[2], Some(SampleOutcome::Compliant), None)],
    );
    assert!(by_nia.is_ok());
    let manager = person("u-mgr", AGENCY, &[roles::ACCOUNT_MANAGER]);
    let by_manager = samples::record_results(
        &mut conn,
        now(),
        &manager,
        &drawn.sample.id,
        &[record(&ids[3], Some(SampleOutcome::Compliant), None)],
    );
    assert!(matches!(by_manager, Err(AuditError::RoleRequired { .. })));
    assert_eq!(findings_count(&mut conn), 1);
}

/// Whether a lookup at `at` was outside 08:00–18:00 Taipei or on a weekend, computed here.
fn outside_office_hours(at: DateTime<Utc>) -> bool {
    let local = at.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    matches!(local.weekday(), Weekday::Sat | Weekday::Sun) || !(8..18).contains(&local.hour())
}

#[test]
fn r_aud_06_risk_strata_are_drawn_on_top_of_the_uniform_sample_by_the_same_rank() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    november_population(&mut conn);
    let uniform_only = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    let request = DrawRequest {
        strata: vec!["off_hours".into(), "proxy".into()],
        stratum_size: Some(4),
        ..november(AGENCY, 0.05, Some(SEED))
    };
    let drawn = samples::draw(&mut conn, now(), &auditor(), &request).unwrap();
    // Never instead of the uniform n: the same 15 records, and the size is still the rule's n.
    assert_eq!(drawn.record_ids(), uniform_only.record_ids());
    assert_eq!(drawn.sample.size, 15);

    // Independently: each lookup's time and proxy from the log, ranked here.
    let rows: Vec<(String, chrono::NaiveDateTime, String)> = audit_records::table
        .filter(audit_records::kind.eq(kind::LOOKUP_REQUESTED))
        .filter(audit_records::agency.eq(AGENCY))
        .filter(audit_records::occurred_at.ge(taipei(2026, 11, 1, 0, 0).naive_utc()))
        .filter(audit_records::occurred_at.lt(taipei(2026, 12, 1, 0, 0).naive_utc()))
        .select((audit_records::id, audit_records::occurred_at, audit_records::payload))
        .load(&mut conn)
        .unwrap();
    let mut taken: HashSet<String> = drawn.record_ids().into_iter().collect();
    let mut expected_strata = Vec::new();
    for (stratum, member) in [
        (
            Stratum::OffHours,
            Box::new(|at: chrono::NaiveDateTime, _: &Value| outside_office_hours(at.and_utc()))
                as Box<dyn Fn(chrono::NaiveDateTime, &Value) -> bool>,
        ),
        (Stratum::Proxy, Box::new(|_, payload: &Value| !payload["proxy_authorization_id"].is_null())),
    ] {
        let members: Vec<String> = rows
            .iter()
            .filter(|(_, at, payload)| member(*at, &serde_json::from_str(payload).unwrap()))
            .map(|(id, _, _)| id.clone())
            .collect();
        assert!(members.len() > 10, "{stratum}: {} members", members.len());
        let picked: Vec<String> =
            independent_ranking(SEED, &members).into_iter().filter(|id| !taken.contains(id)).take(4).collect();
        taken.extend(picked.iter().cloned());
        expected_strata.push((stratum, picked));
    }
    assert_eq!(drawn.strata(), expected_strata);
    assert_eq!(drawn.records.len(), 15 + 8);
    let stored: i64 = sample_records::table
        .filter(sample_records::sample_id.eq(&drawn.sample.id))
        .filter(sample_records::stratum.eq(Stratum::Proxy))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(stored, 4);
    // A stratum record is checked like any other record of the sample.
    let proxy_record = expected_strata[1].1[0].clone();
    let checked = samples::record_results(
        &mut conn,
        now(),
        &auditor(),
        &drawn.sample.id,
        &[ResultRequest { record_id: Some(proxy_record), outcome: Some(SampleOutcome::Compliant), note: None }],
    )
    .unwrap();
    assert_eq!(checked.records.iter().filter(|r| r.outcome.is_some()).count(), 1);
}

#[test]
fn r_aud_06_busy_user_and_shared_subject_strata_come_from_the_whole_period() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    let mut events = Vec::new();
    // Ten caseworkers, two lookups a day each for ten days, each of a subject of its own.
    for user in 0..10 {
        for day in 0..10 {
            for slot in 0..2 {
                let at = taipei(2026, 11, 2 + day, 9 + slot, user);
                events.push(lookup_of(AGENCY, &format!("u-{user}"), &format!("S-{user}-{day}-{slot}"), at, false));
            }
        }
    }
    // One unusually busy day: 30 lookups (the period's mean is about 2.3 per user and day).
    let busy: Vec<AuditEvent> = (0..30)
        .map(|i| {
            lookup_of(
                AGENCY,
                "u-busy",
                &format!("S-busy-{i}"),
                taipei(2026, 11, 12, 9, 0) + Duration::minutes(5 * i),
                false,
            )
        })
        .collect();
    let busy_ids: Vec<String> = busy.iter().map(|e| e.id.clone()).collect();
    events.extend(busy);
    // The same user on an ordinary day.
    events.push(lookup_of(AGENCY, "u-busy", "S-busy-x", taipei(2026, 11, 13, 9, 0), false));
    events.push(lookup_of(AGENCY, "u-busy", "S-busy-y", taipei(2026, 11, 13, 10, 0), false));
    // One subject looked up by four users; another by two.
    let shared: Vec<AuditEvent> = (0..4)
        .map(|user| lookup_of(AGENCY, &format!("u-{user}"), "S-SHARED", taipei(2026, 11, 2, 15, user), false))
        .collect();
    let shared_ids: Vec<String> = shared.iter().map(|e| e.id.clone()).collect();
    events.extend(shared);
    events.push(lookup_of(AGENCY, "u-4", "S-PAIR", taipei(2026, 11, 2, 16, 0), false));
    events.push(lookup_of(AGENCY, "u-5", "S-PAIR", taipei(2026, 11, 2, 16, 5), false));
    let all_ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    for chunk in events.chunks(500) {
        chain::append(&mut conn, now(), chunk).unwrap();
    }

    let request = DrawRequest {
        strata: vec!["busy_user".into(), "shared_subject".into()],
        stratum_size: Some(5),
        ..november(AGENCY, 0.01, Some(SEED))
    };
    let drawn = samples::draw(&mut conn, now(), &auditor(), &request).unwrap();
    assert_eq!((drawn.sample.population, drawn.sample.size), (238, 10));
    let uniform = drawn.record_ids();
    assert_eq!(uniform, independent_ranking(SEED, &all_ids).into_iter().take(10).collect::<Vec<_>>());
    let mut taken: HashSet<String> = uniform.into_iter().collect();
    let mut expected = Vec::new();
    for (stratum, members) in [(Stratum::BusyUser, &busy_ids), (Stratum::SharedSubject, &shared_ids)] {
        let picked: Vec<String> =
            independent_ranking(SEED, members).into_iter().filter(|id| !taken.contains(id)).take(5).collect();
        taken.extend(picked.iter().cloned());
        expected.push((stratum, picked));
    }
    assert!(!expected[0].1.is_empty() && !expected[1].1.is_empty());
    assert_eq!(drawn.strata(), expected);
    let logged = payload_of(&mut conn, "audit.sample_drawn", &drawn.sample.id);
    assert_eq!(logged[0].2["strata"][0]["members"], 30);
    assert_eq!(logged[0].2["strata"][1]["members"], 4);
}

#[test]
fn r_aud_06_samples_are_read_by_their_agencys_readers_only() {
    let test_db = TestDb::new();
    let mut conn = db(&test_db).get().unwrap();
    november_population(&mut conn);
    let tpe = samples::draw(&mut conn, now(), &auditor(), &november(AGENCY, 0.05, Some(SEED))).unwrap();
    let hln = samples::draw(&mut conn, now(), &nia(), &november("HLN-HR", 0.5, Some(SEED))).unwrap();
    for role in [roles::AUDITOR, roles::ACCOUNT_MANAGER, roles::ETHICS_OFFICER] {
        let reader = person("u-reader", AGENCY, &[role]);
        assert_eq!(samples::get(&mut conn, &reader, &tpe.sample.id).unwrap(), tpe, "{role}");
        assert!(matches!(samples::get(&mut conn, &reader, &hln.sample.id), Err(AuditError::NotFound(_))), "{role}");
        let listed = samples::list(&mut conn, &reader, None, &Page::first()).unwrap();
        assert_eq!(listed.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![tpe.sample.id.clone()], "{role}");
        let other = samples::list(&mut conn, &reader, Some("HLN-HR".into()), &Page::first());
        assert!(matches!(other, Err(AuditError::OtherAgency)), "{role}");
    }
    let caseworker = person("u-clerk-1", AGENCY, &[roles::CASEWORKER]);
    assert!(matches!(samples::get(&mut conn, &caseworker, &tpe.sample.id), Err(AuditError::RoleRequired { .. })));
    assert_eq!(samples::get(&mut conn, &nia(), &hln.sample.id).unwrap(), hln);
    // Newest first, a page at a time.
    let first_page = samples::list(&mut conn, &nia(), None, &Page { limit: 1, cursor: None }).unwrap();
    assert_eq!(first_page.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![hln.sample.id.clone()]);
    let next = samples::list(&mut conn, &nia(), None, &Page { limit: 1, cursor: Some(hln.sample.id.clone()) }).unwrap();
    assert_eq!(next.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![tpe.sample.id.clone()]);
    let only_hln = samples::list(&mut conn, &nia(), Some("HLN-HR".into()), &Page::first()).unwrap();
    assert_eq!(only_hln.len(), 1);
}

/// A throwaway Ed25519 key for test tokens, and the verifier that trusts it.
mod tokens {
    use base64::Engine as _;
    use ed25519_dalek::Signer as _;
    use immilink_shared::auth::{AccessClaims, Jwk, JwkSet, TokenVerifier, AUDIENCE, ISSUER};

    const KID: &str = "samples-test";

    fn key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7; 32])
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn verifier() -> TokenVerifier {
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: b64(key().verifying_key().as_bytes()),
            kid: KID.into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        TokenVerifier::from_jwks(&JwkSet { keys: vec![jwk] }).unwrap()
    }

    /// A signed access token (EdDSA JWT) for `user` of `agency` with `roles`.
    pub fn token(user: &str, agency: &str, roles: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.into(),
            sid: format!("s-{user}"),
            agency: agency.into(),
            unit: None,
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            iat: now,
            exp: now + 600,
        };
        let header = b64(format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{KID}"}}"#).as_bytes());
        let signing_input = format!("{header}.{}", b64(&serde_json::to_vec(&claims).unwrap()));
        let signature = key().sign(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(&signature.to_bytes()))
    }
}

#[actix_web::test]
async fn r_aud_06_over_http_a_ratio_below_one_in_a_thousand_is_a_422_naming_ratio() {
    use utoipa_actix_web::AppExt;
    let test_db = TestDb::new();
    let database = db(&test_db);
    lookups(&mut database.get().unwrap(), AGENCY, "u-clerk-1", taipei(2026, 11, 2, 9, 0), 30);
    let clock: immilink_shared::clock::SharedClock = std::sync::Arc::new(ManualClock::starting_at(now()));
    let app = actix_test::init_service(
        immilink_shared::server::base_app()
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
            .app_data(web::Data::new(tokens::verifier()))
            .into_utoipa_app()
            .configure(crate::routes::configure)
            .into_app(),
    )
    .await;
    let bearer = tokens::token("u-auditor", AGENCY, &[roles::AUDITOR]);
    let post = |uri: &str, body: Value| {
        actix_test::TestRequest::post()
            .uri(uri)
            .insert_header(("Authorization", format!("Bearer {bearer}")))
            .set_json(body)
            .to_request()
    };
    let body = |ratio: Value| {
        json!({"agency": AGENCY, "from": "2026-11-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00",
            "ratio": ratio, "seed": SEED})
    };

    for ratio in [json!(0.0009), json!(0.000_999_999), json!(1.5), json!("0.01"), json!(null)] {
        let refused = actix_test::call_service(&app, post("/v1/audit/samples", body(ratio.clone()))).await;
        assert_eq!(refused.status(), 422, "{ratio}");
        let problem: Problem = actix_test::read_body_json(refused).await;
        assert_eq!(problem.field.as_deref(), Some("ratio"), "{ratio}");
    }
    let mut with_strata = body(json!(0.01));
    with_strata["strata"] = json!(["proxy", "bogus"]);
    with_strata["stratum_size"] = json!(2);
    let unknown = actix_test::call_service(&app, post("/v1/audit/samples", with_strata)).await;
    assert_eq!(unknown.status(), 422);
    let problem: Problem = actix_test::read_body_json(unknown).await;
    assert_eq!(problem.field.as_deref(), Some("strata[1]"));
    let stored: i64 = samples_table::table.count().get_result(&mut database.get().unwrap()).unwrap();
    assert_eq!(stored, 0);

    let drawn = actix_test::call_service(&app, post("/v1/audit/samples", body(json!(0.001)))).await;
    assert_eq!(drawn.status(), 201);
    let drawn: Value = actix_test::read_body_json(drawn).await;
    assert_eq!(drawn["ratio"], json!(0.001), "the ratio is answered as a JSON number");
    assert_eq!((drawn["population"].as_i64(), drawn["size"].as_i64()), (Some(30), Some(10)));
    assert_eq!(drawn["seed"], SEED);
    assert_eq!(drawn["from"], "2026-10-31T16:00:00.000000Z");
    assert_eq!(drawn["record_ids"].as_array().map(Vec::len), Some(10));
    let id = drawn["id"].as_str().unwrap().to_owned();
    let get = |uri: String| {
        actix_test::TestRequest::get()
            .uri(&uri)
            .insert_header(("Authorization", format!("Bearer {bearer}")))
            .to_request()
    };
    let again = actix_test::call_service(&app, get(format!("/v1/audit/samples/{id}"))).await;
    assert_eq!(again.status(), 200);
    let again: Value = actix_test::read_body_json(again).await;
    assert_eq!(again, drawn);
    let listed = actix_test::call_service(&app, get(format!("/v1/audit/samples?agency={AGENCY}&limit=5"))).await;
    assert_eq!(listed.status(), 200);
    let listed: Value = actix_test::read_body_json(listed).await;
    assert_eq!(listed[0]["id"], json!(id));
    let bad_limit = actix_test::call_service(&app, get("/v1/audit/samples?limit=0".into())).await;
    assert_eq!(bad_limit.status(), 422);

    let first = drawn["record_ids"][0].clone();
    let no_note = actix_test::call_service(
        &app,
        post(
            &format!("/v1/audit/samples/{id}/results"),
            json!({"results": [{"record_id": first, "outcome": "non_compliant"}]}),
        ),
    )
    .await;
    assert_eq!(no_note.status(), 422);
    let problem: Problem = actix_test::read_body_json(no_note).await;
    assert_eq!(problem.field.as_deref(), Some("results[0].note"));
    let checked = actix_test::call_service(
        &app,
        post(
            &format!("/v1/audit/samples/{id}/results"),
            json!({"results": [{"record_id": first, "outcome": "non_compliant", "note": "目的不符"}]}),
        ),
    )
    .await;
    assert_eq!(checked.status(), 200);
    let checked: Value = actix_test::read_body_json(checked).await;
    assert_eq!(checked["results"][0]["record_id"], first);
    assert!(checked["results"][0]["finding_id"].is_string());
    let twice = actix_test::call_service(
        &app,
        post(
            &format!("/v1/audit/samples/{id}/results"),
            json!({"results": [{"record_id": first, "outcome": "compliant"}]}),
        ),
    )
    .await;
    assert_eq!(twice.status(), 409);
    let stranger = tokens::token("u-hln", "HLN-HR", &[roles::AUDITOR]);
    let hidden = actix_test::call_service(
        &app,
        actix_test::TestRequest::get()
            .uri(&format!("/v1/audit/samples/{id}"))
            .insert_header(("Authorization", format!("Bearer {stranger}")))
            .to_request(),
    )
    .await;
    assert_eq!(hidden.status(), 404);
}
