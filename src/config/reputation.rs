//! The `reputation` section: who the client is (DNS lists, reverse DNS,
//! HELO), how fast it may go (rate limits) and whether it must retry
//! (greylisting). Weights are in the same units as `scoring`.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;

use super::duration::parse_duration;
use super::span::S;
pub use super::validate::is_hostname;
use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawReputation {
    pub greet_delay: Option<S<String>>,
    pub dnsbl: RawDnsbl,
    pub domain_lists: RawDomainLists,
    pub fcrdns: RawFcrdns,
    pub helo: RawHelo,
    pub rate_limits: RawRateLimits,
    pub greylist: RawGreylist,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDnsbl {
    pub zones: Vec<S<RawZone>>,
    pub threshold: Option<S<f64>>,
    pub reject_at: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub cache_size: Option<S<u64>>,
    pub miss_ttl: Option<S<String>>,
    pub max_ttl: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawZone {
    pub zone: Option<S<String>>,
    pub weight: Option<S<f64>>,
    pub filter: Vec<S<String>>,
    pub key: Option<S<String>>,
    /// Domain lists only: what to look up (sender, helo, body).
    pub targets: Option<Vec<S<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDomainLists {
    pub zones: Vec<S<RawZone>>,
    pub timeout: Option<S<String>>,
    pub max_body_domains: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFcrdns {
    pub enabled: Option<bool>,
    pub no_ptr_score: Option<S<f64>>,
    pub mismatch_score: Option<S<f64>>,
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHelo {
    pub enabled: Option<bool>,
    pub invalid_score: Option<S<f64>>,
    pub literal_mismatch_score: Option<S<f64>>,
    pub our_name_score: Option<S<f64>>,
    pub not_fqdn_score: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRateLimits {
    pub limits: Vec<S<RawRateLimit>>,
    pub ipv4_prefix: Option<S<u64>>,
    pub ipv6_prefix: Option<S<u64>>,
    pub max_keys: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRateLimit {
    pub name: Option<S<String>>,
    pub key: Option<S<String>>,
    pub count: Option<S<String>>,
    pub rate: Option<S<String>>,
    pub burst: Option<S<u64>>,
    pub reply: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawGreylist {
    pub enabled: Option<bool>,
    pub delay: Option<S<String>>,
    pub retry_window: Option<S<String>>,
    pub expiry: Option<S<String>>,
    pub ipv4_prefix: Option<S<u64>>,
    pub ipv6_prefix: Option<S<u64>>,
    pub max_entries: Option<S<u64>>,
}

#[derive(Debug, Clone, Default)]
pub struct ReputationConfig {
    /// Wait this long before the banner; a client that talks first is refused.
    pub greet_delay: Duration,
    pub dnsbl: DnsblConfig,
    pub domain_lists: DomainListsConfig,
    pub fcrdns: FcrdnsConfig,
    pub helo: HeloConfig,
    pub rate_limits: RateLimitsConfig,
    pub greylist: GreylistConfig,
}

/// An inclusive range of IPv4 answers a list uses to say "listed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl ReturnRange {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }
}

/// One DNS list (an IP list for DNSBL, a domain list for DBL/URIBL).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsZone {
    pub zone: String,
    /// Added to the score when listed; negative for allow lists.
    pub weight: f64,
    /// Answers that count; empty means any 127.0.0.0/8 answer counts.
    pub filter: Vec<ReturnRange>,
    /// For keyed services: queries go to `<item>.<key>.<zone>`.
    pub key: Option<String>,
}

impl DnsZone {
    /// The DNS suffix queries go to.
    pub fn suffix(&self) -> String {
        match &self.key {
            Some(key) => format!("{key}.{}", self.zone),
            None => self.zone.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectAt {
    /// Refuse the connection before the banner.
    Connect,
    /// Let the client reach RCPT so the envelope is logged, then refuse.
    Rcpt,
}

#[derive(Debug, Clone)]
pub struct DnsblConfig {
    pub zones: Vec<DnsZone>,
    pub threshold: f64,
    pub reject_at: RejectAt,
    /// One budget for all lookups of a connection.
    pub timeout: Duration,
    pub cache_size: usize,
    pub miss_ttl: Duration,
    pub max_ttl: Duration,
}

impl Default for DnsblConfig {
    fn default() -> Self {
        DnsblConfig {
            zones: Vec::new(),
            threshold: 3.0,
            reject_at: RejectAt::Connect,
            timeout: Duration::from_secs(2),
            cache_size: 100_000,
            miss_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
        }
    }
}

/// Which names of a message a domain list judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainTargets {
    pub sender: bool,
    pub helo: bool,
    pub body: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainZone {
    pub list: DnsZone,
    pub targets: DomainTargets,
}

#[derive(Debug, Clone)]
pub struct DomainListsConfig {
    pub zones: Vec<DomainZone>,
    pub timeout: Duration,
    /// Link domains looked up per message: spam stuffs bodies with links.
    pub max_body_domains: usize,
}

impl Default for DomainListsConfig {
    fn default() -> Self {
        DomainListsConfig {
            zones: Vec::new(),
            timeout: Duration::from_secs(2),
            max_body_domains: 20,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FcrdnsConfig {
    pub enabled: bool,
    pub no_ptr_score: f64,
    pub mismatch_score: f64,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct HeloConfig {
    pub enabled: bool,
    pub invalid_score: f64,
    pub literal_mismatch_score: f64,
    pub our_name_score: f64,
    pub not_fqdn_score: f64,
}

/// What a limit groups clients by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    Ip,
    /// The client's /24 (IPv4) or /64 (IPv6), as configured.
    Network,
    Sender,
    SenderDomain,
    Recipient,
}

/// What a limit counts, which also fixes the stage it runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    Connections,
    Messages,
    Recipients,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// The metric label and log name; from the config, so a closed set.
    pub name: String,
    pub key: LimitKey,
    pub count: Counted,
    /// One event is allowed per `period` on average...
    pub period: Duration,
    /// ...and up to `burst` at once.
    pub burst: u32,
    /// 421 (closing) or 450 (try later).
    pub reply_code: u16,
}

#[derive(Debug, Clone)]
pub struct RateLimitsConfig {
    pub limits: Vec<RateLimit>,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Keys per limit kept in memory before idle ones are evicted.
    pub max_keys: usize,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            limits: Vec::new(),
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            max_keys: 1_000_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GreylistConfig {
    pub enabled: bool,
    /// A retry is accepted only this long after the first attempt.
    pub delay: Duration,
    /// An unconfirmed triplet is forgotten after this.
    pub retry_window: Duration,
    /// A confirmed triplet passes without delay for this long after its last use.
    pub expiry: Duration,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    pub max_entries: usize,
}

impl Default for GreylistConfig {
    fn default() -> Self {
        GreylistConfig {
            enabled: false,
            delay: Duration::from_secs(300),
            retry_window: Duration::from_secs(2 * 86_400),
            expiry: Duration::from_secs(35 * 86_400),
            ipv4_prefix: 24,
            ipv6_prefix: 64,
            max_entries: 1_000_000,
        }
    }
}

pub(super) fn validate(v: &mut Validator, raw: &RawReputation) -> ReputationConfig {
    ReputationConfig {
        greet_delay: v.duration(
            "reputation.greet_delay",
            raw.greet_delay.as_ref(),
            Duration::ZERO,
        ),
        dnsbl: dnsbl(v, &raw.dnsbl),
        domain_lists: domain_lists(v, &raw.domain_lists),
        fcrdns: fcrdns(v, &raw.fcrdns),
        helo: helo(v, &raw.helo),
        rate_limits: rate_limits(v, &raw.rate_limits),
        greylist: greylist(v, &raw.greylist),
    }
}

fn dnsbl(v: &mut Validator, raw: &RawDnsbl) -> DnsblConfig {
    let d = DnsblConfig::default();
    let key = |k: &str| format!("reputation.dnsbl.{k}");
    let choices = [("connect", RejectAt::Connect), ("rcpt", RejectAt::Rcpt)];
    let dur = |v: &mut Validator, k: &str, val: &Option<S<String>>, default| {
        v.duration(&key(k), val.as_ref(), default)
    };
    DnsblConfig {
        zones: zones(v, &key("zones"), &raw.zones),
        threshold: raw.threshold.as_ref().map_or(d.threshold, |t| t.value),
        reject_at: v.choice(
            &key("reject_at"),
            raw.reject_at.as_ref(),
            &choices,
            d.reject_at,
        ),
        timeout: dur(v, "timeout", &raw.timeout, d.timeout),
        cache_size: v.number(
            &key("cache_size"),
            raw.cache_size.as_ref(),
            d.cache_size as u64,
            (0, 100_000_000),
        ) as usize,
        miss_ttl: dur(v, "miss_ttl", &raw.miss_ttl, d.miss_ttl),
        max_ttl: dur(v, "max_ttl", &raw.max_ttl, d.max_ttl),
    }
}

fn zones(v: &mut Validator, key: &str, raw: &[S<RawZone>]) -> Vec<DnsZone> {
    raw.iter().filter_map(|z| zone(v, key, z)).collect()
}

fn zone(v: &mut Validator, key: &str, spanned: &S<RawZone>) -> Option<DnsZone> {
    let raw = &spanned.value;
    let Some(name) = &raw.zone else {
        v.error_at(spanned.referenced, key, "every zone needs a 'zone' name");
        return None;
    };
    let zone = name.value.trim().trim_end_matches('.').to_ascii_lowercase();
    if !is_hostname(&zone) {
        v.error_at(name.referenced, key, format!("'{zone}' is not a DNS zone"));
    }
    let key_part = raw.key.as_ref().map(|k| k.value.trim().to_string());
    if let Some(k) = raw.key.as_ref().filter(|k| !is_hostname(k.value.trim())) {
        v.error_at(k.referenced, key, "the key must be a DNS label");
    }
    let filter = raw.filter.iter().filter_map(|f| return_range(v, key, f));
    Some(DnsZone {
        zone,
        weight: raw.weight.as_ref().map_or(1.0, |w| w.value),
        filter: filter.collect(),
        key: key_part.filter(|k| !k.is_empty()),
    })
}

/// Reads `127.0.0.2`, `127.0.0.2-11` or `127.0.0.2-127.0.0.11`.
pub fn parse_return_range(text: &str) -> Option<ReturnRange> {
    let text = text.trim();
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let first: Ipv4Addr = first.trim().parse().ok()?;
    let last = last.trim();
    let last: Ipv4Addr = match last.parse::<u8>() {
        Ok(octet) => {
            let [a, b, c, _] = first.octets();
            Ipv4Addr::new(a, b, c, octet)
        }
        Err(_) => last.parse().ok()?,
    };
    (first <= last).then_some(ReturnRange { first, last })
}

fn return_range(v: &mut Validator, key: &str, raw: &S<String>) -> Option<ReturnRange> {
    let parsed = parse_return_range(&raw.value);
    if parsed.is_none() {
        let message = format!(
            "'{}' is not a return code or range (e.g. 127.0.0.2 or 127.0.0.2-11)",
            raw.value
        );
        v.error_at(raw.referenced, key, message);
    }
    parsed
}

fn domain_lists(v: &mut Validator, raw: &RawDomainLists) -> DomainListsConfig {
    let d = DomainListsConfig::default();
    let key = "reputation.domain_lists.zones";
    let zones = raw.zones.iter().filter_map(|z| {
        let list = zone(v, key, z)?;
        let targets = domain_targets(v, key, z.value.targets.as_deref());
        Some(DomainZone { list, targets })
    });
    DomainListsConfig {
        zones: zones.collect(),
        timeout: v.duration(
            "reputation.domain_lists.timeout",
            raw.timeout.as_ref(),
            d.timeout,
        ),
        max_body_domains: v.number(
            "reputation.domain_lists.max_body_domains",
            raw.max_body_domains.as_ref(),
            d.max_body_domains as u64,
            (0, 1000),
        ) as usize,
    }
}

fn domain_targets(v: &mut Validator, key: &str, raw: Option<&[S<String>]>) -> DomainTargets {
    let Some(raw) = raw else {
        return DomainTargets {
            sender: true,
            helo: true,
            body: true,
        };
    };
    let mut t = DomainTargets {
        sender: false,
        helo: false,
        body: false,
    };
    for target in raw {
        match target.value.trim() {
            "sender" => t.sender = true,
            "helo" => t.helo = true,
            "body" => t.body = true,
            other => v.error_at(
                target.referenced,
                key,
                format!("'{other}' is not one of: sender, helo, body"),
            ),
        }
    }
    t
}

fn score(raw: &Option<S<f64>>, default: f64) -> f64 {
    raw.as_ref().map_or(default, |s| s.value)
}

fn fcrdns(v: &mut Validator, raw: &RawFcrdns) -> FcrdnsConfig {
    FcrdnsConfig {
        enabled: raw.enabled.unwrap_or(false),
        no_ptr_score: score(&raw.no_ptr_score, 1.5),
        mismatch_score: score(&raw.mismatch_score, 1.0),
        timeout: v.duration(
            "reputation.fcrdns.timeout",
            raw.timeout.as_ref(),
            Duration::from_secs(2),
        ),
    }
}

fn helo(_v: &mut Validator, raw: &RawHelo) -> HeloConfig {
    HeloConfig {
        enabled: raw.enabled.unwrap_or(false),
        invalid_score: score(&raw.invalid_score, 2.0),
        literal_mismatch_score: score(&raw.literal_mismatch_score, 2.0),
        our_name_score: score(&raw.our_name_score, 3.0),
        not_fqdn_score: score(&raw.not_fqdn_score, 0.5),
    }
}

fn rate_limits(v: &mut Validator, raw: &RawRateLimits) -> RateLimitsConfig {
    let d = RateLimitsConfig::default();
    let mut limits: Vec<RateLimit> = Vec::new();
    for r in &raw.limits {
        let Some(limit) = rate_limit(v, r) else {
            continue;
        };
        if let Some(n) = r
            .value
            .name
            .as_ref()
            .filter(|_| limits.iter().any(|l| l.name == limit.name))
        {
            v.error_at(
                n.referenced,
                "reputation.rate_limits.limits",
                "duplicate name",
            );
        }
        limits.push(limit);
    }
    let k = |s: &str| format!("reputation.rate_limits.{s}");
    RateLimitsConfig {
        limits,
        ipv4_prefix: v.number(&k("ipv4_prefix"), raw.ipv4_prefix.as_ref(), 24, (8, 32)) as u8,
        ipv6_prefix: v.number(&k("ipv6_prefix"), raw.ipv6_prefix.as_ref(), 64, (16, 128)) as u8,
        max_keys: v.number(
            &k("max_keys"),
            raw.max_keys.as_ref(),
            d.max_keys as u64,
            (1000, 100_000_000),
        ) as usize,
    }
}

const LIMIT_KEYS: [(&str, LimitKey); 5] = [
    ("ip", LimitKey::Ip),
    ("network", LimitKey::Network),
    ("sender", LimitKey::Sender),
    ("sender_domain", LimitKey::SenderDomain),
    ("recipient", LimitKey::Recipient),
];

const COUNTED: [(&str, Counted); 3] = [
    ("connections", Counted::Connections),
    ("messages", Counted::Messages),
    ("recipients", Counted::Recipients),
];

fn rate_limit(v: &mut Validator, spanned: &S<RawRateLimit>) -> Option<RateLimit> {
    let k = "reputation.rate_limits.limits";
    let raw = &spanned.value;
    let (Some(name), Some(rate)) = (&raw.name, &raw.rate) else {
        v.error_at(spanned.referenced, k, "every limit needs a name and a rate");
        return None;
    };
    if !valid_limit_name(&name.value) {
        v.error_at(
            name.referenced,
            k,
            "name must be lowercase letters, digits, '_'",
        );
    }
    let key = v.choice(
        &format!("{k}.key"),
        raw.key.as_ref(),
        &LIMIT_KEYS,
        LimitKey::Ip,
    );
    let count = v.choice(
        &format!("{k}.count"),
        raw.count.as_ref(),
        &COUNTED,
        Counted::Messages,
    );
    check_combination(v, raw, key, count);
    let (events, per) = parse_rate(&rate.value).or_else(|| {
        v.error_at(
            rate.referenced,
            k,
            "rate must look like 10/1m, 100/h or 5/s",
        );
        None
    })?;
    let default_burst = u64::from(events);
    let burst = v.number(
        &format!("{k}.burst"),
        raw.burst.as_ref(),
        default_burst,
        (1, 1_000_000),
    );
    Some(RateLimit {
        name: name.value.clone(),
        key,
        count,
        period: per / events,
        burst: burst as u32,
        reply_code: reply_code(v, raw, count),
    })
}

fn valid_limit_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Connections are counted before any envelope exists.
fn check_combination(v: &mut Validator, raw: &RawRateLimit, key: LimitKey, count: Counted) {
    let client_key = matches!(key, LimitKey::Ip | LimitKey::Network);
    let bad = match count {
        Counted::Connections => !client_key,
        Counted::Recipients => key == LimitKey::Recipient,
        Counted::Messages => false,
    };
    if let (true, Some(at)) = (bad, raw.key.as_ref()) {
        let message = format!("{:?} cannot be counted per {:?}", count, key).to_lowercase();
        v.error_at(at.referenced, "reputation.rate_limits.limits.key", message);
    }
}

fn reply_code(v: &mut Validator, raw: &RawRateLimit, count: Counted) -> u16 {
    let default = match count {
        Counted::Connections => 421,
        _ => 450,
    };
    match &raw.reply {
        None => default,
        Some(r) if r.value == 421 || r.value == 450 => r.value as u16,
        Some(r) => {
            v.error_at(
                r.referenced,
                "reputation.rate_limits.limits.reply",
                "must be 421 or 450",
            );
            default
        }
    }
}

/// Reads `10/1m`, `100/h`, `5/s`: a count of events per a duration.
pub fn parse_rate(text: &str) -> Option<(u32, Duration)> {
    let (count, per) = text.trim().split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
    let per = per.trim();
    let per = match per.starts_with(|c: char| c.is_ascii_digit()) {
        true => parse_duration(per).ok()?,
        false => parse_duration(&format!("1{per}")).ok()?,
    };
    (per >= Duration::from_millis(1)).then_some((count, per))
}

fn greylist(v: &mut Validator, raw: &RawGreylist) -> GreylistConfig {
    let d = GreylistConfig::default();
    let k = |s: &str| format!("reputation.greylist.{s}");
    GreylistConfig {
        enabled: raw.enabled.unwrap_or(false),
        delay: v.duration(&k("delay"), raw.delay.as_ref(), d.delay),
        retry_window: v.duration(
            &k("retry_window"),
            raw.retry_window.as_ref(),
            d.retry_window,
        ),
        expiry: v.duration(&k("expiry"), raw.expiry.as_ref(), d.expiry),
        ipv4_prefix: v.number(&k("ipv4_prefix"), raw.ipv4_prefix.as_ref(), 24, (8, 32)) as u8,
        ipv6_prefix: v.number(&k("ipv6_prefix"), raw.ipv6_prefix.as_ref(), 64, (16, 128)) as u8,
        max_entries: v.number(
            &k("max_entries"),
            raw.max_entries.as_ref(),
            d.max_entries as u64,
            (1000, 100_000_000),
        ) as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_ranges() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("127.0.0.2", Some(("127.0.0.2", "127.0.0.2"))),
            ("127.0.0.2-11", Some(("127.0.0.2", "127.0.0.11"))),
            ("127.0.0.2-127.0.1.3", Some(("127.0.0.2", "127.0.1.3"))),
            (" 127.0.0.4 ", Some(("127.0.0.4", "127.0.0.4"))),
            ("127.0.0.9-3", None),
            ("127.0.0.2-300", None),
            ("nonsense", None),
            ("", None),
        ];
        for (text, want) in cases {
            let want = want.map(|(a, b)| ReturnRange {
                first: a.parse().unwrap(),
                last: b.parse().unwrap(),
            });
            assert_eq!(parse_return_range(text), want, "{text:?}");
        }
    }

    #[test]
    fn rates() {
        let cases: &[(&str, Option<(u32, u64)>)] = &[
            ("10/1m", Some((10, 60_000))),
            ("100/h", Some((100, 3_600_000))),
            ("5/s", Some((5, 1000))),
            ("3/500ms", Some((3, 500))),
            ("0/s", None),
            ("10", None),
            ("10/0s", None),
            ("x/s", None),
            ("10/fortnight", None),
        ];
        for (text, want) in cases {
            let got = parse_rate(text).map(|(c, d)| (c, d.as_millis() as u64));
            assert_eq!(got, *want, "{text:?}");
        }
    }
}
