//! Required literals: for each regex, a set of strings at least one of
//! which occurs in every match. One Aho–Corasick automaton over all of a
//! stage's literals then tells, in one pass over the text, which few
//! regexes can possibly match; only those run. This is what keeps 10,000
//! rules fast.
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

/// The literals of `pattern`, or `None` when no useful set exists (the
/// regex must then run on every text).
pub fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    literals_of(&regex_syntax::parse(pattern).ok()?)
}

/// The same for a parsed regex.
pub fn literals_of(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    let set = analyse(hir).required?;
    let shortest = set.iter().map(Vec::len).min()?;
    (shortest >= MIN_USEFUL).then_some(set)
}

/// What a node tells about its matches.
#[derive(Default)]
struct Info {
    /// The node matches exactly this string (lowercased), nothing else.
    exact: Option<Vec<u8>>,
    /// Every match contains one of these.
    required: Option<Vec<Vec<u8>>>,
}

fn analyse(hir: &Hir) -> Info {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => Info {
            exact: Some(Vec::new()),
            required: None,
        },
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
    let required = (!bytes.is_empty()).then(|| vec![bytes.clone()]);
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
        let exact = (max == Some(0)).then(Vec::new);
        return Info {
            exact,
            required: None,
        };
    }
    let inner = analyse(sub);
    let exact = match (&inner.exact, max) {
        (Some(e), Some(max)) if max == min && e.len() * min as usize <= MAX_EXACT => {
            Some(e.repeat(min as usize))
        }
        _ => None,
    };
    let required = match &exact {
        Some(e) if !e.is_empty() => Some(vec![e.clone()]),
        _ => inner.required,
    };
    Info { exact, required }
}

fn concat(subs: &[Hir]) -> Info {
    let mut candidates: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut run: Vec<u8> = Vec::new();
    let mut all_exact = true;
    for sub in subs {
        let info = analyse(sub);
        match info.exact {
            Some(e) => run.extend_from_slice(&e),
            None => {
                all_exact = false;
                if !run.is_empty() {
                    candidates.push(vec![std::mem::take(&mut run)]);
                }
                candidates.extend(info.required);
            }
        }
    }
    if !run.is_empty() {
        run.truncate(MAX_EXACT);
        candidates.push(vec![run.clone()]);
    }
    Info {
        exact: all_exact.then_some(run),
        required: candidates.into_iter().max_by_key(|set| quality(set)),
    }
}

/// Longer shortest literal first; fewer alternatives break ties.
fn quality(set: &[Vec<u8>]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = set.iter().map(Vec::len).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(set.len()))
}

fn alternation(subs: &[Hir]) -> Info {
    let mut set: Vec<Vec<u8>> = Vec::new();
    for sub in subs {
        match analyse(sub).required {
            Some(required) => set.extend(required),
            None => return Info::default(),
        }
        if set.len() > MAX_ALTERNATIVES {
            return Info::default();
        }
    }
    set.sort();
    set.dedup();
    Info {
        exact: None,
        required: Some(set),
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
}
