//! The Authentication-Results header (RFC 8601) that tells the upstream
//! what we found, and the removal of any such header that already claims
//! our authserv-id: only we may speak in our name (RFC 8601 5).

use std::sync::Arc;

use async_trait::async_trait;

use crate::checks::{Check, CheckContext, CheckError};
use crate::config::auth::AuthConfig;
use crate::judgement::{AuthFacts, Outcome, SpfIdentity, Stage};

pub const HEADER: &str = "Authentication-Results";

pub struct AuthResultsCheck {
    config: Arc<AuthConfig>,
}

impl AuthResultsCheck {
    pub fn new(config: Arc<AuthConfig>) -> Self {
        AuthResultsCheck { config }
    }
}

/// The header value: `authserv-id; method=result properties; ...`.
pub fn header_value(authserv_id: &str, facts: &AuthFacts, config: &AuthConfig) -> String {
    let mut parts = vec![authserv_id.to_string()];
    if config.spf.mode.is_on() {
        parts.push(spf_part(facts));
    }
    if config.dkim.mode.is_on() {
        parts.extend(dkim_parts(facts));
    }
    if config.arc.mode.is_on() {
        parts.push(format!("arc={}", facts.arc_result().as_str()));
    }
    if let Some(dmarc) = facts.dmarc.as_ref().filter(|_| config.dmarc.mode.is_on()) {
        let policy = dmarc
            .policy
            .map(|p| format!(" (p={})", p.as_str()))
            .unwrap_or_default();
        parts.push(format!(
            "dmarc={}{policy} header.from={}",
            dmarc.result.as_str(),
            value(&dmarc.domain)
        ));
    }
    if parts.len() == 1 {
        parts.push("none".to_string());
    }
    parts.join("; ")
}

fn spf_part(facts: &AuthFacts) -> String {
    match &facts.spf {
        Some(spf) => {
            let property = match spf.identity {
                SpfIdentity::MailFrom => "smtp.mailfrom",
                SpfIdentity::Helo => "smtp.helo",
            };
            format!(
                "spf={} {property}={}",
                spf.result.as_str(),
                value(&spf.subject)
            )
        }
        None => "spf=none".to_string(),
    }
}

fn dkim_parts(facts: &AuthFacts) -> Vec<String> {
    if facts.dkim.is_empty() {
        return vec!["dkim=none".to_string()];
    }
    facts
        .dkim
        .iter()
        .map(|d| {
            format!(
                "dkim={} header.d={} header.s={}",
                d.result.as_str(),
                value(&d.domain),
                value(&d.selector)
            )
        })
        .collect()
}

/// A property value: a plain token when it is one, else a quoted string
/// (RFC 8601 2.2), so that no value can end the resinfo early.
fn value(text: &str) -> String {
    let token = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@.-_+=!#$%&'*/?^`{|}~".contains(&b));
    if token {
        return text.to_string();
    }
    let escaped: String = text
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The authserv-id an Authentication-Results value names: its first
/// token, after any comments (RFC 8601 2.2).
pub fn authserv_id(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut depth = 0usize;
    let mut id = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ';' => break,
            c if c.is_whitespace() && !id.is_empty() => break,
            c if c.is_whitespace() => {}
            c => id.push(c),
        }
    }
    id
}

#[async_trait]
impl Check for AuthResultsCheck {
    fn name(&self) -> &'static str {
        "auth_results"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Data]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let ours = &self.config.authserv_id;
        let mut outcomes: Vec<Outcome> = ctx
            .header_fields()
            .iter()
            .filter(|f| f.is(HEADER) && authserv_id(f.value).eq_ignore_ascii_case(ours))
            .map(|f| Outcome::RemoveHeader {
                range: f.range.clone(),
            })
            .collect();
        outcomes.push(Outcome::AddHeader {
            name: HEADER.to_string(),
            value: header_value(ours, &ctx.facts.auth, &self.config),
        });
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::headers::header_fields;
    use super::*;
    use crate::config::Config;
    use crate::judgement::{AuthResult, DkimFact, DmarcFact, Policy, SpfFact};

    #[test]
    fn removed_headers_are_not_forwarded() {
        use crate::judgement::Judgement;
        let message = b"A-R: ours\r\nX: 1\r\nA-R: ours\r\n more\r\n\r\nbody";
        let fields = header_fields(message);
        let judgement = Judgement {
            removed: vec![fields[2].range.clone(), fields[0].range.clone()],
            ..Judgement::default()
        };
        assert_eq!(&*judgement.forwarded(message), b"X: 1\r\n\r\nbody");
        let untouched = Judgement::default();
        assert!(matches!(
            untouched.forwarded(message),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn authserv_id_table() {
        for (value, id) in [
            (" mx.example.net; spf=pass", "mx.example.net"),
            (" (comment) MX.example.net 1; none", "MX.example.net"),
            ("mx.example.net;dkim=pass", "mx.example.net"),
            (" (a (nested) one)\r\n mx; none", "mx"),
            ("", ""),
        ] {
            assert_eq!(authserv_id(value.as_bytes()), id, "{value:?}");
        }
    }

    #[test]
    fn header_names_every_method() {
        let config = Config::default().auth;
        let facts = AuthFacts {
            spf: Some(SpfFact {
                result: AuthResult::Pass,
                identity: SpfIdentity::MailFrom,
                domain: "example.com".into(),
                subject: "a@example.com".into(),
            }),
            dkim: vec![DkimFact {
                result: AuthResult::Fail,
                domain: "example.com".into(),
                selector: "sel;x".into(),
            }],
            arc: Some(AuthResult::None),
            dmarc: Some(DmarcFact {
                result: AuthResult::Pass,
                domain: "example.com".into(),
                policy: Some(Policy::Reject),
                applied: Some(Policy::Reject),
            }),
            ..AuthFacts::default()
        };
        assert_eq!(
            header_value("mx.test", &facts, &config),
            "mx.test; spf=pass smtp.mailfrom=a@example.com; \
             dkim=fail header.d=example.com header.s=\"sel;x\"; arc=none; \
             dmarc=pass (p=reject) header.from=example.com"
        );
        let empty = AuthFacts::default();
        assert_eq!(
            header_value("mx.test", &empty, &config),
            "mx.test; spf=none; dkim=none; arc=none"
        );
    }
}
