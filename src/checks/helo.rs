//! HELO/EHLO name checks, as scores: a name that is not a host name or an
//! address literal, a literal that is not the client's address, our own
//! name (a classic forgery), and a bare single label.

use std::net::{IpAddr, SocketAddr};

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::config::reputation::HeloConfig;
use crate::judgement::{Outcome, Stage};

pub struct HeloChecks {
    config: HeloConfig,
    hostname: String,
    listen: Vec<IpAddr>,
}

/// One thing wrong with a HELO name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloFlaw {
    Invalid,
    LiteralMismatch,
    OurName,
    NotFqdn,
}

impl HeloChecks {
    pub fn new(config: &HeloConfig, hostname: &str, listen: &[SocketAddr]) -> Self {
        HeloChecks {
            config: config.clone(),
            hostname: hostname.to_ascii_lowercase(),
            listen: listen
                .iter()
                .map(|a| a.ip())
                .filter(|ip| !ip.is_unspecified())
                .collect(),
        }
    }

    /// Everything wrong with `helo` from a client at `client`.
    pub fn flaws(&self, helo: &str, client: IpAddr) -> Vec<HeloFlaw> {
        let helo = helo.trim().to_ascii_lowercase();
        let client = unmapped(client);
        if let Some(literal) = literal(&helo) {
            return self.literal_flaws(literal, client);
        }
        if let Ok(ip) = helo.parse::<IpAddr>() {
            // A bare address is not valid HELO syntax, and is judged as a literal too.
            let mut flaws = vec![HeloFlaw::Invalid];
            flaws.extend(self.literal_flaws(Some(ip), client));
            return flaws;
        }
        if !crate::config::reputation::is_hostname(&helo) {
            return vec![HeloFlaw::Invalid];
        }
        if helo == self.hostname {
            return vec![HeloFlaw::OurName];
        }
        match helo.contains('.') {
            true => Vec::new(),
            false => vec![HeloFlaw::NotFqdn],
        }
    }

    fn literal_flaws(&self, literal: Option<IpAddr>, client: IpAddr) -> Vec<HeloFlaw> {
        let Some(ip) = literal.map(unmapped) else {
            return vec![HeloFlaw::Invalid];
        };
        if self.listen.contains(&ip) && ip != client {
            return vec![HeloFlaw::OurName];
        }
        match ip == client {
            true => Vec::new(),
            false => vec![HeloFlaw::LiteralMismatch],
        }
    }

    fn score(&self, flaw: HeloFlaw) -> (f64, &'static str) {
        let c = &self.config;
        match flaw {
            HeloFlaw::Invalid => (
                c.invalid_score,
                "HELO name is not a host name or address literal",
            ),
            HeloFlaw::LiteralMismatch => {
                (c.literal_mismatch_score, "HELO address is not the client's")
            }
            HeloFlaw::OurName => (c.our_name_score, "HELO claims to be us"),
            HeloFlaw::NotFqdn => (c.not_fqdn_score, "HELO name is not fully qualified"),
        }
    }
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`: `Some(None)` when bracketed but unparsable.
fn literal(helo: &str) -> Option<Option<IpAddr>> {
    let inner = helo.strip_prefix('[')?.strip_suffix(']')?;
    let parsed = match inner.strip_prefix("ipv6:") {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6),
        None => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    };
    Some(parsed)
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[async_trait]
impl Check for HeloChecks {
    fn name(&self) -> &'static str {
        "helo"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Helo]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let Some(helo) = ctx.client.helo.as_deref() else {
            return Ok(Vec::new());
        };
        let outcomes = self
            .flaws(helo, ctx.client.addr.ip())
            .into_iter()
            .map(|flaw| self.score(flaw))
            .filter(|(score, _)| *score != 0.0)
            .map(|(score, why)| Outcome::AddScore {
                score,
                reason: format!("{why}: {helo}"),
            })
            .collect();
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HeloFlaw::*;

    #[test]
    fn flaws_table() {
        let checks = HeloChecks::new(
            &HeloConfig::default(),
            "mx.example.org",
            &["192.0.2.25:25".parse().unwrap()],
        );
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let cases: &[(&str, &[HeloFlaw])] = &[
            ("mail.sender.example", &[]),
            ("[198.51.100.7]", &[]),
            ("[IPv6:::ffff:198.51.100.7]", &[]),
            ("[198.51.100.8]", &[LiteralMismatch]),
            ("[192.0.2.25]", &[OurName]),
            ("[300.1.1.1]", &[Invalid]),
            ("198.51.100.7", &[Invalid]),
            ("203.0.113.9", &[Invalid, LiteralMismatch]),
            ("MX.Example.ORG", &[OurName]),
            ("localhost", &[NotFqdn]),
            ("bad_name!.example", &[Invalid]),
            ("", &[Invalid]),
        ];
        for (helo, want) in cases {
            assert_eq!(checks.flaws(helo, client), *want, "{helo:?}");
        }
    }
}
