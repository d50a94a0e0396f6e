//! Rate limits per terminal and per officer (429 with `Retry-After`), and the watch on unusual
//! bulk viewing that raises a security entry in the audit log (SPEC §9). Time is a parameter.

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// Token buckets keyed by principal or officer.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, OffsetDateTime)>>,
}

impl RateLimiter {
    /// `burst` requests at once, `per_minute` sustained.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            capacity: f64::from(burst.max(1)),
            per_second: f64::from(per_minute.max(1)) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how many whole seconds until one is available.
    pub fn check(&self, key: &str, now: OffsetDateTime) -> Result<(), u64> {
        let mut buckets = match self.buckets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buckets.len() > 100_000 {
            // Idle full buckets carry no state worth keeping.
            let capacity = self.capacity;
            let per_second = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + (now - *at).as_seconds_f64() * per_second < capacity);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((self.capacity, now));
        let elapsed = (now - *at).as_seconds_f64().max(0.0);
        *tokens = (*tokens + elapsed * self.per_second).min(self.capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - *tokens) / self.per_second).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }
}

/// Counts the cases each officer views in a sliding-ish window (fixed windows); reports once
/// per window when an officer crosses the threshold.
#[derive(Debug)]
pub struct BulkWatch {
    window: Duration,
    threshold: u64,
    seen: Mutex<HashMap<String, (OffsetDateTime, u64, bool)>>,
}

impl BulkWatch {
    pub fn new(window: Duration, threshold: u64) -> Self {
        Self {
            window,
            threshold,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Adds `views` case views by `officer`; true exactly once per window, when the count
    /// crosses the threshold.
    pub fn observe(&self, officer: &str, views: u64, now: OffsetDateTime) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let window = self.window;
        if seen.len() > 100_000 {
            seen.retain(|_, (start, _, _)| now - *start < window);
        }
        let entry = seen.entry(officer.to_owned()).or_insert((now, 0, false));
        if now - entry.0 >= window {
            *entry = (now, 0, false);
        }
        entry.1 = entry.1.saturating_add(views);
        if entry.1 > self.threshold && !entry.2 {
            entry.2 = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-20 03:00 +09:00);

    #[test]
    fn a_burst_is_allowed_then_limited_then_refilled() {
        let limiter = RateLimiter::new(3, 60);
        for _ in 0..3 {
            assert_eq!(limiter.check("t", T0), Ok(()));
        }
        assert_eq!(limiter.check("t", T0), Err(1));
        // Another key is independent.
        assert_eq!(limiter.check("u", T0), Ok(()));
        assert_eq!(limiter.check("t", T0 + Duration::seconds(1)), Ok(()));
        assert_eq!(limiter.check("t", T0 + Duration::seconds(1)), Err(1));
    }

    #[test]
    fn bulk_viewing_is_reported_once_per_window() {
        let watch = BulkWatch::new(Duration::hours(1), 10);
        assert!(!watch.observe("K-1", 10, T0));
        assert!(watch.observe("K-1", 1, T0 + Duration::minutes(1)));
        assert!(!watch.observe("K-1", 50, T0 + Duration::minutes(2)));
        assert!(!watch.observe("K-2", 5, T0));
        // A new window starts afresh.
        assert!(!watch.observe("K-1", 1, T0 + Duration::hours(2)));
        assert!(watch.observe("K-1", 20, T0 + Duration::hours(2)));
    }
}
