//! DNSBL and DNSWL on the client address, at connect: every zone is asked
//! at once under one time budget, listed zones add their weight, and a
//! total at or above the threshold refuses the client. A zone that is slow
//! or broken costs at most the budget and counts as not listed.

use std::net::IpAddr;

use async_trait::async_trait;
use futures_util::future::join_all;

use super::dnslist::{reversed, ListAnswer, ListLookup};
use super::{Check, CheckContext, CheckError};
use crate::config::reputation::{DnsZone, DnsblConfig, RejectAt};
use crate::judgement::reply::canned;
use crate::judgement::{DnsblResult, Listing, Outcome, Stage, ZoneError};

pub struct Dnsbl {
    config: DnsblConfig,
    lookup: ListLookup,
}

impl DnsblResult {
    /// The positive-weight zone that weighs most: the one named to the client.
    fn worst_zone(&self) -> Option<&str> {
        self.listed
            .iter()
            .filter(|l| l.weight > 0.0)
            .max_by(|a, b| a.weight.total_cmp(&b.weight))
            .map(|l| l.zone.as_str())
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .listed
            .iter()
            .map(|l| format!("{}={} ({:+})", l.zone, l.answers, l.weight))
            .collect();
        parts.join(", ")
    }
}

impl Dnsbl {
    pub fn new(config: &DnsblConfig, lookup: ListLookup) -> Self {
        Dnsbl {
            config: config.clone(),
            lookup,
        }
    }

    /// Asks every zone about `ip` within the time budget.
    pub async fn ask(&self, ip: IpAddr) -> DnsblResult {
        let item = reversed(ip);
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let asks = self.config.zones.iter().map(|zone| {
            let item = &item;
            async move {
                let answer = tokio::time::timeout_at(deadline, self.lookup.query(zone, item)).await;
                let answer = answer.unwrap_or_else(|_| {
                    self.lookup.timed_out(zone);
                    ListAnswer::Error("timeout")
                });
                (zone, answer)
            }
        });
        let mut result = DnsblResult::default();
        for (zone, answer) in join_all(asks).await {
            add(&mut result, zone, answer);
        }
        result
    }

    fn judge(&self, ctx: &mut CheckContext<'_>, result: DnsblResult) -> Vec<Outcome> {
        if result.score < 0.0 {
            ctx.facts.allowlisted = true;
        }
        ctx.facts.dnsbl_zones = result.listed.iter().map(|l| l.zone.clone()).collect();
        ctx.facts.dnsbl = Some(result.clone());
        let zone = result.worst_zone().map(str::to_string);
        match (result.score >= self.config.threshold, zone) {
            (true, Some(zone)) if self.config.reject_at == RejectAt::Connect => {
                vec![refusal(ctx.client.addr.ip(), &zone, &result)]
            }
            (true, Some(zone)) => {
                ctx.facts.dnsbl_listed = Some(zone);
                Vec::new()
            }
            _ if result.score != 0.0 => vec![Outcome::AddScore {
                score: result.score,
                reason: format!("DNS lists: {}", result.summary()),
            }],
            _ => Vec::new(),
        }
    }
}

fn add(result: &mut DnsblResult, zone: &DnsZone, answer: ListAnswer) {
    match answer {
        ListAnswer::Listed(ips) => {
            let answers: Vec<String> = ips.iter().map(ToString::to_string).collect();
            result.score += zone.weight;
            result.listed.push(Listing {
                zone: zone.zone.clone(),
                weight: zone.weight,
                answers: answers.join("+"),
            });
        }
        ListAnswer::Error(kind) => result.errors.push(ZoneError {
            zone: zone.zone.clone(),
            kind,
        }),
        ListAnswer::NotListed => {}
    }
}

fn refusal(ip: IpAddr, zone: &str, result: &DnsblResult) -> Outcome {
    Outcome::Reject {
        reply: canned::dnsbl_listed(&ip.to_string(), zone),
        reason: format!("DNS lists score {:+}: {}", result.score, result.summary()),
    }
}

#[async_trait]
impl Check for Dnsbl {
    fn name(&self) -> &'static str {
        "dnsbl"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Connect, Stage::Rcpt]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        if ctx.facts.allowlisted && ctx.stage == Stage::Connect {
            return Ok(Vec::new());
        }
        match ctx.stage {
            Stage::Connect => {
                let result = self.ask(ctx.client.addr.ip()).await;
                if !result.errors.is_empty() {
                    tracing::debug!(errors = ?result.errors, "DNS list errors");
                }
                Ok(self.judge(ctx, result))
            }
            // Reject at RCPT: the envelope so far is logged with the refusal.
            // A client that logged in is not refused for its address.
            _ => Ok(match &ctx.facts.dnsbl_listed {
                Some(_) if ctx.facts.authenticated.is_some() => Vec::new(),
                Some(zone) => vec![Outcome::Reject {
                    reply: canned::dnsbl_listed(&ctx.client.addr.ip().to_string(), zone),
                    reason: format!("client listed on {zone}"),
                }],
                None => Vec::new(),
            }),
        }
    }
}
