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

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::path::PathBuf;

use compile::{parse_regex, stage_index, AtomTable};
use condition::{Condition, Env, Field, LazyAtoms};
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
    /// Per atom: for one without literals, its matcher and its index
    /// there ([`FieldMatcher::literal_less`]); decided only when a rule
    /// still in play reads it.
    deferred: Vec<Option<(usize, usize)>>,
    atoms: usize,
}

/// The atoms of one evaluation left to decide on demand, and the texts of
/// each field, taken from the input once.
struct Deferred<'p, 'i> {
    plan: &'p StagePlan,
    input: &'p Input<'i>,
    texts: Vec<OnceCell<Vec<Cow<'p, str>>>>,
    decided: RefCell<Vec<(usize, bool)>>,
}

impl<'p, 'i> Deferred<'p, 'i> {
    fn new(plan: &'p StagePlan, input: &'p Input<'i>) -> Self {
        Deferred {
            plan,
            input,
            texts: plan.matchers.iter().map(|_| OnceCell::new()).collect(),
            decided: RefCell::default(),
        }
    }

    fn texts(&self, matcher: usize) -> &[Cow<'p, str>] {
        let field = &self.plan.matchers[matcher].0;
        self.texts[matcher].get_or_init(|| self.input.texts(field))
    }

    /// Marks every atom with literals that matches one of its field's texts.
    fn scan(&self, atoms: &mut [bool]) {
        for (m, (_, matcher)) in self.plan.matchers.iter().enumerate() {
            if matcher.has_literals() {
                self.texts(m)
                    .iter()
                    .for_each(|t| matcher.scan_literals(t, atoms));
            }
        }
    }
}

impl LazyAtoms for Deferred<'_, '_> {
    fn atom(&self, id: usize) -> Option<bool> {
        let (m, local) = self.plan.deferred[id]?;
        if let Some(&(_, known)) = self.decided.borrow().iter().find(|(i, _)| *i == id) {
            return Some(known);
        }
        let matcher = &self.plan.matchers[m].1;
        let found = self.texts(m).iter().any(|t| matcher.decides(local, t));
        self.decided.borrow_mut().push((id, found));
        Some(found)
    }
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
        self.evaluate_with(&Deferred::new(plan, input), facts, score)
    }

    /// [`Self::evaluate`] with the atoms to decide on demand given (the
    /// tests read what was decided).
    fn evaluate_with<'s>(
        &'s self,
        deferred: &Deferred<'_, '_>,
        facts: &Facts,
        score: f64,
    ) -> Vec<Hit<'s>> {
        let (plan, input) = (deferred.plan, deferred.input);
        let mut atoms = vec![false; plan.atoms];
        deferred.scan(&mut atoms);
        let mut env = Env {
            atoms: &atoms,
            lazy: Some(deferred),
            client_ip: input.client_ip,
            size: input.size(),
            recipients: input.recipient_count,
            score,
            facts,
            content: Some(input),
        };
        let mut hits = Vec::new();
        // A deferred trigger is left to the condition, decided in order.
        let scanned = |atom: usize| plan.deferred[atom].is_none();
        for (&i, trigger) in plan.rules.iter().zip(&plan.triggers) {
            let rule = &self.rules[i];
            if trigger.is_some_and(|atom| scanned(atom) && !atoms[atom])
                || !rule.condition.eval(&env)
            {
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
        plans[stage_index(rule.stage)].rules.push(i);
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
        plan.deferred = deferred_atoms(&plan.matchers, plan.atoms);
        let scanned = |id: usize| plan.deferred[id].is_none();
        let trigger = |&i: &usize| rules[i].condition.trigger_where(scanned);
        plan.triggers = plan.rules.iter().map(trigger).collect();
    }
    plans
}

/// Where each atom without literals is decided: (matcher, its index there).
fn deferred_atoms(matchers: &[(Field, FieldMatcher)], atoms: usize) -> Vec<Option<(usize, usize)>> {
    let mut deferred = vec![None; atoms];
    for (m, (_, matcher)) in matchers.iter().enumerate() {
        for (local, id) in matcher.literal_less() {
            deferred[id] = Some((m, local));
        }
    }
    deferred
}

#[cfg(test)]
mod tests;
