//! The rule engine as a check: runs the operator's rules of each stage and
//! turns their hits into outcomes. Rules run last in the pipeline, so they
//! see what every other check found (authentication, DNS lists, scores).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::judgement::{Outcome, RuleHit, Stage};
use crate::rules::{Effect, Hit, Input, RuleSet, RulesHandle};

/// The check's name in logs and metrics; rule hits are named by their rule.
pub const CHECK_NAME: &str = crate::judgement::RULES_CHECK;

pub struct RulesCheck {
    handle: RulesHandle,
}

impl RulesCheck {
    pub fn new(handle: RulesHandle) -> Self {
        RulesCheck { handle }
    }

    /// The set for this stage: a new transaction (MAIL) takes the current
    /// set and keeps it to the end, whatever reloads happen meanwhile.
    fn rule_set(&self, ctx: &mut CheckContext<'_>) -> Arc<RuleSet> {
        let pinned = (ctx.facts.rules.set.clone()).and_then(|set| set.downcast::<RuleSet>().ok());
        match (pinned, ctx.stage) {
            (Some(set), stage) if stage != Stage::Mail => set,
            _ => {
                let set = self.handle.current();
                ctx.facts.rules.set = Some(set.clone());
                set
            }
        }
    }

    /// Counts and records every hit; the enforced ones become outcomes.
    fn act(&self, ctx: &mut CheckContext<'_>, hits: &[Hit<'_>]) -> Vec<Outcome> {
        let metrics = self.handle.metrics();
        let mut outcomes = Vec::new();
        for hit in hits {
            let rule = hit.rule;
            let mode = if hit.enforced { "enforce" } else { "monitor" };
            metrics.rule_hit(&rule.name, mode);
            tracing::debug!(rule = %rule.name, stage = ctx.stage.as_str(), mode, "rule matched");
            ctx.facts.rules.hits.push(RuleHit {
                name: rule.name.clone(),
                stage: ctx.stage,
                score: rule.action.score,
                monitor: !hit.enforced,
            });
            if hit.enforced {
                outcomes.extend(enforce(rule, ctx));
            }
        }
        outcomes
    }
}

fn enforce(rule: &crate::rules::Rule, ctx: &mut CheckContext<'_>) -> Vec<Outcome> {
    let action = &rule.action;
    let reason = rule.name.clone();
    // Even a score of 0 is reported, so the log names every acting rule.
    let mut out = vec![Outcome::AddScore {
        score: action.score,
        reason: reason.clone(),
    }];
    if let Some((name, value)) = &action.header {
        out.push(Outcome::AddHeader {
            name: name.clone(),
            value: value.clone(),
        });
    }
    match &action.effect {
        Effect::Reject(reply) => out.push(Outcome::Reject {
            reply: reply.clone(),
            reason,
        }),
        Effect::Tempfail(reply) => out.push(Outcome::Tempfail {
            reply: reply.clone(),
            reason,
        }),
        Effect::Accept => ctx.facts.rules.accepted = Some(reason),
        Effect::None => {}
    }
    out
}

/// What the rules of `ctx.stage` may look at.
fn input<'a>(ctx: &CheckContext<'a>) -> Input<'a> {
    let client = ctx.client;
    let mut input = Input::new(client.addr.ip());
    input.helo = client.helo.as_deref();
    if let Some(envelope) = ctx.envelope {
        input.sender = Some(envelope.mail_from.as_str());
        input.recipients = envelope.rcpts.iter().map(String::as_str).collect();
        input.recipient_count = envelope.rcpts.len();
    }
    if let (Stage::Rcpt, Some(rcpt)) = (ctx.stage, ctx.rcpt) {
        input.recipients = vec![rcpt];
        input.recipient_count += 1;
    }
    match ctx.view {
        Some(view) => input.with_parsed(view.raw(), view.parsed()),
        None => input,
    }
}

fn evaluate<'s>(set: &'s RuleSet, ctx: &CheckContext<'_>) -> Vec<Hit<'s>> {
    if !set.has_stage(ctx.stage) {
        return Vec::new();
    }
    set.evaluate(ctx.stage, &input(ctx), ctx.facts, ctx.facts.score)
}

#[async_trait]
impl Check for RulesCheck {
    fn name(&self) -> &'static str {
        CHECK_NAME
    }

    fn stages(&self) -> &'static [Stage] {
        &[
            Stage::Connect,
            Stage::Helo,
            Stage::Mail,
            Stage::Rcpt,
            Stage::Data,
        ]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let set = self.rule_set(ctx);
        let hits = match ctx.facts.rules.accepted {
            Some(_) => Vec::new(),
            None => evaluate(&set, ctx),
        };
        let outcomes = self.act(ctx, &hits);
        if ctx.stage == Stage::Data {
            let added: f64 = outcomes.iter().map(score_of).sum();
            self.handle.metrics().score.observe(ctx.facts.score + added);
        }
        Ok(outcomes)
    }
}

fn score_of(outcome: &Outcome) -> f64 {
    match outcome {
        Outcome::AddScore { score, .. } => *score,
        _ => 0.0,
    }
}
