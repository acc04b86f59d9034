//! What sender authentication found: SPF, DKIM, ARC and DMARC results,
//! which the rules test and the Authentication-Results header reports.

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

/// A DMARC policy (`p=`, `sp=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }
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
