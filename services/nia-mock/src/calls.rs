//! The log of query calls, so a test can see what reached the upstream: how many calls, for which
//! lookup (`x-immilink-lookup-id`), and what each was answered. A call is logged when it arrives and
//! its status filled in when it is answered, so calls still hanging (or abandoned by the caller)
//! count too. Bounded: the oldest records give way past [`CAPACITY`].

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const CAPACITY: usize = 100_000;
/// Status recorded for a call whose caller went away before it was answered (as nginx logs it).
pub const CLIENT_CLOSED: u16 = 499;
/// Logged strings are cut to this many characters: the log must not grow with what callers send.
const MAX_TEXT: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// 1, 2, 3… in arrival order; keeps counting when the log is cleared.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// `x-nia-agency` as sent.
    pub agency: Option<String>,
    /// The path's query type as sent (also when unknown).
    pub query_type: String,
    /// The body's `subject_id`, when the body could be read.
    pub subject_id: Option<String>,
    /// `x-immilink-lookup-id` as sent.
    pub lookup_id: Option<String>,
    /// The HTTP status answered; null while the call is in progress.
    pub status: Option<u16>,
}

/// What is known of a call when it arrives.
#[derive(Debug, Clone, Default)]
pub struct Arrival {
    pub agency: Option<String>,
    pub query_type: String,
    pub subject_id: Option<String>,
    pub lookup_id: Option<String>,
}

#[derive(Default)]
struct Inner {
    last_seq: u64,
    records: VecDeque<CallRecord>,
}

#[derive(Default)]
pub struct CallLog {
    inner: Mutex<Inner>,
}

fn clip(text: Option<String>) -> Option<String> {
    text.map(|t| t.chars().take(MAX_TEXT).collect())
}

impl CallLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logs an arriving call; returns its `seq` for [`CallLog::finish`].
    pub fn start(&self, at: DateTime<Utc>, arrival: Arrival) -> u64 {
        let mut inner = self.lock();
        inner.last_seq += 1;
        let record = CallRecord {
            seq: inner.last_seq,
            at,
            agency: clip(arrival.agency),
            query_type: arrival.query_type.chars().take(MAX_TEXT).collect(),
            subject_id: clip(arrival.subject_id),
            lookup_id: clip(arrival.lookup_id),
            status: None,
        };
        if inner.records.len() >= CAPACITY {
            inner.records.pop_front();
        }
        inner.records.push_back(record);
        inner.last_seq
    }

    /// Records the status call `seq` was answered with (ignored if it has left the log meanwhile).
    pub fn finish(&self, seq: u64, status: u16) {
        let mut inner = self.lock();
        let Some(first) = inner.records.front().map(|r| r.seq) else {
            return;
        };
        let index = seq.checked_sub(first).and_then(|i| usize::try_from(i).ok());
        if let Some(record) = index.and_then(|i| inner.records.get_mut(i)).filter(|r| r.seq == seq) {
            record.status = Some(status);
        }
    }

    pub fn records(&self) -> Vec<CallRecord> {
        self.lock().records.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.lock().records.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival(n: usize) -> Arrival {
        Arrival { query_type: format!("q{n}"), ..Arrival::default() }
    }

    #[test]
    fn calls_are_numbered_in_order_and_finished_by_seq() {
        let log = CallLog::default();
        let now = Utc::now();
        let (a, b) = (log.start(now, arrival(1)), log.start(now, arrival(2)));
        log.finish(b, 200);
        let records = log.records();
        assert_eq!(records.iter().map(|r| (r.seq, r.status)).collect::<Vec<_>>(), [(a, None), (b, Some(200))]);
        log.clear();
        assert!(log.records().is_empty());
        log.finish(a, 500); // gone: ignored
        assert_eq!(log.start(now, arrival(3)), b + 1);
    }

    #[test]
    fn the_log_keeps_the_last_capacity_records_and_clips_long_text() {
        let log = CallLog::default();
        let now = Utc::now();
        for n in 0..CAPACITY + 5 {
            log.start(now, arrival(n));
        }
        log.finish(3, 200); // evicted: ignored
        log.finish(CAPACITY as u64 + 5, 201);
        let records = log.records();
        assert_eq!(records.len(), CAPACITY);
        assert_eq!(records[0].seq, 6);
        assert_eq!(records.last().and_then(|r| r.status), Some(201));
        log.start(now, Arrival { subject_id: Some("x".repeat(10_000)), ..Arrival::default() });
        assert_eq!(log.records().last().and_then(|r| r.subject_id.as_ref()).map(String::len), Some(MAX_TEXT));
    }
}
