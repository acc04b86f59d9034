//! Required literals: for each regex, sets of strings such that every
//! match contains one string of each set. One Aho–Corasick automaton over
//! all of a field's literals then tells, in one pass over the text, which
//! few regexes can possibly match; only those run, and only near where
//! their literals occur. This is what keeps 10,000 rules fast.
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
    fn exact(literal: Vec<u8>) -> Required {
        Required {
            literals: vec![literal],
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

/// What a node tells about its matches.
#[derive(Default)]
struct Info {
    /// The node matches exactly this string (lowercased), nothing else.
    exact: Option<Vec<u8>>,
    /// Every match contains one literal of each of these sets, best first.
    required: Vec<Required>,
}

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => exact(Vec::new()),
        HirKind::Literal(lit) => exact(lit.0.to_ascii_lowercase()),
        HirKind::Class(class) => match single_char(class) {
            Some(byte) => exact(vec![byte]),
            None => Info::default(),
        },
        HirKind::Capture(capture) => analyse(&capture.sub),
        HirKind::Repetition(rep) => repetition(rep.min, rep.max, &rep.sub),
        HirKind::Concat(subs) => concat(subs),
        HirKind::Alternation(subs) => alternation(subs),
    }
}

fn exact(bytes: Vec<u8>) -> Info {
    let required = match bytes.is_empty() {
        true => Vec::new(),
        false => vec![
            Required::exact(bytes[..bytes.len().min(MAX_EXACT)].to_vec())
                .widened(Some(0), Some(bytes.len().saturating_sub(MAX_EXACT))),
        ],
    };
    Info {
        exact: Some(bytes),
        required,
    }
}

/// An ASCII character, in either case only: `a`, `[aA]`. Classes that
/// also hold Unicode case variants (`(?i)k` holds the Kelvin sign) are
/// not single characters, so the prefilter never misses those.
fn single_char(class: &Class) -> Option<u8> {
    let chars: Vec<u32> = match class {
        Class::Unicode(c) => c
            .ranges()
            .iter()
            .flat_map(|r| r.start() as u32..=r.end() as u32)
            .take(3)
            .collect(),
        Class::Bytes(c) => c
            .ranges()
            .iter()
            .flat_map(|r| u32::from(r.start())..=u32::from(r.end()))
            .take(3)
            .collect(),
    };
    let lower: Vec<u8> = chars
        .iter()
        .map(|&c| u8::try_from(c).ok().filter(u8::is_ascii))
        .collect::<Option<Vec<u8>>>()?
        .iter()
        .map(u8::to_ascii_lowercase)
        .collect();
    match lower.as_slice() {
        [a] => Some(*a),
        [a, b] if a == b => Some(*a),
        _ => None,
    }
}

fn repetition(min: u32, max: Option<u32>, sub: &Hir) -> Info {
    if min == 0 {
        return match max {
            Some(0) => exact(Vec::new()),
            _ => Info::default(),
        };
    }
    let inner = analyse(sub);
    if let (Some(e), Some(max)) = (&inner.exact, max) {
        if max == min && e.len() * min as usize <= MAX_EXACT {
            return exact(e.repeat(min as usize));
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

/// The most bytes each of `subs` matches, summed over a range.
fn span_len(subs: &[Hir]) -> Option<usize> {
    subs.iter().try_fold(0usize, |sum, sub| {
        sum.checked_add(sub.properties().maximum_len()?)
    })
}

fn concat(subs: &[Hir]) -> Info {
    let mut required: Vec<Required> = Vec::new();
    let mut run: Vec<u8> = Vec::new();
    let mut run_start = 0;
    let mut all_exact = true;
    for (i, sub) in subs.iter().enumerate() {
        let info = analyse(sub);
        match info.exact {
            Some(e) => {
                if run.is_empty() {
                    run_start = i;
                }
                run.extend_from_slice(&e);
            }
            None => {
                all_exact = false;
                flush(
                    &mut required,
                    &mut run,
                    span_len(&subs[..run_start]),
                    span_len(&subs[i..]),
                );
                let (before, after) = (span_len(&subs[..i]), span_len(&subs[i + 1..]));
                required.extend(info.required.into_iter().map(|r| r.widened(before, after)));
            }
        }
    }
    if all_exact {
        return exact(run);
    }
    flush(
        &mut required,
        &mut run,
        span_len(&subs[..run_start]),
        Some(0),
    );
    required.sort_by_key(|r| std::cmp::Reverse(r.quality()));
    required.dedup_by(|a, b| a.literals == b.literals);
    required.truncate(MAX_REQUIRED);
    Info {
        exact: None,
        required,
    }
}

/// Ends a run of exact pieces: it is itself a required literal.
fn flush(
    required: &mut Vec<Required>,
    run: &mut Vec<u8>,
    before: Option<usize>,
    after: Option<usize>,
) {
    if run.is_empty() {
        return;
    }
    let cut = run.len().saturating_sub(MAX_EXACT);
    run.truncate(MAX_EXACT);
    let literal = Required::exact(std::mem::take(run));
    required.push(literal.widened(before, add(after, Some(cut))));
}

fn alternation(subs: &[Hir]) -> Info {
    let mut set: Vec<Vec<u8>> = Vec::new();
    let (mut before, mut after) = (Some(0), Some(0));
    for sub in subs {
        let Some(best) = analyse(sub).required.into_iter().next() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(list: &[&str]) -> Option<Vec<Vec<u8>>> {
        Some(list.iter().map(|s| s.as_bytes().to_vec()).collect())
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<Vec<Vec<u8>>>)] = &[
            ("viagra", lits(&["viagra"])),
            ("(?i)VIAGRA", lits(&["viagra"])),
            (r"\bfree\s+money\b", lits(&["money"])),
            // `(?i)s` also matches the long s: "discount" yields "count".
            ("(?i)(cheap|discount) meds", lits(&["cheap", "count"])),
            ("(cheap|discount) meds", lits(&[" meds"])),
            ("(?i)(cheap|discount)", lits(&["cheap", "count"])),
            ("(cheap|discount)", lits(&["cheap", "discount"])),
            ("(cheap|x)", None),
            ("a.*b", None),
            ("[a-z]+", None),
            ("x?yz", None),
            ("(abc)+def", lits(&["def"])),
            ("(ab){3}", lits(&["ababab"])),
            (r"\.(exe|scr)$", lits(&["exe", "scr"])),
            // `(?i)k` also matches the Kelvin sign: never assume ASCII there.
            ("(?i)kkkabc", lits(&["abc"])),
            ("(", None),
        ];
        for (pattern, want) in cases {
            assert_eq!(&required_literals(pattern), want, "{pattern}");
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
                vec![
                    (vec![" pills"], Some(12), Some(0)),
                    (vec!["cheap", "discount"], Some(4), Some(6)),
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
