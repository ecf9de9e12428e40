//! Time comes from an injected clock so tests can move it. Business dates (deadlines such as "by the
//! 10th" or "five years") are computed in Asia/Taipei, which is UTC+08:00 all year (no DST), so a fixed
//! offset is exact and needs no time-zone database.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, Utc};

/// Source of "now". Every domain function that depends on time takes one.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(start) }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The wall clock moved by a fixed offset: for the demo only, to show what happens on later dates
/// (the monthly review from the 1st, deadlines) without waiting for them.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    pub offset: Duration,
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

pub fn system_clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// Asia/Taipei: UTC+08:00, no daylight saving time.
pub fn taipei() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("8 hours is a valid UTC offset")
}

/// The business date in Taipei of an instant.
pub fn business_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&taipei()).date_naive()
}

/// The instant a Taipei business date begins (its midnight in Taipei), as UTC: the bound of a
/// period stated in dates, which counts whole Taipei days.
pub fn taipei_day_start(date: NaiveDate) -> DateTime<Utc> {
    // Taipei's offset is fixed, so every local midnight exists exactly once.
    (date.and_time(chrono::NaiveTime::MIN) - chrono::Duration::seconds(i64::from(taipei().local_minus_utc()))).and_utc()
}

/// Database timestamps are stored as naive UTC (portable across PostgreSQL and SQLite).
pub fn to_db(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

pub fn from_db(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

/// Serde for naive-UTC database timestamps: on the wire they are RFC 3339 with `Z`
/// (`#[serde(with = "immilink_shared::clock::rfc3339")]`).
pub mod rfc3339 {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDateTime, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text).map(|at| at.naive_utc()).map_err(serde::de::Error::custom)
    }
}

/// As [`rfc3339`], for optional timestamps (`null` when absent).
pub mod rfc3339_option {
    use chrono::NaiveDateTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::rfc3339::serialize(at, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                .map(|at| Some(at.naive_utc()))
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// ROC (民國) year of a Gregorian year, as shown on reports: 2026 → 115.
pub fn roc_year(gregorian_year: i32) -> i32 {
    gregorian_year - 1911
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn business_date_rolls_over_at_taipei_midnight_not_utc() {
        // 2026-11-22T16:00Z is already 2026-11-23 00:00 in Taipei.
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 16, 0, 0).unwrap();
        assert_eq!(business_date(at), NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
        let before = at - Duration::seconds(1);
        assert_eq!(business_date(before), NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let clock = ManualClock::starting_at(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::days(3));
        assert_eq!(clock.now(), start + Duration::days(3));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn db_round_trip_keeps_the_instant() {
        let at = Utc.with_ymd_and_hms(2026, 5, 17, 3, 4, 5).unwrap();
        assert_eq!(from_db(to_db(at)), at);
    }

    #[test]
    fn database_timestamps_travel_as_rfc3339_utc() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Row {
            #[serde(with = "super::rfc3339")]
            at: NaiveDateTime,
        }
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 7, 16, 14).unwrap().naive_utc();
        let json = serde_json::to_string(&Row { at }).unwrap();
        assert_eq!(json, r#"{"at":"2026-11-23T07:16:14.000000Z"}"#);
        let back: Row = serde_json::from_str(&json).unwrap();
        assert_eq!(back.at, at);
    }

    #[test]
    fn roc_year_of_2026_is_115() {
        assert_eq!(roc_year(2026), 115);
    }
}
