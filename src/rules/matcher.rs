//! One field's regexes (all Subject regexes of a stage, say), matched in
//! one pass: an Aho–Corasick automaton finds which regexes' required
//! literals occur, and only those regexes (plus the few without useful
//! literals) run.

use std::collections::HashMap;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::Regex;

/// A regex and the stage-wide atom it decides.
struct Atom {
    id: usize,
    regex: Regex,
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
    pub fn add(&mut self, id: usize, regex: Regex, literals: Option<Vec<Vec<u8>>>) {
        let index = self.atoms.len();
        self.atoms.push(Atom { id, regex });
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
            if !hits[atom.id] && atom.regex.is_match(text) {
                hits[atom.id] = true;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.atoms.len()
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
            builder.add(id, Regex::new(p).unwrap(), required_literals(p));
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
