//! In-process keyed rate limits: governor's GCRA over a store whose size is
//! bounded, so that millions of distinct clients cannot exhaust memory.
//!
//! Keys are 64-bit keyed hashes of the limit key (a per-process random
//! SipHash key, so clients cannot aim for collisions); each entry is two
//! words. Governor's own dashmap store grows without bound between sweeps,
//! hence this store: when full it first drops the keys whose state is
//! indistinguishable from a fresh one, then, if still over three quarters
//! full, the older half of the rest.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use governor::clock::{Clock, QuantaClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use crate::config::reputation::RateLimit;

/// Key hash → theoretical arrival time (nanoseconds since the limiter's
/// start). Clones share the map: the limiter holds one, we keep one to evict.
#[derive(Default, Clone)]
pub struct BoundedStore {
    map: Arc<DashMap<u64, u64>>,
}

impl StateStore for BoundedStore {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        match self.map.entry(*key) {
            Entry::Occupied(mut entry) => {
                let (result, tat) = f(Some(Nanos::from(*entry.get())))?;
                *entry.get_mut() = tat.into();
                Ok(result)
            }
            Entry::Vacant(entry) => {
                let (result, tat) = f(None)?;
                entry.insert(tat.into());
                Ok(result)
            }
        }
    }
}

impl ShrinkableKeyedStateStore<u64> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let drop_below: u64 = drop_below.into();
        self.map.retain(|_, tat| *tat > drop_below);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl BoundedStore {
    /// Drops the entries whose arrival time is below the mean: roughly the
    /// older half, in two passes and no allocation.
    fn evict_older_half(&self) {
        let (sum, count) = self.map.iter().fold((0u128, 0u128), |(s, c), e| {
            (s + u128::from(*e.value()), c + 1)
        });
        if count == 0 {
            return;
        }
        let mean = (sum / count) as u64;
        self.map.retain(|_, tat| *tat > mean);
    }
}

type Governor<C> = RateLimiter<u64, BoundedStore, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One configured limit, kept in memory.
pub struct KeyedLimiter<C: Clock = QuantaClock> {
    limiter: Governor<C>,
    store: BoundedStore,
    hasher: RandomState,
    max_keys: usize,
}

impl KeyedLimiter<QuantaClock> {
    pub fn new(limit: &RateLimit, max_keys: usize) -> Self {
        KeyedLimiter::with_clock(limit, max_keys, QuantaClock::default())
    }
}

impl<C: Clock> KeyedLimiter<C> {
    /// Tests pass governor's `FakeRelativeClock` here.
    pub fn with_clock(limit: &RateLimit, max_keys: usize, clock: C) -> Self {
        let store = BoundedStore::default();
        KeyedLimiter {
            limiter: RateLimiter::new(quota(limit), store.clone(), clock),
            store,
            hasher: RandomState::new(),
            max_keys,
        }
    }

    /// Counts one event for `key`; false when it is over the limit.
    pub fn allow(&self, key: &str) -> bool {
        self.make_room();
        let hash = self.hasher.hash_one(key);
        self.limiter.check_key(&hash).is_ok()
    }

    /// Keys held now (for the benchmark and tests).
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    fn make_room(&self) {
        if self.limiter.len() < self.max_keys {
            return;
        }
        self.limiter.retain_recent();
        if self.limiter.len() > self.max_keys / 4 * 3 {
            tracing::warn!(
                keys = self.limiter.len(),
                "rate limit key table full of active keys; evicting the older half"
            );
            self.store.evict_older_half();
        }
        self.limiter.shrink_to_fit();
    }
}

/// Governor's quota: `burst` at once, then one per `period`.
fn quota(limit: &RateLimit) -> Quota {
    let period = limit.period.max(std::time::Duration::from_nanos(1));
    let burst = NonZeroU32::new(limit.burst.max(1)).expect("at least 1");
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::config::reputation::{Counted, LimitKey};

    fn limit(per: Duration, burst: u32) -> RateLimit {
        RateLimit {
            name: "test".into(),
            key: LimitKey::Ip,
            count: Counted::Messages,
            period: per,
            burst,
            reply_code: 450,
        }
    }

    #[test]
    fn burst_then_one_per_period() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(&limit(Duration::from_secs(6), 10), 1000, clock.clone());
        let allowed = (0..50).filter(|_| l.allow("192.0.2.1")).count();
        assert_eq!(allowed, 10, "the burst, then nothing");
        assert!(l.allow("192.0.2.2"), "other keys have their own budget");
        clock.advance(Duration::from_secs(5));
        assert!(!l.allow("192.0.2.1"), "less than one period later");
        clock.advance(Duration::from_secs(1));
        assert!(l.allow("192.0.2.1"), "one period later: one more");
        assert!(!l.allow("192.0.2.1"));
        clock.advance(Duration::from_secs(60));
        let allowed = (0..50).filter(|_| l.allow("192.0.2.1")).count();
        assert_eq!(allowed, 10, "a full burst after burst x period");
    }

    #[test]
    fn idle_keys_are_evicted_when_full() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(&limit(Duration::from_secs(1), 2), 1000, clock.clone());
        for i in 0..999 {
            assert!(l.allow(&format!("k{i}")));
        }
        assert_eq!(l.len(), 999);
        clock.advance(Duration::from_secs(10));
        for i in 0..10 {
            assert!(l.allow(&format!("new{i}")));
        }
        assert!(l.len() <= 11, "{} keys after the sweep", l.len());
    }

    #[test]
    fn memory_stays_bounded_with_active_keys() {
        let clock = FakeRelativeClock::default();
        let l = KeyedLimiter::with_clock(&limit(Duration::from_secs(3600), 5), 1000, clock.clone());
        for i in 0..20_000 {
            l.allow(&format!("k{i}"));
            clock.advance(Duration::from_millis(1));
        }
        assert!(l.len() <= 1000, "{} keys", l.len());
        // the most recent keys are still limited after eviction
        for _ in 0..4 {
            assert!(l.allow("k19999"));
        }
        assert!(!l.allow("k19999"));
    }
}
