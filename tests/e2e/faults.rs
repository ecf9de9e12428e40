//! Fail-closed audit under faults (R-QRY-08) and upstream resilience (R-QRY-09): the audit service
//! stopped, the broker's database cut (closed, or silently partitioned), the broker restarted
//! mid-traffic, the upstream down, slow or rate limiting. The invariant checked after each: every
//! call nia-mock received has exactly one `lookup.requested` record in the audit service, and no
//! lookup was answered without one.
//!
//! Every wait is bounded: each test body runs [`within`] a time limit, its awaits that could hang
//! are [`step`]s with their own, and the stack is shut down and its databases dropped whether the
//! body passed, failed or got stuck, so a stuck test fails in about a minute with a message instead
//! of holding CI.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use immilink_shared::ids::synthetic_national_id;
use serde_json::{json, Value};

use crate::harness::{problem, step, within, Options, TestStack};

/// How long one fault test's body may run before it is failed as stuck.
const TEST_LIMIT: Duration = Duration::from_secs(75);

fn lookup_of(n: u32) -> Value {
    json!({
        "query_type": "entry_exit_last_year",
        "subject_id": synthetic_national_id(n),
        "legal_basis": "social_assistance_act",
        "purpose_code": "sw_statutory_business",
        "case_number": format!("TPE-SW-2026-{n:06}")
    })
}

/// What clients saw: the audit ids of answered lookups, every other status, and when each request
/// was sent and how long its answer took.
#[derive(Default, Debug)]
struct Seen {
    answered_audit_ids: Vec<String>,
    statuses: BTreeMap<u16, usize>,
    codes: BTreeMap<String, usize>,
    answers: Vec<Answer>,
}

/// One request of the traffic: sent at `sent` (since the traffic started), answered `took` later
/// with `status` (0: no answer, the request failed or timed out).
#[derive(Debug, Clone, Copy)]
struct Answer {
    sent: Duration,
    took: Duration,
    status: u16,
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
        self.answers.extend(other.answers);
    }

    /// The requests that were waiting for their answer at some time within `from..to` (since the
    /// traffic started).
    fn in_flight_between(&self, from: Duration, to: Duration) -> impl Iterator<Item = &Answer> {
        self.answers.iter().filter(move |a| a.sent < to && a.sent + a.took > from)
    }
}

/// Waits until the audit service holds as many `lookup.requested` records as the broker made
/// (nothing more arrives for a while), then checks the invariant against nia-mock's call log.
async fn assert_every_upstream_call_audited_once(t: &TestStack, seen: &Seen) {
    let auditor = t.login("tpe.auditor").await;
    let calls = t.nia_calls().await;
    let called: Vec<String> =
        calls.iter().map(|c| c["lookup_id"].as_str().expect("the broker names the lookup").to_owned()).collect();
    let mut requested;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        requested = t.audit_records(&auditor, "lookup.requested").await;
        let present: BTreeSet<&str> = requested.iter().filter_map(|r| r["correlation_id"].as_str()).collect();
        if called.iter().all(|id| present.contains(id.as_str())) || Instant::now() >= deadline {
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
    let ended = within(TEST_LIMIT, async {
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

        step("restarting audit", Duration::from_secs(30), t.stack.restart("audit")).await.expect("audit restarts");
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
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// How a test takes the broker's database away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Connections closed, new ones closed on arrival (a restart, a reset); on SQLite, another
    /// writer holds the lock.
    Closed,
    /// PostgreSQL: packets dropped, nothing closed (a network partition).
    Silent,
}

/// The broker's database goes away under traffic: nothing is forwarded that is not recorded. On
/// PostgreSQL the connections are cut and lookups are refused (503) within a bounded time, every one
/// of them answered; on SQLite another writer holds the lock and lookups wait for it. Either way, no
/// call reaches the upstream during the cut, and traffic resumes once the database is back.
#[actix_web::test]
async fn r_qry_08_with_the_broker_database_cut_nothing_is_forwarded_unrecorded() {
    let t =
        TestStack::spawn_with(Options { adjust: short_bounds, cuttable_dbs: &["broker"], ..Options::default() }).await;
    let ended = within(TEST_LIMIT, database_cut(&t, Cut::Closed)).await;
    t.shutdown().await;
    ended.conclude();
}

/// The same with the broker's PostgreSQL silently partitioned away (no reset, no answer, as when
/// the network drops its packets): connections stuck in the middle of a commit must not hold the
/// lookups forever. The bounds are shortened but keep the defaults' order: the journal gives up on a
/// stuck commit (connect + statement timeout, 4 s here, 10 s by default) before TCP gives up on the
/// connection (`tcp_user_timeout`, 6 s here, 15 s by default).
#[actix_web::test]
async fn r_qry_08_with_the_broker_database_partitioned_silently_lookups_are_refused_within_the_bound() {
    fn short_database_bounds(config: &mut immilink_stack::StackConfig) {
        short_bounds(config);
        let database = &mut config.broker.service.database;
        database.connect_timeout = Duration::from_secs(2);
        database.postgres.statement = Duration::from_secs(2);
        database.postgres.keepalive_idle = Duration::from_secs(1);
        database.postgres.keepalive_interval = Duration::from_secs(1);
        database.postgres.keepalive_count = 2;
        database.postgres.tcp_user_timeout = Duration::from_secs(6);
    }
    let t = TestStack::spawn_with(Options {
        adjust: short_database_bounds,
        cuttable_dbs: &["broker"],
        ..Options::default()
    })
    .await;
    if !t.broker_db_is_postgres() {
        return t.shutdown().await; // a partition is a network fault: PostgreSQL only
    }
    let ended = within(TEST_LIMIT, database_cut(&t, Cut::Silent)).await;
    t.shutdown().await;
    ended.conclude();
}

async fn database_cut(t: &TestStack, cut: Cut) {
    let postgres = t.broker_db_is_postgres();
    let token = t.login("tpe.caseworker").await;
    // A first lookup warms the permission cache and the pools.
    assert_eq!(t.post(&token, "/v1/lookups", &lookup_of(1)).await.status(), 200);
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let clients = actix_web::rt::spawn(traffic(t.url("/v1/lookups"), token.clone(), 4, Arc::clone(&stop), began));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls_before_cut = t.nia_calls().await.len();
    match cut {
        Cut::Closed => t.cut_broker_db().await,
        Cut::Silent => t.cut_broker_db_silently().await,
    }
    let cut_at = began.elapsed();
    // Lookups already past their durable record when the cut came may still reach the upstream
    // (a moment later on a loaded machine); after that, nothing does while the database is away.
    let settled = calls_settled(t).await;
    // Long enough on PostgreSQL for the journal to give up on the database (its bound: the wait for
    // a connection plus the statement timeout) and refuse lookups.
    let cut_for = match (postgres, cut) {
        (true, Cut::Closed) => Duration::from_secs(7),
        (true, Cut::Silent) => Duration::from_secs(8),
        (false, _) => Duration::from_secs(3),
    };
    tokio::time::sleep(cut_for).await;
    let during_cut = t.nia_calls().await.len();
    t.restore_broker_db().await;
    let restored_at = began.elapsed();
    assert_eq!(during_cut, settled, "no upstream call while the broker cannot record");
    while t.nia_calls().await.len() <= during_cut {
        assert!(began.elapsed() - restored_at < Duration::from_secs(20), "traffic resumes after the database is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Some lookups sent after the restore are answered 200 again.
    let resumed = Instant::now();
    loop {
        let response = t.post(&token, "/v1/lookups", &lookup_of(2)).await;
        if response.status() == 200 {
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(20), "lookups succeed again after the database is back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = step("the traffic clients to finish", Duration::from_secs(40), clients).await.expect("traffic");
    let during: Vec<&Answer> = seen.in_flight_between(cut_at, restored_at).collect();
    let slowest = seen.answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "cut test ({cut:?}): {:?} {:?}; calls before {calls_before_cut}, settled {settled}, during {during_cut}; \
         cut at {cut_at:?}, restored at {restored_at:?}, {} requests in flight during the cut, slowest answer \
         {slowest:?}: {during:?}",
        seen.statuses,
        seen.codes,
        during.len()
    );
    if postgres {
        // While the database is away lookups are refused: a 503 from whichever access fails first
        // (the journal, the backlog bound), never a 200 without a record, and never a request left
        // hanging: each is answered within the journal's bound and a batch already waiting.
        let refused_during: Vec<&&Answer> =
            during.iter().filter(|a| a.status >= 500 && a.sent + a.took < restored_at).collect();
        assert!(
            !refused_during.is_empty(),
            "refused while cut: {:?} {:?}; in flight during the cut: {during:?}",
            seen.statuses,
            seen.codes
        );
        let bound = Duration::from_secs(20);
        assert!(
            seen.answers.iter().all(|a| a.status != 0 && a.took < bound),
            "every lookup answered within {bound:?}: {:?}",
            seen.answers.iter().filter(|a| a.status == 0 || a.took >= bound).collect::<Vec<_>>()
        );
    }
    assert!(settled >= calls_before_cut);
    assert_every_upstream_call_audited_once(t, &seen).await;
}

/// The number of upstream calls once it has stopped changing for a second (bounded): lookups
/// recorded just before a cut finish their upstream call.
async fn calls_settled(t: &TestStack) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut calls = t.nia_calls().await.len();
    let mut stable_since = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(1) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = t.nia_calls().await.len();
        if now != calls {
            calls = now;
            stable_since = Instant::now();
        }
    }
    calls
}

/// The broker is killed while lookups are in flight and started again: lookups it had recorded but
/// not finished are closed as `outcome_unknown`, and every upstream call has exactly one record.
#[actix_web::test]
async fn r_qry_08_a_broker_restarted_mid_traffic_leaves_every_upstream_call_audited_once() {
    let mut t = TestStack::spawn_with(Options { adjust: short_bounds, ..Options::default() }).await;
    let ended = within(TEST_LIMIT, async {
        t.set_nia_faults(json!({ "latency_ms": 150 })).await;
        let token = t.login("tpe.caseworker").await;
        let stop = Arc::new(AtomicBool::new(false));
        let traffic_task =
            actix_web::rt::spawn(traffic(t.url("/v1/lookups"), token.clone(), 6, Arc::clone(&stop), Instant::now()));
        tokio::time::sleep(Duration::from_millis(800)).await;
        step("killing the broker", Duration::from_secs(20), t.stack.kill("broker")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        step("restarting the broker", Duration::from_secs(30), t.stack.restart("broker"))
            .await
            .expect("the broker restarts");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let seen = step("the traffic clients to finish", Duration::from_secs(40), traffic_task).await.expect("traffic");
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
        let mut completions;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            completions = t.audit_records(&auditor, "lookup.completed").await;
            if completions.len() >= requested.len() || Instant::now() >= deadline {
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
        let interrupted = completions
            .iter()
            .filter(|r| r["payload"].as_str().unwrap_or_default().contains("outcome_unknown"))
            .count();
        eprintln!(
            "restart test: {:?}; {} requested, {interrupted} closed as outcome_unknown",
            seen.statuses,
            requested.len()
        );
        assert!(seen.statuses.keys().any(|status| *status != 200), "the kill cut requests off: {seen:?}");
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// `clients` concurrent callers sending lookups to `url` until `stop` is set, each with its own
/// connection pool (a killed broker's cut connections do not poison the harness's client). Every
/// request is bounded; its send time is measured from `began`.
async fn traffic(url: String, token: String, clients: u32, stop: Arc<AtomicBool>, began: Instant) -> Seen {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (url, token, stop) = (url.clone(), token.clone(), Arc::clone(&stop));
        tasks.push(actix_web::rt::spawn(async move {
            let http = immilink_shared::tls::outbound_builder()
                .timeout(crate::harness::REQUEST_TIMEOUT)
                .build()
                .expect("a client");
            let mut seen = Seen::default();
            let mut n = 500_000 + client * 10_000;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let sent = began.elapsed();
                let result = http.post(&url).bearer_auth(&token).json(&lookup_of(n)).send().await;
                let status = result.as_ref().map_or(0, |response| response.status().as_u16());
                let body: Value = match result {
                    Ok(response) => response.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                seen.answers.push(Answer { sent, took: began.elapsed() - sent, status });
                *seen.statuses.entry(status).or_default() += 1;
                if status == 200 {
                    seen.answered_audit_ids.push(body["audit_id"].as_str().unwrap_or_default().to_owned());
                } else {
                    if status != 0 {
                        *seen.codes.entry(body["code"].as_str().unwrap_or("-").to_owned()).or_default() += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
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
    let ended = within(TEST_LIMIT, async {
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
    })
    .await;
    t.shutdown().await;
    ended.conclude();
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
    let ended = within(TEST_LIMIT, async {
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
    })
    .await;
    t.shutdown().await;
    ended.conclude();
}

/// The bound itself, below the broker: a PostgreSQL connection whose packets start being dropped
/// (nothing closed, nothing answered: a network partition) fails its statement within its bounds
/// (keepalives, `tcp_user_timeout`) instead of blocking forever; new connections give up within the
/// connect timeout; once the network is back, a new connection works.
#[actix_web::test]
async fn a_postgres_connection_cut_silently_fails_within_its_bounds_instead_of_hanging() {
    use diesel::connection::SimpleConnection;
    use immilink_shared::db::{bounded_postgres_url, DbSettings};
    let test_db = immilink_shared::testing::TestDb::new();
    if !test_db.is_postgres() {
        return; // a network fault: PostgreSQL only
    }
    let mut url = test_db.url().to_owned();
    let cut = crate::harness::DbCut::install(&mut url);
    let mut settings = DbSettings::new(url);
    settings.connect_timeout = Duration::from_secs(2);
    settings.postgres.keepalive_idle = Duration::from_secs(1);
    settings.postgres.keepalive_interval = Duration::from_secs(1);
    settings.postgres.keepalive_count = 2;
    settings.postgres.tcp_user_timeout = Duration::from_secs(3);
    let url = bounded_postgres_url(&settings.url, &settings);
    let connect = {
        let url = url.clone();
        move || <diesel::PgConnection as diesel::Connection>::establish(&url)
    };
    let (mut busy, mut idle) = (connect().expect("connects through the proxy"), connect().expect("a second one"));
    idle.batch_execute("SELECT 1").expect("answers before the cut");
    // The control: the same URL without the bounds, as every connection was opened before.
    let mut unbounded = <diesel::PgConnection as diesel::Connection>::establish(&settings.url).expect("connects");
    cut.cut_silently().await;
    let unbounded_statement = std::thread::spawn(move || unbounded.batch_execute("SELECT 1").is_err());
    // A statement sent into the partition: its data is never acknowledged.
    let (sent, failed) = step(
        "a statement on a silently cut connection",
        Duration::from_secs(30),
        actix_web::web::block(move || {
            let started = Instant::now();
            (started, busy.batch_execute("SELECT 1").err())
        }),
    )
    .await
    .expect("blocking task");
    let took = sent.elapsed();
    assert!(failed.is_some(), "the statement fails");
    assert!(took < Duration::from_secs(10), "a statement fails within its bound (tcp_user_timeout 3 s): {took:?}");
    // A connection idle when the partition came notices on its next use, also within the bound.
    let (idle_took, idle_failed) = step(
        "a statement on an idle connection after a silent cut",
        Duration::from_secs(30),
        actix_web::web::block(move || {
            let started = Instant::now();
            let failed = idle.batch_execute("SELECT 1").err();
            (started.elapsed(), failed)
        }),
    )
    .await
    .expect("blocking task");
    assert!(idle_failed.is_some() && idle_took < Duration::from_secs(10), "{idle_took:?} {idle_failed:?}");
    // New connections neither succeed nor are refused: the connect timeout ends the attempt.
    let (connect_took, refused) = step("a connection attempt into the partition", Duration::from_secs(30), {
        let connect = connect.clone();
        actix_web::web::block(move || {
            let started = Instant::now();
            let refused = connect().err();
            (started.elapsed(), refused)
        })
    })
    .await
    .expect("blocking task");
    assert!(refused.is_some() && connect_took < Duration::from_secs(10), "{connect_took:?} {refused:?}");
    eprintln!("silent cut: statement failed after {took:?}, idle connection after {idle_took:?}, connect after {connect_took:?}");
    assert!(!unbounded_statement.is_finished(), "without the bounds, the same statement is still waiting");
    cut.restore().await;
    // The restore closes the silenced connections, which ends the unbounded wait too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !unbounded_statement.is_finished() {
        assert!(Instant::now() < deadline, "the unbounded statement ends once its connection is closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unbounded_statement.join().expect("the control thread"), "and fails");
    let mut fresh =
        step("a connection once the network is back", Duration::from_secs(30), actix_web::web::block(connect))
            .await
            .expect("blocking task")
            .expect("connects again");
    fresh.batch_execute("SELECT 1").expect("answers again");
}

/// A pooled connection that the network closed (no goodbye from the server) is dropped by the pool
/// after the work that found it dead, so work succeeds again as soon as the database is back. The
/// first statement after the cut is one the connection never prepared: diesel does not notice a
/// connection lost while preparing, and the pool handed the dead connection out again forever (the
/// broker's audit relay failed "no connection to the server" long after the database was back).
#[actix_web::test]
async fn a_pooled_connection_lost_to_the_network_is_dropped_and_work_resumes_when_the_database_is_back() {
    use immilink_shared::db::{Db, DbSettings};
    use immilink_shared::outbox::{self, OutboxError};
    let test_db = immilink_shared::testing::TestDb::new();
    if !test_db.is_postgres() {
        return; // a network fault: PostgreSQL only
    }
    let mut url = test_db.url().to_owned();
    let cut = crate::harness::DbCut::install(&mut url);
    let db = Db::connect(&DbSettings::new(url), &immilink_stack::broker::MIGRATIONS).expect("connects");
    // Connections in the pool that have not yet prepared the outbox query.
    db.run(|conn| conn.ping().map_err(immilink_shared::db::DbError::from)).await.expect("answers");
    cut.cut().await;
    let pending = |db: &Db| {
        let db = db.clone();
        async move { db.run(|conn| outbox::pending(conn, 10).map(|_| ())).await }
    };
    assert!(pending(&db).await.is_err(), "the work on the cut connection fails");
    cut.restore().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last: Result<(), OutboxError> = pending(&db).await;
    while let Err(err) = &last {
        assert!(Instant::now() < deadline, "work succeeds again once the database is back: {err}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = pending(&db).await;
    }
}
