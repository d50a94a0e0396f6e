//! Rate limits per client certificate and per officer (429 with `Retry-After`), the watch on
//! unusual bulk viewing that raises a security entry in the audit log (SPEC §9), and the
//! coalescing of repeated refusals so that a flood of bad requests cannot flood the log. Time
//! is a parameter.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};

/// Beyond this many keys a map sheds what it no longer needs.
const MAX_KEYS: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

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
        let mut buckets = lock(&self.buckets);
        if buckets.len() > MAX_KEYS {
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

/// Counts per key in fixed windows and reports once per window when a key's count crosses
/// the threshold: the case disclosures made to each officer (every channel), and the
/// refusals of each certificate.
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

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Adds `count` to `key`'s window; exactly once per window, when the count crosses the
    /// threshold, returns the window's count so far.
    pub fn observe(&self, key: &str, count: u64, now: OffsetDateTime) -> Option<u64> {
        let mut seen = lock(&self.seen);
        let window = self.window;
        if seen.len() > MAX_KEYS {
            seen.retain(|_, (start, _, _)| now - *start < window);
        }
        let entry = seen.entry(key.to_owned()).or_insert((now, 0, false));
        if now - entry.0 >= window {
            *entry = (now, 0, false);
        }
        entry.1 = entry.1.saturating_add(count);
        if entry.1 > self.threshold && !entry.2 {
            entry.2 = true;
            return Some(entry.1);
        }
        None
    }
}

/// What makes two refusals "the same" for coalescing: who was refused, on which route, with
/// which answer. Routes are templates and statuses few, so a principal has few keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefusalKey {
    pub principal: String,
    pub subject: Option<String>,
    pub request: String,
    pub status: u16,
}

/// What the audit log must be told about refusals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalNote {
    /// The first refusal of its key in a window: recorded as it is, at once.
    First { key: RefusalKey, reason: String },
    /// `count` further refusals of `key` in a window that has closed, counted rather than
    /// recorded one by one; `reason` is the last one's.
    Repeated {
        key: RefusalKey,
        count: u64,
        reason: String,
    },
    /// `principal` was refused more than the flood threshold within one window (once per
    /// window); `count` refusals so far.
    Flood { principal: String, count: u64 },
}

#[derive(Debug)]
struct Open {
    started: OffsetDateTime,
    repeated: u64,
    reason: String,
}

/// Turns a flood of refusals into a bounded number of entries without losing any: per key,
/// the first refusal of a window is recorded at once, the rest of the window only counted,
/// and the count recorded when the window closes (on the key's next refusal, on `flush`, or
/// on `drain` at shutdown). Every refusal is therefore in the log, as an entry of its own or
/// inside a count.
#[derive(Debug)]
pub struct RefusalCoalescer {
    window: Duration,
    open: Mutex<HashMap<RefusalKey, Open>>,
    flood: BulkWatch,
}

impl RefusalCoalescer {
    /// Windows of `window`; a flood note when one principal is refused more than
    /// `flood_threshold` times within one.
    pub fn new(window: Duration, flood_threshold: u64) -> Self {
        Self {
            window,
            open: Mutex::new(HashMap::new()),
            flood: BulkWatch::new(window, flood_threshold),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Notes one refusal of `key` at `now`; returns what to record, in order.
    pub fn refused(&self, key: RefusalKey, reason: &str, now: OffsetDateTime) -> Vec<RefusalNote> {
        let mut notes = Vec::new();
        let principal = key.principal.clone();
        {
            let mut open = lock(&self.open);
            if open.len() >= MAX_KEYS {
                notes.extend(self.close(&mut open, now, false));
                if open.len() >= MAX_KEYS {
                    notes.extend(self.close(&mut open, now, true));
                }
            }
            match open.get_mut(&key) {
                Some(w) if now - w.started < self.window => {
                    w.repeated = w.repeated.saturating_add(1);
                    reason.clone_into(&mut w.reason);
                }
                _ => {
                    if let Some(ended) = open.remove(&key) {
                        notes.extend(repeated(key.clone(), ended));
                    }
                    open.insert(
                        key.clone(),
                        Open {
                            started: now,
                            repeated: 0,
                            reason: String::new(),
                        },
                    );
                    notes.push(RefusalNote::First {
                        key,
                        reason: reason.to_owned(),
                    });
                }
            }
        }
        if let Some(count) = self.flood.observe(&principal, 1, now) {
            notes.push(RefusalNote::Flood { principal, count });
        }
        notes
    }

    /// Closes the windows that have ended by `now`: the counts of their repeated refusals.
    pub fn flush(&self, now: OffsetDateTime) -> Vec<RefusalNote> {
        self.close(&mut lock(&self.open), now, false)
    }

    /// Closes every window, ended or not (at shutdown): nothing counted stays unrecorded.
    pub fn drain(&self, now: OffsetDateTime) -> Vec<RefusalNote> {
        self.close(&mut lock(&self.open), now, true)
    }

    fn close(&self, open: &mut HashMap<RefusalKey, Open>, now: OffsetDateTime, all: bool) -> Vec<RefusalNote> {
        let ended: Vec<RefusalKey> = open
            .iter()
            .filter(|(_, w)| all || now - w.started >= self.window)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| open.remove(&k).and_then(|w| repeated(k, w)))
            .collect()
    }
}

fn repeated(key: RefusalKey, window: Open) -> Option<RefusalNote> {
    (window.repeated > 0).then_some(RefusalNote::Repeated {
        key,
        count: window.repeated,
        reason: window.reason,
    })
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
        assert_eq!(watch.observe("K-1", 10, T0), None);
        assert_eq!(watch.observe("K-1", 1, T0 + Duration::minutes(1)), Some(11));
        assert_eq!(watch.observe("K-1", 50, T0 + Duration::minutes(2)), None);
        assert_eq!(watch.observe("K-2", 5, T0), None);
        // A new window starts afresh.
        assert_eq!(watch.observe("K-1", 1, T0 + Duration::hours(2)), None);
        assert_eq!(watch.observe("K-1", 20, T0 + Duration::hours(2)), Some(21));
    }

    fn key(principal: &str, request: &str) -> RefusalKey {
        RefusalKey {
            principal: principal.into(),
            subject: None,
            request: request.into(),
            status: 401,
        }
    }

    fn first(k: &RefusalKey, reason: &str) -> RefusalNote {
        RefusalNote::First {
            key: k.clone(),
            reason: reason.into(),
        }
    }

    fn counted(k: &RefusalKey, count: u64, reason: &str) -> RefusalNote {
        RefusalNote::Repeated {
            key: k.clone(),
            count,
            reason: reason.into(),
        }
    }

    #[test]
    fn repeated_refusals_are_recorded_once_then_counted_when_the_window_closes() {
        let c = RefusalCoalescer::new(Duration::minutes(1), 1_000);
        let t = key("urn:t:1", "GET /v1/terminal/cases");
        assert_eq!(c.refused(t.clone(), "garbage", T0), [first(&t, "garbage")]);
        for i in 1..=4 {
            assert!(c.refused(t.clone(), "expired", T0 + Duration::seconds(i)).is_empty());
        }
        // Another route or principal is its own key.
        let u = key("urn:t:1", "GET /v1/terminal/search");
        assert_eq!(c.refused(u.clone(), "garbage", T0), [first(&u, "garbage")]);
        // Nothing has ended yet.
        assert!(c.flush(T0 + Duration::seconds(59)).is_empty());
        // The next refusal after the window closes the old one and opens a new one.
        assert_eq!(
            c.refused(t.clone(), "garbage", T0 + Duration::seconds(60)),
            [counted(&t, 4, "expired"), first(&t, "garbage")]
        );
        // A window with nothing repeated closes silently.
        assert!(c.flush(T0 + Duration::seconds(60)).is_empty());
    }

    #[test]
    fn windows_that_end_quietly_are_flushed_and_drained() {
        let c = RefusalCoalescer::new(Duration::minutes(1), 1_000);
        let t = key("urn:t:1", "GET /v1/terminal/cases");
        let v = key("urn:t:2", "GET /v1/terminal/cases");
        c.refused(t.clone(), "a", T0);
        c.refused(t.clone(), "b", T0);
        c.refused(v.clone(), "a", T0 + Duration::seconds(30));
        c.refused(v.clone(), "c", T0 + Duration::seconds(31));
        assert_eq!(c.flush(T0 + Duration::seconds(60)), [counted(&t, 1, "b")]);
        assert!(c.flush(T0 + Duration::seconds(61)).is_empty());
        // At shutdown even an open window gives up its count.
        assert_eq!(c.drain(T0 + Duration::seconds(62)), [counted(&v, 1, "c")]);
        assert!(c.drain(T0 + Duration::seconds(62)).is_empty());
    }

    #[test]
    fn every_refusal_ends_up_in_an_entry_or_a_count() {
        let c = RefusalCoalescer::new(Duration::seconds(10), 1_000_000);
        let keys = [key("urn:a", "GET /x"), key("urn:a", "GET /y"), key("urn:b", "GET /x")];
        let mut notes = Vec::new();
        let mut total = 0u64;
        for step in 0..5_000i64 {
            let k = keys.get((step % 3) as usize).unwrap().clone();
            notes.extend(c.refused(k, "r", T0 + Duration::milliseconds(step * 7)));
            total += 1;
            if step % 500 == 0 {
                notes.extend(c.flush(T0 + Duration::milliseconds(step * 7)));
            }
        }
        notes.extend(c.drain(T0 + Duration::hours(1)));
        let recorded: u64 = notes
            .iter()
            .map(|n| match n {
                RefusalNote::First { .. } => 1,
                RefusalNote::Repeated { count, .. } => *count,
                RefusalNote::Flood { .. } => 0,
            })
            .sum();
        assert_eq!(recorded, total);
        // 35 s of refusals in 10 s windows, three keys: a handful of entries, not 5,000.
        assert!(notes.len() <= 3 * 2 * 5, "{} entries", notes.len());
    }

    #[test]
    fn a_flood_is_reported_once_per_window_per_principal() {
        let c = RefusalCoalescer::new(Duration::minutes(1), 3);
        let t = key("urn:t:1", "GET /a");
        let u = key("urn:t:1", "GET /b");
        let floods = |notes: Vec<RefusalNote>| {
            notes
                .into_iter()
                .filter(|n| matches!(n, RefusalNote::Flood { .. }))
                .collect::<Vec<_>>()
        };
        assert!(floods(c.refused(t.clone(), "r", T0)).is_empty());
        assert!(floods(c.refused(u.clone(), "r", T0)).is_empty());
        assert!(floods(c.refused(t.clone(), "r", T0)).is_empty());
        // Across routes: the fourth refusal of the principal crosses the threshold of 3.
        assert_eq!(
            floods(c.refused(u.clone(), "r", T0)),
            [RefusalNote::Flood {
                principal: "urn:t:1".into(),
                count: 4
            }]
        );
        assert!(floods(c.refused(t.clone(), "r", T0)).is_empty());
        // Another principal has its own count.
        assert!(floods(c.refused(key("urn:t:2", "GET /a"), "r", T0)).is_empty());
        // The next window may report again.
        for _ in 0..3 {
            assert!(floods(c.refused(t.clone(), "r", T0 + Duration::minutes(1))).is_empty());
        }
        assert_eq!(floods(c.refused(t, "r", T0 + Duration::minutes(1))).len(), 1);
    }
}

/// What one request may carry (`[limits]` in the configuration); a batch import's body has its
/// own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub body_bytes: usize,
    pub header_count: usize,
    /// Names and values together.
    pub header_bytes: usize,
}

impl RequestLimits {
    pub fn body_limit(&self) -> u64 {
        u64::try_from(self.body_bytes).unwrap_or(u64::MAX)
    }
}
