//! One field's regexes (all Subject regexes of a stage, say), matched in
//! one pass: an Aho–Corasick automaton finds which regexes' required
//! literals occur, and only those regexes (plus the few without useful
//! literals) run.
//!
//! A regex is compiled the first time a text may match it. Its syntax was
//! checked when the rules loaded; compiling only what traffic needs keeps
//! loading 10,000 rules fast and their memory small (a compiled regex with
//! Unicode classes takes tens of kilobytes).

use std::collections::HashMap;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder};

/// Caps per regex: an operator's typo must not eat the memory of the host.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex and the stage-wide atom it decides.
struct Atom {
    id: usize,
    pattern: String,
    regex: OnceLock<Option<Regex>>,
}

impl Atom {
    /// The compiled regex; `None` (never matching, logged once) only if it
    /// exceeds the size limit, the one error parsing cannot foresee.
    fn regex(&self) -> Option<&Regex> {
        let compile = || match RegexBuilder::new(&self.pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
        {
            Ok(regex) => Some(regex),
            Err(error) => {
                tracing::error!(pattern = %self.pattern, %error, "rule regex too large; it never matches");
                None
            }
        };
        self.regex.get_or_init(compile).as_ref()
    }
}

pub struct FieldMatcher {
    prefilter: Option<AhoCorasick>,
    /// For each prefilter pattern, the atoms (indexes into `atoms`) it may start.
    by_pattern: Vec<Vec<usize>>,
    /// Atoms without useful literals: checked on every text.
    always: Vec<usize>,
    atoms: Vec<Atom>,
}

#[derive(Default)]
pub struct MatcherBuilder {
    literals: HashMap<Vec<u8>, usize>,
    by_pattern: Vec<Vec<usize>>,
    always: Vec<usize>,
    atoms: Vec<Atom>,
}

impl MatcherBuilder {
    /// Adds atom `id` with a pattern whose syntax is already checked.
    pub fn add(&mut self, id: usize, pattern: &str, literals: Option<Vec<Vec<u8>>>) {
        let index = self.atoms.len();
        self.atoms.push(Atom {
            id,
            pattern: pattern.to_string(),
            regex: OnceLock::new(),
        });
        let Some(literals) = literals else {
            self.always.push(index);
            return;
        };
        for literal in literals {
            let next = self.literals.len();
            let pattern = *self.literals.entry(literal).or_insert(next);
            if pattern == self.by_pattern.len() {
                self.by_pattern.push(Vec::new());
            }
            self.by_pattern[pattern].push(index);
        }
    }

    pub fn build(self) -> FieldMatcher {
        let mut patterns: Vec<(Vec<u8>, usize)> = self.literals.into_iter().collect();
        patterns.sort_by_key(|(_, id)| *id);
        let prefilter = (!patterns.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::Standard)
                .build(patterns.iter().map(|(p, _)| p))
                .expect("literal patterns within aho-corasick limits")
        });
        FieldMatcher {
            prefilter,
            by_pattern: self.by_pattern,
            always: self.always,
            atoms: self.atoms,
        }
    }
}

impl FieldMatcher {
    /// Marks in `hits` (indexed by atom id) every atom whose regex matches `text`.
    pub fn scan(&self, text: &str, hits: &mut [bool]) {
        let mut candidates = vec![false; self.atoms.len()];
        for &index in &self.always {
            candidates[index] = true;
        }
        if let Some(prefilter) = &self.prefilter {
            for found in prefilter.find_overlapping_iter(text) {
                for &index in &self.by_pattern[found.pattern().as_usize()] {
                    candidates[index] = true;
                }
            }
        }
        for (atom, _) in self.atoms.iter().zip(candidates).filter(|(_, c)| *c) {
            if !hits[atom.id] && atom.regex().is_some_and(|r| r.is_match(text)) {
                hits[atom.id] = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::literal::required_literals;

    #[test]
    fn prefilter_never_hides_a_match() {
        let patterns = [
            "(?i)viagra",
            r"\bfree\s+money\b",
            "[0-9]{5}",
            "(?i)kelvin",
            r"\.(exe|scr)$",
        ];
        let mut builder = MatcherBuilder::default();
        for (id, p) in patterns.iter().enumerate() {
            builder.add(id, p, required_literals(p));
        }
        let matcher = builder.build();
        let texts = [
            "Buy VIAGRA now",
            "get free   money",
            "zip 12345",
            "\u{212A}ELVIN",
            "invoice.exe",
            "nothing here",
            "FREE MONEY",
        ];
        for text in texts {
            let mut hits = vec![false; patterns.len()];
            matcher.scan(text, &mut hits);
            for (id, p) in patterns.iter().enumerate() {
                let want = Regex::new(p).unwrap().is_match(text);
                assert_eq!(hits[id], want, "{p} on {text:?}");
            }
        }
    }
}
