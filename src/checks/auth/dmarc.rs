//! DMARC (RFC 7489): policy discovery through the public suffix list,
//! identifier alignment, `p`/`sp`/`pct`, and what a failure leads to —
//! plus the operator's protected domains, which need an aligned pass with
//! or without a published record.

use std::sync::Arc;

use async_trait::async_trait;

use super::count;
use crate::checks::{Check, CheckContext, CheckError};
use crate::config::auth::{AuthConfig, Mode, Quarantine, TempErrorAction};
use crate::dns::{Dns, DnsError};
use crate::judgement::reply::canned;
use crate::judgement::{AuthFacts, AuthResult, DmarcFact, Outcome, Policy, Stage};

impl Policy {
    fn parse(text: &str) -> Option<Policy> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// The next milder policy: what applies to mail outside the `pct` sample.
    fn milder(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

/// A parsed `v=DMARC1` record: the tags spamgate acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecord {
    pub p: Policy,
    pub sp: Option<Policy>,
    pub pct: u8,
    pub strict_dkim: bool,
    pub strict_spf: bool,
}

impl DmarcRecord {
    /// Parses a record (RFC 7489 6.3). `None` for a text that is not a
    /// DMARC record, or one without a usable policy (6.6.3: a record
    /// with a bad `p` still counts as `p=none` when it asks for reports).
    pub fn parse(text: &str) -> Option<DmarcRecord> {
        let mut tags = text.split(';').map(|t| t.trim()).filter(|t| !t.is_empty());
        let version = tags.next()?.split_once('=')?;
        if version.0.trim() != "v" || version.1.trim() != "DMARC1" {
            return None;
        }
        let mut record = DmarcRecord {
            p: Policy::None,
            sp: None,
            pct: 100,
            strict_dkim: false,
            strict_spf: false,
        };
        let (mut p, mut rua) = (None, false);
        for (tag, value) in tags.filter_map(|t| t.split_once('=')) {
            let value = value.trim();
            match tag.trim() {
                "p" => p = Policy::parse(value),
                "sp" => record.sp = Policy::parse(value),
                "pct" => record.pct = value.parse().ok().filter(|n| *n <= 100).unwrap_or(100),
                "adkim" => record.strict_dkim = value.eq_ignore_ascii_case("s"),
                "aspf" => record.strict_spf = value.eq_ignore_ascii_case("s"),
                "rua" => rua = true,
                _ => {}
            }
        }
        record.p = p.or(rua.then_some(Policy::None))?;
        Some(record)
    }
}

/// The organizational domain (RFC 7489 3.2): the public suffix plus one
/// label; a name that is itself a public suffix is its own.
pub fn org_domain(domain: &str) -> String {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    match psl::domain_str(&domain) {
        Some(org) => org.to_string(),
        None => domain,
    }
}

fn aligned(identifier: &str, from: &str, strict: bool) -> bool {
    let identifier = identifier.trim_end_matches('.');
    match strict {
        true => identifier.eq_ignore_ascii_case(from),
        false => org_domain(identifier) == org_domain(from),
    }
}

/// What the authenticated identifiers say about the From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    Pass,
    /// No aligned pass, but an aligned identifier could not be checked.
    TempError,
    Fail,
}

/// RFC 7489 4.2: an aligned SPF pass or an aligned DKIM pass.
pub fn alignment(facts: &AuthFacts, from: &str, strict_spf: bool, strict_dkim: bool) -> Alignment {
    let spf = facts
        .spf
        .as_ref()
        .filter(|s| aligned(&s.domain, from, strict_spf));
    let dkim = facts
        .dkim
        .iter()
        .filter(|d| aligned(&d.domain, from, strict_dkim));
    let results: Vec<AuthResult> = spf
        .map(|s| s.result)
        .into_iter()
        .chain(dkim.map(|d| d.result))
        .collect();
    if results.contains(&AuthResult::Pass) {
        Alignment::Pass
    } else if results.contains(&AuthResult::TempError) {
        Alignment::TempError
    } else {
        Alignment::Fail
    }
}

/// The policy record for `from`, and whether it was found at the
/// organizational domain rather than at `from` itself (RFC 7489 6.6.3).
pub async fn discover(dns: &Dns, from: &str) -> Result<Option<(DmarcRecord, bool)>, DnsError> {
    if let Some(record) = record_at(dns, from).await? {
        return Ok(Some((record, false)));
    }
    let org = org_domain(from);
    if org == from {
        return Ok(None);
    }
    Ok(record_at(dns, &org).await?.map(|r| (r, true)))
}

/// The one DMARC record at `_dmarc.<domain>`: none when there is none, or
/// several (policy discovery then ends, 6.6.3 step 3).
async fn record_at(dns: &Dns, domain: &str) -> Result<Option<DmarcRecord>, DnsError> {
    let texts = match dns.txt(&format!("_dmarc.{domain}")).await {
        Ok(texts) => texts,
        Err(e) if e.is_temporary() => return Err(e),
        Err(_) => return Ok(None),
    };
    let mut records = texts.iter().filter(|t| is_dmarc(t));
    match (records.next(), records.next()) {
        (Some(one), None) => Ok(DmarcRecord::parse(one)),
        _ => Ok(None),
    }
}

fn is_dmarc(text: &str) -> bool {
    let text = text.trim_start();
    text.strip_prefix("v")
        .map(|r| r.trim_start())
        .and_then(|r| r.strip_prefix('='))
        .map(|r| r.trim_start())
        .is_some_and(|r| {
            r.starts_with("DMARC1") && !r[6..].starts_with(|c: char| c.is_alphanumeric())
        })
}

/// The DMARC verdict, and the operator's protected domains.
pub struct DmarcCheck {
    config: Arc<AuthConfig>,
    dns: Dns,
}

/// The evaluation of one message, before the configuration speaks.
struct Evaluation {
    fact: DmarcFact,
    /// The policy lookup itself failed: the policy is unknown.
    lookup_failed: bool,
    /// Relaxed alignment, for protected domains without a record.
    protected: Option<Alignment>,
}

impl DmarcCheck {
    pub fn new(config: Arc<AuthConfig>, dns: Dns) -> Self {
        DmarcCheck { config, dns }
    }

    fn is_protected(&self, from: &str) -> bool {
        self.config
            .protected_domains
            .iter()
            .any(|p| from == p || from.ends_with(&format!(".{p}")))
    }

    async fn evaluate(&self, facts: &AuthFacts, from: &str) -> Evaluation {
        let protected = self
            .is_protected(from)
            .then(|| alignment(facts, from, false, false));
        let mut fact = DmarcFact {
            result: AuthResult::None,
            domain: from.to_string(),
            policy: None,
            applied: None,
        };
        let (record, at_org) = match discover(&self.dns, from).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Evaluation {
                    fact,
                    lookup_failed: false,
                    protected,
                }
            }
            Err(_) => {
                fact.result = AuthResult::TempError;
                return Evaluation {
                    fact,
                    lookup_failed: true,
                    protected,
                };
            }
        };
        let policy = match at_org {
            true => record.sp.unwrap_or(record.p),
            false => record.p,
        };
        fact.policy = Some(policy);
        fact.result = match alignment(facts, from, record.strict_spf, record.strict_dkim) {
            Alignment::Pass => AuthResult::Pass,
            Alignment::TempError => AuthResult::TempError,
            Alignment::Fail => AuthResult::Fail,
        };
        fact.applied = Some(sampled(policy, record.pct));
        Evaluation {
            fact,
            lookup_failed: false,
            protected,
        }
    }

    /// What the published policy leads to.
    fn policy_outcomes(&self, eval: &Evaluation) -> Vec<Outcome> {
        let dmarc = &self.config.dmarc;
        let fact = &eval.fact;
        let applied = fact.applied.unwrap_or(Policy::None);
        let reason = format!(
            "dmarc={} policy={} domain={}",
            fact.result.as_str(),
            applied.as_str(),
            fact.domain
        );
        let enforce = dmarc.mode == Mode::Enforce;
        let refuses = applied == Policy::Reject
            || (applied == Policy::Quarantine && dmarc.quarantine == Quarantine::Reject);
        match fact.result {
            AuthResult::Fail if enforce && refuses => vec![Outcome::Reject {
                reply: canned::dmarc_rejected(&fact.domain),
                reason,
            }],
            AuthResult::Fail if applied == Policy::None => score(dmarc.fail_score, reason),
            AuthResult::Fail => score(dmarc.quarantine_score, reason),
            AuthResult::TempError if enforce && (eval.lookup_failed || refuses) => {
                self.tempfail(&fact.domain, reason)
            }
            _ => Vec::new(),
        }
    }

    /// A protected domain needs an aligned pass, with or without DMARC.
    fn protected_outcomes(&self, eval: &Evaluation) -> Vec<Outcome> {
        let Some(alignment) = eval.protected else {
            return Vec::new();
        };
        let domain = &eval.fact.domain;
        let reason = format!("protected domain {domain} not authenticated");
        let enforce = self.config.dmarc.mode == Mode::Enforce;
        match alignment {
            Alignment::Pass => Vec::new(),
            Alignment::TempError if enforce => self.tempfail(domain, reason),
            _ if enforce => vec![Outcome::Reject {
                reply: canned::unauthenticated_protected(domain),
                reason,
            }],
            _ => score(self.config.dmarc.quarantine_score, reason),
        }
    }

    fn tempfail(&self, domain: &str, reason: String) -> Vec<Outcome> {
        match self.config.temperror {
            TempErrorAction::Tempfail => vec![Outcome::Tempfail {
                reply: canned::auth_dns_tempfail("DMARC", domain),
                reason,
            }],
            TempErrorAction::Accept => Vec::new(),
        }
    }
}

/// RFC 7489 6.6.4: outside the `pct` sample the next milder policy applies.
fn sampled(policy: Policy, pct: u8) -> Policy {
    match pct >= 100 || fastrand::u8(0..100) < pct {
        true => policy,
        false => policy.milder(),
    }
}

fn score(score: f64, reason: String) -> Vec<Outcome> {
    match score == 0.0 {
        true => Vec::new(),
        false => vec![Outcome::AddScore { score, reason }],
    }
}

#[async_trait]
impl Check for DmarcCheck {
    fn name(&self) -> &'static str {
        "dmarc"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Data]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let Some(from) = ctx.facts.auth.from_domain.clone() else {
            return Ok(Vec::new());
        };
        let eval = self.evaluate(&ctx.facts.auth, &from).await;
        count(self.dns.metrics(), "dmarc", eval.fact.result);
        let mut outcomes = self.protected_outcomes(&eval);
        if outcomes.is_empty() {
            outcomes = self.policy_outcomes(&eval);
        }
        ctx.facts.auth.dmarc = Some(eval.fact);
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judgement::{DkimFact, SpfFact, SpfIdentity};

    #[test]
    fn record_table() {
        let r = |p, sp, pct, sd, ss| {
            Some(DmarcRecord {
                p,
                sp,
                pct,
                strict_dkim: sd,
                strict_spf: ss,
            })
        };
        let cases: &[(&str, Option<DmarcRecord>)] = &[
            (
                "v=DMARC1; p=reject",
                r(Policy::Reject, None, 100, false, false),
            ),
            (
                "v=DMARC1;p=quarantine;sp=none;pct=20;adkim=s;aspf=s",
                r(Policy::Quarantine, Some(Policy::None), 20, true, true),
            ),
            (
                "v=DMARC1; p=none; pct=500",
                r(Policy::None, None, 100, false, false),
            ),
            (
                "v=DMARC1; p=bogus; rua=mailto:a@b",
                r(Policy::None, None, 100, false, false),
            ),
            ("v=DMARC1; p=bogus", None),
            ("v=DMARC1", None),
            ("p=reject; v=DMARC1", None),
            ("v=spf1 -all", None),
            ("v = DMARC1 ; P=reject", None),
            (
                "v = DMARC1 ; p=REJECT",
                r(Policy::Reject, None, 100, false, false),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&DmarcRecord::parse(text), want, "{text}");
        }
    }

    #[test]
    fn dmarc_record_detection() {
        for (text, want) in [
            ("v=DMARC1; p=none", true),
            ("v = DMARC1;p=none", true),
            ("v=DMARC1", true),
            ("v=DMARC10; p=none", false),
            ("v=spf1", false),
            ("", false),
        ] {
            assert_eq!(is_dmarc(text), want, "{text}");
        }
    }

    #[test]
    fn org_domains_from_the_public_suffix_list() {
        for (name, org) in [
            ("mail.example.com", "example.com"),
            ("example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("Foo.Example.COM.", "example.com"),
            ("co.uk", "co.uk"),
        ] {
            assert_eq!(org_domain(name), org, "{name}");
        }
    }

    fn facts(spf: Option<(&str, AuthResult)>, dkim: &[(&str, AuthResult)]) -> AuthFacts {
        AuthFacts {
            spf: spf.map(|(domain, result)| SpfFact {
                result,
                identity: SpfIdentity::MailFrom,
                domain: domain.into(),
                subject: format!("x@{domain}"),
            }),
            dkim: dkim
                .iter()
                .map(|(domain, result)| DkimFact {
                    result: *result,
                    domain: domain.to_string(),
                    selector: "s".into(),
                })
                .collect(),
            ..AuthFacts::default()
        }
    }

    #[test]
    fn alignment_table() {
        use AuthResult::*;
        let cases: &[(AuthFacts, bool, Alignment)] = &[
            (
                facts(Some(("example.com", Pass)), &[]),
                false,
                Alignment::Pass,
            ),
            (
                facts(Some(("bounce.example.com", Pass)), &[]),
                false,
                Alignment::Pass,
            ),
            (
                facts(Some(("bounce.example.com", Pass)), &[]),
                true,
                Alignment::Fail,
            ),
            (
                facts(Some(("other.org", Pass)), &[]),
                false,
                Alignment::Fail,
            ),
            (
                facts(Option::None, &[("example.com", Pass)]),
                true,
                Alignment::Pass,
            ),
            (
                facts(Option::None, &[("other.org", Pass), ("example.com", Fail)]),
                false,
                Alignment::Fail,
            ),
            (
                facts(Some(("example.com", TempError)), &[]),
                false,
                Alignment::TempError,
            ),
            (
                facts(Some(("example.com", TempError)), &[("example.com", Pass)]),
                false,
                Alignment::Pass,
            ),
            (
                facts(Some(("example.com", Fail)), &[]),
                false,
                Alignment::Fail,
            ),
        ];
        for (i, (facts, strict, want)) in cases.iter().enumerate() {
            assert_eq!(
                alignment(facts, "example.com", *strict, *strict),
                *want,
                "case {i}"
            );
        }
    }

    #[test]
    fn pct_sampling_bounds() {
        for _ in 0..100 {
            assert_eq!(sampled(Policy::Reject, 100), Policy::Reject);
            assert_eq!(sampled(Policy::Reject, 0), Policy::Quarantine);
            assert_eq!(sampled(Policy::Quarantine, 0), Policy::None);
        }
        let sampled_in = (0..2000)
            .filter(|_| sampled(Policy::Reject, 50) == Policy::Reject)
            .count();
        assert!((700..1300).contains(&sampled_in), "{sampled_in} of 2000");
    }
}
