//! `cargo run --release -p immilink-bench --bin oversight-bench`
//!
//! What the oversight reads cost (issue 12), each against a floor measured in the same run, on
//! PostgreSQL (a throwaway database on `BENCH_PG_URL`, default `postgres://postgres@127.0.0.1:5432`)
//! and then on SQLite (a temp file):
//!
//! - **population**: `OVERSIGHT_BENCH_LOOKUPS` (default 1,000,000) lookups of one agency (TPE-SW)
//!   over the Taipei calendar year 2026, 4 units, 200 users (a supervisor per unit, an account
//!   manager, caseworkers), a session per user and day, 3% of the outcomes failed. The lookups'
//!   records are appended through `chain::append` (1,000 events per batch: `lookup.requested`,
//!   `lookup.completed`, `session.opened`/`session.ended`), which projects them into
//!   `oversight_lookups` and `oversight_sessions` as production does. The first ~20,000 lookups
//!   always go that way and are timed; when that rate (halved: appends slow down as the log grows)
//!   projects more than 6 minutes for the whole population, the rest are inserted as read-model
//!   rows directly (multi-row INSERTs of the same rows the projection writes) and the output says
//!   so. `OVERSIGHT_BENCH_FILL=append|direct` forces either.
//! - **monthly report**: `reviews::open_month` for 2026-11, then `reviews::get` of each unit's
//!   supervisor report as its supervisor; floor: reading that month's rows of `oversight_lookups`
//!   (the columns a report shows) with `COPY (SELECT …) TO STDOUT` through psql, or a plain SELECT on
//!   SQLite. Target ≤ 2×.
//! - **record table**: `query_records::open_table` for the year, then `page` through it 2,000 rows
//!   at a time, each page formatted as CSV (`documents::query_records::csv_rows`), as the route
//!   streams it; floor: COPY / SELECT of the year's rows, every column. Target ≤ 2×.
//! - **sampling**: `samples::draw` over the year at ratio 0.001 with a fixed seed; floor: reading the
//!   population's record ids. Target ≤ 2×.
//! - **peak RSS**: each operation runs in a process of its own (this binary, `child OP URL`), once on
//!   a database of N/10 lookups and once on the full one; memory must not grow with N.
//!
//! Each floor is read once to warm the caches, then timed three times (median); each operation is
//! timed once, in its child process, after its floor. Before the operations, the plans of their
//! main queries are printed (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite), with the
//! record table's page query also as it would be with its cursor written as a usable range.
//!
//! Exits 0 whether or not the targets are met; non-zero when a run could not be set up.
//! `OVERSIGHT_BENCH_LOOKUPS=20000` makes a quick run; `OVERSIGHT_BENCH_KEEP=1` keeps the databases
//! (printing where they are) for a closer look.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use diesel::connection::DefaultLoadingMode;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use immilink_bench::report::{self, verdict};
use immilink_bench::{env_number, postgres};
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{taipei, to_db};
use immilink_shared::db::{Db, DbConn, DbSettings};
use immilink_shared::events::{kind, AuditEvent};
use immilink_shared::typed::{AgencyCode, SessionId, UnitId, UserId};
use immilink_stack::audit::documents::query_records as document;
use immilink_stack::audit::domain::{chain, query_records, reviews, samples};
use immilink_stack::audit::schema::{oversight_lookups, oversight_sessions, review_reports};
use serde_json::json;

const AGENCY: &str = "TPE-SW";
const YEAR: i32 = 2026;
const DAYS: u64 = 365;
const UNITS: u64 = 4;
const USERS: u64 = 200;
/// Events per `chain::append` batch, and lookups per transaction of direct inserts.
const BATCH: usize = 1000;
/// Lookups per half batch: their `lookup.requested` events, then their `lookup.completed` ones.
const HALF_BATCH: usize = 500;
/// Rows per multi-row INSERT (19 columns: under both backends' parameter limits).
const ROWS_PER_INSERT: usize = 500;
/// Lookups always appended through the chain (and timed) before the fill decides.
const PROBE: u64 = 20_000;
/// The most a fill through the chain may take per backend before the rest is inserted directly.
const APPEND_BUDGET_SECS: f64 = 360.0;
/// How much slower per record appending gets from the probe's ~20,000 lookups to 1,000,000 (the log,
/// its tree and the read models grow): 1.7× on SQLite in a trial run (3,370 → 1,994 lookups/s).
const APPEND_SLOWDOWN: f64 = 2.0;
/// Rows per page of the record table, as the route streams it.
const PAGE_ROWS: i64 = 2_000;
const REVIEW_MONTH: &str = "2026-11";
const SAMPLE_RATIO: f64 = 0.001;
const SAMPLE_SEED: &str = "oversight-bench-2026";
const TARGET: f64 = 2.0;
/// Peak RSS growth from N/10 to N below which memory counts as flat (MiB).
const FLAT_MIB: f64 = 20.0;
const FLOOR_RUNS: usize = 3;

const SW_BASES: [&str; 5] = [
    "social_assistance_act",
    "disability_rights_act",
    "senior_welfare_act",
    "child_youth_welfare_act",
    "domestic_violence_act",
];

// --- the population ----------------------------------------------------------------------------

/// SplitMix64: a fixed, well-spread hash of a lookup's number, so every run builds the same data.
fn mix(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A UUIDv7 text for `ms` (its timestamp, as a real one would carry), unique by `tag` and `counter`.
fn v7(at: DateTime<Utc>, tag: u16, counter: u64) -> String {
    let ms = u128::from(at.timestamp_millis().max(0) as u64) & 0xffff_ffff_ffff;
    let value = ms << 80
        | 0x7_u128 << 76
        | (u128::from(tag) & 0xfff) << 64
        | 0x2_u128 << 62
        | (u128::from(counter) & 0x3fff_ffff_ffff_ffff);
    uuid::Uuid::from_u128(value).to_string()
}

fn user_id(user: u64) -> String {
    format!("0193a0c4-5b7e-7cc1-9a41-{user:012x}")
}

fn unit_id(unit: u64) -> String {
    format!("0193a0c4-5b7e-7cc1-9a42-{unit:012x}")
}

/// Users 0..4 supervise units 0..4, user 4 is the account manager, the rest are caseworkers; user
/// `u` works in unit `u % 4`.
fn roles_of(user: u64) -> &'static [&'static str] {
    match user {
        0..=3 => &[roles::UNIT_SUPERVISOR],
        4 => &[roles::ACCOUNT_MANAGER],
        _ => &[roles::CASEWORKER],
    }
}

fn display_name(user: u64) -> String {
    format!("承辦人{user:03}")
}

/// N lookups spread evenly over the 365 days of 2026 (Taipei), each day's between 07:30 and 19:30
/// local time, in order.
#[derive(Clone, Copy)]
struct Population {
    n: u64,
    year_start: DateTime<Utc>,
}

/// One lookup of the population and everything recorded about it.
struct Lookup {
    k: u64,
    day: u64,
    at: DateTime<Utc>,
    user: u64,
    lookup_id: String,
    record_id: String,
    query_type: &'static str,
    legal_basis: &'static str,
    case_number: String,
    subject_id: String,
    remarks: Option<String>,
    proxy_authorization_id: Option<String>,
    outcome: &'static str,
}

impl Lookup {
    fn completed_at(&self) -> DateTime<Utc> {
        self.at + Duration::milliseconds(1_500)
    }

    fn unit(&self) -> String {
        unit_id(self.user % UNITS)
    }

    fn session_id(&self, population: &Population) -> String {
        population.session_id(self.user, self.day)
    }
}

impl Population {
    fn new(n: u64) -> anyhow::Result<Self> {
        let year_start = taipei().with_ymd_and_hms(YEAR, 1, 1, 0, 0, 0).single().context("1 January")?;
        Ok(Self { n, year_start: year_start.with_timezone(&Utc) })
    }

    /// The first lookup of `day` (0-based); `first_of_day(365)` is `n`.
    fn first_of_day(&self, day: u64) -> u64 {
        (day * self.n).div_ceil(DAYS)
    }

    fn day_of(&self, k: u64) -> u64 {
        k * DAYS / self.n
    }

    fn day_start(&self, day: u64) -> DateTime<Utc> {
        self.year_start + Duration::days(day as i64)
    }

    fn session_id(&self, user: u64, day: u64) -> String {
        v7(self.day_start(day) + Duration::hours(7), 0x004, user * 1000 + day)
    }

    fn lookup(&self, k: u64) -> Lookup {
        let day = self.day_of(k);
        let (first, next) = (self.first_of_day(day), self.first_of_day(day + 1));
        let (index, count) = (k - first, (next - first).max(1));
        let offset_ms = 27_000_000 + (2 * index + 1) * 43_200_000 / (2 * count);
        let at = self.day_start(day) + Duration::milliseconds(offset_ms as i64);
        let h = mix(k);
        let query_type = match (h >> 8) % 10 {
            0..=6 => "entry_exit_last_year",
            7 => "foreign_resident_entry_exit",
            8 => "foreigner_residence",
            _ => "arc_validity_address",
        };
        let letter = char::from(b'A' + ((h >> 40) % 26) as u8);
        Lookup {
            k,
            day,
            at,
            user: h % USERS,
            lookup_id: v7(at, 0x001, k),
            record_id: v7(at, 0x002, k),
            query_type,
            legal_basis: SW_BASES[((h >> 16) % SW_BASES.len() as u64) as usize],
            case_number: format!("TPE-SW-2026-{:06}", (h >> 20) % 200_000),
            subject_id: format!("{letter}{}{:08}", 1 + (h >> 45) % 2, (h >> 24) % 100_000_000),
            remarks: (h >> 50).is_multiple_of(10).then(|| "複查補助資格".to_owned()),
            proxy_authorization_id: (h >> 54).is_multiple_of(200).then(|| v7(at, 0x007, k)),
            outcome: if (h >> 58) % 100 < 3 { "failed" } else { "succeeded" },
        }
    }

    /// The users who look something up on `day`, with the day's lookups.
    fn day(&self, day: u64) -> (BTreeSet<u64>, Vec<Lookup>) {
        let lookups: Vec<Lookup> =
            (self.first_of_day(day)..self.first_of_day(day + 1)).map(|k| self.lookup(k)).collect();
        (lookups.iter().map(|l| l.user).collect(), lookups)
    }
}

fn requested_event(population: &Population, l: &Lookup) -> AuditEvent {
    AuditEvent {
        id: l.record_id.clone(),
        kind: kind::LOOKUP_REQUESTED.into(),
        occurred_at: l.at,
        source: "broker".into(),
        actor_user_id: Some(user_id(l.user)),
        agency: Some(AGENCY.into()),
        correlation_id: Some(l.lookup_id.clone()),
        subject_id: Some(l.subject_id.clone()),
        unit: Some(l.unit()),
        payload: json!({
            "lookup_id": l.lookup_id,
            "query_type": l.query_type,
            "legal_basis": l.legal_basis,
            "purpose_code": "sw_statutory_business",
            "case_number": l.case_number,
            "remarks": l.remarks,
            "session_id": l.session_id(population),
            "actor_roles": roles_of(l.user),
            "proxy_authorization_id": l.proxy_authorization_id,
            "batch_id": null,
        }),
    }
}

fn completed_event(l: &Lookup) -> AuditEvent {
    AuditEvent {
        id: v7(l.completed_at(), 0x003, l.k),
        kind: kind::LOOKUP_COMPLETED.into(),
        occurred_at: l.completed_at(),
        source: "broker".into(),
        actor_user_id: Some(user_id(l.user)),
        agency: Some(AGENCY.into()),
        correlation_id: Some(l.lookup_id.clone()),
        subject_id: Some(l.subject_id.clone()),
        unit: Some(l.unit()),
        payload: json!({ "outcome": l.outcome }),
    }
}

fn session_event(population: &Population, user: u64, day: u64, opened: bool) -> AuditEvent {
    let login_at = population.day_start(day) + Duration::hours(7);
    let at = if opened { login_at } else { population.day_start(day) + Duration::hours(20) };
    let session_id = population.session_id(user, day);
    AuditEvent {
        id: v7(at, if opened { 0x005 } else { 0x006 }, user * 1000 + day),
        kind: (if opened { kind::SESSION_OPENED } else { kind::SESSION_ENDED }).into(),
        occurred_at: at,
        source: "identity".into(),
        actor_user_id: Some(user_id(user)),
        agency: Some(AGENCY.into()),
        correlation_id: Some(session_id.clone()),
        subject_id: None,
        unit: None,
        payload: if opened {
            json!({ "session_id": session_id, "user_id": user_id(user), "display_name": display_name(user) })
        } else {
            json!({ "session_id": session_id, "user_id": user_id(user), "login_at": login_at, "reason": "logout" })
        },
    }
}

/// The day's events in the order the services would deliver them: logins, then the lookups (each
/// half batch's requests, then their completions), then the logouts.
fn day_events(population: &Population, day: u64) -> Vec<AuditEvent> {
    let (users, lookups) = population.day(day);
    let mut events: Vec<AuditEvent> = users.iter().map(|u| session_event(population, *u, day, true)).collect();
    for chunk in lookups.chunks(HALF_BATCH) {
        events.extend(chunk.iter().map(|l| requested_event(population, l)));
        events.extend(chunk.iter().map(completed_event));
    }
    events.extend(users.iter().map(|u| session_event(population, *u, day, false)));
    events
}

/// Appends the records of days `[from, to)` through the chain, 1,000 events per batch; the
/// projection fills the read models. Returns the lookups appended.
fn fill_by_append(conn: &mut DbConn, population: &Population, from: u64, to: u64) -> anyhow::Result<u64> {
    let mut pending: Vec<AuditEvent> = Vec::with_capacity(2 * BATCH);
    for day in from..to {
        pending.extend(day_events(population, day));
        while pending.len() >= BATCH || (day + 1 == to && !pending.is_empty()) {
            let batch: Vec<AuditEvent> = pending.drain(..pending.len().min(BATCH)).collect();
            let now = batch.last().map_or_else(Utc::now, |e| e.occurred_at) + Duration::seconds(1);
            chain::append(conn, now, &batch)?;
        }
    }
    Ok(population.first_of_day(to) - population.first_of_day(from))
}

#[derive(Insertable)]
#[diesel(table_name = oversight_lookups)]
struct LookupRow {
    lookup_id: String,
    record_id: String,
    sequence: i64,
    agency: String,
    unit: Option<String>,
    user_id: String,
    actor_roles: String,
    session_id: Option<String>,
    requested_at: NaiveDateTime,
    query_type: String,
    subject_id: String,
    legal_basis: String,
    purpose_code: String,
    case_number: String,
    remarks: Option<String>,
    proxy_authorization_id: Option<String>,
    batch_id: Option<String>,
    outcome: Option<String>,
    completed_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = oversight_sessions)]
struct SessionRow {
    session_id: String,
    user_id: String,
    display_name: Option<String>,
    agency: Option<String>,
    login_at: Option<NaiveDateTime>,
    logout_at: Option<NaiveDateTime>,
}

/// Inserts the read-model rows of days `[from, to)` directly, the rows the projection would write
/// (`sequence` numbers them after the log's records, as if appended), one transaction per day.
fn fill_direct(conn: &mut DbConn, population: &Population, from: u64, to: u64) -> anyhow::Result<u64> {
    let base: i64 = immilink_stack::audit::schema::audit_chain_head::table
        .select(immilink_stack::audit::schema::audit_chain_head::next_sequence)
        .first(conn)?;
    for day in from..to {
        let (users, lookups) = population.day(day);
        let sessions: Vec<SessionRow> = users
            .iter()
            .map(|u| SessionRow {
                session_id: population.session_id(*u, day),
                user_id: user_id(*u),
                display_name: Some(display_name(*u)),
                agency: Some(AGENCY.into()),
                login_at: Some(to_db(population.day_start(day) + Duration::hours(7))),
                logout_at: Some(to_db(population.day_start(day) + Duration::hours(20))),
            })
            .collect();
        let rows: Vec<LookupRow> = lookups
            .iter()
            .map(|l| LookupRow {
                lookup_id: l.lookup_id.clone(),
                record_id: l.record_id.clone(),
                sequence: base + 2 * l.k as i64,
                agency: AGENCY.into(),
                unit: Some(l.unit()),
                user_id: user_id(l.user),
                actor_roles: roles_of(l.user).join(","),
                session_id: Some(l.session_id(population)),
                requested_at: to_db(l.at),
                query_type: l.query_type.into(),
                subject_id: l.subject_id.clone(),
                legal_basis: l.legal_basis.into(),
                purpose_code: "sw_statutory_business".into(),
                case_number: l.case_number.clone(),
                remarks: l.remarks.clone(),
                proxy_authorization_id: l.proxy_authorization_id.clone(),
                batch_id: None,
                outcome: Some(l.outcome.into()),
                completed_at: Some(to_db(l.completed_at())),
            })
            .collect();
        conn.write_transaction(|conn| -> QueryResult<()> {
            for chunk in sessions.chunks(ROWS_PER_INSERT) {
                immilink_shared::insert_rows!(conn, oversight_sessions::table, chunk);
            }
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                immilink_shared::insert_rows!(conn, oversight_lookups::table, chunk);
            }
            Ok(())
        })?;
    }
    Ok(population.first_of_day(to) - population.first_of_day(from))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FillMode {
    /// Every record through `chain::append`.
    Append,
    /// The probe through `chain::append`, the rest as read-model rows inserted directly.
    Direct,
}

/// How a database was filled.
struct Filled {
    appended: u64,
    append_secs: f64,
    direct: u64,
    direct_secs: f64,
}

impl Filled {
    fn describe(&self) -> String {
        let rate = self.appended as f64 / self.append_secs.max(1e-9);
        let mut text = format!(
            "{} lookups appended through chain::append in {:.1} s ({rate:.0} lookups/s, ~{:.0} records/s)",
            self.appended,
            self.append_secs,
            rate * 2.0
        );
        if self.direct > 0 {
            text.push_str(&format!(
                "; {} lookups inserted DIRECTLY as read-model rows (multi-row INSERTs) in {:.1} s",
                self.direct, self.direct_secs
            ));
        }
        text
    }
}

/// Fills a database with `population`: the first days (at least [`PROBE`] lookups) through the
/// chain, the rest as `mode` says (`None`: decide from the probe's rate).
fn fill(conn: &mut DbConn, population: &Population, mode: Option<FillMode>) -> anyhow::Result<(Filled, FillMode)> {
    let probe_days = (1..=DAYS).find(|d| population.first_of_day(*d) >= PROBE.min(population.n)).unwrap_or(DAYS);
    let started = Instant::now();
    let appended = fill_by_append(conn, population, 0, probe_days)?;
    let probe_secs = started.elapsed().as_secs_f64();
    let mode = mode.unwrap_or_else(|| {
        let projected = APPEND_SLOWDOWN * probe_secs / appended.max(1) as f64 * population.n as f64;
        println!(
            "  probe: {appended} lookups through chain::append in {probe_secs:.1} s: {projected:.0} s projected for {} \
             (the probe's rate, {APPEND_SLOWDOWN}× slower as the log grows)",
            population.n
        );
        if projected <= APPEND_BUDGET_SECS {
            FillMode::Append
        } else {
            println!("  → over the {APPEND_BUDGET_SECS:.0} s budget: the rest is inserted directly as read-model rows");
            FillMode::Direct
        }
    });
    let mut filled = Filled { appended, append_secs: probe_secs, direct: 0, direct_secs: 0.0 };
    let started = Instant::now();
    match mode {
        FillMode::Append => {
            filled.appended += fill_by_append(conn, population, probe_days, DAYS)?;
            filled.append_secs += started.elapsed().as_secs_f64();
        }
        FillMode::Direct => {
            filled.direct = fill_direct(conn, population, probe_days, DAYS)?;
            filled.direct_secs = started.elapsed().as_secs_f64();
        }
    }
    if let DbConn::Pg(pg) = &mut *conn {
        // As autovacuum would after so many inserts: the planner knows the tables' sizes.
        pg.batch_execute("ANALYZE oversight_lookups; ANALYZE oversight_sessions")?;
    }
    Ok((filled, mode))
}

// --- the operations, each in a process of its own -----------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Monthly,
    Table,
    Sample,
}

impl Op {
    const ALL: [Op; 3] = [Op::Monthly, Op::Table, Op::Sample];

    fn arg(self) -> &'static str {
        match self {
            Op::Monthly => "monthly",
            Op::Table => "table",
            Op::Sample => "sample",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Op::Monthly => "monthly report (open + 4 unit reports)",
            Op::Table => "record table, year as CSV",
            Op::Sample => "sampling draw, ratio 0.001",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.arg() == text)
    }
}

fn settings(url: &str) -> DbSettings {
    // The audit service's own settings (its statement timeout included).
    let mut settings = DbSettings::for_service("audit", url);
    settings.pool_size = 1;
    settings
}

fn taipei_at(y: i32, m: u32, d: u32, h: u32) -> anyhow::Result<DateTime<Utc>> {
    Ok(taipei().with_ymd_and_hms(y, m, d, h, 0, 0).single().context("a Taipei time")?.with_timezone(&Utc))
}

fn caller(user: String, unit: Option<String>, role: &str) -> Caller {
    Caller {
        user_id: UserId::new(user),
        session_id: SessionId::new("0193a0c4-5b7e-7cc1-9a43-000000000001"),
        agency: AgencyCode::new(AGENCY),
        unit: unit.map(UnitId::new),
        roles: vec![role.to_owned()],
    }
}

fn auditor() -> Caller {
    caller("0193a0c4-5b7e-7cc1-9a44-000000000001".into(), None, roles::AUDITOR)
}

fn review_month() -> anyhow::Result<reviews::Month> {
    reviews::Month::parse(REVIEW_MONTH).context("the review month")
}

fn year_bounds() -> anyhow::Result<(NaiveDateTime, NaiveDateTime)> {
    Ok((
        query_records::year_start(YEAR).context("the year's start")?,
        query_records::year_start(YEAR + 1).context("the year's end")?,
    ))
}

/// The month's run of the review job, then each unit's supervisor opening their report.
fn monthly(conn: &mut DbConn) -> anyhow::Result<String> {
    let now = taipei_at(2026, 12, 1, 9)?;
    let month = review_month()?;
    let started = Instant::now();
    let (opened, added) = reviews::open_month(conn, now, month)?;
    let open_secs = started.elapsed().as_secs_f64();
    let supervisor_reports: Vec<(String, String)> = review_reports::table
        .filter(review_reports::month.eq(month.to_string()))
        .filter(review_reports::reviewer_role.eq(roles::UNIT_SUPERVISOR))
        .order(review_reports::unit.asc())
        .select((review_reports::id, review_reports::unit))
        .load(conn)?;
    let mut entries = 0;
    for (id, unit) in &supervisor_reports {
        let supervisor = (0..UNITS).find(|u| unit_id(*u) == *unit).context("a unit of the population")?;
        let reviewer = caller(user_id(supervisor), Some(unit.clone()), roles::UNIT_SUPERVISOR);
        entries += reviews::get(conn, now, &reviewer, id)?.entries.len();
    }
    anyhow::ensure!(supervisor_reports.len() as u64 == UNITS, "{} supervisor reports", supervisor_reports.len());
    Ok(format!(
        "{opened} reports opened with {added} entries in {open_secs:.2} s; {} supervisor reports read, {entries} entries",
        supervisor_reports.len()
    ))
}

/// The year's query record table as a reader downloads it: CSV, streamed a page at a time.
fn table(conn: &mut DbConn) -> anyhow::Result<String> {
    let now = taipei_at(2027, 1, 5, 10)?;
    let request = query_records::TableRequest { year: Some(YEAR), agency: Some(AGENCY.into()), ..Default::default() };
    let filter = query_records::open_table(conn, now, &auditor(), request, "text/csv")?.context("a table")?;
    let mut bytes = document::csv_header()?.len();
    let (mut rows, mut pages) = (0, 0);
    let (mut page_secs, mut csv_secs) = (0.0, 0.0);
    let mut cursor = None;
    loop {
        let started = Instant::now();
        let page = query_records::page(conn, &filter, cursor.as_ref(), PAGE_ROWS)?;
        page_secs += started.elapsed().as_secs_f64();
        let Some(last) = page.last() else { break };
        cursor = Some(query_records::cursor_after(last));
        let started = Instant::now();
        bytes += document::csv_rows(&page)?.len();
        csv_secs += started.elapsed().as_secs_f64();
        rows += page.len();
        pages += 1;
    }
    Ok(format!(
        "{rows} rows in {pages} pages, {:.1} MiB of CSV ({page_secs:.2} s in query_records::page, \
         {csv_secs:.2} s in csv_rows)",
        bytes as f64 / 1_048_576.0
    ))
}

/// A draw over the whole year at 1/1000, with a fixed seed.
fn sample(conn: &mut DbConn) -> anyhow::Result<String> {
    let now = taipei_at(2027, 1, 5, 11)?;
    let request = samples::DrawRequest {
        agency: Some(AGENCY.into()),
        from: Some(format!("{YEAR}-01-01T00:00:00+08:00")),
        to: Some(format!("{}-01-01T00:00:00+08:00", YEAR + 1)),
        ratio: Some(SAMPLE_RATIO),
        seed: Some(SAMPLE_SEED.into()),
        strata: Vec::new(),
        stratum_size: None,
    };
    let drawn = samples::draw(conn, now, &auditor(), &request)?;
    Ok(format!("population {}, {} records drawn", drawn.sample.population, drawn.records.len()))
}

/// This process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `oversight-bench child OP URL`: opens the database, runs one operation, prints its seconds, this
/// process's peak RSS (MiB) and what it did.
fn child(op: Op, url: &str) -> anyhow::Result<()> {
    let db = Db::connect(&settings(url), &immilink_stack::audit::MIGRATIONS)?;
    let mut conn = db.get()?;
    let started = Instant::now();
    let detail = match op {
        Op::Monthly => monthly(&mut conn)?,
        Op::Table => table(&mut conn)?,
        Op::Sample => sample(&mut conn)?,
    };
    println!("{} {} {detail}", started.elapsed().as_secs_f64(), peak_rss_mib());
    Ok(())
}

/// Runs [`child`] and returns its seconds, peak RSS (MiB) and description.
fn in_child(op: Op, url: &str) -> anyhow::Result<(f64, f64, String)> {
    let output = Command::new(std::env::current_exe()?)
        .args(["child", op.arg(), url])
        .stderr(Stdio::inherit())
        .output()
        .context("running the child process")?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    anyhow::ensure!(output.status.success(), "the {} child failed: {text}", op.arg());
    let mut fields = text.splitn(3, ' ');
    match (fields.next().map(str::parse::<f64>), fields.next().map(str::parse::<f64>), fields.next()) {
        (Some(Ok(secs)), Some(Ok(rss)), detail) => Ok((secs, rss, detail.unwrap_or_default().to_owned())),
        _ => anyhow::bail!("the {} child printed {text:?}", op.arg()),
    }
}

// --- the floors -----------------------------------------------------------------------------------

/// The floor's query on PostgreSQL (for COPY).
fn floor_sql(op: Op) -> anyhow::Result<String> {
    let (year_from, year_to) = year_bounds()?;
    Ok(match op {
        Op::Monthly => {
            let (from, to) = review_month()?.bounds().context("the month's bounds")?;
            format!(
                "SELECT lookup_id, record_id, user_id, requested_at, query_type, subject_id, legal_basis, \
                 purpose_code, case_number, remarks, outcome FROM oversight_lookups \
                 WHERE requested_at >= '{from}' AND requested_at < '{to}'"
            )
        }
        Op::Table => format!(
            "SELECT * FROM oversight_lookups WHERE agency = '{AGENCY}' AND requested_at >= '{year_from}' \
             AND requested_at < '{year_to}'"
        ),
        Op::Sample => format!(
            "SELECT record_id FROM oversight_lookups WHERE agency = '{AGENCY}' AND requested_at >= '{year_from}' \
             AND requested_at < '{year_to}'"
        ),
    })
}

type FullRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    NaiveDateTime,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<NaiveDateTime>,
);

type MonthRow =
    (String, String, String, NaiveDateTime, String, String, String, String, String, Option<String>, Option<String>);

/// Reads the floor's rows the plainest way the backend offers, once; returns the seconds.
fn floor_once(conn: &mut DbConn, url: &str, op: Op) -> anyhow::Result<f64> {
    use oversight_lookups as l;
    let started = Instant::now();
    match conn {
        DbConn::Pg(_) => {
            let status = Command::new("psql")
                .arg(url)
                .arg("-qAtc")
                .arg(format!("COPY ({}) TO STDOUT", floor_sql(op)?))
                .stdout(Stdio::null())
                .status()
                .context("running psql")?;
            anyhow::ensure!(status.success(), "psql COPY failed");
        }
        DbConn::Sqlite(sqlite) => {
            let (year_from, year_to) = year_bounds()?;
            let year = l::table
                .filter(l::agency.eq(AGENCY))
                .filter(l::requested_at.ge(year_from))
                .filter(l::requested_at.lt(year_to));
            let rows = match op {
                Op::Monthly => {
                    let (from, to) = review_month()?.bounds().context("the month's bounds")?;
                    let query = l::table.filter(l::requested_at.ge(from)).filter(l::requested_at.lt(to)).select((
                        l::lookup_id,
                        l::record_id,
                        l::user_id,
                        l::requested_at,
                        l::query_type,
                        l::subject_id,
                        l::legal_basis,
                        l::purpose_code,
                        l::case_number,
                        l::remarks,
                        l::outcome,
                    ));
                    let mut n = 0_u64;
                    for row in query.load_iter::<MonthRow, DefaultLoadingMode>(sqlite)? {
                        row?;
                        n += 1;
                    }
                    n
                }
                Op::Table => {
                    let mut n = 0_u64;
                    for row in year.select(l::all_columns).load_iter::<FullRow, DefaultLoadingMode>(sqlite)? {
                        row?;
                        n += 1;
                    }
                    n
                }
                Op::Sample => {
                    let mut n = 0_u64;
                    for row in year.select(l::record_id).load_iter::<String, DefaultLoadingMode>(sqlite)? {
                        row?;
                        n += 1;
                    }
                    n
                }
            };
            anyhow::ensure!(rows > 0, "nothing read");
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The floor: read once to warm the caches, then the median of [`FLOOR_RUNS`] reads.
fn floor(conn: &mut DbConn, url: &str, op: Op) -> anyhow::Result<f64> {
    floor_once(conn, url, op)?;
    let runs = (0..FLOOR_RUNS).map(|_| floor_once(conn, url, op)).collect::<anyhow::Result<Vec<f64>>>()?;
    Ok(report::median(runs))
}

// --- the run --------------------------------------------------------------------------------------

/// Two throwaway PostgreSQL databases (N/10 and N), dropped on drop.
struct PgDatabases {
    admin_url: String,
    /// `OVERSIGHT_BENCH_KEEP=1`: left in place for a look at them afterwards.
    keep: bool,
    names: Vec<String>,
    urls: Vec<String>,
}

impl PgDatabases {
    fn create(admin_url: &str, labels: &[&str]) -> anyhow::Result<Self> {
        let mut admin = postgres::connect(admin_url)?;
        let run = uuid::Uuid::now_v7().simple().to_string();
        let run = &run[run.len() - 8..];
        let mut created = Self { admin_url: admin_url.to_owned(), keep: keep(), names: Vec::new(), urls: Vec::new() };
        for label in labels {
            let name = format!("immilink_bench_{run}_{label}");
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .with_context(|| format!("CREATE DATABASE {name}"))?;
            created.urls.push(postgres::database_url(admin_url, &name));
            created.names.push(name);
        }
        Ok(created)
    }
}

impl Drop for PgDatabases {
    fn drop(&mut self) {
        if self.keep {
            println!("  kept (OVERSIGHT_BENCH_KEEP): {}", self.urls.join(" "));
            return;
        }
        let Ok(mut admin) = postgres::connect(&self.admin_url) else {
            eprintln!("could not reconnect to drop the benchmark databases {}", self.names.join(", "));
            return;
        };
        for name in &self.names {
            let dropped = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .or_else(|_| admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")));
            if let Err(err) = dropped {
                eprintln!("could not drop the benchmark database {name}: {err}");
            }
        }
    }
}

struct Row {
    op: Op,
    backend: &'static str,
    secs: f64,
    floor_secs: f64,
    rss_small: f64,
    rss_full: f64,
}

/// Whether `OVERSIGHT_BENCH_KEEP` asks to keep the databases after the run.
fn keep() -> bool {
    std::env::var("OVERSIGHT_BENCH_KEEP").is_ok_and(|v| !v.trim().is_empty() && v.trim() != "0")
}

fn fill_mode_from_env() -> anyhow::Result<Option<FillMode>> {
    match std::env::var("OVERSIGHT_BENCH_FILL").unwrap_or_default().trim() {
        "" | "auto" => Ok(None),
        "append" => Ok(Some(FillMode::Append)),
        "direct" => Ok(Some(FillMode::Direct)),
        other => anyhow::bail!("OVERSIGHT_BENCH_FILL={other}: auto, append or direct"),
    }
}

fn run_backend(backend: &'static str, n: u64, forced: Option<FillMode>) -> anyhow::Result<Vec<Row>> {
    println!("\n== {backend} ==");
    let dir = tempfile::Builder::new().prefix("immilink-oversight-bench-").tempdir()?;
    let (full_url, small_url, _databases) = if backend == "PostgreSQL" {
        let databases = PgDatabases::create(&postgres::admin_url(), &["oversight_full", "oversight_small"])?;
        (databases.urls[0].clone(), databases.urls[1].clone(), Some(databases))
    } else {
        let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
        (url("full.db"), url("small.db"), None)
    };
    let full_db = Db::connect(&settings(&full_url), &immilink_stack::audit::MIGRATIONS)?;
    let mut full = full_db.get()?;
    let small_n = (n / 10).max(1);
    println!("  filling {n} lookups…");
    let (filled, mode) = fill(&mut full, &Population::new(n)?, forced)?;
    println!("  full ({n} lookups): {}", filled.describe());
    let small_db = Db::connect(&settings(&small_url), &immilink_stack::audit::MIGRATIONS)?;
    let mut small = small_db.get()?;
    let (filled_small, _) = fill(&mut small, &Population::new(small_n)?, Some(mode))?;
    println!("  small ({small_n} lookups): {}", filled_small.describe());
    drop(small);
    explain(&mut full)?;
    let mut rows = Vec::new();
    for op in Op::ALL {
        println!("  -- {}", op.title());
        let floor_secs = floor(&mut full, &full_url, op)?;
        println!("    floor (median of {FLOOR_RUNS} after a warm-up): {floor_secs:.3} s");
        let (_, rss_small, detail_small) = in_child(op, &small_url)?;
        println!("    N/10: {detail_small}; peak RSS {rss_small:.1} MiB");
        let (secs, rss_full, detail) = in_child(op, &full_url)?;
        println!("    N:    {detail}; {secs:.3} s, peak RSS {rss_full:.1} MiB");
        rows.push(Row { op, backend, secs, floor_secs, rss_small, rss_full });
    }
    if keep() && backend == "SQLite" {
        println!("  kept (OVERSIGHT_BENCH_KEEP): {}", dir.keep().display());
    }
    Ok(rows)
}

/// A value bound to a plan query's `?`.
#[derive(Clone)]
enum Param {
    At(NaiveDateTime),
    Text(String),
}

/// One of the operations' page queries, its `?` bound as the code binds them.
struct PlanQuery {
    what: &'static str,
    sql: String,
    params: Vec<Param>,
}

impl PlanQuery {
    /// The SQL for `conn`'s backend: `$1, $2, …` on PostgreSQL.
    fn sql_for(&self, conn: &DbConn, prefix: &str) -> String {
        let sql = format!("{prefix}{}", self.sql);
        match conn {
            DbConn::Sqlite(_) => sql,
            DbConn::Pg(_) => {
                let mut numbered = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        numbered.push_str(&format!("${n}"));
                    } else {
                        numbered.push(c);
                    }
                }
                numbered
            }
        }
    }
}

/// Loads `sql` with `params` bound, on either backend.
fn load_bound<T>(conn: &mut DbConn, sql: &str, params: &[Param]) -> anyhow::Result<Vec<T>>
where
    T: diesel::deserialize::QueryableByName<diesel::pg::Pg>
        + diesel::deserialize::QueryableByName<diesel::sqlite::Sqlite>
        + 'static,
{
    use diesel::sql_types::{Text, Timestamp};
    Ok(match conn {
        DbConn::Pg(pg) => {
            let mut query = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
            for param in params.iter().cloned() {
                query = match param {
                    Param::At(at) => query.bind::<Timestamp, _>(at),
                    Param::Text(text) => query.bind::<Text, _>(text),
                };
            }
            query.load(pg)?
        }
        DbConn::Sqlite(sqlite) => {
            let mut query = diesel::sql_query(sql).into_boxed::<diesel::sqlite::Sqlite>();
            for param in params.iter().cloned() {
                query = match param {
                    Param::At(at) => query.bind::<Timestamp, _>(at),
                    Param::Text(text) => query.bind::<Text, _>(text),
                };
            }
            query.load(sqlite)?
        }
    })
}

/// The plans the database chooses for the operations' page queries on the full database, before
/// the operations run, with their values bound as the code binds them, and each query's time
/// (`count(*)` over it): a missed target is explained here. Each page query is shown as the code
/// asks it after a cursor late in its range, and with the cursor as its only lower bound instead.
fn explain(conn: &mut DbConn) -> anyhow::Result<()> {
    #[derive(QueryableByName)]
    struct PgLine {
        #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
        line: String,
    }
    #[derive(QueryableByName)]
    struct SqliteLine {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    use Param::{At, Text};
    let (month_from, month_to) = review_month()?.bounds().context("the month's bounds")?;
    let (year_from, year_to) = year_bounds()?;
    // Cursors late in their range: 2026-11-25 in the month, 2026-12-15 in the year (Taipei).
    let in_month = to_db(taipei_at(2026, 11, 25, 10)?);
    let in_year = to_db(taipei_at(2026, 12, 15, 10)?);
    let month_page = |lower: &str| {
        format!(
            "SELECT l.lookup_id, l.agency, l.unit, l.actor_roles, l.requested_at FROM oversight_lookups l \
             WHERE {lower} AND l.requested_at < ? AND NOT EXISTS (SELECT 1 FROM review_entries e \
             WHERE e.lookup_id = l.lookup_id) AND (l.requested_at > ? OR l.lookup_id > ?) \
             ORDER BY l.requested_at, l.lookup_id LIMIT 2000"
        )
    };
    let table_page = |lower: &str| {
        format!(
            "SELECT l.lookup_id, l.record_id, l.agency, l.unit, l.user_id, l.session_id, l.requested_at, \
             l.query_type, l.subject_id, l.outcome, l.legal_basis, l.purpose_code, l.case_number, l.remarks, \
             l.proxy_authorization_id, l.batch_id, s.display_name, s.login_at, s.logout_at \
             FROM oversight_lookups l LEFT JOIN oversight_sessions s ON s.session_id = l.session_id \
             WHERE {lower} AND l.requested_at < ? AND l.agency = ? AND (l.requested_at > ? OR l.lookup_id > ?) \
             ORDER BY l.requested_at, l.lookup_id LIMIT {PAGE_ROWS}"
        )
    };
    let both_bounds = "l.requested_at >= ? AND l.requested_at >= ?";
    let cursor_bound = "l.requested_at >= ?";
    let queries = [
        PlanQuery {
            what: "open_month's page after a cursor on 11-25, as reviews::open_month asks (month start, then cursor)",
            sql: month_page(both_bounds),
            params: vec![At(month_from), At(in_month), At(month_to), At(in_month), Text(String::new())],
        },
        PlanQuery {
            what: "the same with the cursor as the only lower bound",
            sql: month_page(cursor_bound),
            params: vec![At(in_month), At(month_to), At(in_month), Text(String::new())],
        },
        PlanQuery {
            what:
                "the record table's page after a cursor on 12-15, as query_records::page asks (year start, then cursor)",
            sql: table_page(both_bounds),
            params: vec![
                At(year_from),
                At(in_year),
                At(year_to),
                Text(AGENCY.into()),
                At(in_year),
                Text(String::new()),
            ],
        },
        PlanQuery {
            what: "the same with the cursor as the only lower bound",
            sql: table_page(cursor_bound),
            params: vec![At(in_year), At(year_to), Text(AGENCY.into()), At(in_year), Text(String::new())],
        },
    ];
    for query in &queries {
        println!("  PLAN of {}:", query.what);
        match &*conn {
            DbConn::Pg(_) => {
                let sql = query.sql_for(conn, "EXPLAIN (ANALYZE, BUFFERS) ");
                for line in load_bound::<PgLine>(conn, &sql, &query.params)? {
                    println!("    {}", line.line);
                }
            }
            DbConn::Sqlite(_) => {
                let sql = query.sql_for(conn, "EXPLAIN QUERY PLAN ");
                for line in load_bound::<SqliteLine>(conn, &sql, &query.params)? {
                    println!("    {}", line.detail);
                }
            }
        }
        let sql = format!("SELECT count(*) AS n FROM ({}) q", query.sql_for(conn, ""));
        let started = Instant::now();
        let count = load_bound::<Count>(conn, &sql, &query.params)?;
        println!("    → {} rows in {:.1} ms", count.first().map_or(0, |c| c.n), started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}

fn print_table(n: u64, rows: &[Row]) {
    println!("\n== Results: {n} lookups (RSS: N/10 = {} lookups → N) ==\n", (n / 10).max(1));
    println!("| operation | backend | seconds | floor seconds | ratio | target | met | peak RSS N/10 → N | memory |");
    println!("|---|---|---:|---:|---:|---:|---|---:|---|");
    for r in rows {
        let ratio = r.secs / r.floor_secs.max(1e-9);
        let growth = r.rss_full - r.rss_small;
        let memory = if growth < FLAT_MIB { "flat".to_owned() } else { format!("grows {growth:+.0} MiB") };
        println!(
            "| {} | {} | {:.3} | {:.3} | **{:.2}** | ≤ {TARGET:.0} | {} | {:.0} → {:.0} MiB | {memory} |",
            r.op.title(),
            r.backend,
            r.secs,
            r.floor_secs,
            ratio,
            if ratio <= TARGET { "met" } else { "not met" },
            r.rss_small,
            r.rss_full,
        );
    }
    let met = rows.iter().filter(|r| r.secs / r.floor_secs.max(1e-9) <= TARGET).count();
    println!("\n{met} of {} targets met ({})", rows.len(), verdict(met == rows.len()));
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let (Some(op), Some(url)) = (args.get(2).and_then(|op| Op::parse(op)), args.get(3)) else {
            anyhow::bail!("child monthly|table|sample URL")
        };
        return child(op, url);
    }
    let n = env_number("OVERSIGHT_BENCH_LOOKUPS", 1_000_000)?;
    anyhow::ensure!(n >= 1_000, "OVERSIGHT_BENCH_LOOKUPS: at least 1000");
    let forced = fill_mode_from_env()?;
    let started = Instant::now();
    println!("oversight-bench: {n} lookups of {AGENCY} over {YEAR}, {UNITS} units, {USERS} users");
    report::print_machine();
    report::print_load_average();
    let mut rows = Vec::new();
    for backend in ["PostgreSQL", "SQLite"] {
        rows.extend(run_backend(backend, n, forced)?);
    }
    print_table(n, &rows);
    println!("wall clock: {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
