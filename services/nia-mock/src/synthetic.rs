//! Deterministic synthetic data: every answer is derived from a SHA-256 of the subject ID (and, for
//! dates, the business date of the request), so the same ID gives the same answer on the same day and
//! tests can rely on it. About one subject in four has no travel in the last year.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use immilink_shared::clock::business_date;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

const PORTS: &[(&str, &str)] = &[
    ("TPE", "臺灣桃園國際機場"),
    ("TSA", "臺北松山機場"),
    ("KHH", "高雄國際機場"),
    ("RMQ", "臺中國際機場"),
    ("KEL", "基隆港"),
];

const CARRIERS: &[&str] = &["BR", "CI", "JX", "IT", "CX", "JL"];

const SURNAMES: &[&str] = &["陳", "林", "黃", "張", "李", "王", "吳", "劉"];
const GIVEN: &[&str] = &["怡君", "志明", "淑芬", "家豪", "雅婷", "俊傑", "美玲", "建宏"];

fn digest(subject_id: &str) -> [u8; 32] {
    Sha256::digest(subject_id.as_bytes()).into()
}

/// One crossing of the border.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Crossing {
    /// `exit` or `entry`.
    pub direction: String,
    pub date: NaiveDate,
    pub port_code: String,
    pub port_name: String,
    /// Flight or vessel number.
    pub carrier_number: String,
}

/// Upstream answer to `entry_exit_last_year`. Carries more than any one agency is approved for
/// (name, birth date, internal reference): the broker minimises it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EntryExitAnswer {
    pub subject_id: String,
    pub name: String,
    pub birth_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub crossings: Vec<Crossing>,
    pub currently_in_taiwan: bool,
    pub nia_reference: String,
}

fn name_of(d: &[u8; 32]) -> String {
    format!("{}{}", SURNAMES[d[1] as usize % SURNAMES.len()], GIVEN[d[2] as usize % GIVEN.len()])
}

fn birth_date_of(d: &[u8; 32]) -> NaiveDate {
    let days = i64::from(u16::from_be_bytes([d[3], d[4]])) % (60 * 365);
    NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or_default() + Duration::days(days)
}

pub fn entry_exit_last_year(subject_id: &str, now: DateTime<Utc>) -> EntryExitAnswer {
    let d = digest(subject_id);
    let today = business_date(now);
    let period_from = today - Duration::days(365);
    let trips = match d[0] % 8 {
        0 | 1 => 0,
        n => usize::from(n - 1).min(4),
    };
    let mut crossings = Vec::with_capacity(trips * 2);
    // Trips are laid out in disjoint windows of the year so they never overlap.
    let window = 365 / (trips as i64 + 1).max(1);
    for trip in 0..trips {
        let byte = |offset: usize| d[(5 + trip * 4 + offset) % 32];
        let start = period_from + Duration::days(trip as i64 * window + i64::from(byte(0)) % (window / 2).max(1));
        let length = 2 + i64::from(byte(1)) % 20;
        let (port_code, port_name) = PORTS[byte(2) as usize % PORTS.len()];
        let carrier = CARRIERS[byte(3) as usize % CARRIERS.len()];
        let flight = 10 + u32::from(byte(0)) * 3 % 990;
        crossings.push(Crossing {
            direction: "exit".into(),
            date: start,
            port_code: port_code.into(),
            port_name: port_name.into(),
            carrier_number: format!("{carrier}{flight:04}"),
        });
        let back = start + Duration::days(length);
        if back <= today {
            crossings.push(Crossing {
                direction: "entry".into(),
                date: back,
                port_code: port_code.into(),
                port_name: port_name.into(),
                carrier_number: format!("{carrier}{:04}", flight + 1),
            });
        }
    }
    let currently_in_taiwan = crossings.last().is_none_or(|c| c.direction == "entry");
    EntryExitAnswer {
        subject_id: subject_id.to_owned(),
        name: name_of(&d),
        birth_date: birth_date_of(&d),
        period_from,
        period_to: today,
        crossings,
        currently_in_taiwan,
        nia_reference: format!("NIA-{}", hex::encode(&d[24..32])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 4, 0, 0).unwrap()
    }

    #[test]
    fn same_id_same_answer() {
        assert_eq!(entry_exit_last_year("A123456789", now()), entry_exit_last_year("A123456789", now()));
    }

    #[test]
    fn crossings_lie_within_the_last_year_in_order() {
        for id in ["A123456789", "B234567890", "F131104093", "AC01234567", "A800000014"] {
            let answer = entry_exit_last_year(id, now());
            let dates: Vec<_> = answer.crossings.iter().map(|c| c.date).collect();
            let mut sorted = dates.clone();
            sorted.sort();
            assert_eq!(dates, sorted, "{id}");
            assert!(dates.iter().all(|d| *d >= answer.period_from && *d <= answer.period_to), "{id}");
        }
    }

    #[test]
    fn some_subjects_have_no_travel() {
        let none = (0..200)
            .map(|n| format!("X{n:09}"))
            .filter(|id| entry_exit_last_year(id, now()).crossings.is_empty())
            .count();
        assert!(none > 10 && none < 120, "{none} of 200 without travel");
    }
}
