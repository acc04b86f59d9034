//! State that outlives a session: rate-limit counters, greylist triplets and
//! cached DNS list answers. In memory it is per process; in Redis every
//! spamgate instance shares it, so a cluster enforces one limit.
//!
//! Failures of the shared store never crash a session: they are logged
//! (once per outage), counted, and turned into the configured
//! [`OnFailure`] by the caller.

mod limiter;
mod memory;
mod redis_store;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

pub use limiter::KeyedLimiter;
pub use memory::{GreyTimes, MemoryCache, MemoryGreylist};

use crate::config::reputation::{GreylistConfig, RateLimit};
use crate::config::state::{OnFailure, StateConfig};
use crate::config::Config;
use crate::metrics::Metrics;
pub(crate) use redis_store::lazy_manager;
pub use redis_store::RedisState;

/// The client's network for per-network limits, greylisting and bulk
/// counts (IPv4-mapped IPv6 addresses count as IPv4).
pub fn network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpNet {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let prefix = match ip {
        IpAddr::V4(_) => v4_prefix,
        IpAddr::V6(_) => v6_prefix,
    };
    IpNet::new(ip, prefix).map_or(IpNet::from(ip), |net| net.trunc())
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot set up the state backend: {0}")]
    Setup(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// What the greylist says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreyResult {
    /// First attempt: deferred.
    New,
    /// Retried before the delay was over: deferred again.
    Early,
    /// First retry after the delay: passes, and the triplet is confirmed.
    Passed,
    /// Confirmed earlier: passes.
    Known,
}

impl GreyResult {
    pub fn passes(self) -> bool {
        matches!(self, GreyResult::Passed | GreyResult::Known)
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            GreyResult::New => "new",
            GreyResult::Early => "early",
            GreyResult::Passed => "passed",
            GreyResult::Known => "known",
        }
    }
}

enum Backend {
    Memory {
        limits: Vec<KeyedLimiter>,
        greylist: MemoryGreylist,
    },
    Redis(Box<RedisState>),
}

pub struct SharedState {
    backend: Backend,
    /// Answers are cached here too with Redis, so a warm answer costs no
    /// network round trip.
    cache: MemoryCache,
    on_failure: OnFailure,
    greylist: GreyTimes,
    metrics: Metrics,
    healthy: AtomicBool,
}

impl SharedState {
    pub fn new(config: &Config, metrics: &Metrics) -> Result<SharedState, StateError> {
        let rep = &config.reputation;
        let (backend, on_failure) = match &config.state {
            StateConfig::Memory => (memory_backend(config), OnFailure::FailOpen),
            StateConfig::Redis(redis) => (
                Backend::Redis(Box::new(RedisState::new(redis)?)),
                redis.on_failure,
            ),
        };
        Ok(SharedState {
            backend,
            cache: MemoryCache::new(rep.dnsbl.cache_size.max(1)),
            on_failure,
            greylist: grey_times(&rep.greylist),
            metrics: metrics.clone(),
            healthy: AtomicBool::new(true),
        })
    }

    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// Counts one event of the limit at `index` (its place in the config).
    pub async fn allow(
        &self,
        index: usize,
        limit: &RateLimit,
        key: &str,
    ) -> Result<bool, StateError> {
        let result = match &self.backend {
            Backend::Memory { limits, .. } => Ok(limits.get(index).is_none_or(|l| l.allow(key))),
            Backend::Redis(redis) => {
                redis
                    .allow(&limit.name, key, limit.period, limit.burst)
                    .await
            }
        };
        self.observe("rate_limit", result)
    }

    pub async fn greylist(&self, triplet: &str) -> Result<GreyResult, StateError> {
        let result = match &self.backend {
            Backend::Memory { greylist, .. } => {
                Ok(greylist.attempt(triplet, now_ms(), self.greylist))
            }
            Backend::Redis(redis) => redis.greylist(triplet, self.greylist).await,
        };
        self.observe("greylist", result)
    }

    /// A cached DNS list answer; a failing store is just a miss.
    pub async fn cached(&self, key: &str) -> Option<String> {
        if let Some(value) = self.cache.get(key) {
            return Some(value);
        }
        let Backend::Redis(redis) = &self.backend else {
            return None;
        };
        let value = self
            .observe("cache_get", redis.cache_get(key).await)
            .ok()??;
        // The remaining TTL is not known here; keep it briefly in memory.
        self.cache.put(key, &value, Duration::from_secs(10));
        Some(value)
    }

    pub async fn cache(&self, key: &str, value: &str, ttl: Duration) {
        self.cache.put(key, value, ttl);
        if let Backend::Redis(redis) = &self.backend {
            let _ = self.observe("cache_put", redis.cache_put(key, value, ttl).await);
        }
    }

    /// Logs the first failure of an outage and the recovery, counts every failure.
    fn observe<T>(&self, op: &'static str, result: Result<T, StateError>) -> Result<T, StateError> {
        match &result {
            Ok(_) if !self.healthy.swap(true, Ordering::Relaxed) => {
                tracing::warn!("shared state reachable again");
            }
            Err(error) => {
                self.metrics.state_error(op);
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::error!(%error, op, on_failure = ?self.on_failure, "shared state unreachable");
                } else {
                    tracing::debug!(%error, op, "shared state still unreachable");
                }
            }
            Ok(_) => {}
        }
        result
    }
}

fn memory_backend(config: &Config) -> Backend {
    let rl = &config.reputation.rate_limits;
    Backend::Memory {
        limits: rl
            .limits
            .iter()
            .map(|l| KeyedLimiter::new(l, rl.max_keys))
            .collect(),
        greylist: MemoryGreylist::new(config.reputation.greylist.max_entries),
    }
}

fn grey_times(g: &GreylistConfig) -> GreyTimes {
    GreyTimes {
        delay: g.delay.as_millis() as u64,
        retry_window: g.retry_window.as_millis() as u64,
        expiry: g.expiry.as_millis() as u64,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let cases = [
            ("192.0.2.77", "192.0.2.0/24"),
            ("::ffff:192.0.2.77", "192.0.2.0/24"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ];
        for (ip, want) in cases {
            assert_eq!(network(ip.parse().unwrap(), 24, 64).to_string(), want);
        }
        assert_eq!(
            network("192.0.2.77".parse().unwrap(), 32, 128)
                .addr()
                .to_string(),
            "192.0.2.77"
        );
    }
}
