//! Links: the hosts they point at, links to bare IP addresses and to URL
//! shorteners, and anchors whose text shows one host but lead to another.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::html::Anchor;

/// Distinct links remembered per message.
pub const MAX_LINKS: usize = 10_000;
/// Characters of one URL looked at.
const MAX_URL: usize = 2048;

/// Services that hide where a link goes behind a short redirect. A link
/// through one is ordinary in social media, less so in mail: the list is
/// the widely known public ones.
const SHORTENERS: [&str; 24] = [
    "bit.ly",
    "bitly.com",
    "tinyurl.com",
    "goo.gl",
    "ow.ly",
    "t.co",
    "is.gd",
    "buff.ly",
    "tiny.cc",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "rb.gy",
    "t.ly",
    "v.gd",
    "lnkd.in",
    "soo.gd",
    "s.id",
    "tr.im",
    "cli.gs",
    "x.co",
    "snip.ly",
    "bl.ink",
    "shorte.st",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct LinkFacts {
    /// Distinct links (web and ftp URLs, and `www.` hosts in text).
    pub count: usize,
    pub ip: usize,
    pub shortener: usize,
    /// Anchors whose text names a host of another registrable domain.
    pub host_mismatch: usize,
    seen: HashSet<String>,
}

impl LinkFacts {
    /// Adds a link found in an href or in text.
    pub fn add(&mut self, url: &str) {
        let url: String = url.chars().take(MAX_URL).collect();
        if self.seen.len() >= MAX_LINKS || !self.seen.insert(url.to_ascii_lowercase()) {
            return;
        }
        let Some(host) = host_of(&url) else {
            return;
        };
        self.count += 1;
        self.ip += usize::from(is_ip_host(&host));
        self.shortener += usize::from(SHORTENERS.contains(&host.trim_start_matches("www.")));
    }

    pub fn add_anchor(&mut self, anchor: &Anchor) {
        self.add(&anchor.href);
        let (Some(target), Some(shown)) = (host_of(&anchor.href), shown_host(&anchor.text)) else {
            return;
        };
        if registrable(&target) != registrable(&shown) {
            self.host_mismatch += 1;
        }
    }

    /// Adds every URL written out in plain text.
    pub fn add_text(&mut self, text: &str) {
        for start in url_starts(text) {
            let rest = &text[start..];
            let end = rest
                .find(|c: char| c.is_whitespace() || "<>\"'()[]{}".contains(c))
                .unwrap_or(rest.len());
            let url = rest[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
            self.add(url);
            if self.seen.len() >= MAX_LINKS {
                return;
            }
        }
    }
}

/// Where `http://`, `https://`, `ftp://` or a `www.` that starts a word
/// begins, ignoring ASCII case.
fn url_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len()).filter(move |&i| {
        // Each prefix begins with h, f or w: most positions stop here.
        if !matches!(bytes[i] | 0x20, b'h' | b'f' | b'w') {
            return false;
        }
        let at = |p: &str| {
            bytes[i..].len() >= p.len() && bytes[i..i + p.len()].eq_ignore_ascii_case(p.as_bytes())
        };
        let word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || b"/.@-_".contains(&bytes[i - 1]));
        word_start && (at("http://") || at("https://") || at("ftp://") || at("www."))
    })
}

/// The lower-case host of a web URL (`http://`, `https://`, `ftp://`, or
/// one starting with `www.`); `None` for anything else (mailto:, relative).
pub fn host_of(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.get(..url.len().min(8))?.to_ascii_lowercase();
    let rest = ["http://", "https://", "ftp://"]
        .iter()
        .find(|s| lower.starts_with(*s))
        .map(|s| &url[s.len()..])
        .or_else(|| lower.starts_with("www.").then_some(url))?;
    let authority = rest.split(['/', '?', '#', '\\']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host_port.split(':').next()?,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// A host that is an address: dotted IPv4, IPv6, or the whole address as
/// one number (`http://3232235777/`, decimal or hex), which browsers
/// accept and which hides an IP from people.
pub fn is_ip_host(host: &str) -> bool {
    if host.parse::<Ipv4Addr>().is_ok() || host.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    let number = match host.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => host.parse::<u64>().ok(),
    };
    number.is_some_and(|n| n > 0xFFFF && n <= u64::from(u32::MAX))
}

/// The host an anchor's text shows, if the text is a URL or a bare host
/// name (`www.bank.example`, `https://bank.example/login`).
fn shown_host(text: &str) -> Option<String> {
    let text = text.trim();
    if text.contains(char::is_whitespace) {
        return None;
    }
    if let Some(host) = host_of(text) {
        return Some(host);
    }
    let host = text.split('/').next()?.to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let tld = labels.last()?;
    let hostlike = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && tld.len() >= 2
        && tld.bytes().all(|b| b.is_ascii_alphabetic());
    let known = psl::suffix(host.as_bytes())
        .is_some_and(|s| s.is_known() && s.as_bytes() != host.as_bytes());
    (hostlike && known).then_some(host)
}

/// The registrable domain (`bank.example.co.uk`), or the host itself when
/// it has none (an address, a single label).
fn registrable(host: &str) -> String {
    psl::domain_str(host).unwrap_or(host).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_table() {
        let cases = [
            ("http://www.Example.com/path", Some("www.example.com")),
            (
                "HTTPS://user:pw@bank.example:8443/x?y",
                Some("bank.example"),
            ),
            ("www.example.org", Some("www.example.org")),
            ("ftp://[2001:db8::1]/file", Some("2001:db8::1")),
            ("http://example.com.", Some("example.com")),
            ("mailto:a@example.com", None),
            ("/relative/path", None),
            ("javascript:void(0)", None),
        ];
        for (url, want) in cases {
            assert_eq!(host_of(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn ip_host_table() {
        let cases = [
            ("192.0.2.1", true),
            ("2001:db8::1", true),
            ("3232235777", true),
            ("0xc0a80001", true),
            ("80", false),
            ("example.com", false),
            ("1.example.com", false),
        ];
        for (host, want) in cases {
            assert_eq!(is_ip_host(host), want, "{host}");
        }
    }

    #[test]
    fn anchor_mismatch_table() {
        let cases = [
            ("http://evil.example/login", "www.paypal.com", 1),
            (
                "http://evil.example/login",
                "https://www.paypal.com/signin",
                1,
            ),
            ("http://www.paypal.com/x", "paypal.com", 0),
            ("http://click.mail.paypal.com/x", "www.paypal.com", 0),
            ("http://evil.example/", "Click here", 0),
            ("http://evil.example/", "index.html", 0),
            ("http://192.0.2.1/", "www.bank.example", 1),
            ("mailto:x@example.com", "www.bank.example", 0),
        ];
        for (href, text, want) in cases {
            let mut links = LinkFacts::default();
            links.add_anchor(&Anchor {
                href: href.into(),
                text: text.into(),
            });
            assert_eq!(links.host_mismatch, want, "{href} {text}");
        }
    }

    #[test]
    fn text_links_table() {
        // (text, distinct links, ip links, shorteners)
        let cases = [
            (
                "see http://example.com/a and http://example.com/a.",
                1,
                0,
                0,
            ),
            ("go to www.example.com, or HTTP://192.0.2.9/x", 2, 1, 0),
            ("short: https://bit.ly/abc http://tinyurl.com/x", 2, 0, 2),
            ("no links at all, just awww.", 0, 0, 0),
            ("mail me: someone@www.example.com", 0, 0, 0),
        ];
        for (text, count, ip, shortener) in cases {
            let mut links = LinkFacts::default();
            links.add_text(text);
            assert_eq!(
                (links.count, links.ip, links.shortener),
                (count, ip, shortener),
                "{text}"
            );
        }
    }

    #[test]
    fn links_are_bounded() {
        let mut links = LinkFacts::default();
        let text: String = (0..MAX_LINKS + 50)
            .map(|i| format!("http://h{i}.example/ "))
            .collect();
        links.add_text(&text);
        assert_eq!(links.count, MAX_LINKS);
    }
}
