//! The rule engine: YAML rules that operators write, test and tune (see
//! `docs/rules.md`).
//!
//! - [`raw`]: rule files as written; [`load`] reads them, [`compile`]
//!   turns them into [`Rule`]s, reporting every error with file, line,
//!   column and rule name.
//! - [`condition`]: condition trees; regex conditions are atoms decided
//!   for a whole stage in one scan ([`matcher`], prefiltered by the
//!   [`literal`]s every match must contain).
//! - [`input`]: what rules look at, taken from the SMTP transaction;
//!   [`content`]: the numeric facts about a message that `fact`
//!   conditions read, computed lazily once per message.
//! - [`reload`]: the live rule set, swapped atomically on SIGHUP or when a
//!   file changes. Offline runs over stored mail are `spamgate replay`
//!   ([`crate::offline::replay`]).

pub mod compile;
pub mod condition;
pub mod content;
mod error;
pub mod files;
pub mod input;
pub mod literal;
mod load;
pub mod matcher;
pub mod raw;
pub mod reload;
pub mod scan;

use std::fmt;
use std::path::PathBuf;

use compile::{parse_regex, stage_index, AtomTable};
use condition::{Condition, Env, Field};
use matcher::{FieldMatcher, MatcherBuilder};

use crate::config::rules::{RuleMode, RulesConfig};
use crate::judgement::reply::Reply;
use crate::judgement::{Facts, Stage};

pub use error::{RuleError, RuleErrors};
pub use input::Input;
pub use reload::RulesHandle;

/// What a rule does besides adding its score.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    Reject(Reply),
    Tempfail(Reply),
    /// Skip the remaining rules of the transaction.
    Accept,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub score: f64,
    pub effect: Effect,
    pub header: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub stage: Stage,
    pub mode: RuleMode,
    pub condition: Condition,
    pub action: Action,
    pub file: PathBuf,
    pub line: u64,
}

/// One stage's rules, in load order, and the matchers deciding their regexes.
#[derive(Default)]
struct StagePlan {
    rules: Vec<usize>,
    /// Per rule of `rules`: an atom that must match for the rule to fire (see
    /// [`Condition::trigger`]).
    triggers: Vec<Option<usize>>,
    matchers: Vec<(Field, FieldMatcher)>,
    atoms: usize,
}

/// A loaded, validated rule set. Immutable: a reload builds a new one.
pub struct RuleSet {
    rules: Vec<Rule>,
    stages: [StagePlan; 5],
    /// The global `rules.mode: monitor`.
    monitor: bool,
    files: Vec<PathBuf>,
    /// The files as they were just before they were read: the watcher's
    /// starting point, so an edit made during startup is not missed.
    fingerprint: files::Fingerprint,
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RuleSet({} rules from {} files)",
            self.rules.len(),
            self.files.len()
        )
    }
}

/// A rule that matched, and whether its action was carried out.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'r> {
    pub rule: &'r Rule,
    pub enforced: bool,
}

impl RuleSet {
    /// Loads every configured file; all problems are returned at once.
    pub fn load(config: &RulesConfig) -> Result<RuleSet, RuleErrors> {
        let fingerprint = files::fingerprint(&config.files);
        let mut errors = Vec::new();
        let files = files::resolve(&config.files, &mut errors);
        let mut tables: [AtomTable; 5] = Default::default();
        let rules = load::read_rules(&files, &mut tables, &mut errors);
        let stages = build_plans(&rules, tables, &mut errors);
        if !errors.is_empty() {
            return Err(RuleErrors(errors));
        }
        Ok(RuleSet {
            rules,
            stages,
            monitor: config.mode == RuleMode::Monitor,
            files,
            fingerprint,
        })
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    pub fn fingerprint(&self) -> &files::Fingerprint {
        &self.fingerprint
    }

    /// True if any rule runs at `stage`.
    pub fn has_stage(&self, stage: Stage) -> bool {
        !self.stages[stage_index(stage)].rules.is_empty()
    }

    /// Evaluates the rules of `stage` in load order. `score` is the score
    /// before this stage; each enforced hit adds its own for the rules
    /// after it. Stops at the first enforced reject, tempfail or accept.
    pub fn evaluate(
        &self,
        stage: Stage,
        input: &Input<'_>,
        facts: &Facts,
        score: f64,
    ) -> Vec<Hit<'_>> {
        let plan = &self.stages[stage_index(stage)];
        if plan.rules.is_empty() {
            return Vec::new();
        }
        let mut atoms = vec![false; plan.atoms];
        for (field, matcher) in &plan.matchers {
            for text in input.texts(field) {
                matcher.scan(&text, &mut atoms);
            }
        }
        let mut env = Env {
            atoms: &atoms,
            client_ip: input.client_ip,
            size: input.size(),
            recipients: input.recipient_count,
            score,
            facts,
            content: Some(input),
        };
        let mut hits = Vec::new();
        for (&i, trigger) in plan.rules.iter().zip(&plan.triggers) {
            let rule = &self.rules[i];
            if trigger.is_some_and(|atom| !atoms[atom]) || !rule.condition.eval(&env) {
                continue;
            }
            let enforced = rule.mode == RuleMode::Enforce && !self.monitor;
            hits.push(Hit { rule, enforced });
            if enforced {
                env.score += rule.action.score;
                if rule.action.effect != Effect::None {
                    break;
                }
            }
        }
        hits
    }
}

/// Checks every pending regex and groups the atoms of each stage by field
/// into matchers, each regex indexed by the literals its matches contain.
fn build_plans(
    rules: &[Rule],
    tables: [AtomTable; 5],
    errors: &mut Vec<RuleError>,
) -> [StagePlan; 5] {
    let mut plans: [StagePlan; 5] = Default::default();
    for (i, rule) in rules.iter().enumerate() {
        let plan = &mut plans[stage_index(rule.stage)];
        plan.rules.push(i);
        plan.triggers.push(rule.condition.trigger());
    }
    for (plan, table) in plans.iter_mut().zip(tables) {
        plan.atoms = table.pending.len();
        let mut builders: std::collections::BTreeMap<Field, MatcherBuilder> = Default::default();
        for (id, atom) in table.pending.iter().enumerate() {
            match parse_regex(atom) {
                Ok(hir) => {
                    let builder = builders.entry(atom.field.clone()).or_default();
                    builder.add(id, &atom.pattern, &hir);
                }
                Err(e) => errors.push(e),
            }
        }
        plan.matchers = builders.into_iter().map(|(f, b)| (f, b.build())).collect();
    }
    plans
}

#[cfg(test)]
mod tests;
