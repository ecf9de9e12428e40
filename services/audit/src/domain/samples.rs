//! Sampling (R-AUD-06), reproducible by anyone from the published rule. An auditor (their own
//! agency) or the immigration agency's reviewer (any agency) draws from the population of an
//! agency's lookups (the `lookup.requested` records, rows of `oversight_lookups`) requested in
//! `[from, to)`, leaving out the drawer's own lookups (counted and reported):
//!
//! - the ratio is at least 1/1000 and at most 1; the size is
//!   `n = max(ceil(N × ratio), min(N, 10))`, computed exactly on the ratio's decimal text;
//! - `rank(record) = SHA-256(UTF-8 seed || 0x00 || UTF-8 record id)` read as a 256-bit big-endian
//!   number; the sample is the `n` records of smallest rank, in rank order (ties broken by record id);
//! - the seed is the caller's, or 32 random bytes in hex, recorded either way;
//! - optional risk strata are drawn on top of the uniform `n`, never instead of it, with the same
//!   rank among the stratum's records not already in the sample: off-hours lookups, proxy lookups,
//!   a user's unusually busy day, a subject looked up by many users ([`Stratum`]).
//!
//! The population is streamed (only the columns the rule needs) through bounded heaps: memory stays
//! flat in the population's size. The draw and every recorded result are records in the log, in the
//! transaction of their rows; a sampled record found non-compliant opens a finding (R-AUD-07).

use std::collections::{BinaryHeap, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};
use diesel::prelude::*;
use immilink_shared::auth::{roles, Caller};
use immilink_shared::clock::{business_date, from_db, taipei, to_db};
use immilink_shared::db::DbConn;
use immilink_shared::events::kind;
use immilink_shared::extractors::Page;
use immilink_shared::text_enum;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::findings::{self, FindingOrigin, NewFinding};
use super::records::{require_reader, scope_of, Scope};
use super::retention::own_act;
use super::{chain, AuditError};
use crate::schema::{oversight_lookups, sample_records, samples};

/// Who may draw samples and record their results: auditors (their own agency) and the immigration
/// agency's reviewer (any agency).
pub const DRAWERS: &[&str] = &[roles::AUDITOR, roles::NIA_REVIEWER];

/// Records drawn per risk stratum when the request names no `stratum_size`.
pub const DEFAULT_STRATUM_SIZE: usize = 5;
/// Most records one stratum may add.
pub const MAX_STRATUM_SIZE: usize = 1000;
/// Longest seed accepted (characters).
pub const MAX_SEED_CHARS: usize = 256;
/// Longest note on a result (characters).
pub const MAX_NOTE_CHARS: usize = 2000;
/// Most results recorded in one request.
pub const MAX_RESULTS: usize = 1000;

/// Off-hours strata: a lookup before this hour or from [`OFF_HOURS_FROM`] (Taipei time), or on a
/// weekend, was made outside office hours.
pub const OFFICE_OPENS: u32 = 8;
pub const OFF_HOURS_FROM: u32 = 18;
/// Busy-user strata: a user's lookups on a Taipei day count as unusually many from this many...
pub const BUSY_USER_MIN: u64 = 20;
/// ...and from this many times the period's mean lookups per user and day.
pub const BUSY_USER_FACTOR: u64 = 3;
/// Shared-subject strata: a subject looked up by at least this many different users.
pub const SHARED_SUBJECT_USERS: usize = 3;

text_enum! {
    /// Why a record is in a sample: the uniform draw of the rule's `n`, or a risk stratum drawn on top.
    pub enum Stratum {
        /// The rule's `n` records of smallest rank.
        Uniform = "uniform",
        /// Requested outside 08:00–18:00 Asia/Taipei, or on a Saturday or Sunday.
        OffHours = "off_hours",
        /// Run under a proxy authorization (R-QRY-06).
        Proxy = "proxy",
        /// By a user on a Taipei day with unusually many lookups: at least [`BUSY_USER_MIN`] that
        /// day and at least [`BUSY_USER_FACTOR`] times the period's mean per user and day.
        BusyUser = "busy_user",
        /// Of a subject looked up by at least [`SHARED_SUBJECT_USERS`] different users in the period.
        SharedSubject = "shared_subject",
    }
}

text_enum! {
    /// What the auditor found when checking a sampled record.
    pub enum SampleOutcome {
        /// The lookup had its declared legal basis, purpose and case.
        Compliant = "compliant",
        /// It did not: a finding is opened.
        NonCompliant = "non_compliant",
    }
}

impl Stratum {
    /// The risk strata a request may name (every stratum but the uniform draw).
    pub const RISK: &'static [Stratum] =
        &[Stratum::OffHours, Stratum::Proxy, Stratum::BusyUser, Stratum::SharedSubject];
}

/// Whether a lookup requested at `requested_at` (naive UTC) was outside office hours in Taipei:
/// before 08:00, from 18:00, or on a weekend. Public holidays are not known here.
pub fn off_hours(requested_at: NaiveDateTime) -> bool {
    let local = from_db(requested_at).with_timezone(&taipei());
    matches!(local.weekday(), Weekday::Sat | Weekday::Sun)
        || local.hour() < OFFICE_OPENS
        || local.hour() >= OFF_HOURS_FROM
}

/// A sampling ratio, exactly the decimal its JSON number denotes: `digits / 10^scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ratio {
    text: String,
    digits: u128,
    scale: u32,
}

impl Ratio {
    /// The ratio of a JSON number: its shortest decimal text (Rust never writes it with an
    /// exponent), refused below 1/1000, above 1, or when not finite.
    pub fn parse(value: f64) -> Result<Self, AuditError> {
        let invalid = |detail: &str| AuditError::Invalid { field: "ratio".into(), detail: detail.into() };
        let below = || invalid("must be at least 1/1000 (0.001): a lower ratio is refused");
        let above = || invalid("must not be above 1");
        if !value.is_finite() {
            return Err(invalid("must be a finite number"));
        }
        // Far outside the range: refused before the text could grow past exact integer arithmetic.
        if value < 0.000_9 {
            return Err(below());
        }
        if value > 1.0 {
            return Err(above());
        }
        let text = format!("{value}");
        let (whole, fraction) = text.split_once('.').unwrap_or((text.as_str(), ""));
        let scale = u32::try_from(fraction.len()).map_err(|_| invalid("has too many digits"))?;
        let digits =
            format!("{whole}{fraction}").parse::<u128>().map_err(|_| invalid("is not a plain decimal number"))?;
        let ten_k = 10_u128.checked_pow(scale).ok_or_else(|| invalid("has too many digits"))?;
        // digits / 10^scale < 1/1000  <=>  digits * 1000 < 10^scale
        let per_mille = digits.checked_mul(1000).ok_or_else(above)?;
        if per_mille < ten_k {
            return Err(below());
        }
        if digits > ten_k {
            return Err(above());
        }
        Ok(Self { text, digits, scale })
    }

    /// The ratio as stored: its decimal text.
    pub fn as_text(&self) -> &str {
        &self.text
    }

    /// The ratio as a JSON number (which prints as the same shortest decimal text).
    pub fn as_f64(&self) -> f64 {
        self.text.parse().unwrap_or(f64::NAN)
    }

    /// The rule's sample size for a population of `population` records:
    /// `max(ceil(N × ratio), min(N, 10))`, in integers: every record when fewer than 10.
    pub fn sample_size(&self, population: u64) -> u64 {
        let n = u128::from(population);
        let ten_k = 10_u128.pow(self.scale);
        // The ratio has at most 17 significant digits, so the product fits; saturate regardless.
        let scaled = n.checked_mul(self.digits).map(|p| p.div_ceil(ten_k)).unwrap_or(n);
        let size = scaled.max(n.min(10)).min(n);
        u64::try_from(size).unwrap_or(population)
    }
}

/// A draw as asked for, before it is checked (the body's fields, each optional so a missing one is
/// refused by name).
#[derive(Debug, Clone, Default)]
pub struct DrawRequest {
    pub agency: Option<String>,
    /// RFC 3339 instants: the population is the lookups requested in `[from, to)`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub ratio: Option<f64>,
    pub seed: Option<String>,
    /// Risk strata to draw on top of the uniform sample.
    pub strata: Vec<String>,
    /// Records per stratum (default [`DEFAULT_STRATUM_SIZE`]).
    pub stratum_size: Option<i64>,
}

/// A checked draw.
#[derive(Debug, Clone)]
struct Draw {
    agency: String,
    from: NaiveDateTime,
    to: NaiveDateTime,
    ratio: Ratio,
    seed: String,
    seed_generated: bool,
    strata: Vec<Stratum>,
    stratum_size: usize,
}

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> AuditError {
    AuditError::Invalid { field: field.into(), detail: detail.into() }
}

fn instant(field: &str, value: Option<&str>) -> Result<NaiveDateTime, AuditError> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).ok_or_else(|| invalid(field, "is required"))?;
    DateTime::parse_from_rfc3339(value)
        .map(|at| to_db(at.with_timezone(&Utc)))
        .map_err(|err| invalid(field, format!("must be an RFC 3339 instant such as 2026-11-01T00:00:00+08:00 ({err})")))
}

/// The seed when the caller gives none: 32 random bytes in hex.
fn generated_seed() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl DrawRequest {
    fn parse(&self, caller: &Caller, now: DateTime<Utc>) -> Result<Draw, AuditError> {
        let cross_agency = caller.has(roles::NIA_REVIEWER);
        if !cross_agency && !caller.has(roles::AUDITOR) {
            return Err(AuditError::RoleRequired { roles: DRAWERS });
        }
        let agency = self.agency.as_deref().map(str::trim).unwrap_or_default();
        if agency.is_empty() {
            return Err(invalid("agency", "is required: the agency whose lookups are sampled"));
        }
        if agency.chars().count() > 32 || agency.chars().any(char::is_control) {
            return Err(invalid("agency", "is not an agency code"));
        }
        if !cross_agency && agency != caller.agency.as_str() {
            return Err(AuditError::OtherAgency);
        }
        let from = instant("from", self.from.as_deref())?;
        let to = instant("to", self.to.as_deref())?;
        if from >= to {
            return Err(invalid("to", "must be after from: the period is [from, to)"));
        }
        if to > to_db(now) {
            // A period still open would let lookups recorded later change the population: the
            // draw could not be made again from the published rule.
            return Err(invalid("to", "must not be in the future: a sample is drawn from lookups already made"));
        }
        let ratio = Ratio::parse(self.ratio.ok_or_else(|| invalid("ratio", "is required (at least 0.001)"))?)?;
        let (seed, seed_generated) = match &self.seed {
            Some(seed) => {
                let chars = seed.chars().count();
                if chars == 0 || chars > MAX_SEED_CHARS {
                    return Err(invalid("seed", format!("must be 1 to {MAX_SEED_CHARS} characters")));
                }
                (seed.clone(), false)
            }
            None => (generated_seed(), true),
        };
        let mut strata = Vec::with_capacity(self.strata.len());
        for (index, name) in self.strata.iter().enumerate() {
            let field = format!("strata[{index}]");
            let stratum = name.parse::<Stratum>().ok().filter(|s| Stratum::RISK.contains(s)).ok_or_else(|| {
                let known: Vec<_> = Stratum::RISK.iter().map(|s| s.as_str()).collect();
                invalid(&field, format!("unknown stratum `{name}`; known: {}", known.join(", ")))
            })?;
            if strata.contains(&stratum) {
                return Err(invalid(field, format!("`{name}` is named twice")));
            }
            strata.push(stratum);
        }
        let stratum_size = match self.stratum_size {
            None => DEFAULT_STRATUM_SIZE,
            Some(size) => usize::try_from(size)
                .ok()
                .filter(|size| (1..=MAX_STRATUM_SIZE).contains(size))
                .ok_or_else(|| invalid("stratum_size", format!("must be between 1 and {MAX_STRATUM_SIZE}")))?,
        };
        Ok(Draw { agency: agency.to_owned(), from, to, ratio, seed, seed_generated, strata, stratum_size })
    }
}

/// A sample as stored: the rule's inputs and what they gave.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = samples)]
pub struct Sample {
    pub id: String,
    pub agency: String,
    pub from_at: NaiveDateTime,
    pub to_at: NaiveDateTime,
    /// The ratio's decimal text.
    pub ratio: String,
    pub seed: String,
    pub seed_generated: bool,
    /// Records drawn from (the drawer's own lookups left out).
    pub population: i64,
    /// The rule's `n` (the uniform draw; strata come on top).
    pub size: i64,
    pub excluded_own: i64,
    pub drawn_by: String,
    pub drawn_at: NaiveDateTime,
}

/// One record of a sample, in draw order, with the auditor's result once recorded.
#[derive(Debug, Clone, Queryable, Selectable, PartialEq)]
#[diesel(table_name = sample_records)]
pub struct SampleRecord {
    pub sample_id: String,
    /// 1-based: the uniform draw in rank order first, then each stratum in rank order.
    pub position: i64,
    /// The `lookup.requested` audit record id.
    pub record_id: String,
    pub stratum: Stratum,
    pub outcome: Option<SampleOutcome>,
    pub note: Option<String>,
    pub checked_by: Option<String>,
    pub checked_at: Option<NaiveDateTime>,
    pub finding_id: Option<String>,
}

/// A sample with its records.
#[derive(Debug, Clone, PartialEq)]
pub struct DrawnSample {
    pub sample: Sample,
    pub records: Vec<SampleRecord>,
}

impl DrawnSample {
    /// The ratio as a number.
    pub fn ratio(&self) -> f64 {
        self.sample.ratio.parse().unwrap_or(f64::NAN)
    }

    /// The uniform draw's record ids, in rank order.
    pub fn record_ids(&self) -> Vec<String> {
        self.in_stratum(Stratum::Uniform)
    }

    /// One stratum's record ids, in rank order.
    pub fn in_stratum(&self, stratum: Stratum) -> Vec<String> {
        self.records.iter().filter(|r| r.stratum == stratum).map(|r| r.record_id.clone()).collect()
    }

    /// The risk strata drawn on top, in draw order, with their record ids.
    pub fn strata(&self) -> Vec<(Stratum, Vec<String>)> {
        let mut strata: Vec<(Stratum, Vec<String>)> = Vec::new();
        for record in self.records.iter().filter(|r| r.stratum != Stratum::Uniform) {
            match strata.iter_mut().find(|(s, _)| *s == record.stratum) {
                Some((_, ids)) => ids.push(record.record_id.clone()),
                None => strata.push((record.stratum, vec![record.record_id.clone()])),
            }
        }
        strata
    }
}

/// SHA-256 over `seed || 0x00`, ready to rank record ids: rank(id) = SHA-256(seed || 0x00 || id).
#[derive(Clone)]
struct Ranker(Sha256);

impl Ranker {
    fn new(seed: &str) -> Self {
        let mut prefix = Sha256::new();
        prefix.update(seed.as_bytes());
        prefix.update([0_u8]);
        Self(prefix)
    }

    fn rank(&self, record_id: &str) -> [u8; 32] {
        let mut hasher = self.0.clone();
        hasher.update(record_id.as_bytes());
        hasher.finalize().into()
    }
}

/// The rank of a record under a seed, as the published rule defines it (a 256-bit big-endian number:
/// byte arrays compare the same way).
pub fn rank(seed: &str, record_id: &str) -> [u8; 32] {
    Ranker::new(seed).rank(record_id)
}

/// The `limit` smallest (rank, record id) pairs seen, in a bounded max-heap.
struct Smallest {
    limit: usize,
    heap: BinaryHeap<([u8; 32], String)>,
}

impl Smallest {
    fn new(limit: usize) -> Self {
        Self { limit, heap: BinaryHeap::new() }
    }

    fn offer(&mut self, rank: [u8; 32], record_id: &str) {
        if self.limit == 0 {
            return;
        }
        if self.heap.len() < self.limit {
            self.heap.push((rank, record_id.to_owned()));
            return;
        }
        if let Some(mut largest) = self.heap.peek_mut() {
            if (rank, record_id) < (largest.0, largest.1.as_str()) {
                *largest = (rank, record_id.to_owned());
            }
        }
    }

    /// The pairs in rank order (smallest first).
    fn into_sorted(self) -> Vec<([u8; 32], String)> {
        self.heap.into_sorted_vec()
    }
}

/// What the draw reads of one population record: the id, and the rest only when a stratum needs it.
struct Member<'a> {
    record_id: &'a str,
    details: Option<Details<'a>>,
}

/// The columns the risk strata read.
struct Details<'a> {
    requested_at: NaiveDateTime,
    proxy: bool,
    user_id: &'a str,
    subject_id: &'a str,
}

/// What the aggregate strata know of the whole population before it is ranked.
#[derive(Debug, Default)]
struct Context {
    /// (user, Taipei business date) pairs with unusually many lookups ([`Stratum::BusyUser`]).
    busy_days: HashSet<(String, NaiveDate)>,
    /// Subjects looked up by many users ([`Stratum::SharedSubject`]).
    shared_subjects: HashSet<String>,
}

impl Stratum {
    fn admits(self, member: &Member<'_>, context: &Context) -> bool {
        let Some(details) = &member.details else { return self == Stratum::Uniform };
        match self {
            Stratum::Uniform => true,
            Stratum::OffHours => off_hours(details.requested_at),
            Stratum::Proxy => details.proxy,
            Stratum::BusyUser => {
                context.busy_days.contains(&(details.user_id.to_owned(), business_date(from_db(details.requested_at))))
            }
            Stratum::SharedSubject => context.shared_subjects.contains(details.subject_id),
        }
    }

    /// Whether the stratum needs a first pass over the population (counts per user and day, users
    /// per subject) before records can be ranked.
    fn aggregates(self) -> bool {
        matches!(self, Stratum::BusyUser | Stratum::SharedSubject)
    }
}

/// Rows fetched from the population cursor at a time (PostgreSQL).
const FETCH_ROWS: usize = 10_000;

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    record_id: String,
}

#[derive(QueryableByName)]
struct StrataRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    record_id: String,
    #[diesel(sql_type = diesel::sql_types::Timestamp)]
    requested_at: NaiveDateTime,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    proxy: bool,
    #[diesel(sql_type = diesel::sql_types::Text)]
    user_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    subject_id: String,
}

impl StrataRow {
    fn member(&self) -> Member<'_> {
        Member {
            record_id: &self.record_id,
            details: Some(Details {
                requested_at: self.requested_at,
                proxy: self.proxy,
                user_id: &self.user_id,
                subject_id: &self.subject_id,
            }),
        }
    }
}

/// Streams the population (the agency's lookups requested in `[from, to)`, the drawer's own left
/// out) to `visit`, reading `record_id` only unless `details` (the strata) need more. One query,
/// read as it goes: a server-side cursor fetched in pages on PostgreSQL, a stepped statement on
/// SQLite. Runs inside the caller's (snapshot) transaction.
fn stream_population(
    conn: &mut DbConn,
    draw: &Draw,
    drawer: &str,
    details: bool,
    visit: &mut dyn FnMut(Member<'_>),
) -> Result<(), AuditError> {
    use diesel::connection::{DefaultLoadingMode, SimpleConnection};
    use diesel::sql_types::{Text, Timestamp};
    use oversight_lookups as l;
    match conn {
        DbConn::Pg(pg) => {
            // The whole result is read: plan for that, not for the first rows.
            pg.batch_execute("SET LOCAL cursor_tuple_fraction = 1.0")?;
            let columns = if details {
                "record_id, requested_at, proxy_authorization_id IS NOT NULL AS proxy, user_id, subject_id"
            } else {
                "record_id"
            };
            diesel::sql_query(format!(
                "DECLARE sample_population NO SCROLL CURSOR FOR SELECT {columns} FROM oversight_lookups \
                 WHERE agency = $1 AND requested_at >= $2 AND requested_at < $3 AND user_id <> $4"
            ))
            .bind::<Text, _>(&draw.agency)
            .bind::<Timestamp, _>(draw.from)
            .bind::<Timestamp, _>(draw.to)
            .bind::<Text, _>(drawer)
            .execute(pg)?;
            let fetch = format!("FETCH FORWARD {FETCH_ROWS} FROM sample_population");
            loop {
                let fetched = if details {
                    let rows: Vec<StrataRow> = diesel::sql_query(&fetch).load(pg)?;
                    rows.iter().for_each(|row| visit(row.member()));
                    rows.len()
                } else {
                    let rows: Vec<IdRow> = diesel::sql_query(&fetch).load(pg)?;
                    rows.iter().for_each(|row| visit(Member { record_id: &row.record_id, details: None }));
                    rows.len()
                };
                if fetched < FETCH_ROWS {
                    break;
                }
            }
            pg.batch_execute("CLOSE sample_population")?;
        }
        DbConn::Sqlite(sqlite) => {
            let population = l::table
                .filter(l::agency.eq(&draw.agency))
                .filter(l::requested_at.ge(draw.from))
                .filter(l::requested_at.lt(draw.to))
                .filter(l::user_id.ne(drawer));
            if details {
                let rows = population
                    .select((
                        l::record_id,
                        l::requested_at,
                        l::proxy_authorization_id.is_not_null(),
                        l::user_id,
                        l::subject_id,
                    ))
                    .load_iter::<(String, NaiveDateTime, bool, String, String), DefaultLoadingMode>(sqlite)?;
                for row in rows {
                    let (record_id, requested_at, proxy, user_id, subject_id) = row?;
                    visit(StrataRow { record_id, requested_at, proxy, user_id, subject_id }.member());
                }
            } else {
                let rows = population.select(l::record_id).load_iter::<String, DefaultLoadingMode>(sqlite)?;
                for row in rows {
                    let record_id = row?;
                    visit(Member { record_id: &record_id, details: None });
                }
            }
        }
    }
    Ok(())
}

/// The first pass the aggregate strata need: lookups per user and Taipei day, users per subject.
/// Its memory grows with the user-days and subjects of the period, not with the lookups; it runs
/// only when `busy_user` or `shared_subject` is asked for.
fn aggregate(conn: &mut DbConn, draw: &Draw, drawer: &str) -> Result<Context, AuditError> {
    let (busy, shared) = (draw.strata.contains(&Stratum::BusyUser), draw.strata.contains(&Stratum::SharedSubject));
    let mut per_day: HashMap<(String, NaiveDate), u64> = HashMap::new();
    let mut users_of: HashMap<String, Vec<String>> = HashMap::new();
    let mut population = 0_u64;
    stream_population(conn, draw, drawer, true, &mut |member| {
        let Some(details) = member.details else { return };
        population += 1;
        if busy {
            let day = business_date(from_db(details.requested_at));
            *per_day.entry((details.user_id.to_owned(), day)).or_default() += 1;
        }
        if shared {
            let users = users_of.entry(details.subject_id.to_owned()).or_default();
            if users.len() < SHARED_SUBJECT_USERS && !users.iter().any(|u| u == details.user_id) {
                users.push(details.user_id.to_owned());
            }
        }
    })?;
    // Busy: at least BUSY_USER_MIN lookups that day, and at least BUSY_USER_FACTOR times the
    // period's mean per user-day (count >= factor × population / user-days, in integers).
    let user_days = per_day.len() as u128;
    let busy_days = per_day
        .into_iter()
        .filter(|(_, count)| {
            *count >= BUSY_USER_MIN
                && u128::from(*count) * user_days >= u128::from(BUSY_USER_FACTOR) * u128::from(population)
        })
        .map(|(key, _)| key)
        .collect();
    let shared_subjects = users_of
        .into_iter()
        .filter(|(_, users)| users.len() >= SHARED_SUBJECT_USERS)
        .map(|(subject, _)| subject)
        .collect();
    Ok(Context { busy_days, shared_subjects })
}

/// What a draw found, before it is stored.
struct Drawn {
    population: u64,
    excluded_own: u64,
    uniform: Vec<String>,
    /// Each requested stratum: its records (in rank order) and how many population records it held.
    strata: Vec<(Stratum, Vec<String>, u64)>,
}

/// Reads the population in one snapshot and ranks it: one pass, or two when an aggregate stratum
/// is asked for.
fn rank_population(conn: &mut DbConn, draw: &Draw, drawer: &str) -> Result<Drawn, AuditError> {
    use oversight_lookups as l;
    // Every lookup of the period, the drawer's included: n of it bounds the sample's n, so the
    // heap is sized before the population is counted.
    let in_period: i64 = l::table
        .filter(l::agency.eq(&draw.agency))
        .filter(l::requested_at.ge(draw.from))
        .filter(l::requested_at.lt(draw.to))
        .count()
        .get_result(conn)?;
    let in_period = u64::try_from(in_period).unwrap_or_default();
    let context =
        if draw.strata.iter().any(|s| s.aggregates()) { aggregate(conn, draw, drawer)? } else { Context::default() };
    let bound = usize::try_from(draw.ratio.sample_size(in_period)).unwrap_or(usize::MAX);
    let ranker = Ranker::new(&draw.seed);
    let mut uniform = Smallest::new(bound);
    // A stratum's picks are among its `n + (strata × size)` smallest: at most that many of its
    // records can be taken by the uniform draw and the strata before it.
    let per_stratum = bound.saturating_add(draw.stratum_size.saturating_mul(draw.strata.len()));
    let mut strata: Vec<(Stratum, Smallest, u64)> =
        draw.strata.iter().map(|s| (*s, Smallest::new(per_stratum), 0)).collect();
    let mut population = 0_u64;
    stream_population(conn, draw, drawer, !draw.strata.is_empty(), &mut |member| {
        population += 1;
        let rank = ranker.rank(member.record_id);
        uniform.offer(rank, member.record_id);
        for (stratum, smallest, members) in strata.iter_mut() {
            if stratum.admits(&member, &context) {
                *members += 1;
                smallest.offer(rank, member.record_id);
            }
        }
    })?;
    let n = usize::try_from(draw.ratio.sample_size(population)).unwrap_or(usize::MAX);
    let uniform: Vec<String> = uniform.into_sorted().into_iter().take(n).map(|(_, id)| id).collect();
    let mut taken: HashSet<String> = uniform.iter().cloned().collect();
    let mut drawn_strata = Vec::with_capacity(strata.len());
    for (stratum, smallest, members) in strata {
        let picked: Vec<String> = smallest
            .into_sorted()
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| !taken.contains(id))
            .take(draw.stratum_size)
            .collect();
        taken.extend(picked.iter().cloned());
        drawn_strata.push((stratum, picked, members));
    }
    Ok(Drawn { population, excluded_own: in_period.saturating_sub(population), uniform, strata: drawn_strata })
}

#[derive(Insertable)]
#[diesel(table_name = sample_records)]
struct NewSampleRecord<'a> {
    sample_id: &'a str,
    position: i64,
    record_id: &'a str,
    stratum: Stratum,
}

/// Rows per multi-row INSERT of sample records.
const ROWS_PER_STATEMENT: usize = 1000;

/// Draws a sample (R-AUD-06) and records it: the sample, its records and its record in the log, in
/// one transaction. The population is read first in a snapshot of its own, so appenders are not
/// held up while it is ranked.
pub fn draw(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    request: &DrawRequest,
) -> Result<DrawnSample, AuditError> {
    let draw = request.parse(caller, now)?;
    let drawer = caller.user_id.to_string();
    let drawn = conn.snapshot_transaction(|conn| rank_population(conn, &draw, &drawer))?;
    let sample = Sample {
        id: uuid::Uuid::now_v7().to_string(),
        agency: draw.agency.clone(),
        from_at: draw.from,
        to_at: draw.to,
        ratio: draw.ratio.as_text().to_owned(),
        seed: draw.seed.clone(),
        seed_generated: draw.seed_generated,
        population: i64::try_from(drawn.population).unwrap_or(i64::MAX),
        size: i64::try_from(drawn.uniform.len()).unwrap_or(i64::MAX),
        excluded_own: i64::try_from(drawn.excluded_own).unwrap_or(i64::MAX),
        drawn_by: drawer,
        drawn_at: to_db(now),
    };
    let picks = drawn
        .uniform
        .iter()
        .map(|id| (Stratum::Uniform, id))
        .chain(drawn.strata.iter().flat_map(|(stratum, ids, _)| ids.iter().map(move |id| (*stratum, id))));
    let records: Vec<SampleRecord> = picks
        .enumerate()
        .map(|(index, (stratum, record_id))| SampleRecord {
            sample_id: sample.id.clone(),
            position: index as i64 + 1,
            record_id: record_id.clone(),
            stratum,
            outcome: None,
            note: None,
            checked_by: None,
            checked_at: None,
            finding_id: None,
        })
        .collect();
    let at = |t: NaiveDateTime| from_db(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let payload = json!({
        "sample_id": sample.id,
        "agency": sample.agency,
        "from": at(sample.from_at),
        "to": at(sample.to_at),
        "ratio": draw.ratio.as_f64(),
        "seed": sample.seed,
        "seed_generated": sample.seed_generated,
        "population": sample.population,
        "size": sample.size,
        "excluded_own": sample.excluded_own,
        "record_ids": drawn.uniform,
        "strata": drawn.strata.iter().map(|(stratum, ids, members)| json!({
            "stratum": stratum,
            "members": members,
            "asked": draw.stratum_size,
            "record_ids": ids,
        })).collect::<Vec<_>>(),
    });
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        diesel::insert_into(samples::table)
            .values((
                samples::id.eq(&sample.id),
                samples::agency.eq(&sample.agency),
                samples::from_at.eq(sample.from_at),
                samples::to_at.eq(sample.to_at),
                samples::ratio.eq(&sample.ratio),
                samples::seed.eq(&sample.seed),
                samples::seed_generated.eq(sample.seed_generated),
                samples::population.eq(sample.population),
                samples::size.eq(sample.size),
                samples::excluded_own.eq(sample.excluded_own),
                samples::drawn_by.eq(&sample.drawn_by),
                samples::drawn_at.eq(sample.drawn_at),
            ))
            .execute(conn)?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<NewSampleRecord<'_>> = chunk
                .iter()
                .map(|r| NewSampleRecord {
                    sample_id: &r.sample_id,
                    position: r.position,
                    record_id: &r.record_id,
                    stratum: r.stratum,
                })
                .collect();
            immilink_shared::insert_rows!(&mut *conn, sample_records::table, &rows);
        }
        let act =
            own_act(kind::AUDIT_SAMPLE_DRAWN, now, Some(caller), Some(sample.agency.clone()), &sample.id, payload);
        chain::append_locked(conn, now, &[act])?;
        Ok::<_, AuditError>(())
    })?;
    Ok(DrawnSample { sample, records })
}

fn find_sample(conn: &mut DbConn, id: &str) -> Result<Option<Sample>, AuditError> {
    Ok(samples::table.filter(samples::id.eq(id)).select(Sample::as_select()).first(conn).optional()?)
}

fn records_of(conn: &mut DbConn, id: &str) -> Result<Vec<SampleRecord>, AuditError> {
    Ok(sample_records::table
        .filter(sample_records::sample_id.eq(id))
        .order(sample_records::position.asc())
        .select(SampleRecord::as_select())
        .load(conn)?)
}

/// Whether the reader sees samples of `agency`: a sample covers an agency, not a unit.
fn sees(scope: &Scope, agency: &str) -> bool {
    scope.covers(agency, None)
}

/// One sample with its records, for the readers of its agency; another agency's is "not found".
pub fn get(conn: &mut DbConn, caller: &Caller, id: &str) -> Result<DrawnSample, AuditError> {
    require_reader(caller)?;
    let scope = scope_of(caller);
    let sample =
        find_sample(conn, id)?.filter(|s| sees(&scope, &s.agency)).ok_or(AuditError::NotFound("the sample"))?;
    let records = records_of(conn, id)?;
    Ok(DrawnSample { sample, records })
}

/// The samples the caller may read, newest first, one page at a time (`cursor`: the last id of the
/// previous page); narrowed to `agency` when named (an agency-bound reader may name only their own).
pub fn list(
    conn: &mut DbConn,
    caller: &Caller,
    agency: Option<String>,
    page: &Page,
) -> Result<Vec<Sample>, AuditError> {
    require_reader(caller)?;
    let scope = scope_of(caller);
    let agency = agency.map(|a| a.trim().to_owned()).filter(|a| !a.is_empty());
    let Some(narrowed) = scope.narrow(agency, None)? else {
        return Ok(Vec::new());
    };
    if matches!(scope, Scope::Unit { .. }) {
        // Samples are agency-wide; a unit supervisor's reach is one unit.
        return Ok(Vec::new());
    }
    let mut found = samples::table.select(Sample::as_select()).into_boxed();
    if let Some(agency) = narrowed.agency {
        found = found.filter(samples::agency.eq(agency));
    }
    if let Some(before) = &page.cursor {
        found = found.filter(samples::id.lt(before.clone()));
    }
    Ok(found.order(samples::id.desc()).limit(page.limit).load(conn)?)
}

/// One result as asked for, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct ResultRequest {
    pub record_id: Option<String>,
    pub outcome: Option<SampleOutcome>,
    pub note: Option<String>,
}

fn note(field: &str, value: Option<&str>) -> Result<Option<String>, AuditError> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_NOTE_CHARS {
        return Err(invalid(field, format!("at most {MAX_NOTE_CHARS} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(Some(value.to_owned()))
}

/// Records the auditor's outcome for sampled records (auditors of the sample's agency, the
/// immigration agency's reviewer): only records of the sample, each once, never one's own lookup; a
/// non-compliant one needs a note and opens a finding (R-AUD-07). The results, the findings and the
/// record in the log commit together or not at all.
pub fn record_results(
    conn: &mut DbConn,
    now: DateTime<Utc>,
    caller: &Caller,
    sample_id: &str,
    results: &[ResultRequest],
) -> Result<DrawnSample, AuditError> {
    if !caller.has_any(DRAWERS) {
        return Err(AuditError::RoleRequired { roles: DRAWERS });
    }
    if results.is_empty() {
        return Err(invalid("results", "name at least one sampled record"));
    }
    if results.len() > MAX_RESULTS {
        return Err(invalid("results", format!("at most {MAX_RESULTS} per request")));
    }
    // Checked before anything is read: each result's own fields.
    let mut parsed = Vec::with_capacity(results.len());
    let mut named = HashSet::new();
    for (index, result) in results.iter().enumerate() {
        let field = |name: &str| format!("results[{index}].{name}");
        let record_id = result
            .record_id
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| invalid(field("record_id"), "is required"))?;
        if !named.insert(record_id.to_owned()) {
            return Err(invalid(field("record_id"), "is named twice in this request"));
        }
        let outcome =
            result.outcome.ok_or_else(|| invalid(field("outcome"), "is required: compliant or non_compliant"))?;
        let note = note(&field("note"), result.note.as_deref())?;
        if outcome == SampleOutcome::NonCompliant && note.is_none() {
            return Err(invalid(field("note"), "a non-compliant result needs a note saying what was wrong"));
        }
        parsed.push((index, record_id.to_owned(), outcome, note));
    }
    let cross_agency = caller.has(roles::NIA_REVIEWER);
    conn.write_transaction(|conn| {
        chain::lock_chain(conn)?;
        let sample = find_sample(conn, sample_id)?
            .filter(|s| cross_agency || s.agency == caller.agency.as_str())
            .ok_or(AuditError::NotFound("the sample"))?;
        let ids: Vec<&str> = parsed.iter().map(|(_, id, _, _)| id.as_str()).collect();
        let sampled: HashMap<String, SampleRecord> = sample_records::table
            .filter(sample_records::sample_id.eq(sample_id))
            .filter(sample_records::record_id.eq_any(&ids))
            .select(SampleRecord::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| (r.record_id.clone(), r))
            .collect();
        let lookups: HashMap<String, (String, String, Option<String>)> = oversight_lookups::table
            .filter(oversight_lookups::record_id.eq_any(&ids))
            .select((
                oversight_lookups::record_id,
                oversight_lookups::lookup_id,
                oversight_lookups::user_id,
                oversight_lookups::unit,
            ))
            .load::<(String, String, String, Option<String>)>(conn)?
            .into_iter()
            .map(|(record_id, lookup_id, user_id, unit)| (record_id, (lookup_id, user_id, unit)))
            .collect();
        let mut logged = Vec::with_capacity(parsed.len());
        for (index, record_id, outcome, note) in &parsed {
            let record = sampled.get(record_id).ok_or_else(|| {
                invalid(format!("results[{index}].record_id"), "is not a record of this sample")
            })?;
            if record.outcome.is_some() {
                return Err(AuditError::Conflict {
                    code: "already_checked",
                    detail: format!("sampled record {record_id} was checked already"),
                });
            }
            let lookup = lookups.get(record_id);
            if lookup.is_some_and(|(_, user_id, _)| user_id == caller.user_id.as_str()) {
                return Err(AuditError::OwnLookup("nobody judges their own lookups: another auditor checks this record"));
            }
            let finding_id = if *outcome == SampleOutcome::NonCompliant {
                let lookup_id = lookup.map(|(lookup_id, _, _)| lookup_id.as_str()).unwrap_or("?");
                let finding = findings::open_locked(
                    conn,
                    now,
                    caller,
                    NewFinding {
                        agency: sample.agency.clone(),
                        unit: lookup.and_then(|(_, _, unit)| unit.clone()),
                        origin: FindingOrigin::Sample,
                        origin_ref: Some(format!("{}/{record_id}", sample.id)),
                        description: format!(
                            "Sampled lookup {lookup_id} (audit record {record_id}) of sample {} was found non-compliant: {}",
                            sample.id,
                            note.as_deref().unwrap_or_default()
                        ),
                        deadline: None,
                    },
                )?;
                Some(finding.id)
            } else {
                None
            };
            let updated = diesel::update(
                sample_records::table
                    .filter(sample_records::sample_id.eq(sample_id))
                    .filter(sample_records::position.eq(record.position))
                    .filter(sample_records::outcome.is_null()),
            )
            .set((
                sample_records::outcome.eq(*outcome),
                sample_records::note.eq(note),
                sample_records::checked_by.eq(caller.user_id.as_str()),
                sample_records::checked_at.eq(to_db(now)),
                sample_records::finding_id.eq(&finding_id),
            ))
            .execute(conn)?;
            if updated != 1 {
                return Err(AuditError::Conflict {
                    code: "already_checked",
                    detail: format!("sampled record {record_id} was checked already"),
                });
            }
            logged.push(json!({
                "record_id": record_id,
                "stratum": record.stratum,
                "outcome": outcome,
                "note": note,
                "finding_id": finding_id,
            }));
        }
        let payload = json!({ "sample_id": sample.id, "results": logged });
        let act = own_act(kind::AUDIT_SAMPLE_CHECKED, now, Some(caller), Some(sample.agency.clone()), &sample.id, payload);
        chain::append_locked(conn, now, &[act])?;
        let records = records_of(conn, sample_id)?;
        Ok(DrawnSample { sample, records })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_aud_06_the_ratio_is_read_as_its_exact_decimal() {
        let ratio = Ratio::parse(0.001).unwrap();
        assert_eq!((ratio.as_text(), ratio.digits, ratio.scale), ("0.001", 1, 3));
        assert_eq!(Ratio::parse(1.0).unwrap().as_text(), "1");
        // 1000 × 0.07 is 70.00000000000001 in floating point; the rule's n is exactly 70.
        assert_eq!(Ratio::parse(0.07).unwrap().sample_size(1000), 70);
        assert_eq!(Ratio::parse(0.1 + 0.2).unwrap().as_text(), "0.30000000000000004");
        for refused in [0.000_999_999, 0.0009, -0.5, 0.0, 1.000_000_000_000_000_2, 2.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(Ratio::parse(refused), Err(AuditError::Invalid { field, .. }) if field == "ratio"),
                "{refused}"
            );
        }
    }

    #[test]
    fn r_aud_06_off_hours_are_outside_eight_to_six_taipei_or_on_a_weekend() {
        use chrono::TimeZone;
        let taipei_at = |d: u32, h: u32, m: u32| {
            taipei().with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap().with_timezone(&Utc).naive_utc()
        };
        // 2026-11-02 is a Monday, 2026-11-07 a Saturday.
        assert!(!off_hours(taipei_at(2, 8, 0)));
        assert!(!off_hours(taipei_at(2, 17, 59)));
        assert!(off_hours(taipei_at(2, 7, 59)));
        assert!(off_hours(taipei_at(2, 18, 0)));
        assert!(off_hours(taipei_at(7, 10, 0)));
    }
}
