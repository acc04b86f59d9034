//! Connection limits: a total and a per-client-IP count. A permit is held for
//! the life of a session and released on drop, whatever way it ends.

use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Total,
    PerIp,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerIp => "max_connections_per_ip",
        }
    }
}

pub struct ConnectionLimiter {
    total: Arc<Semaphore>,
    per_ip: Arc<DashMap<IpAddr, usize>>,
    max_per_ip: usize,
}

/// Proof that a session may run; gives its slots back when dropped.
pub struct Permit {
    _total: OwnedSemaphorePermit,
    per_ip: Arc<DashMap<IpAddr, usize>>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        // Remove the entry at zero so the map only holds connected clients.
        self.per_ip.remove_if_mut(&self.ip, |_, count| {
            *count -= 1;
            *count == 0
        });
    }
}

impl ConnectionLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        ConnectionLimiter {
            total: Arc::new(Semaphore::new(max_total)),
            per_ip: Arc::new(DashMap::new()),
            max_per_ip,
        }
    }

    pub fn acquire(&self, ip: IpAddr) -> Result<Permit, Refused> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Total)?;
        let mut count = self.per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        *count += 1;
        drop(count);
        Ok(Permit {
            _total: total,
            per_ip: self.per_ip.clone(),
            ip,
        })
    }

    /// Clients with at least one open session (for tests and debugging).
    pub fn tracked_ips(&self) -> usize {
        self.per_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_release() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = limiter.acquire(a).unwrap();
        let _a2 = limiter.acquire(a).unwrap();
        assert_eq!(limiter.acquire(a).err(), Some(Refused::PerIp));
        let _b1 = limiter.acquire(b).unwrap();
        assert_eq!(limiter.acquire(b).err(), Some(Refused::Total));
        drop(a1);
        let _b2 = limiter.acquire(b).unwrap();
        assert_eq!(limiter.tracked_ips(), 2);
    }

    #[test]
    fn per_ip_entries_are_removed_at_zero() {
        let limiter = ConnectionLimiter::new(10, 10);
        let permits: Vec<_> = (1..=5)
            .map(|i| limiter.acquire(IpAddr::from([192, 0, 2, i])).unwrap())
            .collect();
        assert_eq!(limiter.tracked_ips(), 5);
        drop(permits);
        assert_eq!(limiter.tracked_ips(), 0);
    }
}
