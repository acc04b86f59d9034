//! The end-of-DATA checks on the message itself: the From header (RFC 5322
//! wants exactly one), every DKIM signature, and the ARC chain.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mail_auth::{AuthenticatedMessage, DkimResult, Parameters};
use mail_parser::HeaderForm;

use super::headers::{header_fields, HeaderField};
use super::keys::{DnsKeys, Keys};
use super::{arc_rules, arc_verify, count, dkim_verify};
use crate::checks::{Check, CheckContext, CheckError};
use crate::config::auth::{AuthConfig, Mode, TempErrorAction};
use crate::dns::Dns;
use crate::judgement::reply::{canned, Reply};
use crate::judgement::{AuthResult, Outcome, Stage};
use crate::metrics::Metrics;

const DATA: &[Stage] = &[Stage::Data];

/// Exactly one From field, naming addresses of exactly one domain.
pub struct FromHeaderCheck {
    config: Arc<AuthConfig>,
    metrics: Metrics,
}

impl FromHeaderCheck {
    pub fn new(config: Arc<AuthConfig>, metrics: &Metrics) -> Self {
        FromHeaderCheck {
            config,
            metrics: metrics.clone(),
        }
    }
}

/// The From domain, or why there is no single one.
#[cfg(test)]
fn from_domain(message: &[u8]) -> Result<String, &'static str> {
    from_domain_of(message, &header_fields(message))
}

/// [`from_domain`] with the header section already split.
fn from_domain_of(message: &[u8], fields: &[HeaderField<'_>]) -> Result<String, &'static str> {
    let mut from = fields.iter().filter(|f| f.is("From"));
    let field = match (from.next(), from.next()) {
        (None, _) => return Err("No From header"),
        (Some(field), None) => field,
        (Some(_), Some(_)) => return Err("Several From headers"),
    };
    // The From field's value alone, parsed as an address list by
    // mail-parser (what mail-auth's whole-message parse did for it).
    let value = &message[field.range.start + field.name.len() + 1..field.range.end];
    let parsed = HeaderForm::Addresses.parse(value);
    let list = parsed
        .value()
        .as_address()
        .ok_or("Unparsable From header")?;
    let addresses: Vec<String> = list
        .mailboxes()
        .filter_map(|mailbox| mailbox.address().map(str::to_lowercase))
        .collect();
    let domains: BTreeSet<&str> = addresses
        .iter()
        .map(|a| a.rsplit_once('@').map_or("", |(_, d)| d.trim()))
        .collect();
    let mut domains = domains.into_iter();
    match (domains.next(), domains.next()) {
        (Some(domain), None) if valid_domain(domain) => Ok(domain.to_string()),
        (Some(_), Some(_)) => Err("From header with several domains"),
        _ => Err("Unparsable From header"),
    }
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| !label.is_empty())
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

#[async_trait]
impl Check for FromHeaderCheck {
    fn name(&self) -> &'static str {
        "from_header"
    }

    fn stages(&self) -> &'static [Stage] {
        DATA
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let message = ctx.raw_message().unwrap_or_default();
        let why = match from_domain_of(message, ctx.header_fields()) {
            Ok(domain) => {
                ctx.facts.auth.from_domain = Some(domain);
                return Ok(Vec::new());
            }
            Err(why) => why,
        };
        self.metrics.auth_result("from_header", "fail");
        let reason = why.to_string();
        Ok(match self.config.from_header {
            Mode::Enforce => vec![Outcome::Reject {
                reply: canned::bad_from_header(why),
                reason,
            }],
            Mode::Tag => score(self.config.dmarc.fail_score, reason),
            Mode::Off => Vec::new(),
        })
    }
}

/// Seconds since the epoch; the DKIM check takes its clock as a function
/// so that tests can judge `x=` at a time of their choosing.
pub type Clock = fn() -> u64;

fn system_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every DKIM signature (RFC 6376), RSA and Ed25519.
pub struct DkimCheck {
    config: Arc<AuthConfig>,
    dns: Dns,
    keys: Arc<Keys>,
    clock: Clock,
}

impl DkimCheck {
    pub fn new(config: Arc<AuthConfig>, dns: Dns, keys: Arc<Keys>) -> Self {
        DkimCheck {
            config,
            dns,
            keys,
            clock: system_seconds,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn outcomes(&self, result: AuthResult) -> Vec<Outcome> {
        let dkim = &self.config.dkim;
        let reason = format!("dkim={}", result.as_str());
        let reply = match result {
            AuthResult::Fail | AuthResult::PermError => canned::dkim_rejected(),
            AuthResult::TempError => canned::auth_dns_tempfail("DKIM", "the signing domain"),
            _ => return Vec::new(),
        };
        refuse_or_score(&self.config, dkim.mode, dkim.fail_score, reply, reason)
    }
}

#[async_trait]
impl Check for DkimCheck {
    fn name(&self) -> &'static str {
        "dkim"
    }

    fn stages(&self) -> &'static [Stage] {
        DATA
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let message = ctx.raw_message().unwrap_or_default();
        let fields = ctx.header_fields();
        let now = (self.clock)();
        let keys = DnsKeys {
            dns: &self.dns,
            keys: &self.keys,
        };
        ctx.facts.auth.dkim = dkim_verify::verify_all(&keys, message, fields, now).await;
        let result = ctx.facts.auth.dkim_result();
        count(self.dns.metrics(), "dkim", result);
        Ok(self.outcomes(result))
    }
}

/// The ARC chain (RFC 8617): none, pass or fail.
pub struct ArcCheck {
    config: Arc<AuthConfig>,
    dns: Dns,
    keys: Arc<Keys>,
}

impl ArcCheck {
    pub fn new(config: Arc<AuthConfig>, dns: Dns, keys: Arc<Keys>) -> Self {
        ArcCheck { config, dns, keys }
    }

    /// The chain validation result of a whole message: our rules
    /// ([`arc_rules`]) first, then `mail-auth`'s chain validation, or ours
    /// ([`arc_verify`]) for the signatures `mail-auth` reads differently.
    pub async fn evaluate(&self, message: &[u8]) -> AuthResult {
        self.evaluate_split(message, &header_fields(message)).await
    }

    async fn evaluate_split(&self, message: &[u8], fields: &[HeaderField<'_>]) -> AuthResult {
        if !arc_rules::has_arc_headers(fields) {
            return AuthResult::None;
        }
        if arc_rules::structural_failure(fields).is_some() {
            return AuthResult::Fail;
        }
        if arc_rules::lenient_signature(fields) {
            return arc_verify::validate(&self.dns, &self.keys, message).await;
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return AuthResult::Fail;
        };
        let parameters = Parameters::new(&parsed).with_cache(self.dns.record_cache());
        match arc_word(
            self.dns
                .authenticator()
                .verify_arc(parameters)
                .await
                .result(),
        ) {
            // ARC headers without a complete set: a broken chain.
            AuthResult::None => AuthResult::Fail,
            other => other,
        }
    }
}

/// ARC knows only none, pass and fail; a chain that cannot be evaluated
/// (broken, malformed, bad key) is a failed one.
pub fn arc_word(result: &DkimResult) -> AuthResult {
    match result {
        DkimResult::Pass => AuthResult::Pass,
        DkimResult::None => AuthResult::None,
        DkimResult::TempError(_) => AuthResult::TempError,
        _ => AuthResult::Fail,
    }
}

#[async_trait]
impl Check for ArcCheck {
    fn name(&self) -> &'static str {
        "arc"
    }

    fn stages(&self) -> &'static [Stage] {
        DATA
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let message = ctx.raw_message().unwrap_or_default();
        let result = self.evaluate_split(message, ctx.header_fields()).await;
        ctx.facts.auth.arc = Some(result);
        count(self.dns.metrics(), "arc", result);
        let arc = &self.config.arc;
        let reason = format!("arc={}", result.as_str());
        let reply = match result {
            AuthResult::Fail => canned::arc_rejected(),
            AuthResult::TempError => canned::auth_dns_tempfail("ARC", "the sealing domain"),
            _ => return Ok(Vec::new()),
        };
        Ok(refuse_or_score(
            &self.config,
            arc.mode,
            arc.fail_score,
            reply,
            reason,
        ))
    }
}

/// Under `enforce`, a permanent reply refuses and a temporary one
/// tempfails (unless temporary errors are to be accepted); under `tag`, a
/// permanent failure scores.
fn refuse_or_score(
    config: &AuthConfig,
    mode: Mode,
    fail_score: f64,
    reply: Reply,
    reason: String,
) -> Vec<Outcome> {
    let temporary = reply.is_transient();
    match (mode, temporary) {
        (Mode::Enforce, false) => vec![Outcome::Reject { reply, reason }],
        (Mode::Enforce, true) if config.temperror == TempErrorAction::Tempfail => {
            vec![Outcome::Tempfail { reply, reason }]
        }
        (Mode::Tag, false) => score(fail_score, reason),
        _ => Vec::new(),
    }
}

fn score(score: f64, reason: String) -> Vec<Outcome> {
    match score == 0.0 {
        true => Vec::new(),
        false => vec![Outcome::AddScore { score, reason }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_header_table() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("From: a@Example.COM\r\n\r\nx", Ok("example.com")),
            ("From: \"A\" <a@b.example>\r\n\r\nx", Ok("b.example")),
            ("From: a@x.example, b@x.example\r\n\r\nx", Ok("x.example")),
            ("From: \"Doe, J\" <j@d.example>\r\n\r\nx", Ok("d.example")),
            (
                "From: A\r\n <a@Fold.example>\r\nTo: b@c\r\n\r\nx",
                Ok("fold.example"),
            ),
            (
                "From: =?utf-8?q?J=C3=B6rg?= <j@q.example>\r\n\r\nx",
                Ok("q.example"),
            ),
            (
                "From: undisclosed:;\r\n\r\nx",
                Err("Unparsable From header"),
            ),
            ("To: a@b.example\r\n\r\nx", Err("No From header")),
            (
                "From: a@b.example\r\nFrom: c@d.example\r\n\r\nx",
                Err("Several From headers"),
            ),
            (
                "From: a@x.example, b@y.example\r\n\r\nx",
                Err("From header with several domains"),
            ),
            ("From: nobody\r\n\r\nx", Err("Unparsable From header")),
            ("From: a@\r\n\r\nx", Err("Unparsable From header")),
            ("From: a@b..c\r\n\r\nx", Err("Unparsable From header")),
        ];
        for (message, want) in cases {
            let got = from_domain(message.as_bytes());
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{message:?}");
        }
    }
}
