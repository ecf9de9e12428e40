//! In-process rate limiting: a fixed window per key (an IP, a user, an agency). Each replica limits
//! on its own, so a cluster admits up to replicas × the limit; that is the documented trade-off of
//! keeping no shared limiter state (no home-made cluster machinery).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter<K> {
    window: Duration,
    max: u32,
    counts: Mutex<HashMap<K, (Instant, u32)>>,
}

/// Keys kept before expired windows are swept, so a flood of distinct keys cannot grow memory
/// without bound.
const SWEEP_AT: usize = 50_000;

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(max: u32, window: Duration) -> Self {
        Self { window, max, counts: Mutex::new(HashMap::new()) }
    }

    /// Counts one event for `key`. `Err(seconds)` when the key is over its limit: retry after that.
    pub fn hit(&self, key: &K) -> Result<(), u64> {
        self.hit_at(key, Instant::now())
    }

    /// Whether `key` is over its limit, without counting anything.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        match counts.get(key) {
            Some((start, count)) if start.elapsed() < self.window && *count >= self.max => {
                Err(self.retry_after(*start, Instant::now()))
            }
            _ => Ok(()),
        }
    }

    fn hit_at(&self, key: &K, now: Instant) -> Result<(), u64> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.len() >= SWEEP_AT {
            let window = self.window;
            counts.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = counts.entry(key.clone()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.max {
            return Err(self.retry_after(entry.0, now));
        }
        entry.1 += 1;
        Ok(())
    }

    fn retry_after(&self, start: Instant, now: Instant) -> u64 {
        (self.window.saturating_sub(now.duration_since(start))).as_secs().max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_per_window_and_per_key() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.hit_at(&"a", start).is_ok());
        }
        let retry = limiter.hit_at(&"a", start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(retry, 50);
        assert!(limiter.check(&"a").is_err());
        assert!(limiter.hit_at(&"b", start).is_ok());
        // A new window starts afresh.
        assert!(limiter.hit_at(&"a", start + Duration::from_secs(61)).is_ok());
    }
}
