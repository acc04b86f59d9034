//! Configuration: parse the whole YAML file, then validate every value and
//! report every error at once (file, line, column, key, why).
//!
//! The YAML parser is serde-saphyr: maintained, panic-free on hostile input,
//! and it carries source locations (`Spanned`) so that semantic errors found
//! after parsing still point at a line.

pub mod auth;
pub mod bayes;
pub mod bulk;
mod duration;
mod error;
pub mod proxy;
mod raw;
pub mod relay;
pub mod reputation;
pub mod rules;
mod span;
pub mod state;
mod submission;
mod tls;
mod unknown;
mod upstream_tls;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use duration::parse_duration;
pub use error::{ConfigError, ConfigErrors};
use raw::RawConfig;
pub use submission::SubmissionConfig;
pub use tls::TlsConfig;
pub use upstream_tls::{UpstreamTlsConfig, UpstreamTlsMode};
use validate::Validator;

use crate::judgement::Scoring;

/// The configuration shipped at the repository root, used by `spamgate run`
/// when no `--config` is given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "spamgate.yaml";

#[derive(Debug, Clone)]
pub struct Config {
    /// Our own name: in the banner, the EHLO reply and towards the upstream.
    pub hostname: String,
    pub listen: Vec<SocketAddr>,
    pub upstream: UpstreamConfig,
    pub metrics: MetricsConfig,
    pub dns: DnsConfig,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub smtp: SmtpConfig,
    pub log: LogConfig,
    pub scoring: Scoring,
    pub checks: ChecksConfig,
    pub tls: TlsConfig,
    pub submission: SubmissionConfig,
    pub proxy_protocol: proxy::ProxyProtocolConfig,
    pub reputation: reputation::ReputationConfig,
    pub auth: auth::AuthConfig,
    pub state: state::StateConfig,
    pub rules: rules::RulesConfig,
    /// The domains spamgate relays for; empty: the upstream decides alone.
    pub relay: relay::RelayConfig,
    /// The statistical classifier (`docs/classifier.md`).
    pub bayes: bayes::BayesConfig,
    pub bulk: bulk::BulkConfig,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `host:port`; a host name is resolved at each connection.
    pub address: String,
    pub xclient: bool,
    /// Send the message with BDAT when the upstream offers CHUNKING.
    pub chunking: bool,
    pub helo_name: String,
    pub tls: UpstreamTlsConfig,
}

#[derive(Debug, Clone)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub nameservers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
    pub cache_size: usize,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_command_line: usize,
    pub max_text_line: usize,
    pub max_bad_commands: usize,
    /// The most all sessions' DATA buffers may hold together.
    pub data_memory_total: usize,
}

#[derive(Debug, Clone)]
pub struct Timeouts {
    /// Waiting for one whole command line from the client.
    pub idle: Duration,
    /// Receiving one whole message after the 354.
    pub data: Duration,
    /// The longest a client session may last.
    pub session: Duration,
    pub upstream_connect: Duration,
    pub upstream_command: Duration,
    /// Waiting for the upstream's reply after the final dot.
    pub upstream_data: Duration,
    /// On shutdown, how long transactions in flight may take to finish.
    pub shutdown_drain: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    /// Refuse the message with `550 5.5.2` (the safe default against smuggling).
    Reject,
    /// Turn every bare CR or LF into CRLF before the message goes anywhere.
    Normalize,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub bare_newline: BareNewline,
    pub banner: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Default)]
pub struct ChecksConfig {
    pub ip_lists: IpListsConfig,
}

#[derive(Debug, Clone, Default)]
pub struct IpListsConfig {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

/// What kind of listener a session came in on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerMode {
    /// TLS from the first byte (port 465).
    pub implicit_tls: bool,
    /// MAIL is refused until STARTTLS.
    pub tls_required: bool,
    /// Message submission (RFC 6409): AUTH relayed to the upstream after
    /// TLS, and MAIL refused until it succeeds.
    pub submission: bool,
}

impl Config {
    pub fn listener_mode(&self, listener: SocketAddr) -> ListenerMode {
        ListenerMode {
            implicit_tls: self.tls.is_implicit(listener),
            tls_required: self.tls.is_required(listener),
            submission: self.submission.listen.contains(&listener),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let file = Path::new("<built-in defaults>");
        validate_raw(RawConfig::default(), file).expect("built-in defaults are valid")
    }
}

impl Config {
    /// Reads and validates a file; every error found is returned.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![whole_file_error(path, format!("cannot read: {e}"))]))?;
        Config::from_yaml(&text, path)
    }

    /// Parses YAML text; `file` is only used to name the source in errors.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Config, ConfigErrors> {
        let (raw, mut errors) = parse_raw(text, file)?;
        match validate_raw(raw, file) {
            Ok(config) if errors.is_empty() => Ok(config),
            Ok(_) => Err(ConfigErrors(errors)),
            Err(ConfigErrors(more)) => {
                errors.extend(more);
                errors.sort_by_key(|e| (e.line, e.column));
                Err(ConfigErrors(errors))
            }
        }
    }
}

fn whole_file_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        file: PathBuf::from(file),
        line: 0,
        column: 0,
        key: String::new(),
        message,
    }
}

fn parse_raw(text: &str, file: &Path) -> Result<(RawConfig, Vec<ConfigError>), ConfigErrors> {
    if text.trim().is_empty() {
        return Ok((RawConfig::default(), Vec::new()));
    }
    let (raw, unknown) = unknown::parse::<RawConfig>(text).map_err(|e| {
        let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
        let message = first_line(&e.to_string());
        ConfigErrors(vec![ConfigError {
            file: PathBuf::from(file),
            line,
            column,
            key: String::new(),
            message,
        }])
    })?;
    let unknown = unknown.into_iter().map(|key| ConfigError {
        file: PathBuf::from(file),
        line: key.line,
        column: key.column,
        message: key.message(),
        key: key.path,
    });
    Ok((raw, unknown.collect()))
}

/// serde-saphyr renders a snippet after the message; the first line is the
/// why, after its own "error: line L column C: " (our prefix says where).
fn first_line(rendered: &str) -> String {
    let line = rendered.lines().next().unwrap_or("invalid YAML");
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((place, why)) if place.contains(" column ") => why.to_string(),
        _ => line.to_string(),
    }
}

fn validate_raw(raw: RawConfig, file: &Path) -> Result<Config, ConfigErrors> {
    let mut v = Validator::new(file);
    let hostname = v.hostname("hostname", raw.hostname.as_ref(), "spamgate.localdomain");
    let listen = listen(&mut v, &raw);
    let tls = tls::validate(&mut v, &raw.tls, &listen);
    let served: Vec<SocketAddr> = listen.iter().chain(&tls.implicit_listen).copied().collect();
    let config = Config {
        proxy_protocol: proxy::validate(&mut v, &raw.proxy_protocol, &listen),
        submission: submission::validate(&mut v, &raw.submission, &served, tls.files.is_some()),
        tls,
        listen,
        upstream: upstream(&mut v, &raw, &hostname),
        metrics: MetricsConfig {
            listen: raw
                .metrics
                .listen
                .as_ref()
                .and_then(|l| v.socket_addr("metrics.listen", l)),
        },
        dns: dns(&mut v, &raw),
        limits: limits(&mut v, &raw),
        timeouts: timeouts(&mut v, &raw),
        smtp: smtp(&mut v, &raw, &hostname),
        log: log(&mut v, &raw),
        scoring: scoring(&mut v, &raw),
        checks: ChecksConfig {
            ip_lists: IpListsConfig {
                allow: v.cidrs("checks.ip_lists.allow", &raw.checks.ip_lists.allow),
                deny: v.cidrs("checks.ip_lists.deny", &raw.checks.ip_lists.deny),
            },
        },
        reputation: reputation::validate(&mut v, &raw.reputation),
        auth: auth::validate(&mut v, &raw.auth, &hostname),
        state: state::validate(&mut v, &raw.state),
        rules: rules::validate(&mut v, &raw.rules, file),
        relay: relay::validate(
            &mut v,
            &raw.relay_domains,
            raw.relay_domains_file.as_ref(),
            file,
        ),
        bayes: bayes(&mut v, &raw, file),
        bulk: bulk::validate(&mut v, &raw.bulk),
        hostname,
    };
    if v.errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(v.errors))
    }
}

/// The classifier's section; its Redis backend needs the shared state in Redis.
fn bayes(v: &mut Validator, raw: &RawConfig, file: &Path) -> bayes::BayesConfig {
    let reject = raw.scoring.reject_score.as_ref().map_or(10.0, |s| s.value);
    let config = bayes::validate(v, &raw.bayes, file, reject);
    let state_redis = raw
        .state
        .backend
        .as_ref()
        .is_some_and(|b| b.value.trim() == "redis");
    if let Some(b) = raw
        .bayes
        .backend
        .as_ref()
        .filter(|b| b.value.trim() == "redis" && !state_redis)
    {
        v.error_at(
            b.referenced,
            "bayes.backend",
            "redis needs state.backend: redis (it uses state.redis)",
        );
    }
    config
}

fn listen(v: &mut Validator, raw: &RawConfig) -> Vec<SocketAddr> {
    let Some(list) = &raw.listen else {
        return vec![SocketAddr::from(([127, 0, 0, 1], 2525))];
    };
    if list.value.is_empty() {
        v.error_at(list.referenced, "listen", "at least one ip:port is needed");
    }
    list.value
        .iter()
        .filter_map(|a| v.socket_addr("listen", a))
        .collect()
}

fn upstream(v: &mut Validator, raw: &RawConfig, hostname: &str) -> UpstreamConfig {
    let address = match &raw.upstream.address {
        Some(a) if valid_host_port(&a.value) => a.value.trim().to_string(),
        Some(a) => {
            v.error_at(
                a.referenced,
                "upstream.address",
                format!("'{}' is not host:port", a.value),
            );
            String::new()
        }
        None => "127.0.0.1:10025".to_string(),
    };
    let tls = upstream_tls::validate(v, &raw.upstream.tls, host_of(&address));
    UpstreamConfig {
        address,
        xclient: raw.upstream.xclient.unwrap_or(true),
        chunking: raw.upstream.chunking.unwrap_or(true),
        helo_name: v.hostname(
            "upstream.helo_name",
            raw.upstream.helo_name.as_ref(),
            hostname,
        ),
        tls,
    }
}

/// The host part of `host:port` (an IPv6 address keeps its brackets).
fn host_of(address: &str) -> &str {
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

fn valid_host_port(text: &str) -> bool {
    let text = text.trim();
    if text.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match text.rsplit_once(':') {
        Some((host, port)) => {
            validate::is_hostname(host) && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

fn dns(v: &mut Validator, raw: &RawConfig) -> DnsConfig {
    let d = &raw.dns;
    DnsConfig {
        nameservers: d
            .nameservers
            .iter()
            .filter_map(|n| v.socket_addr("dns.nameservers", n))
            .collect(),
        timeout: v.duration("dns.timeout", d.timeout.as_ref(), Duration::from_secs(2)),
        attempts: v.number("dns.attempts", d.attempts.as_ref(), 2, (1, 10)) as usize,
        cache_size: v.number(
            "dns.cache_size",
            d.cache_size.as_ref(),
            8192,
            (0, 10_000_000),
        ) as usize,
    }
}

fn limits(v: &mut Validator, raw: &RawConfig) -> Limits {
    let l = &raw.limits;
    let mut n = |key: &str, value: &Option<span::S<u64>>, default: u64, range: (u64, u64)| {
        v.number(&format!("limits.{key}"), value.as_ref(), default, range) as usize
    };
    let mut limits = Limits {
        data_memory_total: 0,
        max_message_size: n(
            "max_message_size",
            &l.max_message_size,
            25 << 20,
            (1024, 1 << 30),
        ),
        max_recipients: n("max_recipients", &l.max_recipients, 100, (1, 100_000)),
        max_connections: n("max_connections", &l.max_connections, 1000, (1, 1_000_000)),
        max_connections_per_ip: n(
            "max_connections_per_ip",
            &l.max_connections_per_ip,
            20,
            (1, 1_000_000),
        ),
        max_command_line: n("max_command_line", &l.max_command_line, 512, (512, 65_536)),
        max_text_line: n("max_text_line", &l.max_text_line, 1000, (1000, 1 << 20)),
        max_bad_commands: n("max_bad_commands", &l.max_bad_commands, 10, (1, 1000)),
    };
    limits.data_memory_total = data_memory_total(v, l, limits.max_message_size);
    limits
}

/// The bound on all DATA buffers together: at least one whole message.
fn data_memory_total(v: &mut Validator, l: &raw::RawLimits, max_message: usize) -> usize {
    let key = "limits.data_memory_total";
    let raw = l.data_memory_total.as_ref();
    let total = v.number(key, raw, 512 << 20, (1024, 1 << 40)) as usize;
    match raw {
        Some(value) if total < max_message => {
            let why = format!("{total} is below limits.max_message_size ({max_message})");
            v.error_at(value.referenced, key, why);
            total.max(max_message)
        }
        _ => total.max(max_message),
    }
}

fn timeouts(v: &mut Validator, raw: &RawConfig) -> Timeouts {
    let t = &raw.timeouts;
    let mut d = |key: &str, value: &Option<span::S<String>>, secs: u64| {
        v.duration(
            &format!("timeouts.{key}"),
            value.as_ref(),
            Duration::from_secs(secs),
        )
    };
    Timeouts {
        idle: d("idle", &t.idle, 300),
        data: d("data", &t.data, 600),
        session: d("session", &t.session, 3600),
        upstream_connect: d("upstream_connect", &t.upstream_connect, 30),
        upstream_command: d("upstream_command", &t.upstream_command, 300),
        upstream_data: d("upstream_data", &t.upstream_data, 600),
        shutdown_drain: d("shutdown_drain", &t.shutdown_drain, 30),
    }
}

fn smtp(v: &mut Validator, raw: &RawConfig, hostname: &str) -> SmtpConfig {
    let choices = [
        ("reject", BareNewline::Reject),
        ("normalize", BareNewline::Normalize),
    ];
    let banner = raw.smtp.banner.as_ref().map(|b| b.value.clone());
    if let Some(b) = raw
        .smtp
        .banner
        .as_ref()
        .filter(|b| b.value.contains(['\r', '\n']))
    {
        v.error_at(b.referenced, "smtp.banner", "must be a single line");
    }
    SmtpConfig {
        bare_newline: v.choice(
            "smtp.bare_newline",
            raw.smtp.bare_newline.as_ref(),
            &choices,
            BareNewline::Reject,
        ),
        banner: banner.unwrap_or_else(|| format!("{hostname} ESMTP")),
    }
}

fn log(v: &mut Validator, raw: &RawConfig) -> LogConfig {
    let formats = [("text", LogFormat::Text), ("json", LogFormat::Json)];
    let levels = [
        ("error", "error"),
        ("warn", "warn"),
        ("info", "info"),
        ("debug", "debug"),
        ("trace", "trace"),
    ];
    LogConfig {
        format: v.choice(
            "log.format",
            raw.log.format.as_ref(),
            &formats,
            LogFormat::Text,
        ),
        level: v
            .choice("log.level", raw.log.level.as_ref(), &levels, "info")
            .to_string(),
    }
}

fn scoring(v: &mut Validator, raw: &RawConfig) -> Scoring {
    let tag = raw.scoring.tag_score.as_ref().map_or(5.0, |s| s.value);
    let reject = raw.scoring.reject_score.as_ref().map_or(10.0, |s| s.value);
    if let Some(s) = raw.scoring.reject_score.as_ref().filter(|_| reject < tag) {
        v.error_at(
            s.referenced,
            "scoring.reject_score",
            format!("{reject} is below tag_score {tag}"),
        );
    }
    Scoring {
        tag_score: tag,
        reject_score: reject,
    }
}

#[cfg(test)]
mod tests;

/// Every error a config text gives, as `(line, key, message)`: what the
/// section tests assert on.
#[cfg(test)]
pub(crate) fn errors_in(yaml: &str) -> Vec<(u64, String, String)> {
    match Config::from_yaml(yaml, Path::new("t.yaml")) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .0
            .into_iter()
            .map(|e| (e.line, e.key, e.message))
            .collect(),
    }
}
