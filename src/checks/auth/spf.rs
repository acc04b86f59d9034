//! SPF (RFC 7208) at MAIL FROM, with the HELO identity for the null
//! sender, and optionally on the HELO name itself.
//!
//! The evaluator is ours ([`eval`]), not `mail-auth`'s: 0.15.1 passes only
//! 147 of the 203 RFC 7208 suite tests (it accepts invalid CIDRs and
//! duplicate records, never matches `ptr` against FQDNs with a trailing
//! dot, and turns unqueryable names into temperror), and ours runs on the
//! shared resolver, so SPF lookups show in the DNS metrics.

mod eval;
mod macros;
mod record;
mod syntax;

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;

use super::count;
use crate::checks::{Check, CheckContext, CheckError};
use crate::config::auth::{AuthConfig, Mode, TempErrorAction};
use crate::dns::Dns;
use crate::judgement::reply::canned;
use crate::judgement::{AuthResult, Outcome, SpfFact, SpfIdentity, Stage};

pub struct SpfCheck {
    config: Arc<AuthConfig>,
    /// Our name: the `r` macro of SPF.
    hostname: String,
    dns: Dns,
}

impl SpfCheck {
    pub fn new(config: Arc<AuthConfig>, hostname: &str, dns: Dns) -> Self {
        SpfCheck {
            config,
            hostname: hostname.to_string(),
            dns,
        }
    }

    /// Evaluates one identity: the HELO name when `sender` is `None`.
    pub async fn evaluate(&self, ip: IpAddr, helo: &str, sender: Option<&str>) -> SpfFact {
        let (identity, domain, subject) = match sender {
            Some(sender) => (
                SpfIdentity::MailFrom,
                sender.rsplit_once('@').map_or(helo, |(_, d)| d),
                sender.to_string(),
            ),
            None => (SpfIdentity::Helo, helo, format!("postmaster@{helo}")),
        };
        let mut evaluation = eval::Evaluation::new(&self.dns, ip, helo, &subject, &self.hostname);
        let result = evaluation.check_host(domain).await;
        let subject = match identity {
            SpfIdentity::MailFrom => subject,
            SpfIdentity::Helo => helo.to_string(),
        };
        SpfFact {
            result,
            identity,
            domain: domain.to_ascii_lowercase(),
            subject,
        }
    }

    /// What the result leads to under the configuration.
    fn outcomes(&self, fact: &SpfFact) -> Vec<Outcome> {
        let spf = &self.config.spf;
        let enforce = spf.mode == Mode::Enforce && spf.reject_fail;
        let reason = format!("spf={} domain={}", fact.result.as_str(), fact.domain);
        match fact.result {
            AuthResult::Fail if enforce => vec![Outcome::Reject {
                reply: canned::spf_rejected(&fact.domain),
                reason,
            }],
            AuthResult::Fail => score(spf.fail_score, reason),
            AuthResult::SoftFail => score(spf.softfail_score, reason),
            AuthResult::TempError
                if enforce && self.config.temperror == TempErrorAction::Tempfail =>
            {
                vec![Outcome::Tempfail {
                    reply: canned::auth_dns_tempfail("SPF", &fact.domain),
                    reason,
                }]
            }
            _ => Vec::new(),
        }
    }
}

fn score(score: f64, reason: String) -> Vec<Outcome> {
    match score == 0.0 {
        true => Vec::new(),
        false => vec![Outcome::AddScore { score, reason }],
    }
}

#[async_trait]
impl Check for SpfCheck {
    fn name(&self) -> &'static str {
        "spf"
    }

    fn stages(&self) -> &'static [Stage] {
        match self.config.spf.helo {
            true => &[Stage::Helo, Stage::Mail],
            false => &[Stage::Mail],
        }
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let ip = ctx.client.addr.ip();
        let helo = ctx.client.helo.clone().unwrap_or_default();
        if ctx.stage == Stage::Helo {
            let fact = self.evaluate(ip, &helo, None).await;
            count(self.dns.metrics(), "spf_helo", fact.result);
            ctx.facts.auth.helo_spf = Some(fact);
            return Ok(Vec::new());
        }
        let sender = ctx.envelope.map(|e| e.mail_from.as_str()).unwrap_or("");
        let fact = match (sender.is_empty(), &ctx.facts.auth.helo_spf) {
            (true, Some(helo_fact)) => helo_fact.clone(),
            (true, None) => self.evaluate(ip, &helo, None).await,
            (false, _) => self.evaluate(ip, &helo, Some(sender)).await,
        };
        count(self.dns.metrics(), "spf", fact.result);
        let outcomes = self.outcomes(&fact);
        ctx.facts.auth.spf = Some(fact);
        Ok(outcomes)
    }
}
