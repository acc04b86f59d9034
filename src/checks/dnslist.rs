//! Asking DNS lists (DNSBL, DNSWL, DBL/URIBL): query names, answers with
//! their TTL through the shared cache, and the rules that tell a listing
//! from an error.
//!
//! A list answers with an A record in 127.0.0.0/8 to say "listed". Answers
//! in 127.255.255.0/24 are Spamhaus-style error codes ("you are querying
//! through a public resolver", "over quota") and answers outside 127/8 mean
//! the zone is wildcarded or hijacked: both are errors, never listings,
//! since treating them as listings would reject every client at once.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;

use crate::config::reputation::DnsZone;
use crate::dns::Dns;
use crate::metrics::Metrics;
use crate::state::SharedState;
use std::sync::Arc;

/// What one list said about one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListAnswer {
    /// Listed, with the answers that passed the zone's filter.
    Listed(Vec<Ipv4Addr>),
    NotListed,
    /// No usable answer; `kind` is a metric label (a closed set).
    Error(&'static str),
}

/// A DNS answer before the list rules are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Raw {
    Answers(Vec<Ipv4Addr>),
    NotFound,
}

/// Looks items up in DNS lists, caching answers and misses with their TTL.
#[derive(Clone)]
pub struct ListLookup {
    dns: Dns,
    state: Arc<SharedState>,
    metrics: Metrics,
    miss_ttl: Duration,
    max_ttl: Duration,
}

impl ListLookup {
    pub fn new(
        dns: Dns,
        state: Arc<SharedState>,
        metrics: &Metrics,
        miss_ttl: Duration,
        max_ttl: Duration,
    ) -> Self {
        ListLookup {
            dns,
            state,
            metrics: metrics.clone(),
            miss_ttl,
            max_ttl,
        }
    }

    /// Asks `zone` about `item` (a reversed IP or a domain), counting hits and errors.
    pub async fn query(&self, zone: &DnsZone, item: &str) -> ListAnswer {
        let name = format!("{item}.{}", zone.suffix());
        let answer = match self.raw(&name).await {
            Ok(raw) => judge(zone, raw),
            Err(kind) => ListAnswer::Error(kind),
        };
        match &answer {
            ListAnswer::Listed(_) => self.metrics.dnsbl_hit(&zone.zone),
            ListAnswer::Error(kind) => self.metrics.dnsbl_error(&zone.zone, kind),
            ListAnswer::NotListed => {}
        }
        answer
    }

    /// Counts a lookup cut off by the caller's time budget.
    pub fn timed_out(&self, zone: &DnsZone) {
        self.metrics.dnsbl_error(&zone.zone, "timeout");
    }

    async fn raw(&self, name: &str) -> Result<Raw, &'static str> {
        if let Some(cached) = self.state.cached(name).await {
            return Ok(decode(&cached));
        }
        let (raw, ttl) = self.lookup(name).await?;
        self.state.cache(name, &encode(&raw), ttl).await;
        Ok(raw)
    }

    /// One A lookup with its TTL; errors that may pass are not cached.
    async fn lookup(&self, name: &str) -> Result<(Raw, Duration), &'static str> {
        let resolver = self.dns.authenticator().resolver();
        let started = Instant::now();
        let result = resolver.ipv4_lookup(format!("{name}.")).await;
        self.metrics.dns_lookup("a", started.elapsed());
        match result {
            Ok(lookup) => {
                let ips = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(Instant::now());
                Ok((Raw::Answers(ips), ttl.min(self.max_ttl)))
            }
            Err(error) => self.failed(error),
        }
    }

    fn failed(&self, error: NetError) -> Result<(Raw, Duration), &'static str> {
        match error {
            NetError::Dns(HickoryDnsError::NoRecordsFound(no)) => match no.response_code {
                ResponseCode::NXDomain | ResponseCode::NoError => {
                    let ttl = no
                        .negative_ttl
                        .map_or(self.miss_ttl, |t| Duration::from_secs(t.into()));
                    Ok((Raw::NotFound, ttl.min(self.miss_ttl)))
                }
                _ => Err("servfail"),
            },
            NetError::Dns(HickoryDnsError::ResponseCode(_)) => Err("servfail"),
            NetError::Timeout => Err("timeout"),
            _ => Err("other"),
        }
    }
}

/// Applies the list rules: errors first, then the zone's filter.
fn judge(zone: &DnsZone, raw: Raw) -> ListAnswer {
    let Raw::Answers(ips) = raw else {
        return ListAnswer::NotListed;
    };
    if ips.is_empty() {
        return ListAnswer::NotListed;
    }
    if ips.iter().any(|ip| ip.octets()[..3] == [127, 255, 255]) {
        return ListAnswer::Error("error_answer");
    }
    if ips.iter().any(|ip| ip.octets()[0] != 127) {
        return ListAnswer::Error("outside_loopback");
    }
    let matching: Vec<Ipv4Addr> = ips
        .into_iter()
        .filter(|ip| zone.filter.is_empty() || zone.filter.iter().any(|r| r.contains(*ip)))
        .collect();
    match matching.is_empty() {
        true => ListAnswer::NotListed,
        false => ListAnswer::Listed(matching),
    }
}

fn encode(raw: &Raw) -> String {
    match raw {
        Raw::NotFound => String::new(),
        Raw::Answers(ips) => ips
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn decode(text: &str) -> Raw {
    if text.is_empty() {
        return Raw::NotFound;
    }
    Raw::Answers(text.split(',').filter_map(|ip| ip.parse().ok()).collect())
}

/// The DNSBL form of an address: reversed octets, or reversed nibbles for
/// IPv6. IPv4-mapped IPv6 clients are asked about as IPv4.
pub fn reversed(ip: IpAddr) -> String {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let hex: Vec<String> = v6
                .octets()
                .iter()
                .rev()
                .flat_map(|byte| [byte & 0xf, byte >> 4])
                .map(|nibble| format!("{nibble:x}"))
                .collect();
            hex.join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::reputation::parse_return_range;

    #[test]
    fn reversed_forms() {
        let cases = [
            ("192.0.2.1", "1.2.0.192"),
            ("::ffff:192.0.2.1", "1.2.0.192"),
            (
                "2001:db8::1",
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",
            ),
        ];
        for (ip, want) in cases {
            assert_eq!(reversed(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn list_rules() {
        let zone = |filter: &[&str]| DnsZone {
            zone: "bl.test".into(),
            weight: 1.0,
            filter: filter
                .iter()
                .map(|f| parse_return_range(f).unwrap())
                .collect(),
            key: None,
        };
        let ips = |list: &[&str]| Raw::Answers(list.iter().map(|s| s.parse().unwrap()).collect());
        let listed =
            |list: &[&str]| ListAnswer::Listed(list.iter().map(|s| s.parse().unwrap()).collect());
        let cases = [
            (zone(&[]), Raw::NotFound, ListAnswer::NotListed),
            (zone(&[]), ips(&["127.0.0.2"]), listed(&["127.0.0.2"])),
            (
                zone(&[]),
                ips(&["127.255.255.254"]),
                ListAnswer::Error("error_answer"),
            ),
            (
                zone(&[]),
                ips(&["127.0.0.2", "127.255.255.252"]),
                ListAnswer::Error("error_answer"),
            ),
            (
                zone(&[]),
                ips(&["10.0.0.1"]),
                ListAnswer::Error("outside_loopback"),
            ),
            (
                zone(&["127.0.0.2-11"]),
                ips(&["127.0.0.4", "127.0.0.20"]),
                listed(&["127.0.0.4"]),
            ),
            (
                zone(&["127.0.0.2-11"]),
                ips(&["127.0.0.20"]),
                ListAnswer::NotListed,
            ),
            (
                zone(&["127.0.0.4", "127.0.0.10"]),
                ips(&["127.0.0.10"]),
                listed(&["127.0.0.10"]),
            ),
        ];
        for (zone, raw, want) in cases {
            assert_eq!(judge(&zone, raw.clone()), want, "{raw:?} {:?}", zone.filter);
        }
    }

    #[test]
    fn cache_encoding_round_trips() {
        for raw in [
            Raw::NotFound,
            Raw::Answers(vec![
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 4),
            ]),
        ] {
            assert_eq!(decode(&encode(&raw)), raw);
        }
    }
}
