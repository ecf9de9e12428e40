//! Fail-closed audit under faults (R-QRY-08) and upstream resilience (R-QRY-09): the audit service
//! stopped, the broker's database cut, the broker restarted mid-traffic, the upstream down, slow or
//! rate limiting. The invariant checked after each: every call nia-mock received has exactly one
//! `lookup.requested` record in the audit service, and no lookup was answered without one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use immilink_shared::ids::synthetic_national_id;
use serde_json::{json, Value};

use crate::harness::{problem, Options, TestStack};

fn lookup_of(n: u32) -> Value {
    json!({
        "query_type": "entry_exit_last_year",
        "subject_id": synthetic_national_id(n),
        "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business",
        "case_number": format!("TPE-SW-2026-{n:06}")
    })
}

/// What clients saw: the audit ids of answered lookups, and every other status.
#[derive(Default, Debug)]
struct Seen {
    answered_audit_ids: Vec<String>,
    statuses: BTreeMap<u16, usize>,
    codes: BTreeMap<String, usize>,
}

impl Seen {
    fn merge(&mut self, other: Seen) {
        self.answered_audit_ids.extend(other.answered_audit_ids);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (code, n) in other.codes {
            *self.codes.entry(code).or_default() += n;
        }
    }
}

/// Waits until the audit service holds as many `lookup.requested` records as the broker made
/// (nothing more arrives for a while), then checks the invariant against nia-mock's call log.
async fn assert_every_upstream_call_audited_once(t: &TestStack, seen: &Seen) {
    let auditor = t.login("tpe.auditor").await;
    let calls = t.nia_calls().await;
    let called: Vec<String> =
        calls.iter().map(|c| c["lookup_id"].as_str().expect("the broker names the lookup").to_owned()).collect();
    let mut requested = Vec::new();
    for _ in 0..200 {
        requested = t.audit_records(&auditor, "lookup.requested").await;
        let present: BTreeSet<&str> = requested.iter().filter_map(|r| r["correlation_id"].as_str()).collect();
        if called.iter().all(|id| present.contains(id.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut per_lookup: BTreeMap<&str, usize> = BTreeMap::new();
    for record in &requested {
        *per_lookup.entry(record["correlation_id"].as_str().unwrap_or("-")).or_default() += 1;
    }
    assert!(!called.is_empty(), "the traffic reached the upstream");
    for id in &called {
        assert_eq!(per_lookup.get(id.as_str()), Some(&1), "upstream call for lookup {id}: exactly one audit record");
    }
    let calls_per_lookup: BTreeMap<&str, usize> = called.iter().fold(BTreeMap::new(), |mut m, id| {
        *m.entry(id.as_str()).or_default() += 1;
        m
    });
    assert!(calls_per_lookup.values().all(|n| *n == 1), "no lookup was sent upstream twice");
    let audit_ids: BTreeSet<&str> = requested.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in &seen.answered_audit_ids {
        assert!(audit_ids.contains(id.as_str()), "answered lookup {id} has its audit record");
    }
}

fn short_bounds(config: &mut immilink_stack::StackConfig) {
    config.broker.audit_backlog_max_age = Duration::from_secs(2);
    config.broker.interrupted_after = Duration::from_secs(2);
    config.broker.upstream_breaker_open_for = Duration::from_millis(800);
    config.broker.lookups_per_user_per_minute = 100_000;
    config.broker.lookups_per_agency_per_minute = 100_000;
}

/// The audit service stops: lookups go on (their records wait durably in the broker's outbox) until
/// the oldest undelivered record is older than the bound, then new lookups are refused with 503.
/// When audit is back, the backlog drains and every upstream call has exactly one record there.
#[actix_web::test]
async fn r_qry_08_with_audit_down_lookups_stop_at_the_backlog_bound_and_every_call_is_audited_once_back() {
    let mut t = TestStack::spawn_with(Options { adjust: short_bounds, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    t.stack.kill("audit").await;
    let stopped = Instant::now();
    let mut answered = Seen::default();
    let mut refused_at = None;
    let mut n = 0;
    while stopped.elapsed() < Duration::from_secs(15) {
        n += 1;
        let response = t.post(&token, "/v1/lookups", &lookup_of(n)).await;
        if response.status() == 200 {
            let body: Value = response.json().await.expect("lookup");
            answered.answered_audit_ids.push(body["audit_id"].as_str().expect("audit_id").to_owned());
        } else {
            let p = problem(response, 503).await;
            assert_eq!(p["code"], "audit_backlog", "{p}");
            assert_eq!(p["rule"], "R-QRY-08");
            refused_at = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused_at = refused_at.expect("lookups are refused once the backlog is older than the bound");
    assert!(refused_at >= Duration::from_secs(2), "not before the bound: {refused_at:?}");
    assert!(!answered.answered_audit_ids.is_empty(), "lookups continued within the bound");
    let calls_while_down = t.nia_calls().await.len();
    // Refused lookups are not forwarded.
    for _ in 0..3 {
        problem(t.post(&token, "/v1/lookups", &lookup_of(9_000)).await, 503).await;
    }
    assert_eq!(t.nia_calls().await.len(), calls_while_down, "nothing forwarded while refused");

    t.stack.restart("audit").await.expect("audit restarts");
    let back = Instant::now();
    loop {
        let response = t.post(&token, "/v1/lookups", &lookup_of(20_000)).await;
        if response.status() == 200 {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(20), "lookups resume once the backlog drains");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_every_upstream_call_audited_once(&t, &answered).await;
    // The refusals are on the trail too, naming the rule.
    let auditor = t.login("tpe.auditor").await;
    let refusals = t.audit_records(&auditor, "lookup.refused").await;
    assert!(refusals.iter().any(|r| r["payload"].as_str().unwrap_or_default().contains("R-QRY-08")));
    t.stack.stop().await;
}

/// The broker's database goes away under traffic: nothing is forwarded that is not recorded. On
/// PostgreSQL the connections are cut and lookups are refused (503); on SQLite another writer holds
/// the lock and lookups wait for it. Either way, no call reaches the upstream during the cut.
#[actix_web::test]
async fn r_qry_08_with_the_broker_database_cut_nothing_is_forwarded_unrecorded() {
    let t = Arc::new(
        TestStack::spawn_with(Options { adjust: short_bounds, cuttable_broker_db: true, ..Options::default() }).await,
    );
    let token = t.login("tpe.caseworker").await;
    // A first lookup warms the permission cache and the pools.
    assert_eq!(t.post(&token, "/v1/lookups", &lookup_of(1)).await.status(), 200);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients = actix_web::rt::spawn({
        let (url, token, stop) = (t.url("/v1/lookups"), token.clone(), Arc::clone(&stop));
        async move { traffic(url, token, 4, stop).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls_before_cut = t.nia_calls().await.len();
    t.cut_broker_db().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Lookups already past their durable record when the cut came may still reach the upstream;
    // after that, nothing does while the database is away.
    let settled = t.nia_calls().await.len();
    // Long enough on PostgreSQL for the pool to give up connecting (5 s) and refuse lookups.
    let cut_for = if t.broker_db_is_postgres() { Duration::from_secs(7) } else { Duration::from_secs(3) };
    tokio::time::sleep(cut_for).await;
    let during_cut = t.nia_calls().await.len();
    t.restore_broker_db().await;
    assert_eq!(during_cut, settled, "no upstream call while the broker cannot record");
    let restored = Instant::now();
    while t.nia_calls().await.len() <= during_cut {
        assert!(restored.elapsed() < Duration::from_secs(15), "traffic resumes after the database is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = clients.await.expect("traffic");
    eprintln!(
        "cut test: {:?} {:?}; calls before {calls_before_cut}, settled {settled}, during {during_cut}",
        seen.statuses, seen.codes
    );
    if t.broker_db_is_postgres() {
        // Lookups are refused while the database is away: a 503 from whichever access fails first
        // (the permission context, the journal, the backlog bound), or the gateway's own answer
        // when a loaded machine makes the broker slower than its timeout. Never a 200 without a call.
        assert!(
            seen.statuses.keys().any(|status| *status >= 500),
            "refused while cut: {:?} {:?}",
            seen.statuses,
            seen.codes
        );
    }
    assert!(settled >= calls_before_cut);
    assert_every_upstream_call_audited_once(&t, &seen).await;
    if let Ok(t) = Arc::try_unwrap(t) {
        t.stack.stop().await;
    }
}

/// The broker is killed while lookups are in flight and started again: lookups it had recorded but
/// not finished are closed as `outcome_unknown`, and every upstream call has exactly one record.
#[actix_web::test]
async fn r_qry_08_a_broker_restarted_mid_traffic_leaves_every_upstream_call_audited_once() {
    let mut t = TestStack::spawn_with(Options { adjust: short_bounds, ..Options::default() }).await;
    t.set_nia_faults(json!({ "latency_ms": 150 })).await;
    let token = t.login("tpe.caseworker").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic_task = {
        let (url, token, stop) = (t.url("/v1/lookups"), token.clone(), Arc::clone(&stop));
        actix_web::rt::spawn(async move { traffic(url, token, 6, stop).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    t.stack.kill("broker").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.stack.restart("broker").await.expect("the broker restarts");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = traffic_task.await.expect("traffic");
    assert!(seen.statuses.get(&200).copied().unwrap_or(0) > 0, "{seen:?}");
    assert_every_upstream_call_audited_once(&t, &seen).await;
    let auditor = t.login("tpe.auditor").await;
    // Every requested lookup ends with exactly one completion, `outcome_unknown` for those the
    // kill interrupted (closed by the restarted broker once they are older than the bound).
    let requested: BTreeSet<String> = t
        .audit_records(&auditor, "lookup.requested")
        .await
        .iter()
        .filter_map(|r| r["correlation_id"].as_str().map(str::to_owned))
        .collect();
    let mut completions = Vec::new();
    for _ in 0..100 {
        completions = t.audit_records(&auditor, "lookup.completed").await;
        if completions.len() >= requested.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut per_lookup: BTreeMap<String, usize> = BTreeMap::new();
    for record in &completions {
        *per_lookup.entry(record["correlation_id"].as_str().unwrap_or("-").to_owned()).or_default() += 1;
    }
    for id in &requested {
        assert_eq!(per_lookup.get(id), Some(&1), "lookup {id} has exactly one completion");
    }
    let interrupted =
        completions.iter().filter(|r| r["payload"].as_str().unwrap_or_default().contains("outcome_unknown")).count();
    eprintln!(
        "restart test: {:?}; {} requested, {interrupted} closed as outcome_unknown",
        seen.statuses,
        requested.len()
    );
    assert!(seen.statuses.keys().any(|status| *status != 200), "the kill cut requests off: {seen:?}");
    t.stack.stop().await;
}

/// `clients` concurrent callers sending lookups to `url` until `stop` is set, each with its own
/// connection pool (a killed broker's cut connections do not poison the harness's client).
async fn traffic(url: String, token: String, clients: u32, stop: Arc<std::sync::atomic::AtomicBool>) -> Seen {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (url, token, stop) = (url.clone(), token.clone(), Arc::clone(&stop));
        tasks.push(actix_web::rt::spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = Seen::default();
            let mut n = 500_000 + client * 10_000;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                match http.post(&url).bearer_auth(&token).json(&lookup_of(n)).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        *seen.statuses.entry(status).or_default() += 1;
                        let body: Value = response.json().await.unwrap_or(Value::Null);
                        if status == 200 {
                            seen.answered_audit_ids.push(body["audit_id"].as_str().unwrap_or_default().to_owned());
                        } else {
                            *seen.codes.entry(body["code"].as_str().unwrap_or("-").to_owned()).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(30)).await;
                        }
                    }
                    Err(_) => {
                        *seen.statuses.entry(0).or_default() += 1;
                        tokio::time::sleep(Duration::from_millis(30)).await;
                    }
                }
            }
            seen
        }));
    }
    let mut all = Seen::default();
    for task in tasks {
        all.merge(task.await.expect("client"));
    }
    all
}

/// The upstream is down: callers get 503 naming R-QRY-09 with the doubt-query pointer; after a few
/// failures the circuit opens and lookups are refused without calling (and without recording a
/// lookup as forwarded); once the upstream is back, a probe closes the circuit.
#[actix_web::test]
async fn r_qry_09_upstream_outage_opens_the_circuit_then_a_probe_closes_it() {
    let t = TestStack::spawn_with(Options { adjust: short_bounds, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    t.set_nia_faults(json!({ "outage": true })).await;
    for n in 0..5 {
        let p = problem(t.post(&token, "/v1/lookups", &lookup_of(n)).await, 503).await;
        assert_eq!(p["code"], "upstream_unavailable");
        assert_eq!(p["rule"], "R-QRY-09");
        assert!(p["hint"].as_str().unwrap_or_default().contains("/v1/doubt-queries"), "{p}");
    }
    assert_eq!(t.nia_calls().await.len(), 5);
    let refused = t.post(&token, "/v1/lookups", &lookup_of(6)).await;
    assert!(refused.headers().contains_key("retry-after"));
    let p = problem(refused, 503).await;
    assert_eq!(p["rule"], "R-QRY-09");
    assert_eq!(t.nia_calls().await.len(), 5, "an open circuit does not call the upstream");
    t.set_nia_faults(json!({})).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(t.post(&token, "/v1/lookups", &lookup_of(7)).await.status(), 200, "the probe succeeds");
    assert_eq!(t.post(&token, "/v1/lookups", &lookup_of(8)).await.status(), 200, "the circuit is closed");
    assert_every_upstream_call_audited_once(&t, &Seen::default()).await;
    t.stack.stop().await;
}

/// A query that times out upstream is answered 503 and is not repeated (a repeat would be a second
/// query under one record); an upstream 429 is passed on as 503 with its Retry-After.
#[actix_web::test]
async fn r_qry_09_timeouts_are_not_retried_and_upstream_rate_limits_carry_retry_after() {
    fn fast_timeout(config: &mut immilink_stack::StackConfig) {
        short_bounds(config);
        config.broker.upstream_timeout = Duration::from_millis(400);
    }
    let t = TestStack::spawn_with(Options { adjust: fast_timeout, ..Options::default() }).await;
    let token = t.login("tpe.caseworker").await;
    t.set_nia_faults(json!({ "timeout_rate": 1.0, "hang_ms": 2000 })).await;
    let p = problem(t.post(&token, "/v1/lookups", &lookup_of(1)).await, 503).await;
    assert_eq!(p["code"], "upstream_unavailable");
    assert_eq!(t.nia_calls().await.len(), 1, "a timed-out query is not sent again");

    t.set_nia_faults(json!({ "rate_limit": { "per_second": 1, "retry_after_secs": 7 } })).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(t.post(&token, "/v1/lookups", &lookup_of(2)).await.status(), 200);
    let limited = t.post(&token, "/v1/lookups", &lookup_of(3)).await;
    assert_eq!(limited.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    let p = problem(limited, 503).await;
    assert_eq!(p["rule"], "R-QRY-09");
    assert_every_upstream_call_audited_once(&t, &Seen::default()).await;
    t.stack.stop().await;
}
