//! Finds every occurrence of thousands of literals in a text, ignoring
//! ASCII case: the prefilter pass of [`super::matcher`].
//!
//! An Aho–Corasick automaton over 20,000 literals is megabytes of states
//! that a 100 KB text visits in random order, so the scan waited on memory
//! (about 3 ns per byte). Here the literals are keyed by their first four
//! bytes (all of them when shorter), ASCII-lowercased, and each key length
//! has a small Bloom filter (about 2 bytes per key, so tens of kilobytes
//! that stay in the CPU's caches). The scan rolls the next four folded
//! bytes into a word at each position and tests that word in each filter;
//! only where a filter says "maybe" does it look the key up exactly and
//! compare the literals that share it.
//!
//! A filter may say "maybe" wrongly, never "no" wrongly, and the exact
//! lookup and comparison decide; so every occurrence is reported, and
//! only occurrences. Non-ASCII bytes (the Kelvin sign of `(?i)k`) match
//! only themselves, as in a case-insensitive Aho–Corasick search.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

static STATS: [std::sync::atomic::AtomicUsize; 4] = [const { std::sync::atomic::AtomicUsize::new(0) }; 4];
/// Bytes in a key: one 32-bit word.
const KEY: usize = 4;
/// Filter bits per key. With two bits per key in one 64-bit block, 16
/// bits per key give about 2% false "maybe"s on random keys.
const BITS_PER_KEY: usize = 16;
/// Fibonacci hashing multiplier (2^64 / golden ratio), odd.
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// All literals of one key length (1 to 4 bytes: those shorter than
/// [`KEY`] are keyed by all their bytes, the others by their first four).
struct Class {
    /// The key's bytes in a word read little-endian: the first `width`.
    mask: u32,
    filter: Filter,
    /// Each key's literals, as a range of [`LiteralScanner::members`].
    buckets: HashMap<u32, Range<u32>, BuildHasherDefault<KeyHasher>>,
}

/// A blocked Bloom filter: each key sets two bits of one 64-bit block,
/// so a test reads one word.
struct Filter {
    blocks: Vec<u64>,
    /// Right shift that leaves the hash's top bits as a block index.
    shift: u32,
}

impl Filter {
    fn new(keys: usize) -> Filter {
        let blocks = (keys * BITS_PER_KEY / 64)
            .clamp(8, 1 << 20)
            .next_power_of_two();
        Filter {
            blocks: vec![0; blocks],
            shift: 64 - blocks.trailing_zeros(),
        }
    }

    /// The block and the two bits of `key`. The block index comes from
    /// the product's top bits, the bits from bits 32 to 43: the bits of a
    /// multiplication that depend on every bit of a 32-bit key.
    fn place(&self, key: u32) -> (usize, u64) {
        let hash = u64::from(key).wrapping_mul(MULTIPLIER);
        let bits = (1u64 << ((hash >> 32) & 63)) | (1u64 << ((hash >> 38) & 63));
        ((hash >> self.shift) as usize, bits)
    }

    fn insert(&mut self, key: u32) {
        let (block, bits) = self.place(key);
        self.blocks[block] |= bits;
    }

    #[inline]
    fn may_contain(&self, key: u32) -> bool {
        let (block, bits) = self.place(key);
        self.blocks[block] & bits == bits
    }
}

/// The hash of the exact key lookup (the standard one is built to resist
/// attackers choosing keys; these keys come from the operator's rules).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // The table uses the low bits: fold the product's high half down.
        self.0 ^ (self.0 >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(MULTIPLIER);
        }
    }

    fn write_u32(&mut self, key: u32) {
        self.0 = u64::from(key).wrapping_mul(MULTIPLIER);
    }
}

/// The scanner over a fixed list of literals; pattern `n` is the `n`th.
pub struct LiteralScanner {
    /// Only the key lengths that some literal has, shortest first.
    classes: Vec<Class>,
    /// Pattern numbers grouped by key: the buckets' ranges index this.
    members: Vec<u32>,
    /// All literals, ASCII-lowercased, one after the other.
    bytes: Vec<u8>,
    /// Each pattern's literal in `bytes`.
    spans: Vec<Range<u32>>,
    /// Empty literals: they occur at every position.
    empty: Vec<u32>,
}

/// ASCII-lowercases one byte; other bytes stay as they are.
#[inline]
fn fold(byte: u8) -> u32 {
    u32::from(byte | (u8::from(byte.wrapping_sub(b'A') < 26) << 5))
}

/// The key of a lowercased literal (at most [`KEY`] bytes of it).
fn key_of(literal: &[u8]) -> u32 {
    let mut word = [0u8; KEY];
    let width = literal.len().min(KEY);
    word[..width].copy_from_slice(&literal[..width]);
    u32::from_le_bytes(word)
}

impl LiteralScanner {
    pub fn new<L: AsRef<[u8]>>(literals: impl IntoIterator<Item = L>) -> LiteralScanner {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        // (width, key, pattern) for every non-empty literal.
        let mut keyed: Vec<(usize, u32, u32)> = Vec::new();
        let mut empty = Vec::new();
        for (n, literal) in literals.into_iter().enumerate() {
            let literal = literal.as_ref().to_ascii_lowercase();
            let n = u32::try_from(n).expect("fewer than 2^32 literals");
            match literal.len() {
                0 => empty.push(n),
                len => keyed.push((len.min(KEY), key_of(&literal), n)),
            }
            let start = offset(bytes.len());
            bytes.extend_from_slice(&literal);
            spans.push(start..offset(bytes.len()));
        }
        keyed.sort_unstable();
        if std::env::var("SCAN_STATS").is_ok() && spans.len() > 1000 {
            let mut h = std::collections::BTreeMap::new();
            for sp in &spans { *h.entry(sp.end - sp.start).or_insert(0) += 1; }
            let mut q = std::collections::HashSet::new();
            for sp in &spans { let l = &bytes[sp.start as usize..sp.end as usize]; for w in l.windows(4) { q.insert(w.to_vec()); } }
            let mut q8 = std::collections::HashSet::new();
            for sp in &spans { let l = &bytes[sp.start as usize..sp.end as usize]; if l.len() >= 8 { q8.insert(l[..8].to_vec()); } }
            eprintln!("lengths {h:?} distinct 4-grams {} distinct 8-prefixes {}", q.len(), q8.len());
        }
        let mut members = Vec::with_capacity(keyed.len());
        let classes = (1..=KEY)
            .filter_map(|width| {
                let of_width = keyed.iter().filter(|k| k.0 == width);
                Class::build(width, of_width.map(|&(_, key, n)| (key, n)), &mut members)
            })
            .collect();
        LiteralScanner {
            classes,
            members,
            bytes,
            spans,
            empty,
        }
    }

    /// The memory held, in bytes (for the load figures).
    pub fn heap_size(&self) -> usize {
        let classes: usize = self.classes.iter().map(Class::heap_size).sum();
        classes + self.members.len() * 4 + self.bytes.len() + self.spans.len() * 8
    }

    /// Calls `found(pattern, start)` for every occurrence of every
    /// literal, overlapping ones included, ignoring ASCII case; each
    /// pattern's occurrences come in increasing order of start.
    pub fn for_each_match(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        for &n in &self.empty {
            (0..=text.len()).for_each(|start| found(n as usize, start));
        }
        if self.classes.is_empty() {
            return;
        }
        // At position `at`, `word` holds the folded bytes `at..at + 4`,
        // byte `at` lowest, and zeros past the end (no literal matches
        // there: the comparison checks the length). Each step shifts one
        // byte out and the next one in.
        let mut word = (0..KEY - 1)
            .filter_map(|k| Some(fold(*text.get(k)?) << (8 * (k + 1))))
            .fold(0, |w, b| w | b);
        let ahead = text.len().saturating_sub(KEY - 1);
        for at in 0..ahead {
            word = (word >> 8) | (fold(text[at + KEY - 1]) << 24);
            self.test(word, text, at, &mut found);
        }
        for at in ahead..text.len() {
            word >>= 8;
            self.test(word, text, at, &mut found);
        }
        if text.len() > 50_000 && std::env::var("SCAN_STATS").is_ok() {
            let st: Vec<usize> = STATS.iter().map(|a| a.swap(0, std::sync::atomic::Ordering::Relaxed)).collect();
            let sizes: Vec<(usize, usize, usize)> = self.classes.iter().map(|c| (c.mask as usize, c.buckets.len(), c.filter.blocks.len())).collect();
            eprintln!("len {} maybe {} bucket {} compares {} found {} classes {:?}", text.len(), st[0], st[1], st[2], st[3], sizes);
        }
    }

    /// Reports the literals that occur at `at`, whose folded bytes are `word`.
    #[inline]
    fn test(&self, word: u32, text: &[u8], at: usize, found: &mut impl FnMut(usize, usize)) {
        for class in &self.classes {
            let key = word & class.mask;
            if class.filter.may_contain(key) {
                self.verify(class, key, text, at, found);
            }
        }
    }

    #[cold]
    fn verify(
        &self,
        class: &Class,
        key: u32,
        text: &[u8],
        at: usize,
        found: &mut impl FnMut(usize, usize),
    ) {
        STATS[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(bucket) = class.buckets.get(&key) else {
            return;
        };
        STATS[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        STATS[2].fetch_add((bucket.end - bucket.start) as usize, std::sync::atomic::Ordering::Relaxed);
        for &n in &self.members[bucket.start as usize..bucket.end as usize] {
            let span = &self.spans[n as usize];
            let literal = &self.bytes[span.start as usize..span.end as usize];
            let here = text.get(at..at + literal.len());
            if here.is_some_and(|t| t.eq_ignore_ascii_case(literal)) {
                STATS[3].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                found(n as usize, at);
            }
        }
    }
}

impl Class {
    /// The class of the literals keyed by `width` bytes, from their
    /// `(key, pattern)` pairs sorted by key; `None` when there are none.
    fn build(
        width: usize,
        keyed: impl Iterator<Item = (u32, u32)>,
        members: &mut Vec<u32>,
    ) -> Option<Class> {
        let mut buckets: HashMap<u32, Range<u32>, _> = HashMap::default();
        for (key, n) in keyed {
            let at = offset(members.len());
            members.push(n);
            buckets.entry(key).or_insert(at..at).end = at + 1;
        }
        if buckets.is_empty() {
            return None;
        }
        let mut filter = Filter::new(buckets.len());
        buckets.keys().for_each(|&key| filter.insert(key));
        Some(Class {
            mask: u32::MAX >> (8 * (KEY - width)),
            filter,
            buckets,
        })
    }

    fn heap_size(&self) -> usize {
        self.filter.blocks.len() * 8 + self.buckets.capacity() * 16
    }
}

fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("literals under 4 GiB in all")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (pattern, start) the obvious way: each literal compared at
    /// each position.
    fn naive(literals: &[&[u8]], text: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (n, literal) in literals.iter().enumerate() {
            for start in 0..=text.len() {
                let here = text.get(start..start + literal.len());
                if here.is_some_and(|t| t.eq_ignore_ascii_case(literal)) {
                    out.push((n, start));
                }
            }
        }
        out
    }

    fn scanned(literals: &[&[u8]], text: &[u8]) -> Vec<(usize, usize)> {
        let scanner = LiteralScanner::new(literals);
        let mut out = Vec::new();
        scanner.for_each_match(text, |n, start| out.push((n, start)));
        // Per pattern, starts must already come in increasing order.
        for pair in out.windows(2) {
            if pair[0].0 == pair[1].0 {
                assert!(pair[0].1 < pair[1].1, "{out:?}");
            }
        }
        out.sort_unstable();
        out
    }

    #[test]
    fn table() {
        type Case = (
            &'static [&'static str],
            &'static str,
            &'static [(usize, usize)],
        );
        let cases: &[Case] = &[
            // Overlapping occurrences of one literal and of several.
            (&["aaa"], "aaaaa", &[(0, 0), (0, 1), (0, 2)]),
            (
                &["abab", "bab"],
                "ababab",
                &[(0, 0), (0, 2), (1, 1), (1, 3)],
            ),
            // A literal that is a prefix, and one that is a suffix, of another.
            (
                &["free", "freedom", "dom"],
                "Freedom!",
                &[(0, 0), (1, 0), (2, 4)],
            ),
            // At the very start and the very end; text shorter than a key.
            (&["start", "end"], "start middle end", &[(0, 0), (1, 13)]),
            (&["abc"], "abc", &[(0, 0)]),
            (&["abcd"], "abc", &[]),
            (&["ab", "b", "abc"], "ab", &[(0, 0), (1, 1)]),
            (&["xyz"], "", &[]),
            // Mixed case on either side.
            (&["ViAgRa"], "buy VIAGRA or viagra", &[(0, 4), (0, 14)]),
            // Non-ASCII bytes match only themselves: the Kelvin sign is
            // not a `k`, `É` is not `é` (no Unicode folding).
            (
                &["\u{212A}elvin", "kelvin"],
                "\u{212A}ELVIN Kelvin",
                &[(0, 0), (1, 9)],
            ),
            (&["é"], "É é", &[(0, 3)]),
            (&["größe"], "GRÖßE größe GRößE", &[(0, 8), (0, 16)]),
            // Literals with bytes that folding must leave alone: `@` and
            // `[` are next to `A` and `Z`; NUL is the padding value.
            (&["@[", "`{"], "@[ `{ `[", &[(0, 0), (1, 3)]),
            (&["a\0"], "a", &[]),
            (&["a\0"], "xa\0", &[(0, 1)]),
            // The same literal twice: both patterns report it.
            (&["dup", "DUP"], "dup", &[(0, 0), (1, 0)]),
        ];
        for (literals, text, want) in cases {
            let literals: Vec<&[u8]> = literals.iter().map(|l| l.as_bytes()).collect();
            let got = scanned(&literals, text.as_bytes());
            assert_eq!(got, *want, "{literals:?} in {text:?}");
            assert_eq!(got, naive(&literals, text.as_bytes()), "naive");
        }
    }

    #[test]
    fn empty_literal_occurs_everywhere() {
        let got = scanned(&[b"", b"b"], b"ab");
        assert_eq!(got, vec![(0, 0), (0, 1), (0, 2), (1, 1)]);
    }

    /// A small alphabet (with case, a non-ASCII letter and the bytes next
    /// to `A`..`Z`) so that random literals really occur in random texts,
    /// overlap and share keys.
    fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
        const ALPHABET: &[&[u8]] = &[
            b"a",
            b"B",
            b"b",
            b"A",
            b"c",
            b"@",
            b"[",
            b"\xc3\xa9",
            b"\xe2\x84\xaa",
            b" ",
        ];
        let mut out = Vec::new();
        while out.len() < len {
            out.extend_from_slice(ALPHABET[rng.usize(..ALPHABET.len())]);
        }
        out
    }

    /// Random literal sets, 1 to 12 bytes long, against random texts:
    /// exactly what the naive search finds.
    #[test]
    fn agrees_with_naive_search() {
        let mut rng = fastrand::Rng::with_seed(0x5eed_5ca1);
        for round in 0..300 {
            let count = 1 + rng.usize(..if round % 10 == 0 { 400 } else { 20 });
            let owned: Vec<Vec<u8>> = (0..count)
                .map(|_| {
                    let len = 1 + rng.usize(..12);
                    random_bytes(&mut rng, len)
                })
                .collect();
            let literals: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
            let len = rng.usize(..600);
            let text = random_bytes(&mut rng, len);
            assert_eq!(
                scanned(&literals, &text),
                naive(&literals, &text),
                "round {round}: {literals:?}"
            );
        }
    }
}
