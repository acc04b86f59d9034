//! Relay control: the domains spamgate accepts mail for. The upstream MTA
//! may trust spamgate's own address (Debian's Postfix trusts 127.0.0.0/8 in
//! `mynetworks`), so spamgate must not rely on it to refuse outsiders: a
//! recipient outside these domains is refused at RCPT and never reaches the
//! upstream, unless the client authenticated on a submission listener.
//!
//! An address is judged the way the upstream will route it: source routes
//! are already stripped by the parser; a local part holding `%`, `!` or `@`
//! (quoted or not) is a routing attempt (Postfix's
//! `allow_untrusted_routing = no`); domains compare case-insensitively,
//! IDNA-aware, with or without a trailing dot.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why an address may not be relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The domain is not one of ours.
    OutsideDomain,
    /// The local part routes elsewhere (`a%b@ours`, `b!a@ours`, `"a@b"@ours`).
    Routing,
    /// An address literal (`user@[192.0.2.1]`): never one of our domains.
    AddressLiteral,
}

impl Denial {
    /// The log and metric word: a closed set.
    pub fn as_str(self) -> &'static str {
        match self {
            Denial::OutsideDomain => "outside_domain",
            Denial::Routing => "routing",
            Denial::AddressLiteral => "address_literal",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RelayError {
    #[error("{0:?} is not a domain name")]
    BadDomain(String),
    #[error("cannot read {path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("{path}:{line}: {0:?} is not a domain name", .entry)]
    BadEntry {
        path: PathBuf,
        line: usize,
        entry: String,
    },
}

/// The domains we relay for: exact names, and `.example.org` for every
/// subdomain of example.org (not example.org itself, as in Postfix).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayDomains {
    exact: HashSet<String>,
    /// Each with its leading dot, ASCII-lowercase, IDNA A-labels.
    suffixes: Vec<String>,
}

impl RelayDomains {
    /// Parses entries; `.example.org` means the subdomains.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, RelayError> {
        let mut domains = RelayDomains::default();
        for entry in entries {
            domains.add(entry)?;
        }
        Ok(domains)
    }

    fn add(&mut self, entry: &str) -> Result<(), RelayError> {
        let bad = || RelayError::BadDomain(entry.to_string());
        match entry.trim().strip_prefix('.') {
            Some(parent) => {
                let parent = canonical_domain(parent).ok_or_else(bad)?;
                self.suffixes.push(format!(".{parent}"));
            }
            None => {
                self.exact
                    .insert(canonical_domain(entry.trim()).ok_or_else(bad)?);
            }
        }
        Ok(())
    }

    /// Reads a file of entries, one per line; `#` starts a comment.
    pub fn read_file(path: &Path) -> Result<Self, RelayError> {
        let text = std::fs::read_to_string(path).map_err(|e| RelayError::File {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        let mut domains = RelayDomains::default();
        for (index, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            domains.add(entry).map_err(|_| RelayError::BadEntry {
                path: path.to_path_buf(),
                line: index + 1,
                entry: entry.to_string(),
            })?;
        }
        Ok(domains)
    }

    /// Both lists together: the configured names and the file's.
    pub fn merged(mut self, other: RelayDomains) -> Self {
        self.exact.extend(other.exact);
        self.suffixes.extend(other.suffixes);
        self
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.suffixes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether mail to `address` (source route already stripped) may be
    /// relayed to the upstream.
    pub fn judge(&self, address: &str) -> Result<(), Denial> {
        let Some((local, domain)) = split_address(address) else {
            // RFC 5321 §4.1.1.3: a bare "postmaster" is the local one.
            return match address.eq_ignore_ascii_case("postmaster") {
                true => Ok(()),
                false => Err(Denial::OutsideDomain),
            };
        };
        if local.contains(['%', '!', '@']) {
            return Err(Denial::Routing);
        }
        if domain.starts_with('[') {
            return Err(Denial::AddressLiteral);
        }
        match canonical_domain(domain) {
            Some(domain) if self.contains(&domain) => Ok(()),
            _ => Err(Denial::OutsideDomain),
        }
    }

    fn contains(&self, domain: &str) -> bool {
        self.exact.contains(domain) || self.suffixes.iter().any(|s| domain.ends_with(s.as_str()))
    }
}

/// `local@domain` split at the `@` that ends the local part: the last one
/// outside a quoted string. The local part comes back unquoted.
fn split_address(address: &str) -> Option<(String, &str)> {
    let (mut quoted, mut escaped, mut at) = (false, false, None);
    for (i, c) in address.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '@' if !quoted => at = Some(i),
            _ => {}
        }
    }
    let at = at?;
    let local = address[..at].trim_matches('"').replace('\\', "");
    Some((local, &address[at + 1..]))
}

/// Lowercase ASCII with IDNA A-labels and no trailing dot, or `None` when
/// the text is no domain name.
pub fn canonical_domain(domain: &str) -> Option<String> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || domain.len() > 253 || domain.starts_with('.') {
        return None;
    }
    let ascii = idna::domain_to_ascii(domain).ok()?;
    let labels_ok = ascii.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok.then_some(ascii)
}

/// The relay domains in force, replaced whole when the file is reloaded.
#[derive(Debug, Default)]
pub struct RelayControl {
    current: RwLock<Arc<RelayDomains>>,
    /// The configured names, kept to merge with each reload of the file.
    listed: RelayDomains,
    file: Option<PathBuf>,
}

impl RelayControl {
    /// A file that cannot be read now (it was at validation) leaves only
    /// the listed names: fewer domains, never more.
    pub fn new(listed: RelayDomains, file: Option<PathBuf>) -> Self {
        let control = RelayControl {
            current: RwLock::new(Arc::new(listed.clone())),
            listed,
            file,
        };
        if let Err(error) = control.reload() {
            tracing::error!(%error, "relay_domains_file unreadable: relaying only for relay_domains");
        }
        control
    }

    /// Whether spamgate restricts relaying itself (some domain configured).
    pub fn is_on(&self) -> bool {
        !self.listed.is_empty() || self.file.is_some()
    }

    pub fn current(&self) -> Arc<RelayDomains> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the file; a bad file keeps the domains in force.
    pub fn reload(&self) -> Result<usize, RelayError> {
        let Some(path) = &self.file else {
            return Ok(self.current().len());
        };
        let domains = self.listed.clone().merged(RelayDomains::read_file(path)?);
        let count = domains.len();
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(domains);
        }
        Ok(count)
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> RelayDomains {
        RelayDomains::parse(["Example.ORG", ".sub.example.net", "bücher.example."]).unwrap()
    }

    #[test]
    fn judge_table() {
        use Denial::*;
        let cases: &[(&str, Result<(), Denial>)] = &[
            ("user@example.org", Ok(())),
            ("user@EXAMPLE.org.", Ok(())),
            ("user@a.sub.example.net", Ok(())),
            ("user@b.a.sub.example.net", Ok(())),
            ("user@sub.example.net", Err(OutsideDomain)),
            ("user@xsub.example.net", Err(OutsideDomain)),
            ("user@bücher.example", Ok(())),
            ("user@xn--bcher-kva.example", Ok(())),
            ("user@BÜCHER.example", Ok(())),
            ("user@example.com", Err(OutsideDomain)),
            ("user@example.org.evil.test", Err(OutsideDomain)),
            ("user%evil.test@example.org", Err(Routing)),
            ("evil.test!user@example.org", Err(Routing)),
            ("\"user@evil.test\"@example.org", Err(Routing)),
            ("\"user%evil.test\"@example.org", Err(Routing)),
            ("\"a\\\"b\"@example.org", Ok(())),
            ("user@[192.0.2.1]", Err(AddressLiteral)),
            ("user@[IPv6:2001:db8::1]", Err(AddressLiteral)),
            ("Postmaster", Ok(())),
            ("nobody", Err(OutsideDomain)),
            ("user@", Err(OutsideDomain)),
            ("user@example..org", Err(OutsideDomain)),
        ];
        let domains = ours();
        for (address, want) in cases {
            assert_eq!(domains.judge(address), *want, "{address}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for entry in [
            "",
            ".",
            "..example.org",
            "exa mple.org",
            "a@b.org",
            "[1.2.3.4]",
        ] {
            assert!(RelayDomains::parse([entry]).is_err(), "{entry:?}");
        }
    }

    #[test]
    fn file_reloads_and_bad_file_keeps_the_old_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay_domains");
        std::fs::write(&path, "# ours\nexample.org\n\n.example.net # subdomains\n").unwrap();
        let listed = RelayDomains::parse(["listed.example"]).unwrap();
        let control = RelayControl::new(listed, Some(path.clone()));
        assert_eq!(control.current().len(), 3);
        assert!(control.current().judge("a@x.example.net").is_ok());
        std::fs::write(&path, "example.com\n").unwrap();
        assert_eq!(control.reload(), Ok(2));
        assert!(control.current().judge("a@example.org").is_err());
        assert!(control.current().judge("a@listed.example").is_ok());
        std::fs::write(&path, "example.com\nnot a domain\n").unwrap();
        let error = control.reload().unwrap_err();
        assert!(error.to_string().contains(":2:"), "{error}");
        assert!(control.current().judge("a@example.com").is_ok());
    }
}
