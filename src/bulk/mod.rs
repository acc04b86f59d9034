//! Bulk detection across sessions: the same content (by fuzzy
//! fingerprint, [`fingerprint`]) counted over a window by recipients and
//! distinct client networks, in memory ([`memory`]) or in Redis shared by
//! a cluster ([`redis`]). Content seen by enough recipients from enough
//! networks is bulk; the check in `src/checks/bulk.rs` scores it.

pub mod fingerprint;
pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::bulk::BulkConfig;
use crate::config::state::{OnFailure, StateConfig};
use crate::state::{RedisState, StateError};

pub use fingerprint::Fingerprint;

/// What one band key has seen within its window, this message included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    pub recipients: u64,
    pub clients: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("redis answered {0} values for {1} band keys")]
    Answer(usize, usize),
}

enum Store {
    Memory(memory::MemoryCounts),
    Redis(Box<RedisState>),
}

/// The counts, wherever they live.
pub struct BulkCounts {
    store: Store,
    window_ms: u64,
    on_failure: OnFailure,
}

impl BulkCounts {
    pub fn new(bulk: &BulkConfig, state: &StateConfig) -> Result<Arc<BulkCounts>, StateError> {
        let window_ms = bulk.window.as_millis() as u64;
        let (store, on_failure) = match state {
            StateConfig::Memory => (
                Store::Memory(memory::MemoryCounts::new(window_ms, bulk.max_entries)),
                OnFailure::FailOpen,
            ),
            StateConfig::Redis(redis) => (
                Store::Redis(Box::new(RedisState::new(redis)?)),
                redis.on_failure,
            ),
        };
        Ok(Arc::new(BulkCounts {
            store,
            window_ms,
            on_failure,
        }))
    }

    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// Band keys held in memory (0 with Redis, whose keys expire there).
    pub fn entries(&self) -> usize {
        match &self.store {
            Store::Memory(m) => m.len(),
            Store::Redis(_) => 0,
        }
    }

    /// Counts one message and returns the best-matching band's counts:
    /// the one with the most recipients, then the most clients.
    pub async fn observe(
        &self,
        print: &Fingerprint,
        recipients: u64,
        client: u32,
        now_ms: u64,
    ) -> Result<Seen, BulkError> {
        let seen = match &self.store {
            Store::Memory(m) => m.observe(&print.bands, recipients, client, now_ms),
            Store::Redis(r) => {
                redis::observe(r, &print.bands, recipients, client, self.window_ms).await?
            }
        };
        Ok(best(&seen))
    }
}

fn best(seen: &[Seen]) -> Seen {
    seen.iter()
        .copied()
        .max_by_key(|s| (s.recipients, s.clients))
        .unwrap_or_default()
}

/// The client's /24 (IPv4) or /64 (IPv6), hashed: what "distinct clients"
/// counts, so one spammer's rented block counts once and no address is stored.
pub fn client_network(ip: IpAddr) -> u32 {
    let net = crate::state::network(ip, 24, 64);
    let bytes = match net.addr() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets()[..8].to_vec(),
    };
    let h = bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    });
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hash_by_prefix() {
        let n = |s: &str| client_network(s.parse().unwrap());
        assert_eq!(n("192.0.2.1"), n("192.0.2.200"));
        assert_eq!(n("192.0.2.1"), n("::ffff:192.0.2.9"));
        assert_ne!(n("192.0.2.1"), n("192.0.3.1"));
        assert_eq!(n("2001:db8::1"), n("2001:db8::ffff:1"));
        assert_ne!(n("2001:db8::1"), n("2001:db8:0:1::1"));
    }

    #[test]
    fn best_band_is_the_most_recipients() {
        let seen = [
            Seen {
                recipients: 3,
                clients: 3,
            },
            Seen {
                recipients: 9,
                clients: 1,
            },
            Seen {
                recipients: 9,
                clients: 2,
            },
        ];
        assert_eq!(
            best(&seen),
            Seen {
                recipients: 9,
                clients: 2
            }
        );
        assert_eq!(best(&[]), Seen::default());
    }
}
