//! One field's regexes (all body regexes of a stage, say), matched in one
//! pass: a [`LiteralScanner`] finds which of the regexes' required
//! literals occur and where, and only the regexes whose every literal set
//! occurred (plus the few without useful literals) run — and, when a
//! regex's reach around its literal is bounded, only on windows around
//! the occurrences rather than on the whole text. With 10,000 rules this
//! is the difference between running a hundred regexes over a 100 KB body
//! and running a dozen over a few hundred bytes.
//!
//! A regex is compiled the first time a text may match it. Its syntax was
//! checked when the rules loaded; compiling only what traffic needs keeps
//! loading 10,000 rules fast and their memory small (a compiled regex with
//! Unicode classes takes tens of kilobytes).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::Input;

use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};

use super::literal::{requirements, Required};
use super::scan::LiteralScanner;

/// Caps per regex: an operator's typo must not eat the memory of the host.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The lazy DFA cache per regex, as the `regex` crate sets it.
const REGEX_CACHE: usize = 2 << 20;
/// Occurrences remembered per literal and text; beyond, one window spans
/// from the first occurrence to the last. A short literal can occur
/// hundreds of times in 100 KB: small windows around each occurrence
/// still cost far less than running the regex over the whole text.
const KEPT: usize = 64;

/// A literal set as the matcher uses it: prefilter pattern numbers.
struct Requirement {
    patterns: Vec<usize>,
    before: Option<usize>,
    after: Option<usize>,
}

/// A regex and the stage-wide atom it decides.
struct Atom {
    id: usize,
    pattern: String,
    /// Every one must have a literal in the text; empty: always run.
    requirements: Vec<Requirement>,
    regex: OnceLock<Option<Regex>>,
    /// For a regex that runs on every text and uses Unicode `\b`: the
    /// same regex without its assertions, which matches wherever it does.
    /// On non-ASCII text Unicode `\b` forces the regex engine's slowest
    /// mode (milliseconds per 100 KB); the guard runs in its fast mode and
    /// rules most texts out first.
    guard: Option<(String, OnceLock<Option<Regex>>)>,
}

impl Atom {
    /// The compiled regex; `None` (never matching, logged once) only if it
    /// exceeds the size limit, the one error parsing cannot foresee.
    fn regex(&self) -> Option<&Regex> {
        self.regex.get_or_init(|| compile(&self.pattern)).as_ref()
    }

    /// True if the regex matches somewhere in the whole of `text`.
    fn matches_whole(&self, text: &str) -> bool {
        if let Some((pattern, guard)) = &self.guard {
            let guard = guard.get_or_init(|| compile(pattern));
            if guard.as_ref().is_some_and(|g| !g.is_match(text)) {
                return false;
            }
        }
        self.regex().is_some_and(|r| r.is_match(text))
    }
}

/// `hir` without its look-around assertions (`\b`, `^`, `$`...): each
/// only narrows where a match may be, so without them the regex matches
/// at least wherever `hir` does.
fn without_looks(hir: &Hir) -> Hir {
    let all = |subs: &[Hir]| subs.iter().map(without_looks).collect::<Vec<_>>();
    match hir.kind() {
        HirKind::Look(_) => Hir::empty(),
        HirKind::Capture(c) => Hir::capture(Capture {
            sub: Box::new(without_looks(&c.sub)),
            ..c.clone()
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            sub: Box::new(without_looks(&r.sub)),
            ..r.clone()
        }),
        HirKind::Concat(subs) => Hir::concat(all(subs)),
        HirKind::Alternation(subs) => Hir::alternation(all(subs)),
        _ => hir.clone(),
    }
}

/// The guard of a regex without literals, when it needs one.
fn guard(hir: &Hir, required: &[Required]) -> Option<(String, OnceLock<Option<Regex>>)> {
    let slow = required.is_empty() && hir.properties().look_set().contains_word_unicode();
    slow.then(|| (without_looks(hir).to_string(), OnceLock::new()))
}

/// Compiles as `regex::Regex::new` does (same syntax and match semantics),
/// through the engine underneath it, which can search a window of a text
/// while still seeing the text around it for `\b`, `^` and `$`.
fn compile(pattern: &str) -> Option<Regex> {
    let config = meta::Config::new()
        .match_kind(regex_automata::MatchKind::LeftmostFirst)
        .utf8_empty(true)
        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
        .hybrid_cache_capacity(REGEX_CACHE)
        .which_captures(WhichCaptures::Implicit);
    let built = meta::Builder::new()
        .configure(config)
        .syntax(syntax::Config::new().utf8(true))
        .build(pattern);
    match built {
        Ok(regex) => Some(regex),
        Err(error) => {
            tracing::error!(%pattern, %error, "rule regex too large; it never matches");
            None
        }
    }
}

pub struct FieldMatcher {
    prefilter: Option<LiteralScanner>,
    /// The length of each prefilter pattern.
    lengths: Vec<usize>,
    /// For each prefilter pattern, the atoms (indexes into `atoms`) whose
    /// first requirement it belongs to.
    by_pattern: Vec<Vec<usize>>,
    /// Atoms without useful literals: checked on every text.
    always: Vec<usize>,
    atoms: Vec<Atom>,
}

#[derive(Default)]
pub struct MatcherBuilder {
    literals: HashMap<Vec<u8>, usize>,
    lengths: Vec<usize>,
    by_pattern: Vec<Vec<usize>>,
    always: Vec<usize>,
    atoms: Vec<Atom>,
}

/// Literals of a narrowing (not the first) set need at least this many
/// bytes: the scanner's full key width.
const SECONDARY_MIN: usize = 4;

/// The first set decides which atoms run; the others only narrow their
/// windows. A short literal in those would cost a scan pass of its own (a
/// key width of its own) over every text for little gain, so such sets are
/// left to the regex: fewer sets give wider windows, never a missed match.
fn worth_scanning(required: Vec<Required>) -> Vec<Required> {
    let full_width = |r: &Required| r.literals.iter().all(|l| l.len() >= SECONDARY_MIN);
    let mut sets = required.into_iter();
    let first = sets.next();
    first.into_iter().chain(sets.filter(full_width)).collect()
}

impl MatcherBuilder {
    /// Adds atom `id`: a pattern and its parsed form.
    pub fn add(&mut self, id: usize, pattern: &str, hir: &Hir) {
        let required = worth_scanning(requirements(hir));
        let guard = guard(hir, &required);
        let index = self.atoms.len();
        let requirements: Vec<Requirement> =
            required.into_iter().map(|r| self.requirement(r)).collect();
        match requirements.first() {
            Some(first) => {
                for &p in &first.patterns {
                    self.by_pattern[p].push(index);
                }
            }
            None => self.always.push(index),
        }
        self.atoms.push(Atom {
            id,
            pattern: pattern.to_string(),
            requirements,
            regex: OnceLock::new(),
            guard,
        });
    }

    fn requirement(&mut self, required: Required) -> Requirement {
        let patterns = required
            .literals
            .into_iter()
            .map(|literal| self.pattern(literal))
            .collect();
        Requirement {
            patterns,
            before: required.before,
            after: required.after,
        }
    }

    /// The prefilter pattern number of `literal`, shared between atoms.
    fn pattern(&mut self, literal: Vec<u8>) -> usize {
        let next = self.lengths.len();
        let length = literal.len();
        let number = *self.literals.entry(literal).or_insert(next);
        if number == next {
            self.lengths.push(length);
            self.by_pattern.push(Vec::new());
        }
        number
    }

    pub fn build(self) -> FieldMatcher {
        let mut patterns: Vec<(Vec<u8>, usize)> = self.literals.into_iter().collect();
        patterns.sort_by_key(|(_, id)| *id);
        let prefilter =
            (!patterns.is_empty()).then(|| LiteralScanner::new(patterns.iter().map(|(p, _)| p)));
        FieldMatcher {
            prefilter,
            lengths: self.lengths,
            by_pattern: self.by_pattern,
            always: self.always,
            atoms: self.atoms,
        }
    }
}

/// Where a literal occurred in the text being scanned.
#[derive(Clone, Default)]
struct Seen {
    count: usize,
    /// The first `KEPT` starts (the buffer is kept from text to text).
    starts: Vec<usize>,
    last: usize,
}

/// Per-thread buffers reused from text to text, so a scan allocates
/// nothing per rule.
#[derive(Default)]
struct Scratch {
    /// Indexed by prefilter pattern; only `touched` entries are non-zero.
    seen: Vec<Seen>,
    touched: Vec<usize>,
    /// Indexed by atom: the scan that last queued it.
    stamp: Vec<u32>,
    generation: u32,
}

impl Scratch {
    fn start(&mut self, patterns: usize, atoms: usize) {
        for &p in &self.touched {
            let seen = &mut self.seen[p];
            seen.count = 0;
            seen.starts.clear();
        }
        self.touched.clear();
        if self.seen.len() < patterns {
            self.seen.resize(patterns, Seen::default());
        }
        if self.stamp.len() < atoms {
            self.stamp.resize(atoms, 0);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
    }

    fn record(&mut self, pattern: usize, start: usize) {
        let seen = &mut self.seen[pattern];
        if seen.count == 0 {
            self.touched.push(pattern);
        }
        if seen.count < KEPT {
            seen.starts.push(start);
        }
        seen.count += 1;
        seen.last = start;
    }

    /// True the first time `atom` is queued in this scan.
    fn queue(&mut self, atom: usize) -> bool {
        let fresh = self.stamp[atom] != self.generation;
        self.stamp[atom] = self.generation;
        fresh
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

impl FieldMatcher {
    /// Marks in `hits` (indexed by atom id) every atom with literals whose
    /// regex matches `text`; the others ([`Self::literal_less`]) are left to
    /// [`Self::decides`], on demand.
    pub fn scan_literals(&self, text: &str, hits: &mut [bool]) {
        SCRATCH.with(|scratch| self.scan_with(text, hits, &mut scratch.borrow_mut()));
    }

    /// True if some atom has literals (and [`Self::scan_literals`] work).
    pub fn has_literals(&self) -> bool {
        self.prefilter.is_some()
    }

    /// The atoms without literals: (their index here, their atom id).
    pub fn literal_less(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (self.always.iter().enumerate()).map(|(local, &index)| (local, self.atoms[index].id))
    }

    /// True if literal-less atom `local` matches `text`.
    pub fn decides(&self, local: usize, text: &str) -> bool {
        self.atoms[self.always[local]].matches_whole(text)
    }

    fn scan_with(&self, text: &str, hits: &mut [bool], scratch: &mut Scratch) {
        scratch.start(self.lengths.len(), self.atoms.len());
        let Some(prefilter) = &self.prefilter else {
            return;
        };
        prefilter.for_each_match(text.as_bytes(), |pattern, start| {
            scratch.record(pattern, start);
        });
        for t in 0..scratch.touched.len() {
            let pattern = scratch.touched[t];
            for &index in &self.by_pattern[pattern] {
                if scratch.queue(index) {
                    self.verify(&self.atoms[index], text, hits, scratch);
                }
            }
        }
    }

    /// Runs a candidate's regex on the windows where it can match.
    fn verify(&self, atom: &Atom, text: &str, hits: &mut [bool], scratch: &Scratch) {
        if hits[atom.id] {
            return;
        }
        let Some(windows) = self.windows(atom, text.len(), scratch) else {
            return;
        };
        let Some(regex) = atom.regex() else {
            return;
        };
        hits[atom.id] = windows.into_iter().any(|(start, end)| {
            let span = text.floor_char_boundary(start)..text.ceil_char_boundary(end);
            regex.is_match(Input::new(text).span(span))
        });
    }

    /// The windows that hold every match: a match lies in a window of
    /// each requirement, so in their intersection. `None` if it is empty
    /// (some literal set is missing, or no place has all of them close
    /// enough): the regex cannot match.
    fn windows(&self, atom: &Atom, len: usize, scratch: &Scratch) -> Option<Vec<(usize, usize)>> {
        let mut windows = vec![(0, len)];
        for requirement in &atom.requirements {
            let theirs = self.requirement_windows(requirement, len, scratch)?;
            windows = intersect(&windows, &theirs);
            if windows.is_empty() {
                return None;
            }
        }
        Some(windows)
    }

    /// Every match contains an occurrence of one of the literals, and
    /// reaches at most `before` bytes ahead of it and `after` bytes past it.
    fn requirement_windows(
        &self,
        requirement: &Requirement,
        len: usize,
        scratch: &Scratch,
    ) -> Option<Vec<(usize, usize)>> {
        let mut windows = Vec::new();
        for &pattern in &requirement.patterns {
            let seen = &scratch.seen[pattern];
            let literal = self.lengths[pattern];
            let window = |start: usize| {
                let from = requirement.before.map_or(0, |b| start.saturating_sub(b));
                let to = requirement
                    .after
                    .map_or(len, |a| (start + literal).saturating_add(a).min(len));
                (from, to)
            };
            match seen.count {
                0 => {}
                n if n <= KEPT => windows.extend(seen.starts.iter().map(|&s| window(s))),
                _ => windows.push((window(seen.starts[0]).0, window(seen.last).1)),
            }
        }
        (!windows.is_empty()).then(|| merge(windows))
    }
}

/// The places in both of two sorted lists of disjoint windows.
fn intersect(a: &[(usize, usize)], b: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// Sorts windows and joins those that overlap or touch.
fn merge(mut windows: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    windows.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(windows.len());
    for (start, end) in windows {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> FieldMatcher {
        let mut builder = MatcherBuilder::default();
        for (id, p) in patterns.iter().enumerate() {
            builder.add(id, p, &regex_syntax::parse(p).unwrap());
        }
        builder.build()
    }

    /// Every atom decided on `text`: the literal scan, then the others.
    fn scan(matcher: &FieldMatcher, text: &str, hits: &mut [bool]) {
        for (local, id) in matcher.literal_less() {
            hits[id] = matcher.decides(local, text);
        }
        matcher.scan_literals(text, hits);
    }

    /// The one-pass result equals running each regex on its own.
    fn agree(patterns: &[&str], texts: &[String]) {
        let matcher = matcher(patterns);
        for text in texts {
            let mut hits = vec![false; patterns.len()];
            scan(&matcher, text, &mut hits);
            for (id, p) in patterns.iter().enumerate() {
                let want = regex::Regex::new(p).unwrap().is_match(text);
                assert_eq!(hits[id], want, "{p} on {text:?}");
            }
        }
    }

    /// "hot" narrows `\bhot\s+dating\b` too little to be worth a scan
    /// pass of 3-byte keys: only "dating" is searched, "hot" is left to
    /// the regex, and the result is the same.
    #[test]
    fn short_narrowing_literals_are_not_scanned() {
        let patterns = [r"(?i)\bhot\s+dating\b"];
        assert_eq!(matcher(&patterns).lengths, [6], "only dating");
        let texts = ["HOT   dating", "not dating", "hot dates", "shot dating"];
        agree(&patterns, &texts.map(String::from));
    }

    #[test]
    fn prefilter_never_hides_a_match() {
        let patterns = [
            "(?i)viagra",
            r"\bfree\s+money\b",
            "[0-9]{5}",
            "(?i)kelvin",
            r"\.(exe|scr)$",
        ];
        let texts = [
            "Buy VIAGRA now",
            "get free   money",
            "zip 12345",
            "\u{212A}ELVIN",
            "invoice.exe",
            "nothing here",
            "FREE MONEY",
        ];
        agree(&patterns, &texts.map(String::from));
    }

    /// Windows around occurrences see the text around them: word
    /// boundaries and anchors at a window's edge, literals found more
    /// often than are remembered, multi-byte characters next to a window.
    #[test]
    fn windows_never_change_the_result() {
        let patterns = [
            r"\bcat\b",
            r"^Subject offer",
            r"offer$",
            r"(?m)^offer",
            r"x[0-9]{1,3}yzw",
            r"(ab[0-9]cde){1,2}!",
            r"(?i)\bbuy\s+(cheap|discount)\s+pills\b",
            r"(?s)start.{0,40}finish",
            r"größe\d",
            r"(?i)\bkal[oö]\b",
            r"(?i)\bfree\s+money\b",
            // No literal, Unicode `\b`: decided through the guard.
            r"(?i)\b(?:ka|sa)\b",
            r"(?m)^\w{2}$",
            r"\b(?P<n>é+)\b",
        ];
        let long_cats = "concatenate ".repeat(KEPT + 3) + "a cat.";
        let texts = [
            "concatenate the catalog".to_string(),
            long_cats,
            "cat".to_string(),
            "Subject offer".to_string(),
            "re: Subject offer".to_string(),
            "an offer\nofferings".to_string(),
            "line\noffer".to_string(),
            "x1yzw x12345yzw".to_string(),
            "x12345yzw xyzw".to_string(),
            "ab1cdeab2cde! ab3cde".to_string(),
            "ab1cd ab2cde!".to_string(),
            "BUY  Cheap\tpills! buy discount pillsx".to_string(),
            "buy discount pillsx".to_string(),
            format!("start{}finish", "é".repeat(20)),
            format!("start{}finish", "é".repeat(21)),
            "ééégröße1".to_string(),
            "gröẞe1 größex".to_string(),
            "a kalö b".to_string(),
            "kalox kalo".to_string(),
            format!("free{}money", " ".repeat(300)),
            format!("free{}money", " x ".repeat(100)),
            format!(
                "{}FREE\r\n\tMONEY",
                "free free money-free ".repeat(KEPT + 2)
            ),
            "Grüße, KA!".to_string(),
            "Grüße, kasa".to_string(),
            "Grüße\nab\nabc".to_string(),
            "xéé éé".to_string(),
            "xéé".to_string(),
        ];
        agree(&patterns, &texts);
    }

    #[test]
    fn intersect_table() {
        let cases = [
            (
                vec![(0, 100)],
                vec![(10, 20), (30, 40)],
                vec![(10, 20), (30, 40)],
            ),
            (
                vec![(0, 15), (35, 50)],
                vec![(10, 20), (30, 40)],
                vec![(10, 15), (35, 40)],
            ),
            (vec![(0, 10)], vec![(10, 20)], vec![]),
            (
                vec![(5, 25)],
                vec![(0, 10), (12, 14), (20, 30)],
                vec![(5, 10), (12, 14), (20, 25)],
            ),
            (vec![], vec![(0, 1)], vec![]),
        ];
        for (a, b, want) in cases {
            assert_eq!(intersect(&a, &b), want, "{a:?} {b:?}");
            assert_eq!(intersect(&b, &a), want, "{b:?} {a:?}");
        }
    }

    #[test]
    fn merge_table() {
        let cases = [
            (vec![], vec![]),
            (vec![(5, 9), (0, 3)], vec![(0, 3), (5, 9)]),
            (vec![(0, 5), (5, 7)], vec![(0, 7)]),
            (vec![(0, 10), (2, 4), (8, 12)], vec![(0, 12)]),
        ];
        for (input, want) in cases {
            assert_eq!(merge(input.clone()), want, "{input:?}");
        }
    }
}
