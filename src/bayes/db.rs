//! The in-memory database of the file backend: counts per token hash,
//! the digests of learned messages (so learning twice counts once and
//! `forget` knows the class), and the message totals.
//!
//! Each token keeps a coarse last-seen day, so that when `max_tokens` is
//! exceeded the tokens that are both old and rare go first: they are the
//! ones that no longer say anything.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use super::combine::Counts;
use super::Class;

/// A message digest, truncated: 128 bits keep collisions out of reach.
pub type Digest = [u8; 16];

/// One token's counts and when it was last learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub counts: Counts,
    /// Days since the Unix epoch.
    pub day: u16,
}

/// What learning one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnOutcome {
    Learned,
    /// Learned before as this class: nothing changed.
    Known,
    /// Learned before as the other class: moved.
    Moved,
}

/// What forgetting one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgetOutcome {
    Forgotten,
    /// Never learned (or forgotten already): nothing changed.
    Unknown,
}

/// Token hashes are already uniform, but an attacker who knows the fixed
/// token seed could aim at hash-table buckets: a per-process random key
/// and a folded multiply scatter them again, at a few cycles per look-up.
#[derive(Clone, Copy)]
pub struct KeyedBuild(u64);

impl Default for KeyedBuild {
    fn default() -> Self {
        KeyedBuild(fastrand::u64(..) | 1)
    }
}

impl BuildHasher for KeyedBuild {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0, 0)
    }
}

pub struct KeyedHasher(u64, u64);

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        let product = u128::from(self.1 ^ self.0) * u128::from(0x9E37_79B9_7F4A_7C15u64);
        (product as u64) ^ ((product >> 64) as u64)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.1 = self.1.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.1 ^= n;
    }
}

#[derive(Debug, Default)]
pub struct Db {
    pub tokens: HashMap<u64, Entry, KeyedBuild>,
    pub messages: HashMap<Digest, (Class, u16), KeyedBuild>,
    pub nspam: u64,
    pub nham: u64,
}

impl std::fmt::Debug for KeyedBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedBuild")
    }
}

impl Db {
    /// The counts of each hash, zero for unknown tokens.
    pub fn lookup(&self, hashes: impl Iterator<Item = u64>) -> Vec<Counts> {
        hashes
            .map(|h| self.tokens.get(&h).map(|e| e.counts).unwrap_or_default())
            .collect()
    }

    pub fn learn(
        &mut self,
        digest: Digest,
        hashes: &[u64],
        class: Class,
        day: u16,
    ) -> LearnOutcome {
        let outcome = match self.messages.get(&digest) {
            Some((old, _)) if *old == class => return LearnOutcome::Known,
            Some((old, _)) => {
                let old = *old;
                self.count(hashes, old, false, day);
                LearnOutcome::Moved
            }
            None => LearnOutcome::Learned,
        };
        self.count(hashes, class, true, day);
        self.messages.insert(digest, (class, day));
        outcome
    }

    pub fn forget(&mut self, digest: Digest, hashes: &[u64]) -> ForgetOutcome {
        let Some((class, day)) = self.messages.remove(&digest) else {
            return ForgetOutcome::Unknown;
        };
        self.count(hashes, class, false, day);
        ForgetOutcome::Forgotten
    }

    /// Adds (or takes away) one message of `class` with these tokens.
    fn count(&mut self, hashes: &[u64], class: Class, add: bool, day: u16) {
        let total = match class {
            Class::Spam => &mut self.nspam,
            Class::Ham => &mut self.nham,
        };
        *total = if add {
            *total + 1
        } else {
            total.saturating_sub(1)
        };
        for hash in hashes {
            if add {
                let entry = self.tokens.entry(*hash).or_default();
                bump(&mut entry.counts, class, true);
                entry.day = entry.day.max(day);
                continue;
            }
            if let Some(entry) = self.tokens.get_mut(hash) {
                bump(&mut entry.counts, class, false);
                if entry.counts == Counts::default() {
                    self.tokens.remove(hash);
                }
            }
        }
    }

    /// Drops tokens until at most `target` are left: the oldest days
    /// first, the rarest first within a day. Returns how many went.
    pub fn prune(&mut self, target: usize) -> usize {
        let excess = self.tokens.len().saturating_sub(target);
        if excess == 0 {
            return 0;
        }
        let mut order: Vec<(u16, u64, u64)> = self
            .tokens
            .iter()
            .map(|(h, e)| {
                (
                    e.day,
                    u64::from(e.counts.spam) + u64::from(e.counts.ham),
                    *h,
                )
            })
            .collect();
        order.select_nth_unstable(excess - 1);
        for (_, _, hash) in &order[..excess] {
            self.tokens.remove(hash);
        }
        excess
    }

    /// Keeps the digest table bounded too: the oldest learned go first
    /// (they can then be learned again, which is harmless).
    pub fn prune_messages(&mut self, target: usize) {
        let excess = self.messages.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut order: Vec<(u16, Digest)> = self
            .messages
            .iter()
            .map(|(d, (_, day))| (*day, *d))
            .collect();
        order.select_nth_unstable(excess - 1);
        for (_, digest) in &order[..excess] {
            self.messages.remove(digest);
        }
    }
}

fn bump(counts: &mut Counts, class: Class, add: bool) {
    let slot = match class {
        Class::Spam => &mut counts.spam,
        Class::Ham => &mut counts.ham,
    };
    *slot = if add {
        slot.saturating_add(1)
    } else {
        slot.saturating_sub(1)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_forget_move() {
        let mut db = Db::default();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        assert_eq!(
            db.learn(a, &[10, 11], Class::Spam, 5),
            LearnOutcome::Learned
        );
        assert_eq!(db.learn(a, &[10, 11], Class::Spam, 5), LearnOutcome::Known);
        assert_eq!(db.learn(b, &[11, 12], Class::Ham, 5), LearnOutcome::Learned);
        assert_eq!((db.nspam, db.nham), (1, 1));
        assert_eq!(
            db.lookup([10, 11, 12, 13].into_iter()),
            vec![
                Counts { spam: 1, ham: 0 },
                Counts { spam: 1, ham: 1 },
                Counts { spam: 0, ham: 1 },
                Counts::default(),
            ]
        );
        assert_eq!(db.learn(a, &[10, 11], Class::Ham, 6), LearnOutcome::Moved);
        assert_eq!((db.nspam, db.nham), (0, 2));
        assert_eq!(
            db.lookup([10].into_iter()),
            vec![Counts { spam: 0, ham: 1 }]
        );
        assert_eq!(db.forget(a, &[10, 11]), ForgetOutcome::Forgotten);
        assert_eq!(db.forget(a, &[10, 11]), ForgetOutcome::Unknown);
        assert_eq!((db.nspam, db.nham), (0, 1));
        assert!(!db.tokens.contains_key(&10), "a token at zero is removed");
    }

    #[test]
    fn prune_old_rare_first() {
        let mut db = Db::default();
        db.learn([1; 16], &[1, 2, 3], Class::Spam, 10);
        db.learn([2; 16], &[3, 4], Class::Spam, 20);
        db.learn([3; 16], &[4, 5], Class::Ham, 20);
        assert_eq!(db.prune(3), 2);
        let mut left: Vec<u64> = db.tokens.keys().copied().collect();
        left.sort();
        // 1 and 2 are old; 3 was seen again on day 20; 4 is seen twice.
        assert_eq!(left.len(), 3);
        assert!(left.contains(&3) && left.contains(&4), "{left:?}");
        db.prune_messages(1);
        assert_eq!(db.messages.len(), 1);
    }
}
