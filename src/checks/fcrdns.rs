//! Forward-confirmed reverse DNS at connect: the client's PTR names, each
//! resolved forward, must lead back to its address. A confirmed name is
//! recorded (and given to the upstream as XCLIENT NAME); no PTR at all, or
//! names that do not lead back, add their scores. A DNS failure adds
//! nothing: it says nothing about the client.

use std::net::IpAddr;

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::config::reputation::FcrdnsConfig;
use crate::dns::Dns;
use crate::judgement::{Outcome, Stage};

/// PTR names tried: a client with hundreds is not worth hundreds of lookups.
const MAX_NAMES: usize = 5;

pub struct Fcrdns {
    config: FcrdnsConfig,
    dns: Dns,
}

/// What reverse DNS says about a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReverseDns {
    Confirmed(String),
    NoPtr,
    /// PTR names exist but none resolves back to the address.
    Mismatch(Vec<String>),
    Unknown,
}

impl Fcrdns {
    pub fn new(config: &FcrdnsConfig, dns: Dns) -> Self {
        Fcrdns {
            config: config.clone(),
            dns,
        }
    }

    pub async fn verify(&self, ip: IpAddr) -> ReverseDns {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let names = match self.dns.ptr(ip).await {
            Ok(names) if names.is_empty() => return ReverseDns::NoPtr,
            Ok(names) => names,
            Err(e) if e.is_not_found() => return ReverseDns::NoPtr,
            Err(_) => return ReverseDns::Unknown,
        };
        for name in names.iter().take(MAX_NAMES) {
            if self.resolves_to(name, ip).await {
                return ReverseDns::Confirmed(name.clone());
            }
        }
        ReverseDns::Mismatch(names)
    }

    async fn resolves_to(&self, name: &str, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.dns.ipv4(name).await.is_ok_and(|ips| ips.contains(&v4)),
            IpAddr::V6(v6) => self.dns.ipv6(name).await.is_ok_and(|ips| ips.contains(&v6)),
        }
    }
}

#[async_trait]
impl Check for Fcrdns {
    fn name(&self) -> &'static str {
        "fcrdns"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Connect]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let ip = ctx.client.addr.ip();
        let verdict = tokio::time::timeout(self.config.timeout, self.verify(ip)).await;
        Ok(match verdict.unwrap_or(ReverseDns::Unknown) {
            ReverseDns::Confirmed(name) => {
                ctx.facts.client_name = Some(name);
                Vec::new()
            }
            ReverseDns::NoPtr => vec![Outcome::AddScore {
                score: self.config.no_ptr_score,
                reason: format!("no reverse DNS for {ip}"),
            }],
            ReverseDns::Mismatch(names) => vec![Outcome::AddScore {
                score: self.config.mismatch_score,
                reason: format!(
                    "reverse DNS of {ip} ({}) does not resolve back",
                    names.join(" ")
                ),
            }],
            ReverseDns::Unknown => Vec::new(),
        })
    }
}
