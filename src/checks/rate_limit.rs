//! Keyed rate limits: connections per client or network at connect,
//! messages per client, sender or domain at MAIL, recipients and messages
//! per recipient at RCPT. Each event counts against every limit of its
//! stage; the first limit over its budget refuses with its 4xx.
//!
//! Allow-listed clients (trusted relays) are not limited.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::config::reputation::{Counted, LimitKey, RateLimit, RateLimitsConfig};
use crate::config::state::OnFailure;
use crate::judgement::reply::canned;
use crate::judgement::{Facts, LimitFact, Outcome, Stage};
use crate::metrics::Metrics;
use crate::state::{network, SharedState};

pub struct RateLimits {
    config: RateLimitsConfig,
    state: Arc<SharedState>,
    metrics: Metrics,
}

/// The stage at which a limit counts its events.
pub fn stage_of(limit: &RateLimit) -> Stage {
    match (limit.count, limit.key) {
        (Counted::Connections, _) => Stage::Connect,
        (Counted::Recipients, _) | (Counted::Messages, LimitKey::Recipient) => Stage::Rcpt,
        (Counted::Messages, _) => Stage::Mail,
    }
}

/// The domain of an address, lowercased; `None` for the null sender.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}

impl RateLimits {
    pub fn new(config: &RateLimitsConfig, state: Arc<SharedState>, metrics: &Metrics) -> Self {
        RateLimits {
            config: config.clone(),
            state,
            metrics: metrics.clone(),
        }
    }

    /// What `limit` groups this event by; `None` when it does not apply
    /// (the null sender has no sender to limit).
    fn key(&self, limit: &RateLimit, ctx: &CheckContext<'_>) -> Option<String> {
        let ip = ctx.client.addr.ip();
        let sender = ctx.envelope.map(|e| e.mail_from.as_str()).unwrap_or("");
        if let (Some(user), LimitKey::Ip | LimitKey::Network) =
            (&ctx.facts.authenticated, limit.key)
        {
            // A logged-in user may move between addresses: limit the user.
            return Some(format!("user:{user}"));
        }
        match limit.key {
            LimitKey::Ip => Some(network(ip, 32, 128).addr().to_string()),
            LimitKey::Network => {
                Some(network(ip, self.config.ipv4_prefix, self.config.ipv6_prefix).to_string())
            }
            LimitKey::Sender => (!sender.is_empty()).then(|| sender.to_ascii_lowercase()),
            LimitKey::SenderDomain => domain_of(sender),
            LimitKey::Recipient => ctx.rcpt.map(str::to_ascii_lowercase),
        }
    }

    async fn count(
        &self,
        index: usize,
        limit: &RateLimit,
        key: &str,
        facts: &mut Facts,
    ) -> Option<Outcome> {
        let result = self.state.allow(index, limit, key).await;
        facts.rate_limits.push(LimitFact {
            name: limit.name.clone(),
            key: key.to_string(),
            result: match result {
                Ok(true) => "allowed",
                Ok(false) => "limited",
                Err(_) => "error",
            },
        });
        match result {
            Ok(true) => None,
            Ok(false) => {
                self.metrics.ratelimit_hit(&limit.name);
                Some(Outcome::Tempfail {
                    reply: canned::rate_limited(limit.reply_code),
                    reason: format!("rate limit {} exceeded by {key}", limit.name),
                })
            }
            Err(error) => match self.state.on_failure() {
                OnFailure::FailOpen => None,
                OnFailure::Tempfail => Some(Outcome::Tempfail {
                    reply: canned::state_unavailable(),
                    reason: format!("rate limit {} not checked: {error}", limit.name),
                }),
            },
        }
    }
}

#[async_trait]
impl Check for RateLimits {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Connect, Stage::Mail, Stage::Rcpt]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        if ctx.facts.allowlisted {
            return Ok(Vec::new());
        }
        for (index, limit) in self.config.limits.iter().enumerate() {
            if stage_of(limit) != ctx.stage {
                continue;
            }
            let Some(key) = self.key(limit, ctx) else {
                continue;
            };
            if let Some(outcome) = self.count(index, limit, &key, ctx.facts).await {
                return Ok(vec![outcome]);
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        let cases = [
            ("a@Example.ORG", Some("example.org")),
            ("", None),
            ("a@", None),
            ("\"x@y\"@b.example", Some("b.example")),
        ];
        for (address, want) in cases {
            assert_eq!(domain_of(address).as_deref(), want, "{address}");
        }
    }
}
