//! Sender authentication: who a message is really from.
//!
//! SPF runs at MAIL FROM (and optionally HELO); at the end of DATA the From
//! header is checked, every DKIM signature and the ARC chain are verified,
//! DMARC (RFC 7489) is evaluated from those results, and an
//! Authentication-Results header (RFC 8601) is added. Results go into
//! [`AuthFacts`] so that later checks (the rules) can test them.
//!
//! The verifiers for SPF, DKIM and ARC are `mail-auth`'s, on the process's
//! shared resolver. DMARC is ours: `mail-auth` 0.15 implements the DMARCbis
//! tree walk and drops `pct`, while RFC 7489 wants the public suffix list
//! and `pct`.

mod arc_rules;
mod arc_verify;
mod canon;
mod dmarc;
mod headers;
mod message;
mod results;
mod spf;

use std::sync::Arc;

use super::Check;
use crate::config::auth::AuthConfig;
use crate::dns::Dns;
use crate::metrics::Metrics;

pub use arc_verify::validate as validate_arc_chain;
pub use dmarc::{org_domain, DmarcCheck, DmarcRecord, Policy};
pub use headers::{header_fields, HeaderField};
pub use message::{ArcCheck, DkimCheck, FromHeaderCheck};
pub use results::AuthResultsCheck;
pub use spf::SpfCheck;

/// A result word of RFC 8601 (and RFC 7208 for SPF).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthResult {
    #[default]
    None,
    Pass,
    Fail,
    SoftFail,
    Neutral,
    TempError,
    PermError,
}

impl AuthResult {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthResult::None => "none",
            AuthResult::Pass => "pass",
            AuthResult::Fail => "fail",
            AuthResult::SoftFail => "softfail",
            AuthResult::Neutral => "neutral",
            AuthResult::TempError => "temperror",
            AuthResult::PermError => "permerror",
        }
    }
}

/// Which identity SPF checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfIdentity {
    MailFrom,
    Helo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfFact {
    pub result: AuthResult,
    pub identity: SpfIdentity,
    /// The domain whose policy was checked (DMARC aligns it with From).
    pub domain: String,
    /// What the Authentication-Results header names: the MAIL FROM
    /// address, or the HELO name.
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimFact {
    pub result: AuthResult,
    pub domain: String,
    pub selector: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcFact {
    pub result: AuthResult,
    /// The RFC5322.From domain.
    pub domain: String,
    /// The published policy that applies to `domain` (`None` without a record).
    pub policy: Option<Policy>,
    /// The policy after `pct` sampling: what was acted on.
    pub applied: Option<Policy>,
}

/// What authentication found, for later checks and for the log.
#[derive(Debug, Clone, Default)]
pub struct AuthFacts {
    pub helo_spf: Option<SpfFact>,
    pub spf: Option<SpfFact>,
    /// The one RFC5322.From domain, once the From header is known good.
    pub from_domain: Option<String>,
    pub dkim: Vec<DkimFact>,
    /// `None` until ARC was evaluated.
    pub arc: Option<AuthResult>,
    pub dmarc: Option<DmarcFact>,
}

impl AuthFacts {
    pub fn spf_result(&self) -> AuthResult {
        self.spf.as_ref().map_or(AuthResult::None, |s| s.result)
    }

    /// One word for all signatures: the best one wins (pass, then
    /// temperror, fail, permerror, neutral).
    pub fn dkim_result(&self) -> AuthResult {
        let order = [
            AuthResult::Pass,
            AuthResult::TempError,
            AuthResult::Fail,
            AuthResult::PermError,
            AuthResult::Neutral,
        ];
        order
            .into_iter()
            .find(|r| self.dkim.iter().any(|d| d.result == *r))
            .unwrap_or(AuthResult::None)
    }

    pub fn arc_result(&self) -> AuthResult {
        self.arc.unwrap_or(AuthResult::None)
    }

    pub fn dmarc_result(&self) -> AuthResult {
        self.dmarc.as_ref().map_or(AuthResult::None, |d| d.result)
    }

    /// Domains of the DKIM signatures that verified.
    pub fn dkim_pass_domains(&self) -> impl Iterator<Item = &str> {
        self.dkim
            .iter()
            .filter(|d| d.result == AuthResult::Pass)
            .map(|d| d.domain.as_str())
    }
}

/// The authentication checks the configuration turns on, in the order
/// their results are needed: SPF, From, DKIM, ARC, DMARC, then the header.
pub fn checks(config: &AuthConfig, hostname: &str, dns: &Dns) -> Vec<Arc<dyn Check>> {
    let config = Arc::new(config.clone());
    let mut out: Vec<Arc<dyn Check>> = Vec::new();
    if config.spf.mode.is_on() {
        out.push(Arc::new(SpfCheck::new(
            config.clone(),
            hostname,
            dns.clone(),
        )));
    }
    if config.from_header.is_on() || config.dmarc.mode.is_on() {
        out.push(Arc::new(FromHeaderCheck::new(
            config.clone(),
            dns.metrics(),
        )));
    }
    if config.dkim.mode.is_on() {
        out.push(Arc::new(DkimCheck::new(config.clone(), dns.clone())));
    }
    if config.arc.mode.is_on() {
        out.push(Arc::new(ArcCheck::new(config.clone(), dns.clone())));
    }
    if config.dmarc.mode.is_on() {
        out.push(Arc::new(DmarcCheck::new(config.clone(), dns.clone())));
    }
    out.push(Arc::new(AuthResultsCheck::new(config)));
    out
}

/// Counts one result in `spamgate_auth_results_total`.
fn count(metrics: &Metrics, method: &'static str, result: AuthResult) {
    metrics.auth_result(method, result.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dkim(result: AuthResult) -> DkimFact {
        DkimFact {
            result,
            domain: "example.com".into(),
            selector: "s".into(),
        }
    }

    #[test]
    fn dkim_summary_prefers_pass() {
        let cases = [
            (vec![], AuthResult::None),
            (vec![AuthResult::Fail], AuthResult::Fail),
            (vec![AuthResult::Fail, AuthResult::Pass], AuthResult::Pass),
            (
                vec![AuthResult::Neutral, AuthResult::TempError],
                AuthResult::TempError,
            ),
            (vec![AuthResult::Neutral], AuthResult::Neutral),
        ];
        for (results, want) in cases {
            let facts = AuthFacts {
                dkim: results.iter().map(|r| dkim(*r)).collect(),
                ..AuthFacts::default()
            };
            assert_eq!(facts.dkim_result(), want, "{results:?}");
        }
    }
}
