//! `check_host()` (RFC 7208 4) on the shared resolver: record lookup and
//! selection, mechanism evaluation, `include` and `redirect`, and the
//! limits of 4.6.4 (ten DNS-querying terms, two void lookups, ten MX and
//! PTR names).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use super::macros::{MacroString, MacroValues};
use super::record::{is_spf, Mechanism, Qualifier, Record};
use crate::dns::{Dns, DnsError};
use crate::judgement::AuthResult;

const MAX_LOOKUPS: u32 = 10;
const MAX_VOID_LOOKUPS: u32 = 2;
const MAX_NAMES: usize = 10;

/// How a mechanism ends evaluation early: `temperror` or `permerror`.
type Abort = AuthResult;

/// One SPF evaluation: the identity, and the counters its limits need.
pub struct Evaluation<'a> {
    dns: &'a Dns,
    ip: IpAddr,
    /// `<sender>`: local-part, domain (postmaster@helo for the HELO identity).
    local: String,
    sender_domain: String,
    helo: String,
    /// Our own name: the `r` macro.
    receiver: String,
    lookups: u32,
    voids: u32,
}

impl<'a> Evaluation<'a> {
    /// `sender` is the MAIL FROM address, or `postmaster@<helo>` for the
    /// HELO identity. IPv4-mapped IPv6 clients are IPv4 clients.
    pub fn new(dns: &'a Dns, ip: IpAddr, helo: &str, sender: &str, receiver: &str) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (local, domain) = sender.rsplit_once('@').unwrap_or(("", sender));
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        Evaluation {
            dns,
            ip,
            local: local.to_string(),
            sender_domain: domain.to_string(),
            helo: helo.to_string(),
            receiver: receiver.to_string(),
            lookups: 0,
            voids: 0,
        }
    }

    /// `check_host(<ip>, <domain>, <sender>)`.
    pub fn check_host<'e>(
        &'e mut self,
        domain: &'e str,
    ) -> Pin<Box<dyn Future<Output = AuthResult> + Send + 'e>> {
        Box::pin(async move {
            if !valid_domain(domain) {
                return AuthResult::None;
            }
            let record = match self.record(domain).await {
                Ok(record) => record,
                Err(result) => return result,
            };
            match self.evaluate(&record, domain).await {
                Ok(result) => result,
                Err(abort) => abort,
            }
        })
    }

    /// The one SPF record of `domain` (4.4, 4.5).
    async fn record(&self, domain: &str) -> Result<Record, AuthResult> {
        let texts = match self.dns.txt(domain).await {
            Ok(texts) => texts,
            Err(e) if e.is_temporary() => return Err(AuthResult::TempError),
            Err(_) => return Err(AuthResult::None),
        };
        let mut records = texts.iter().filter(|t| is_spf(t));
        match (records.next(), records.next()) {
            (None, _) => Err(AuthResult::None),
            (Some(_), Some(_)) => Err(AuthResult::PermError),
            (Some(text), None) => Record::parse(text).map_err(|_| AuthResult::PermError),
        }
    }

    async fn evaluate(&mut self, record: &Record, domain: &str) -> Result<AuthResult, Abort> {
        for directive in &record.directives {
            if self.matches(&directive.mechanism, domain).await? {
                return Ok(result(directive.qualifier));
            }
        }
        let Some(redirect) = &record.redirect else {
            return Ok(AuthResult::Neutral);
        };
        self.count_lookup()?;
        let target = self.expand(redirect, domain).await;
        match self.check_host(&target).await {
            AuthResult::None => Err(AuthResult::PermError),
            other => Ok(other),
        }
    }

    async fn matches(&mut self, mechanism: &Mechanism, domain: &str) -> Result<bool, Abort> {
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, bits) => Ok(in_network(self.ip, IpAddr::V4(*net), *bits)),
            Mechanism::Ip6(net, bits) => Ok(in_network(self.ip, IpAddr::V6(*net), *bits)),
            Mechanism::Include(spec) => self.include(spec, domain).await,
            Mechanism::A {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                self.a(&target, *cidr4, *cidr6).await
            }
            Mechanism::Mx {
                domain: spec,
                cidr4,
                cidr6,
            } => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                self.mx(&target, *cidr4, *cidr6).await
            }
            Mechanism::Ptr(spec) => {
                self.count_lookup()?;
                let target = self.target(spec.as_ref(), domain).await;
                Ok(!self.validated_names(Some(&target)).await.is_empty())
            }
            Mechanism::Exists(spec) => {
                self.count_lookup()?;
                let target = self.expand(spec, domain).await;
                self.exists(&target).await
            }
        }
    }

    async fn include(&mut self, spec: &MacroString, domain: &str) -> Result<bool, Abort> {
        self.count_lookup()?;
        let target = self.expand(spec, domain).await;
        match self.check_host(&target).await {
            AuthResult::Pass => Ok(true),
            AuthResult::Fail | AuthResult::SoftFail | AuthResult::Neutral => Ok(false),
            AuthResult::TempError => Err(AuthResult::TempError),
            AuthResult::PermError | AuthResult::None => Err(AuthResult::PermError),
        }
    }

    async fn a(&mut self, target: &str, cidr4: u8, cidr6: u8) -> Result<bool, Abort> {
        let addresses = self.addresses(target).await?;
        if addresses.is_empty() {
            self.count_void()?;
        }
        Ok(addresses
            .iter()
            .any(|a| in_network(self.ip, *a, cidr_for(a, cidr4, cidr6))))
    }

    async fn mx(&mut self, target: &str, cidr4: u8, cidr6: u8) -> Result<bool, Abort> {
        let exchanges = match self.dns.mx(target).await {
            Ok(exchanges) => exchanges,
            Err(e) if e.is_temporary() => return Err(AuthResult::TempError),
            Err(_) => return self.count_void().map(|_| false),
        };
        if exchanges.len() > MAX_NAMES {
            return Err(AuthResult::PermError);
        }
        for exchange in exchanges.iter().filter(|e| !e.is_empty()) {
            if self.a_quietly(exchange, cidr4, cidr6).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// An address match that does not count as a void lookup.
    async fn a_quietly(&self, name: &str, cidr4: u8, cidr6: u8) -> Result<bool, Abort> {
        let addresses = self.addresses(name).await?;
        Ok(addresses
            .iter()
            .any(|a| in_network(self.ip, *a, cidr_for(a, cidr4, cidr6))))
    }

    async fn exists(&mut self, target: &str) -> Result<bool, Abort> {
        match self.dns.ipv4(target).await {
            Ok(found) => Ok(!found.is_empty()),
            Err(e) if e.is_temporary() => Err(AuthResult::TempError),
            Err(DnsError::InvalidName(_)) => Ok(false),
            Err(_) => self.count_void().map(|_| false),
        }
    }

    /// A or AAAA records of `name`, by the client's family; no records
    /// (or a name DNS cannot carry) is an empty list.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Abort> {
        let found = match self.ip {
            IpAddr::V4(_) => self
                .dns
                .ipv4(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => self
                .dns
                .ipv6(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V6).collect()),
        };
        match found {
            Ok(addresses) => Ok(addresses),
            Err(e) if e.is_temporary() => Err(AuthResult::TempError),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The names of the client that resolve back to it (5.5), those equal
    /// to or below `target` when given. Errors just leave names out.
    async fn validated_names(&self, target: Option<&str>) -> Vec<String> {
        let names = self.dns.ptr(self.ip).await.unwrap_or_default();
        let mut validated = Vec::new();
        for name in names.into_iter().take(MAX_NAMES) {
            let wanted = target.is_none_or(|t| is_at_or_below(&name, t));
            if wanted
                && self
                    .addresses(&name)
                    .await
                    .is_ok_and(|a| a.contains(&self.ip))
            {
                validated.push(name);
            }
        }
        validated
    }

    fn count_lookup(&mut self) -> Result<(), Abort> {
        self.lookups += 1;
        match self.lookups > MAX_LOOKUPS {
            true => Err(AuthResult::PermError),
            false => Ok(()),
        }
    }

    fn count_void(&mut self) -> Result<(), Abort> {
        self.voids += 1;
        match self.voids > MAX_VOID_LOOKUPS {
            true => Err(AuthResult::PermError),
            false => Ok(()),
        }
    }

    async fn target(&self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.expand(spec, domain).await,
            None => domain.to_string(),
        }
    }

    /// Expands a domain-spec; over-long results lose labels on the left (4.8).
    async fn expand(&self, spec: &MacroString, domain: &str) -> String {
        let p = match spec.uses_p() {
            true => self.p_macro(domain).await,
            false => String::new(),
        };
        let values = Values {
            eval: self,
            domain,
            p: &p,
        };
        let mut name = spec.expand(&values);
        while name.trim_end_matches('.').len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest.to_string(),
                None => break,
            }
        }
        name
    }

    /// `%{p}`: a validated name of the client, preferring `domain` or a
    /// name below it (7.3), else "unknown".
    async fn p_macro(&self, domain: &str) -> String {
        let names = self.validated_names(None).await;
        let best = names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(domain))
            .or_else(|| names.iter().find(|n| is_at_or_below(n, domain)))
            .or(names.first());
        best.cloned().unwrap_or_else(|| "unknown".to_string())
    }
}

struct Values<'v, 'a> {
    eval: &'v Evaluation<'a>,
    domain: &'v str,
    p: &'v str,
}

impl MacroValues for Values<'_, '_> {
    fn value(&self, letter: char) -> String {
        let e = self.eval;
        match letter {
            's' => format!("{}@{}", e.local, e.sender_domain),
            'l' => e.local.clone(),
            'o' => e.sender_domain.clone(),
            'd' => self.domain.to_string(),
            'i' => dotted(e.ip),
            'p' => self.p.to_string(),
            'v' => match e.ip {
                IpAddr::V4(_) => "in-addr".to_string(),
                IpAddr::V6(_) => "ip6".to_string(),
            },
            'h' => e.helo.clone(),
            'c' => e.ip.to_string(),
            'r' => e.receiver.clone(),
            't' => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string(),
            _ => String::new(),
        }
    }
}

/// `%{i}`: dotted quad, or 32 dotted nibbles for IPv6.
fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

fn result(qualifier: Qualifier) -> AuthResult {
    match qualifier {
        Qualifier::Pass => AuthResult::Pass,
        Qualifier::Fail => AuthResult::Fail,
        Qualifier::SoftFail => AuthResult::SoftFail,
        Qualifier::Neutral => AuthResult::Neutral,
    }
}

fn cidr_for(address: &IpAddr, cidr4: u8, cidr6: u8) -> u8 {
    match address {
        IpAddr::V4(_) => cidr4,
        IpAddr::V6(_) => cidr6,
    }
}

/// True if `ip` is in `network/bits`; families never match each other.
fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => prefix_eq(&ip.octets(), &net.octets(), bits),
        (IpAddr::V6(ip), IpAddr::V6(net)) => prefix_eq(&ip.octets(), &net.octets(), bits),
        _ => false,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits).min(a.len() * 8);
    let (bytes, rest) = (bits / 8, bits % 8);
    if a[..bytes] != b[..bytes] {
        return false;
    }
    rest == 0 || (a[bytes] ^ b[bytes]) >> (8 - rest) == 0
}

fn is_at_or_below(name: &str, target: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let target = target.trim_end_matches('.').to_ascii_lowercase();
    name == target || name.ends_with(&format!(".{target}"))
}

/// 4.3: a multi-label name whose labels are 1 to 63 octets (a trailing
/// dot aside); anything else, domain literals included, is `none`.
fn valid_domain(domain: &str) -> bool {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63)
        && !name.starts_with('[')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cases = [
            ("192.0.2.1", "192.0.2.0", 24, true),
            ("192.0.2.1", "192.0.3.0", 24, false),
            ("192.0.2.1", "192.0.2.1", 32, true),
            ("192.0.2.1", "10.0.0.0", 0, true),
            ("192.0.2.129", "192.0.2.128", 25, true),
            ("192.0.2.127", "192.0.2.128", 25, false),
            ("2001:db8::1", "2001:db8::", 32, true),
            ("2001:db9::1", "2001:db8::", 32, false),
            ("192.0.2.1", "::", 0, false),
        ];
        for (a, net, bits, want) in cases {
            assert_eq!(
                in_network(ip(a), ip(net), bits),
                want,
                "{a} in {net}/{bits}"
            );
        }
    }

    #[test]
    fn domains_table() {
        for (domain, want) in [
            ("example.com", true),
            ("example.com.", true),
            ("com", false),
            ("a..example.com", false),
            ("[192.0.2.1]", false),
            (&format!("{}.com", "a".repeat(64)), false),
            (&format!("{}.com", "a".repeat(63)), true),
        ] {
            assert_eq!(valid_domain(domain), want, "{domain}");
        }
    }

    #[test]
    fn nibbles() {
        let ip: IpAddr = "2001:db8::cb01".parse().unwrap();
        assert_eq!(
            dotted(ip),
            "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1"
        );
    }
}
