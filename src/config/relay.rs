//! `relay_domains` and `relay_domains_file`: the domains spamgate relays
//! for (see [`crate::relay`]). Every entry is checked here, so a typo is a
//! configuration error, not a domain that silently never matches.

use std::path::{Path, PathBuf};

use super::span::S;
use super::validate::Validator;
use crate::relay::RelayDomains;

#[derive(Debug, Clone, Default)]
pub struct RelayConfig {
    /// The names listed in the configuration file.
    pub domains: RelayDomains,
    /// More names, one per line, re-read on SIGHUP.
    pub file: Option<PathBuf>,
}

impl RelayConfig {
    /// Whether spamgate restricts relaying itself.
    pub fn is_on(&self) -> bool {
        !self.domains.is_empty() || self.file.is_some()
    }
}

pub fn validate(
    v: &mut Validator,
    domains: &[S<String>],
    file: Option<&S<String>>,
    config_file: &Path,
) -> RelayConfig {
    let mut listed = RelayDomains::default();
    for entry in domains {
        match RelayDomains::parse([entry.value.as_str()]) {
            Ok(one) => listed = listed.merged(one),
            Err(error) => v.error_at(entry.referenced, "relay_domains", error.to_string()),
        }
    }
    let file = file.and_then(|f| relay_file(v, f, config_file));
    RelayConfig {
        domains: listed,
        file,
    }
}

/// The file must exist and hold only domain names: checked now, so that a
/// start never relies on a list it cannot read.
fn relay_file(v: &mut Validator, value: &S<String>, config_file: &Path) -> Option<PathBuf> {
    let base = config_file.parent().unwrap_or(Path::new(""));
    let path = base.join(value.value.trim());
    match RelayDomains::read_file(&path) {
        Ok(_) => Some(path),
        Err(error) => {
            v.error_at(value.referenced, "relay_domains_file", error.to_string());
            None
        }
    }
}
