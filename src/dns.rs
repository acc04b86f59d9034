//! The one DNS resolver of the process. Every check that asks DNS (SPF,
//! DKIM, DMARC, ARC through `mail-auth`, the DNS lists through [`Dns`]'s own
//! lookups) shares it, so there is one cache, one set of timeouts and one
//! place that counts lookups and errors.
//!
//! Answers are typed so that callers can tell "the name has no such record"
//! (a definite answer they may act on) from "DNS did not answer" (which must
//! never turn into a silent pass).

use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::domain::Label;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::TokioResolver;
use mail_auth::{DnsCache, MessageAuthenticator, NoCache, ResolverCache, TxtRecord};

use crate::config::DnsConfig;
use crate::metrics::Metrics;

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// NXDOMAIN: the name does not exist. A definite answer.
    #[error("{0}: no such domain")]
    NxDomain(String),
    /// NODATA: the name exists but has no record of the asked type. Definite.
    #[error("{0}: no records of that type")]
    NoRecords(String),
    /// No answer within the configured timeout and attempts. Temporary.
    #[error("{0}: DNS timeout")]
    Timeout(String),
    /// SERVFAIL, REFUSED and other error codes. Temporary.
    #[error("{name}: DNS server answered {code}")]
    ServerFailure { name: String, code: String },
    /// The name cannot be asked at all (bad syntax, too long). Definite.
    #[error("'{0}' is not a valid DNS name")]
    InvalidName(String),
    /// Anything else the resolver reports (I/O, no connection). Temporary.
    #[error("{name}: DNS lookup failed: {message}")]
    Other { name: String, message: String },
    /// The resolver could not be built (e.g. no system configuration).
    #[error("cannot set up the DNS resolver: {0}")]
    Setup(String),
}

impl DnsError {
    /// True when asking again later may give a different answer.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            DnsError::Timeout(_) | DnsError::ServerFailure { .. } | DnsError::Other { .. }
        )
    }

    /// True for NXDOMAIN and NODATA: the name has no such record.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DnsError::NxDomain(_) | DnsError::NoRecords(_))
    }

    /// The metric label: a closed set.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsError::NxDomain(_) => "nxdomain",
            DnsError::NoRecords(_) => "nodata",
            DnsError::Timeout(_) => "timeout",
            DnsError::ServerFailure { .. } => "servfail",
            DnsError::InvalidName(_) => "invalid_name",
            DnsError::Other { .. } => "other",
            DnsError::Setup(_) => "setup",
        }
    }

    fn from_net(name: &str, error: NetError) -> Self {
        let name = name.to_string();
        match error {
            NetError::Dns(HickoryDnsError::NoRecordsFound(no)) => match no.response_code {
                ResponseCode::NXDomain => DnsError::NxDomain(name),
                ResponseCode::NoError => DnsError::NoRecords(name),
                code => DnsError::ServerFailure {
                    name,
                    code: code.to_string(),
                },
            },
            NetError::Dns(HickoryDnsError::ResponseCode(code)) => DnsError::ServerFailure {
                name,
                code: code.to_string(),
            },
            NetError::Timeout => DnsError::Timeout(name),
            other => DnsError::Other {
                name,
                message: other.to_string(),
            },
        }
    }
}

/// The shared resolver. Cheap to clone: clones share the resolver, its
/// cache and its connections.
#[derive(Clone)]
pub struct Dns {
    auth: MessageAuthenticator,
    records: Arc<RecordCache>,
    answers: Option<Arc<TxtAnswers>>,
    metrics: Metrics,
}

/// TXT answers (SPF and DMARC records) kept until their TTL ends. hickory
/// caches them too, but each of its cached look-ups costs microseconds
/// (the name built and parsed, its cache locked, the records cloned), and
/// every message from a domain asks for the same few names. Only answers
/// are kept here: errors and empty answers go to hickory each time, which
/// keeps their negative TTLs.
struct TxtAnswers {
    texts: moka::sync::Cache<Box<str>, (Arc<[String]>, Instant)>,
}

impl TxtAnswers {
    fn get(&self, name: &str) -> Option<Vec<String>> {
        let (texts, valid_until) = self.texts.get(name)?;
        (valid_until > Instant::now()).then(|| texts.to_vec())
    }

    fn insert(&self, name: &str, texts: &[String], valid_until: Instant) {
        self.texts.insert(name.into(), (texts.into(), valid_until));
    }
}

/// `mail-auth`'s TXT records (DKIM keys above all) kept parsed until
/// their DNS TTL ends: hickory caches the answer, this saves parsing it
/// again for every message.
pub struct RecordCache {
    txt: moka::sync::Cache<Box<str>, (TxtRecord, Instant)>,
}

impl RecordCache {
    fn new(capacity: usize) -> Self {
        RecordCache {
            txt: moka::sync::Cache::new(capacity.max(1) as u64),
        }
    }
}

impl ResolverCache<Box<str>, TxtRecord> for RecordCache {
    fn get<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (record, valid_until) = self.txt.get(name)?;
        (valid_until > Instant::now()).then_some(record)
    }

    fn remove<Q>(&self, name: &Q) -> Option<TxtRecord>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.txt.remove(name).map(|(record, _)| record)
    }

    fn insert(&self, name: Box<str>, record: TxtRecord, valid_until: Instant) {
        self.txt.insert(name, (record, valid_until));
    }
}

/// Only TXT records: the other types `mail-auth` asks for (SPF's) are
/// ours to ask, through [`Dns`].
impl DnsCache for RecordCache {
    type Txt = RecordCache;
    type Mx = NoCache;
    type Ipv4 = NoCache;
    type Ipv6 = NoCache;
    type Ptr = NoCache;

    fn txt(&self) -> Option<&Self::Txt> {
        Some(self)
    }
    fn mx(&self) -> Option<&Self::Mx> {
        None
    }
    fn ipv4(&self) -> Option<&Self::Ipv4> {
        None
    }
    fn ipv6(&self) -> Option<&Self::Ipv6> {
        None
    }
    fn ptr(&self) -> Option<&Self::Ptr> {
        None
    }
}

impl Dns {
    /// Builds the resolver: the configured name servers, or the system's
    /// (`/etc/resolv.conf`) when the list is empty.
    pub fn new(config: &DnsConfig, metrics: &Metrics) -> Result<Dns, DnsError> {
        let (resolver_config, mut opts) = match config.nameservers.is_empty() {
            true => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| DnsError::Setup(e.to_string()))?,
            false => (explicit_servers(config), ResolverOpts::default()),
        };
        tune(&mut opts, config);
        let auth = MessageAuthenticator::new(resolver_config, opts)
            .map_err(|e| DnsError::Setup(e.to_string()))?;
        // No cache configured means none here either: every look-up asks.
        let answers = (config.cache_size > 0).then(|| {
            let texts = moka::sync::Cache::new(config.cache_size as u64);
            Arc::new(TxtAnswers { texts })
        });
        Ok(Dns {
            auth,
            records: Arc::new(RecordCache::new(config.cache_size)),
            answers,
            metrics: metrics.clone(),
        })
    }

    /// The `mail-auth` verifier, built on this same resolver.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// The parsed-record cache to hand `mail-auth`'s verifiers
    /// (`Parameters::with_cache`).
    pub fn record_cache(&self) -> &RecordCache {
        &self.records
    }

    /// The metrics the resolver reports into (so verifiers can count too).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn resolver(&self) -> &TokioResolver {
        self.auth.resolver()
    }

    /// TXT records of `name`, each record's strings joined (RFC 7208 3.3).
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let answers = self.answers.as_deref();
        if let Some(texts) = answers.and_then(|a| a.get(name)) {
            return Ok(texts);
        }
        let lookup = self
            .timed("txt", name, self.resolver().txt_lookup(fqdn(name)?))
            .await?;
        let texts = records(&lookup, |data| match data {
            RData::TXT(txt) => Some(txt_text(&txt.txt_data)),
            _ => None,
        });
        if let Some(answers) = answers.filter(|_| !texts.is_empty()) {
            answers.insert(name, &texts, lookup.valid_until());
        }
        Ok(texts)
    }

    /// A records of `name`.
    pub async fn ipv4(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let lookup = self
            .timed("a", name, self.resolver().ipv4_lookup(fqdn(name)?))
            .await?;
        Ok(records(&lookup, |data| match data {
            RData::A(a) => Some(a.0),
            _ => None,
        }))
    }

    /// AAAA records of `name`.
    pub async fn ipv6(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        let lookup = self
            .timed("aaaa", name, self.resolver().ipv6_lookup(fqdn(name)?))
            .await?;
        Ok(records(&lookup, |data| match data {
            RData::AAAA(aaaa) => Some(aaaa.0),
            _ => None,
        }))
    }

    /// MX exchanges of `name`, most preferred first, lowercased, without
    /// the trailing dot (the null MX of RFC 7505 is an empty name).
    pub async fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let lookup = self
            .timed("mx", name, self.resolver().mx_lookup(fqdn(name)?))
            .await?;
        let mut exchanges = records(&lookup, |data| match data {
            RData::MX(mx) => Some((mx.preference, name_text(&mx.exchange))),
            _ => None,
        });
        exchanges.sort_by_key(|(preference, _)| *preference);
        Ok(exchanges.into_iter().map(|(_, name)| name).collect())
    }

    /// PTR names of `ip`, lowercased, without the trailing dot.
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = ip.to_string();
        let lookup = self
            .timed("ptr", &name, self.resolver().reverse_lookup(ip))
            .await?;
        Ok(records(&lookup, |data| match data {
            RData::PTR(ptr) => Some(name_text(&ptr.0)),
            _ => None,
        }))
    }

    /// Runs one lookup, recording its duration and any error worth counting.
    async fn timed(
        &self,
        record_type: &'static str,
        name: &str,
        lookup: impl std::future::Future<Output = Result<Lookup, NetError>>,
    ) -> Result<Lookup, DnsError> {
        let started = Instant::now();
        let result = lookup.await;
        self.metrics.dns_lookup(record_type, started.elapsed());
        result.map_err(|e| {
            let error = DnsError::from_net(name, e);
            self.metrics.dns_error(error.kind());
            error
        })
    }
}

fn explicit_servers(config: &DnsConfig) -> ResolverConfig {
    let servers = config
        .nameservers
        .iter()
        .map(|addr| {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
        })
        .collect();
    ResolverConfig::from_name_servers(servers)
}

/// Applies the configured limits; names are always asked as given (no
/// search list, no hosts file), since mail names are fully qualified.
fn tune(opts: &mut ResolverOpts, config: &DnsConfig) {
    opts.timeout = config.timeout;
    opts.attempts = config.attempts;
    opts.cache_size = config.cache_size as u64;
    opts.ndots = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.try_tcp_on_error = true;
}

/// The name as an absolute DNS name: mail domains never take a search
/// suffix. ASCII labels are taken byte for byte (SPF macros can produce
/// `%` or spaces, which DNS carries); others go through IDNA.
fn fqdn(name: &str) -> Result<Name, DnsError> {
    let invalid = || DnsError::InvalidName(name.to_string());
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if !trimmed.is_ascii() {
        return Name::from_str_relaxed(format!("{trimmed}.")).map_err(|_| invalid());
    }
    if trimmed.is_empty() {
        return Ok(Name::root());
    }
    let labels: Result<Vec<Label>, _> = trimmed
        .split('.')
        .map(|label| Label::from_raw_bytes(label.as_bytes()))
        .collect();
    Name::from_labels(labels.map_err(|_| invalid())?).map_err(|_| invalid())
}

/// The name's labels as they are (no zone-file escaping), lowercased,
/// without the trailing dot.
fn name_text(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|label| String::from_utf8_lossy(label).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

fn records<T>(lookup: &Lookup, pick: impl Fn(&RData) -> Option<T>) -> Vec<T> {
    lookup
        .answers()
        .iter()
        .filter_map(|r| pick(&r.data))
        .collect()
}

fn txt_text(strings: &[Box<[u8]>]) -> String {
    let joined: Vec<u8> = strings.iter().flat_map(|s| s.iter().copied()).collect();
    String::from_utf8_lossy(&joined).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        let cases = [
            (DnsError::NxDomain("a".into()), false, true, "nxdomain"),
            (DnsError::NoRecords("a".into()), false, true, "nodata"),
            (DnsError::Timeout("a".into()), true, false, "timeout"),
            (
                DnsError::ServerFailure {
                    name: "a".into(),
                    code: "SERVFAIL".into(),
                },
                true,
                false,
                "servfail",
            ),
            (
                DnsError::InvalidName("a".into()),
                false,
                false,
                "invalid_name",
            ),
        ];
        for (error, temporary, not_found, kind) in cases {
            assert_eq!(error.is_temporary(), temporary, "{error}");
            assert_eq!(error.is_not_found(), not_found, "{error}");
            assert_eq!(error.kind(), kind);
        }
    }

    #[test]
    fn record_cache_honours_the_ttl() {
        let cache = RecordCache::new(8);
        let record = || TxtRecord::Error(mail_auth::Error::MissingParameters);
        let now = Instant::now();
        let past = now
            .checked_sub(std::time::Duration::from_secs(1))
            .unwrap_or(now);
        let future = now + std::time::Duration::from_secs(60);
        cache.insert("live.example.".into(), record(), future);
        cache.insert("gone.example.".into(), record(), past);
        assert!(cache.get("live.example.").is_some());
        assert!(cache.get("gone.example.").is_none());
        assert!(cache.get("never.example.").is_none());
        assert!(cache.remove("live.example.").is_some());
        assert!(cache.get("live.example.").is_none());
    }

    #[test]
    fn names_are_absolute() {
        assert_eq!(fqdn("example.com").unwrap().to_ascii(), "example.com.");
        assert_eq!(fqdn("example.com.").unwrap().to_ascii(), "example.com.");
        assert!(fqdn(&"a".repeat(300)).is_err());
        assert!(fqdn(&format!("{}.com", "a".repeat(64))).is_err());
        assert!(fqdn("a..b").is_err());
        let odd = fqdn("macro%percent  space.example.com").unwrap();
        assert_eq!(odd.iter().next(), Some(&b"macro%percent  space"[..]));
    }
}
