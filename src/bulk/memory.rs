//! Band-key counts in this process: per key, the recipients counted and
//! a small capped set of hashed client networks, each entry living one
//! `window` from its first sighting (a tumbling window, as the Redis
//! backend's keys with their expiry set once). Entries are bounded:
//! past `max_entries`, expired ones are swept and, if the map is still
//! full, new keys are not stored (known keys keep counting).

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::Seen;

/// More distinct networks than any sane `min_clients`: the set stops
/// growing here, so an entry is a few hundred bytes at most.
pub const MAX_CLIENTS: usize = 64;

#[derive(Debug)]
struct Entry {
    first_ms: u64,
    recipients: u64,
    clients: Vec<u32>,
}

impl Entry {
    fn new(now_ms: u64) -> Entry {
        Entry {
            first_ms: now_ms,
            recipients: 0,
            clients: Vec::new(),
        }
    }

    fn add(&mut self, recipients: u64, client: u32) -> Seen {
        self.recipients = self.recipients.saturating_add(recipients);
        if self.clients.len() < MAX_CLIENTS && !self.clients.contains(&client) {
            self.clients.push(client);
        }
        Seen {
            recipients: self.recipients,
            clients: self.clients.len() as u64,
        }
    }
}

pub struct MemoryCounts {
    map: DashMap<u64, Entry>,
    window_ms: u64,
    max_entries: usize,
    last_sweep_ms: AtomicU64,
}

impl MemoryCounts {
    pub fn new(window_ms: u64, max_entries: usize) -> MemoryCounts {
        MemoryCounts {
            map: DashMap::new(),
            window_ms: window_ms.max(1),
            max_entries: max_entries.max(1),
            last_sweep_ms: AtomicU64::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Counts `recipients` from `client` against every key; what each key
    /// has seen within its window, this message included, in key order.
    pub fn observe(&self, keys: &[u64], recipients: u64, client: u32, now_ms: u64) -> Vec<Seen> {
        keys.iter()
            .map(|key| self.observe_one(*key, recipients, client, now_ms))
            .collect()
    }

    fn observe_one(&self, key: u64, recipients: u64, client: u32, now_ms: u64) -> Seen {
        if let Some(mut entry) = self.map.get_mut(&key) {
            if now_ms.saturating_sub(entry.first_ms) >= self.window_ms {
                *entry = Entry::new(now_ms);
            }
            return entry.add(recipients, client);
        }
        if !self.room(now_ms) {
            return Entry::new(now_ms).add(recipients, client);
        }
        let mut entry = self.map.entry(key).or_insert_with(|| Entry::new(now_ms));
        entry.add(recipients, client)
    }

    /// Whether a new key may be stored: when full, expired entries are
    /// swept first, at most once a second (a sweep walks every entry).
    fn room(&self, now_ms: u64) -> bool {
        if self.map.len() < self.max_entries {
            return true;
        }
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= 1000 {
            self.last_sweep_ms.store(now_ms, Ordering::Relaxed);
            let window = self.window_ms;
            self.map
                .retain(|_, e| now_ms.saturating_sub(e.first_ms) < window);
        }
        self.map.len() < self.max_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn counts_recipients_and_distinct_clients() {
        let counts = MemoryCounts::new(HOUR, 100);
        counts.observe(&[1, 2], 3, 10, 0);
        counts.observe(&[1], 2, 10, 1000);
        let seen = counts.observe(&[1, 2], 1, 11, 2000);
        assert_eq!(
            seen[0],
            Seen {
                recipients: 6,
                clients: 2
            }
        );
        assert_eq!(
            seen[1],
            Seen {
                recipients: 4,
                clients: 2
            }
        );
    }

    #[test]
    fn window_expiry_with_the_injected_clock() {
        let counts = MemoryCounts::new(HOUR, 100);
        counts.observe(&[7], 50, 1, 0);
        let inside = counts.observe(&[7], 1, 2, HOUR - 1);
        assert_eq!(
            inside[0],
            Seen {
                recipients: 51,
                clients: 2
            }
        );
        let after = counts.observe(&[7], 1, 3, HOUR);
        assert_eq!(
            after[0],
            Seen {
                recipients: 1,
                clients: 1
            }
        );
    }

    #[test]
    fn bounded_entries_and_sweep_of_expired_ones() {
        let counts = MemoryCounts::new(HOUR, 3);
        counts.observe(&[1, 2, 3], 1, 1, 0);
        // Full: a new key is counted for this message but not stored.
        let seen = counts.observe(&[4], 5, 1, 10);
        assert_eq!(seen[0].recipients, 5);
        assert_eq!(counts.len(), 3);
        assert_eq!(counts.observe(&[4], 1, 1, 20)[0].recipients, 1);
        // Known keys keep counting while full.
        assert_eq!(counts.observe(&[1], 1, 1, 30)[0].recipients, 2);
        // Once the old entries expired, the sweep makes room.
        counts.observe(&[5], 1, 1, HOUR + 10);
        assert_eq!(counts.len(), 1);
    }

    #[test]
    fn client_set_is_capped() {
        let counts = MemoryCounts::new(HOUR, 10);
        for client in 0..1000 {
            counts.observe(&[9], 1, client, 0);
        }
        let seen = counts.observe(&[9], 1, 5000, 0);
        assert_eq!(seen[0].clients, MAX_CLIENTS as u64);
        assert_eq!(seen[0].recipients, 1001);
    }
}
