//! SPF (RFC 7208) at MAIL FROM, with the HELO identity for the null
//! sender, and optionally on the HELO name itself.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::SpfResult;

use super::{count, AuthResult, SpfFact, SpfIdentity};
use crate::checks::{Check, CheckContext, CheckError, Outcome, Stage};
use crate::config::auth::{AuthConfig, Mode, TempErrorAction};
use crate::dns::Dns;
use crate::smtp::reply::canned;

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
        let host = self.hostname.as_str();
        let (params, identity, domain, subject) = match sender {
            Some(sender) => (
                SpfParameters::mail_from(ip, helo, host, sender),
                SpfIdentity::MailFrom,
                sender.rsplit_once('@').map_or(helo, |(_, d)| d),
                sender,
            ),
            None => (
                SpfParameters::helo(ip, helo, host),
                SpfIdentity::Helo,
                helo,
                helo,
            ),
        };
        let output = self.dns.authenticator().verify_spf(params).await;
        SpfFact {
            result: word(output.result()),
            identity,
            domain: domain.to_ascii_lowercase(),
            subject: subject.to_string(),
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

pub fn word(result: SpfResult) -> AuthResult {
    match result {
        SpfResult::Pass => AuthResult::Pass,
        SpfResult::Fail => AuthResult::Fail,
        SpfResult::SoftFail => AuthResult::SoftFail,
        SpfResult::Neutral => AuthResult::Neutral,
        SpfResult::TempError => AuthResult::TempError,
        SpfResult::PermError => AuthResult::PermError,
        SpfResult::None => AuthResult::None,
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
