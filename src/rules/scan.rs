//! Finds every occurrence of thousands of literals in a text, ignoring
//! ASCII case: the prefilter pass of [`super::matcher`].
//!
//! An Aho–Corasick automaton over 20,000 literals is megabytes of states
//! that a 100 KB text visits in random order: its scan waited on memory,
//! about 3 ns per byte. Here each literal is keyed by its first four bytes
//! (all of them when shorter), ASCII-lowercased, and each key length has a
//! one-bit-per-hash filter (4 bytes per key: a few kilobytes, 128 KiB for
//! 20,000 distinct keys) that stays in the CPU's caches, where the
//! automaton could not. The text is lowercased a few kilobytes at a time
//! (a loop the compiler vectorizes); at each position the scan hashes the
//! next four bytes and tests one bit, a handful of instructions. Only
//! where the bit is set does it look the key up exactly (by eight bytes
//! for literals that long, so literals sharing a common beginning do not
//! all get compared) and compare the literals found.
//!
//! The filter may let a position through wrongly, never stop one wrongly,
//! and the exact lookup and comparison decide: every occurrence is
//! reported, and only occurrences. Non-ASCII bytes (the Kelvin sign of
//! `(?i)k`) match only themselves, as in a case-insensitive Aho–Corasick
//! search.
//!
//! The cost is the exact lookups: when most positions of the text begin
//! some literal (common English words searched in English text), the
//! scan is slightly slower than the automaton (see `docs/rules.md`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

/// Bytes in a filter key.
const KEY: usize = 4;
/// Bytes in the exact key of literals at least that long.
const LONG_KEY: usize = 8;
/// Bytes lowercased at a time, into a buffer on the stack.
const CHUNK: usize = 4096;
/// Filter bits per key: about 1/32 of the bits are set, so about 3% of
/// positions whose bytes begin no literal still go to the exact lookup.
const BITS_PER_KEY: usize = 32;
/// Filter size bounds, in bits (512 B to 256 KiB).
const MIN_BITS: usize = 1 << 12;
const MAX_BITS: usize = 1 << 21;
/// Knuth's multiplicative hashing constant (2^32 / golden ratio), odd:
/// the product's top bits depend on every bit of the key.
const MULTIPLIER: u32 = 0x9E37_79B1;

thread_local! {
    /// The lowercased chunk being scanned; only the bytes of the text
    /// and the `LONG_KEY` zeros after it are ever read.
    static FOLDED: RefCell<Box<[u8; CHUNK + LONG_KEY]>> =
        RefCell::new(Box::new([0; CHUNK + LONG_KEY]));
}

/// One bit per hash of the first `width` bytes of the literals of a gate:
/// a clear bit proves that no literal starts with those bytes.
struct Filter {
    bits: Vec<u64>,
    /// Right shift that leaves a product's top bits as the bit index.
    shift: u32,
    /// The key's bytes in a word read little-endian: the first `width`.
    mask: u32,
}

impl Filter {
    fn new(width: usize, keys: usize) -> Filter {
        let bits = (keys * BITS_PER_KEY)
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two();
        Filter {
            bits: vec![0; bits / 64],
            shift: 32 - bits.trailing_zeros(),
            mask: u32::MAX >> (8 * (KEY - width)),
        }
    }

    /// The bit of `key` in a filter of `32 - shift` index bits.
    #[inline]
    fn index(key: u32, shift: u32) -> usize {
        (key.wrapping_mul(MULTIPLIER) >> shift) as usize
    }

    fn insert(&mut self, key: u32) {
        let i = Filter::index(key & self.mask, self.shift);
        self.bits[i / 64] |= 1 << (i % 64);
    }
}

/// The literals whose exact key has `width` bytes, by key.
struct Table {
    width: usize,
    mask: u64,
    /// Each key's literals, as a range of [`LiteralScanner::members`].
    buckets: HashMap<u64, Range<u32>, BuildHasherDefault<KeyHasher>>,
}

/// A filter and the tables whose literals it lets through: literals of 1
/// to 3 bytes have a gate of their length each; longer ones share the
/// four-byte gate, split into tables of four- and eight-byte keys.
struct Gate {
    filter: Filter,
    tables: Vec<Table>,
}

/// The hash of the exact lookup (the standard one is built to resist
/// attackers choosing keys; these keys come from the operator's rules).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // The table uses the low bits: fold the product's high half down.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = (key ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The scanner over a fixed list of literals; pattern `n` is the `n`th.
pub struct LiteralScanner {
    gates: Vec<Gate>,
    /// Pattern numbers grouped by exact key: the buckets' ranges index this.
    members: Vec<u32>,
    /// All literals, ASCII-lowercased, one after the other.
    bytes: Vec<u8>,
    /// Each pattern's literal in `bytes`.
    spans: Vec<Range<u32>>,
    /// Empty literals: they occur at every position.
    empty: Vec<u32>,
}

/// The first `width` bytes of `bytes` (zeros beyond its end) as a word.
fn word(bytes: &[u8], width: usize) -> u64 {
    let mut word = [0u8; LONG_KEY];
    let width = width.min(bytes.len());
    word[..width].copy_from_slice(&bytes[..width]);
    u64::from_le_bytes(word)
}

/// The exact key width of a literal: all its bytes up to 3, then 4 or 8.
fn key_width(len: usize) -> usize {
    match len {
        0..KEY => len,
        KEY..LONG_KEY => KEY,
        _ => LONG_KEY,
    }
}

impl LiteralScanner {
    pub fn new<L: AsRef<[u8]>>(literals: impl IntoIterator<Item = L>) -> LiteralScanner {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        // (exact key width, key, pattern) for every non-empty literal.
        let mut keyed: Vec<(usize, u64, u32)> = Vec::new();
        let mut empty = Vec::new();
        for (n, literal) in literals.into_iter().enumerate() {
            let literal = literal.as_ref().to_ascii_lowercase();
            let n = u32::try_from(n).expect("fewer than 2^32 literals");
            match key_width(literal.len()) {
                0 => empty.push(n),
                width => keyed.push((width, word(&literal, width), n)),
            }
            let start = offset(bytes.len());
            bytes.extend_from_slice(&literal);
            spans.push(start..offset(bytes.len()));
        }
        keyed.sort_unstable();
        let mut members = Vec::with_capacity(keyed.len());
        let mut tables: Vec<Table> = [1, 2, 3, KEY, LONG_KEY]
            .into_iter()
            .filter_map(|width| {
                let of_width = keyed.iter().filter(|k| k.0 == width);
                Table::build(width, of_width.map(|&(_, key, n)| (key, n)), &mut members)
            })
            .collect();
        let long = tables
            .iter()
            .position(|t| t.width >= KEY)
            .unwrap_or(tables.len());
        let mut gates: Vec<Gate> = tables.drain(..long).map(|t| Gate::new(vec![t])).collect();
        if !tables.is_empty() {
            gates.push(Gate::new(tables));
        }
        LiteralScanner {
            gates,
            members,
            bytes,
            spans,
            empty,
        }
    }

    /// Calls `found(pattern, start)` for every occurrence of every
    /// literal, overlapping ones included, ignoring ASCII case; each
    /// pattern's occurrences come in increasing order of start.
    pub fn for_each_match(&self, text: &[u8], mut found: impl FnMut(usize, usize)) {
        for &n in &self.empty {
            (0..=text.len()).for_each(|start| found(n as usize, start));
        }
        if self.gates.is_empty() {
            return;
        }
        // Each chunk's positions, lowercased with the bytes of the longest
        // key after the last one; zeros past the end of the text (no
        // literal matches there: the comparison checks the length). The
        // buffer is the thread's: most texts are short header values, and
        // clearing 4 KiB for each cost more than scanning them.
        FOLDED.with_borrow_mut(|folded| {
            for base in (0..text.len()).step_by(CHUNK) {
                let positions = CHUNK.min(text.len() - base);
                let bytes = &text[base..text.len().min(base + CHUNK + LONG_KEY)];
                folded[..bytes.len()].copy_from_slice(bytes);
                folded[..bytes.len()].make_ascii_lowercase();
                let tail = folded.len().min(bytes.len() + LONG_KEY);
                folded[bytes.len()..tail].fill(0);
                self.scan_chunk(folded, positions, text, base, &mut found);
            }
        });
    }

    /// Tests the first `positions` positions of a folded chunk, which
    /// starts at `base` in `text`: one gate at a time, so that its filter
    /// stays in registers (each pattern has one gate, so its occurrences
    /// still come in order).
    #[inline]
    fn scan_chunk(
        &self,
        folded: &[u8; CHUNK + LONG_KEY],
        positions: usize,
        text: &[u8],
        base: usize,
        found: &mut impl FnMut(usize, usize),
    ) {
        for gate in &self.gates {
            // Copied out so that they stay in registers across the loop.
            let (bits, shift, mask) = (&gate.filter.bits[..], gate.filter.shift, gate.filter.mask);
            for i in 0..positions.min(CHUNK) {
                let word = u32::from_le_bytes(folded[i..i + KEY].try_into().expect("four bytes"));
                let bit = Filter::index(word & mask, shift);
                if bits[bit / 64] >> (bit % 64) & 1 != 0 {
                    self.verify(gate, &folded[i..i + LONG_KEY], text, base + i, found);
                }
            }
        }
    }

    /// Reports the literals of `gate` that occur at `at`, where the
    /// folded text begins with `window`.
    #[cold]
    #[inline(never)]
    fn verify(
        &self,
        gate: &Gate,
        window: &[u8],
        text: &[u8],
        at: usize,
        found: &mut impl FnMut(usize, usize),
    ) {
        let window = word(window, LONG_KEY);
        for table in &gate.tables {
            let Some(bucket) = table.buckets.get(&(window & table.mask)) else {
                continue;
            };
            for &n in &self.members[bucket.start as usize..bucket.end as usize] {
                // The key's bytes are equal: compare the rest.
                let span = &self.spans[n as usize];
                let rest = &self.bytes[span.start as usize + table.width..span.end as usize];
                let from = at + table.width;
                let here = text.get(from..from + rest.len());
                if here.is_some_and(|t| t.eq_ignore_ascii_case(rest)) {
                    found(n as usize, at);
                }
            }
        }
    }
}

impl Gate {
    fn new(tables: Vec<Table>) -> Gate {
        let width = tables[0].width.min(KEY);
        let keys: usize = tables.iter().map(|t| t.buckets.len()).sum();
        let mut filter = Filter::new(width, keys);
        for table in &tables {
            table
                .buckets
                .keys()
                .for_each(|&key| filter.insert(key as u32));
        }
        Gate { filter, tables }
    }
}

impl Table {
    /// The table of the literals keyed by `width` bytes, from their
    /// `(key, pattern)` pairs sorted by key; `None` when there are none.
    fn build(
        width: usize,
        keyed: impl Iterator<Item = (u64, u32)>,
        members: &mut Vec<u32>,
    ) -> Option<Table> {
        let mut buckets: HashMap<u64, Range<u32>, _> = HashMap::default();
        for (key, n) in keyed {
            let at = offset(members.len());
            members.push(n);
            buckets.entry(key).or_insert(at..at).end = at + 1;
        }
        (!buckets.is_empty()).then(|| Table {
            width,
            mask: u64::MAX >> (8 * (LONG_KEY - width)),
            buckets,
        })
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

    /// Literals longer than the exact keys, also across a chunk's edge.
    #[test]
    fn long_literals() {
        let long = "Ab".repeat(40);
        let literals: [&[u8]; 2] = [long.as_bytes(), &long.as_bytes()[..LONG_KEY + 1]];
        let mut text = vec![b'-'; CHUNK - 10];
        text.extend_from_slice(long.to_uppercase().as_bytes());
        text.extend_from_slice(b"ab");
        let got = scanned(&literals, &text);
        assert_eq!(got, naive(&literals, &text));
        assert!(got.contains(&(0, CHUNK - 10)) && got.contains(&(1, CHUNK - 10)));
        let cut = &text[..text.len() - 3];
        assert_eq!(scanned(&literals, cut), naive(&literals, cut));
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

    /// Occurrences across the edges of the chunks the text is lowercased
    /// in, and texts that end at, just before or just after an edge.
    #[test]
    fn chunk_edges() {
        let literals: [&[u8]; 4] = [b"edge", b"straddling", b"xy", b"tail-end"];
        for len in [CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 3, 2 * CHUNK + 5] {
            let mut text = vec![b'.'; len];
            for at in [CHUNK - 10, CHUNK - 4, CHUNK - 1, 2 * CHUNK - 2] {
                let piece: &[u8] = if at % 2 == 0 {
                    b"STRADDLING"
                } else {
                    b"Edge-xY"
                };
                if at + piece.len() <= len {
                    text[at..at + piece.len()].copy_from_slice(piece);
                }
            }
            let tail = b"Tail-End";
            text[len - tail.len()..].copy_from_slice(tail);
            let got = scanned(&literals, &text);
            assert_eq!(got, naive(&literals, &text), "length {len}");
            assert!(got.iter().any(|&(n, _)| n == 3), "length {len}: {got:?}");
        }
    }

    /// Random literal sets, 1 to 12 bytes long, against random texts (some
    /// over several chunks): exactly what the naive search finds.
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
            let len = rng.usize(..if round % 50 == 0 { 3 * CHUNK } else { 600 });
            let text = random_bytes(&mut rng, len);
            assert_eq!(
                scanned(&literals, &text),
                naive(&literals, &text),
                "round {round}: {literals:?}"
            );
        }
    }
}
