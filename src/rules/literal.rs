//! Required literals: for each regex, sets of strings such that every
//! match contains one string of each set. One literal scan over all of a
//! field's literals ([`super::scan`]) then tells, in one pass over the
//! text, which few regexes can possibly match; only those run, and only
//! near where their literals occur. This is what keeps 10,000 rules fast.
//!
//! Each set also records how far a match may reach beyond the literal on
//! either side ([`Required::before`], [`Required::after`]): when both are
//! bounded, a regex is run only on small windows around the occurrences
//! instead of the whole 100 KB body.
//!
//! Literals are ASCII-lowercased and searched case-insensitively, so the
//! prefilter only ever over-approximates: a regex is skipped only when
//! none of its literals occur in any case.

use regex_syntax::hir::{Class, Hir, HirKind};

/// Literals shorter than this occur too often to be worth searching for.
const MIN_USEFUL: usize = 3;
/// Beyond this many alternatives the regex just runs on every text.
const MAX_ALTERNATIVES: usize = 64;
/// Exact strings longer than this are cut (a prefix still must occur).
const MAX_EXACT: usize = 64;
/// Sets kept per regex: the best few filter as well as all of them, and
/// every extra literal grows the automaton.
const MAX_REQUIRED: usize = 3;

/// One set of literals every match contains at least one of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    pub literals: Vec<Vec<u8>>,
    /// At most this many bytes of a match precede the literal; `None`: no bound.
    pub before: Option<usize>,
    /// At most this many bytes of a match follow the literal; `None`: no bound.
    pub after: Option<usize>,
}

impl Required {
    fn exact_set(literals: Vec<Vec<u8>>) -> Required {
        Required {
            literals,
            before: Some(0),
            after: Some(0),
        }
    }

    /// The same set seen from an enclosing node that adds up to `before`
    /// and `after` bytes around it.
    fn widened(mut self, before: Option<usize>, after: Option<usize>) -> Required {
        self.before = add(self.before, before);
        self.after = add(self.after, after);
        self
    }

    fn shortest(&self) -> usize {
        self.literals.iter().map(Vec::len).min().unwrap_or(0)
    }

    /// Longer shortest literal first; fewer alternatives, then a bounded
    /// reach (smaller windows to verify) break ties.
    fn quality(&self) -> (usize, std::cmp::Reverse<usize>, usize) {
        let bounded = usize::from(self.before.is_some()) + usize::from(self.after.is_some());
        (
            self.shortest(),
            std::cmp::Reverse(self.literals.len()),
            bounded,
        )
    }
}

fn add(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    a?.checked_add(b?)
}

/// The best literal set of `pattern`, or `None` when no useful set exists
/// (the regex must then run on every text).
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::parse(pattern).ok()?;
    requirements(&hir).into_iter().next().map(|r| r.literals)
}

/// Every useful literal set of a parsed regex, best first; empty when the
/// regex must run on every text.
pub fn requirements(hir: &Hir) -> Vec<Required> {
    let mut found = analyse(hir).required;
    found.retain(|r| r.shortest() >= MIN_USEFUL);
    found
}

/// At most this many exact strings stand for one node (case variants
/// such as `(?i)s` → `s`, `ſ`, or a short alternation); beyond it, a run
/// of exact pieces is split into separately required literals.
const MAX_VARIANTS: usize = 16;

/// What a node tells about its matches.
#[derive(Default)]
struct Info {
    /// The node matches exactly one of these strings (ASCII-lowercased,
    /// at most [`MAX_VARIANTS`]), nothing else.
    exact: Option<Vec<Vec<u8>>>,
    /// Every match contains one literal of each of these sets, best first.
    required: Vec<Required>,
}

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => exact(vec![Vec::new()]),
        HirKind::Literal(lit) => exact(vec![lit.0.to_ascii_lowercase()]),
        HirKind::Class(class) => match class_variants(class) {
            Some(variants) => exact(variants),
            None => Info::default(),
        },
        HirKind::Capture(capture) => analyse(&capture.sub),
        HirKind::Repetition(rep) => repetition(rep.min, rep.max, &rep.sub),
        HirKind::Concat(subs) => concat(subs),
        HirKind::Alternation(subs) => alternation(subs),
    }
}

/// A node that matches exactly one of `variants`. When none is empty,
/// they are also a required set (cut to [`MAX_EXACT`] bytes each).
fn exact(mut variants: Vec<Vec<u8>>) -> Info {
    variants.sort();
    variants.dedup();
    let required = exact_required(&variants, Some(0), Some(0))
        .into_iter()
        .collect();
    Info {
        exact: Some(variants),
        required,
    }
}

/// The required set made of exact variants with `before`/`after` bytes of
/// the match around them; `None` when a variant is empty.
fn exact_required(
    variants: &[Vec<u8>],
    before: Option<usize>,
    after: Option<usize>,
) -> Option<Required> {
    if variants.iter().any(Vec::is_empty) {
        return None;
    }
    let longest = variants.iter().map(Vec::len).max().unwrap_or(0);
    let mut literals: Vec<Vec<u8>> = variants
        .iter()
        .map(|v| v[..v.len().min(MAX_EXACT)].to_vec())
        .collect();
    literals.sort();
    literals.dedup();
    let cut = longest.saturating_sub(MAX_EXACT);
    Some(Required::exact_set(literals).widened(before, add(after, Some(cut))))
}

/// The few characters a class holds, as strings: `a`, `[aA]`, and the
/// Unicode case variants of `(?i)k` (the Kelvin sign) and `(?i)s` (the
/// long s) as their UTF-8 bytes, so a prefilter that folds only ASCII
/// case still never misses a match.
fn class_variants(class: &Class) -> Option<Vec<Vec<u8>>> {
    const MAX_CHARS: usize = 4;
    let strings: Vec<Vec<u8>> = match class {
        Class::Unicode(c) => c
            .ranges()
            .iter()
            .flat_map(|r| r.start()..=r.end())
            .take(MAX_CHARS + 1)
            .map(|ch| ch.to_string().into_bytes())
            .collect(),
        Class::Bytes(c) => c
            .ranges()
            .iter()
            .flat_map(|r| r.start()..=r.end())
            .take(MAX_CHARS + 1)
            .map(|b| vec![b])
            .collect(),
    };
    if strings.len() > MAX_CHARS {
        return None;
    }
    let mut lower: Vec<Vec<u8>> = strings.iter().map(|s| s.to_ascii_lowercase()).collect();
    lower.sort();
    lower.dedup();
    Some(lower)
}

/// Every concatenation of one string of `a` with one of `b`, or `None`
/// when there would be more than [`MAX_VARIANTS`] (or one too long).
fn product(a: &[Vec<u8>], b: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if a.len() * b.len() > MAX_VARIANTS {
        return None;
    }
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            if x.len() + y.len() > MAX_EXACT * 4 {
                return None;
            }
            out.push([x.as_slice(), y.as_slice()].concat());
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

fn repetition(min: u32, max: Option<u32>, sub: &Hir) -> Info {
    if min == 0 {
        return match max {
            Some(0) => exact(vec![Vec::new()]),
            _ => Info::default(),
        };
    }
    let inner = analyse(sub);
    if let (Some(e), Some(max)) = (&inner.exact, max) {
        if max == min {
            if let Some(repeated) = repeat(e, min) {
                return exact(repeated);
            }
        }
    }
    // The literal lies in one of up to `max` repetitions; the others may
    // stand on either side of it.
    let others = max.and_then(|m| {
        let each = sub.properties().maximum_len()?;
        each.checked_mul(m as usize - 1)
    });
    let required = inner
        .required
        .into_iter()
        .map(|r| r.widened(others, others))
        .collect();
    Info {
        exact: None,
        required,
    }
}

/// `variants` concatenated `times` times, when that stays small.
fn repeat(variants: &[Vec<u8>], times: u32) -> Option<Vec<Vec<u8>>> {
    let mut out = vec![Vec::new()];
    for _ in 0..times {
        out = product(&out, variants)?;
    }
    out.iter().all(|v| v.len() <= MAX_EXACT).then_some(out)
}

/// The most bytes each of `subs` matches, summed over a range.
fn span_len(subs: &[Hir]) -> Option<usize> {
    subs.iter().try_fold(0usize, |sum, sub| {
        sum.checked_add(sub.properties().maximum_len()?)
    })
}

/// A concatenation being read left to right: the run of exact pieces
/// seen last (as all its variants) and the sets found so far.
struct Concat<'a> {
    subs: &'a [Hir],
    required: Vec<Required>,
    run: Vec<Vec<u8>>,
    run_start: usize,
    all_exact: bool,
}

impl<'a> Concat<'a> {
    fn new(subs: &'a [Hir]) -> Concat<'a> {
        Concat {
            subs,
            required: Vec::new(),
            run: vec![Vec::new()],
            run_start: 0,
            all_exact: true,
        }
    }

    /// Extends the run by the exact piece `i`; when the variants would be
    /// too many, the run so far becomes a required set of its own.
    fn exact_piece(&mut self, i: usize, variants: Vec<Vec<u8>>) {
        if self.run == [Vec::<u8>::new()] {
            self.run_start = i;
        }
        match product(&self.run, &variants) {
            Some(run) => self.run = run,
            None => {
                self.flush(i);
                self.all_exact = false;
                self.run = variants;
                self.run_start = i;
            }
        }
    }

    /// A piece that is not exact: it ends the run, and its own sets count,
    /// widened by what may stand around it.
    fn other_piece(&mut self, i: usize, info: Info) {
        self.all_exact = false;
        self.flush(i);
        let (before, after) = (span_len(&self.subs[..i]), span_len(&self.subs[i + 1..]));
        let widened = info.required.into_iter().map(|r| r.widened(before, after));
        self.required.extend(widened);
    }

    /// Ends the run before piece `end`: it is itself a required set.
    fn flush(&mut self, end: usize) {
        let before = span_len(&self.subs[..self.run_start]);
        let after = span_len(&self.subs[end..]);
        let run = std::mem::replace(&mut self.run, vec![Vec::new()]);
        self.required.extend(exact_required(&run, before, after));
    }

    fn finish(mut self) -> Info {
        if self.all_exact {
            return exact(self.run);
        }
        self.flush(self.subs.len());
        let mut required = self.required;
        required.sort_by_key(|r| std::cmp::Reverse(r.quality()));
        required.dedup_by(|a, b| a.literals == b.literals);
        required.truncate(MAX_REQUIRED);
        Info {
            exact: None,
            required,
        }
    }
}

fn concat(subs: &[Hir]) -> Info {
    let mut concat = Concat::new(subs);
    for (i, sub) in subs.iter().enumerate() {
        let info = analyse(sub);
        match info.exact {
            Some(variants) => concat.exact_piece(i, variants),
            None => concat.other_piece(i, info),
        }
    }
    concat.finish()
}

fn alternation(subs: &[Hir]) -> Info {
    let infos: Vec<Info> = subs.iter().map(analyse).collect();
    if let Some(variants) = exact_union(&infos) {
        return exact(variants);
    }
    let mut set: Vec<Vec<u8>> = Vec::new();
    let (mut before, mut after) = (Some(0), Some(0));
    for info in infos {
        let Some(best) = info.required.into_iter().next() else {
            return Info::default();
        };
        set.extend(best.literals);
        before = before.zip(best.before).map(|(a, b)| a.max(b));
        after = after.zip(best.after).map(|(a, b)| a.max(b));
        if set.len() > MAX_ALTERNATIVES {
            return Info::default();
        }
    }
    set.sort();
    set.dedup();
    Info {
        exact: None,
        required: vec![Required {
            literals: set,
            before,
            after,
        }],
    }
}

/// When every branch is exact and together they are few, the alternation
/// is exact too: `(cheap|discount) meds` then requires "cheap meds" or
/// "discount meds" instead of the weaker " meds".
fn exact_union(infos: &[Info]) -> Option<Vec<Vec<u8>>> {
    let mut union = Vec::new();
    for info in infos {
        union.extend(info.exact.clone()?);
    }
    union.sort();
    union.dedup();
    (union.len() <= MAX_VARIANTS).then_some(union)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    fn text(literals: Vec<Vec<u8>>) -> Vec<String> {
        let text = |l: Vec<u8>| String::from_utf8(l).unwrap();
        literals.into_iter().map(text).collect()
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<Vec<String>>)] = &[
            ("viagra", lits(&["viagra"])),
            ("(?i)VIAGRA", lits(&["viagra"])),
            (r"\bfree\s+money\b", lits(&["money"])),
            // `(?i)s` also matches the long s, `(?i)k` the Kelvin sign:
            // both stay in the set as their own UTF-8 strings.
            (
                "(?i)(cheap|discount)",
                lits(&["cheap", "discount", "diſcount"]),
            ),
            ("(?i)kabc", lits(&["kabc", "\u{212A}abc"])),
            (
                "(cheap|discount) meds",
                lits(&["cheap meds", "discount meds"]),
            ),
            // 32 case variants are too many: the run is split in two.
            ("(?i)sssssxyz", lits(&["sxyz", "ſxyz"])),
            ("(cheap|x)", None),
            ("a.*b", None),
            ("[a-z]+", None),
            ("x?yz", None),
            ("(abc)+def", lits(&["def"])),
            ("(ab){3}", lits(&["ababab"])),
            ("[ab]{2}c", lits(&["aac", "abc", "bac", "bbc"])),
            (r"\.(exe|scr)$", lits(&[".exe", ".scr"])),
            ("(", None),
        ];
        for (pattern, want) in cases {
            assert_eq!(&required_literals(pattern).map(text), want, "{pattern}");
        }
    }

    type Found = Vec<(Vec<String>, Option<usize>, Option<usize>)>;

    fn all(pattern: &str) -> Found {
        let hir = regex_syntax::parse(pattern).unwrap();
        let found = requirements(&hir);
        let text = |l: &Vec<u8>| String::from_utf8(l.clone()).unwrap();
        found
            .iter()
            .map(|r| (r.literals.iter().map(text).collect(), r.before, r.after))
            .collect()
    }

    /// Every set with its reach: bytes a match may have before and after it.
    #[test]
    fn sets_and_reach_table() {
        type Want = Vec<(Vec<&'static str>, Option<usize>, Option<usize>)>;
        let cases: Vec<(&str, Want)> = vec![
            ("viagra", vec![(vec!["viagra"], Some(0), Some(0))]),
            (
                r"\bfree\s+money\b",
                vec![
                    (vec!["money"], None, Some(0)),
                    (vec!["free"], Some(0), None),
                ],
            ),
            (
                "buy (cheap|discount) pills",
                vec![(
                    vec!["buy cheap pills", "buy discount pills"],
                    Some(0),
                    Some(0),
                )],
            ),
            (
                "buy (cheap|discount|x[0-9]) pills",
                vec![
                    (vec![" pills"], Some(12), Some(0)),
                    (vec!["buy "], Some(0), Some(14)),
                ],
            ),
            ("x[0-9]{1,3}yzw", vec![(vec!["yzw"], Some(4), Some(0))]),
            ("(ab[0-9]cde){1,2}", vec![(vec!["cde"], Some(9), Some(6))]),
            ("(ab[0-9]cde)+", vec![(vec!["cde"], None, None)]),
            ("a.*b", vec![]),
            ("", vec![]),
        ];
        for (pattern, want) in cases {
            let want: Found = want
                .into_iter()
                .map(|(l, b, a)| (l.into_iter().map(String::from).collect(), b, a))
                .collect();
            assert_eq!(all(pattern), want, "{pattern}");
        }
    }

    /// A long literal is cut, and the cut part counts as reach after it.
    #[test]
    fn long_literal_is_cut() {
        let long = "a".repeat(70);
        let found = all(&long);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0[0].len(), MAX_EXACT);
        assert_eq!((found[0].1, found[0].2), (Some(0), Some(6)));
    }
}
