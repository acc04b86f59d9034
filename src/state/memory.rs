//! In-process greylist triplets and DNS list answers, both bounded.
//!
//! Times are passed in (milliseconds on a caller's clock) so that the
//! greylist rules can be tested without waiting.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::GreyResult;

/// What the greylist remembers of one triplet.
#[derive(Debug, Clone, Copy)]
struct Triplet {
    first_seen: u64,
    /// Retried after the delay: passes until `expires`.
    confirmed: bool,
    expires: u64,
}

/// The timings of the greylist, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct GreyTimes {
    pub delay: u64,
    pub retry_window: u64,
    pub expiry: u64,
}

pub struct MemoryGreylist {
    map: DashMap<u64, Triplet>,
    hasher: RandomState,
    max_entries: usize,
}

impl MemoryGreylist {
    pub fn new(max_entries: usize) -> Self {
        MemoryGreylist {
            map: DashMap::new(),
            hasher: RandomState::new(),
            max_entries,
        }
    }

    /// Records an attempt of `triplet` at `now` and says whether it may pass.
    pub fn attempt(&self, triplet: &str, now: u64, times: GreyTimes) -> GreyResult {
        self.make_room(now);
        let key = self.hasher.hash_one(triplet);
        match self.map.entry(key) {
            Entry::Vacant(entry) => {
                entry.insert(new_triplet(now, times));
                GreyResult::New
            }
            Entry::Occupied(mut entry) => {
                let t = entry.get_mut();
                let (result, next) = judge(*t, now, times);
                *t = next;
                result
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn make_room(&self, now: u64) {
        if self.map.len() < self.max_entries {
            return;
        }
        self.map.retain(|_, t| t.expires > now);
        if self.map.len() > self.max_entries / 4 * 3 {
            // Unconfirmed triplets are the cheap ones to lose: a real
            // sender retries and is delayed once more.
            self.map.retain(|_, t| t.confirmed);
        }
    }
}

fn new_triplet(now: u64, times: GreyTimes) -> Triplet {
    Triplet {
        first_seen: now,
        confirmed: false,
        expires: now + times.retry_window,
    }
}

/// The greylist rule for a triplet seen before.
fn judge(t: Triplet, now: u64, times: GreyTimes) -> (GreyResult, Triplet) {
    if t.expires <= now {
        return (GreyResult::New, new_triplet(now, times));
    }
    if t.confirmed {
        let next = Triplet {
            expires: now + times.expiry,
            ..t
        };
        return (GreyResult::Known, next);
    }
    if now < t.first_seen + times.delay {
        return (GreyResult::Early, t);
    }
    let next = Triplet {
        confirmed: true,
        expires: now + times.expiry,
        ..t
    };
    (GreyResult::Passed, next)
}

/// A bounded cache of DNS list answers, each with its own time to live.
pub struct MemoryCache {
    cache: moka::sync::Cache<String, (String, Instant)>,
}

impl MemoryCache {
    pub fn new(capacity: usize) -> Self {
        MemoryCache {
            cache: moka::sync::Cache::new(capacity as u64),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let (value, expires) = self.cache.get(key)?;
        if expires <= Instant::now() {
            self.cache.invalidate(key);
            return None;
        }
        Some(value)
    }

    pub fn put(&self, key: &str, value: &str, ttl: Duration) {
        let expires = Instant::now() + ttl;
        self.cache
            .insert(key.to_string(), (value.to_string(), expires));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: GreyTimes = GreyTimes {
        delay: 300_000,
        retry_window: 3_600_000,
        expiry: 86_400_000,
    };

    #[test]
    fn greylist_rules() {
        let g = MemoryGreylist::new(1000);
        let t = "192.0.2.0/24|a@example.org|b@example.net";
        let steps = [
            (0, GreyResult::New),
            (1_000, GreyResult::Early),
            (299_999, GreyResult::Early),
            (300_000, GreyResult::Passed),
            (300_001, GreyResult::Known),
            // a confirmed triplet stays known while it keeps being used
            (80_000_000, GreyResult::Known),
            (160_000_000, GreyResult::Known),
            // ...and is forgotten after `expiry` without use
            (160_000_000 + 86_400_000, GreyResult::New),
        ];
        for (now, want) in steps {
            assert_eq!(g.attempt(t, now, TIMES), want, "at {now}");
        }
        assert_eq!(g.attempt("other", 1_000, TIMES), GreyResult::New);
    }

    #[test]
    fn unconfirmed_triplets_expire_after_the_retry_window() {
        let g = MemoryGreylist::new(1000);
        assert_eq!(g.attempt("t", 0, TIMES), GreyResult::New);
        assert_eq!(g.attempt("t", 3_600_000, TIMES), GreyResult::New);
        assert_eq!(g.attempt("t", 3_700_000, TIMES), GreyResult::Early);
    }

    #[test]
    fn greylist_stays_bounded() {
        let g = MemoryGreylist::new(1000);
        for i in 0..10_000 {
            g.attempt(&format!("t{i}"), i, TIMES);
        }
        assert!(g.len() <= 1000, "{} entries", g.len());
    }

    #[test]
    fn cache_honours_ttl() {
        let c = MemoryCache::new(100);
        c.put("a", "127.0.0.2", Duration::from_secs(60));
        c.put("b", "", Duration::ZERO);
        assert_eq!(c.get("a").as_deref(), Some("127.0.0.2"));
        assert_eq!(c.get("b"), None);
        assert_eq!(c.get("c"), None);
    }
}
