//! Domain blocklists (DBL/URIBL style): the HELO name, the sender's domain
//! and the domains of links in the message body are asked of the
//! configured domain lists; each list that names one of them adds its
//! weight to the score (once per stage).
//!
//! Bodies are decoded first (quoted-printable, base64, charsets) so that
//! links cannot hide behind a transfer encoding; both text and HTML parts
//! are read.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use async_trait::async_trait;
use futures_util::future::join_all;
use regex::Regex;

use super::dnslist::{ListAnswer, ListLookup};
use super::rate_limit::domain_of;
use super::{Check, CheckContext, CheckError};
use crate::config::reputation::{is_hostname, DomainListsConfig, DomainZone};
use crate::judgement::{Outcome, Stage};

pub struct DomainLists {
    config: DomainListsConfig,
    lookup: ListLookup,
}

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:https?://|\bwww\.)((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9])")
        .expect("valid regex")
});

/// The distinct host names linked from the message's text and HTML
/// bodies, lowercased and without `www.`, at most `max`, in order of appearance.
pub fn link_domains(message: &[u8], max: usize) -> Vec<String> {
    let Some(parsed) = mail_parser::MessageParser::default().parse(message) else {
        return Vec::new();
    };
    let bodies = parsed.text_bodies().chain(parsed.html_bodies());
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for body in bodies {
        for found in LINK.captures_iter(&body) {
            let host = found[1].to_ascii_lowercase();
            let host = host.strip_prefix("www.").unwrap_or(&host).to_string();
            if out.len() >= max {
                return out;
            }
            if seen.insert(host.clone()) {
                out.push(host);
            }
        }
    }
    out
}

impl DomainLists {
    pub fn new(config: &DomainListsConfig, lookup: ListLookup) -> Self {
        DomainLists {
            config: config.clone(),
            lookup,
        }
    }

    /// The names to judge at this stage, and the zones that judge them.
    fn items(&self, ctx: &CheckContext<'_>) -> (Vec<String>, Vec<&DomainZone>, &'static str) {
        let zones =
            |pick: fn(&DomainZone) -> bool| self.config.zones.iter().filter(|z| pick(z)).collect();
        match ctx.stage {
            Stage::Helo => {
                let helo = ctx.client.helo.as_deref().map(str::to_ascii_lowercase);
                let helo = helo.filter(|h| h.contains('.') && is_hostname(h));
                (
                    helo.into_iter().collect(),
                    zones(|z| z.targets.helo),
                    "HELO name",
                )
            }
            Stage::Mail => {
                let domain = ctx.envelope.and_then(|e| domain_of(&e.mail_from));
                (
                    domain.into_iter().collect(),
                    zones(|z| z.targets.sender),
                    "sender domain",
                )
            }
            _ => {
                let max = self.config.max_body_domains;
                let domains = ctx
                    .raw_message()
                    .map_or_else(Vec::new, |m| link_domains(m, max));
                (domains, zones(|z| z.targets.body), "link domain")
            }
        }
    }

    /// Asks one zone about every item; returns the listed items.
    async fn ask_zone(&self, zone: &DomainZone, items: &[String]) -> Vec<String> {
        let asks = items.iter().map(|item| async move {
            let answer = self.lookup.query(&zone.list, item).await;
            matches!(answer, ListAnswer::Listed(_)).then(|| item.clone())
        });
        join_all(asks).await.into_iter().flatten().collect()
    }

    /// Every zone's listed items, within the time budget.
    pub async fn ask(
        &self,
        zones: &[&DomainZone],
        items: &[String],
    ) -> Vec<(DomainZone, Vec<String>)> {
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        let asks = zones.iter().map(|zone| async move {
            let listed = tokio::time::timeout_at(deadline, self.ask_zone(zone, items)).await;
            ((*zone).clone(), listed.unwrap_or_default())
        });
        join_all(asks).await
    }
}

#[async_trait]
impl Check for DomainLists {
    fn name(&self) -> &'static str {
        "domain_lists"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Helo, Stage::Mail, Stage::Data]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        if ctx.facts.allowlisted && ctx.stage != Stage::Data {
            return Ok(Vec::new());
        }
        let (items, zones, what) = self.items(ctx);
        if items.is_empty() || zones.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self
            .ask(&zones, &items)
            .await
            .into_iter()
            .filter(|(_, listed)| !listed.is_empty())
            .map(|(zone, listed)| Outcome::AddScore {
                score: zone.list.weight,
                reason: format!("{what} {} listed on {}", listed.join(","), zone.list.zone),
            })
            .collect();
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_in_decoded_text_and_html() {
        let message = concat!(
            "From: a@example.org\r\n",
            "Subject: hi\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/alternative; boundary=b\r\n",
            "\r\n",
            "--b\r\n",
            "Content-Type: text/plain\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n",
            "\r\n",
            "Visit https://WWW.Spam-Site.example/x?y=3D1 or www.other.example=\r\n",
            "/page and http://spam-site.example again.\r\n",
            "--b\r\n",
            "Content-Type: text/html\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "\r\n",
            // <a href="http://hidden.example/">click</a>
            "PGEgaHJlZj0iaHR0cDovL2hpZGRlbi5leGFtcGxlLyI+Y2xpY2s8L2E+\r\n",
            "--b--\r\n",
        );
        let found = link_domains(message.as_bytes(), 10);
        assert_eq!(
            found,
            vec!["spam-site.example", "other.example", "hidden.example"]
        );
        assert_eq!(
            link_domains(message.as_bytes(), 1),
            vec!["spam-site.example"]
        );
    }

    #[test]
    fn no_links_no_domains() {
        let message = b"Subject: x\r\n\r\nplain text, an address a@b.example and 1.2.3.4\r\n";
        assert!(link_domains(message, 10).is_empty());
    }
}
