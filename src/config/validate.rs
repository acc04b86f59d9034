//! Turns the raw file into a typed [`Config`], collecting every error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde_saphyr::{Location, Spanned};

use super::duration::parse_duration;
use super::error::ConfigError;

/// Accumulates errors while typed values are extracted one by one.
pub struct Validator {
    file: PathBuf,
    pub errors: Vec<ConfigError>,
}

impl Validator {
    pub fn new(file: &Path) -> Self {
        Validator {
            file: file.to_path_buf(),
            errors: Vec::new(),
        }
    }

    pub fn error_at(&mut self, location: Location, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: location.line(),
            column: location.column(),
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Parses a value with `FromStr`, reporting `what` it should have been.
    pub fn parse<T: FromStr>(
        &mut self,
        key: &str,
        value: &Spanned<String>,
        what: &str,
    ) -> Option<T> {
        let parsed = value.value.trim().parse().ok();
        if parsed.is_none() {
            let message = format!("'{}' is not {what}", value.value);
            self.error_at(value.referenced, key, message);
        }
        parsed
    }

    pub fn socket_addr(&mut self, key: &str, value: &Spanned<String>) -> Option<SocketAddr> {
        self.parse(
            key,
            value,
            "an ip:port address (e.g. 127.0.0.1:25 or [::1]:25)",
        )
    }

    pub fn cidrs(&mut self, key: &str, values: &[Spanned<String>]) -> Vec<IpNet> {
        values.iter().filter_map(|v| self.cidr(key, v)).collect()
    }

    /// Accepts a network (`10.0.0.0/8`) or a single address (`192.0.2.1`).
    fn cidr(&mut self, key: &str, value: &Spanned<String>) -> Option<IpNet> {
        let text = value.value.trim();
        let parsed = text
            .parse::<IpNet>()
            .ok()
            .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from));
        if parsed.is_none() {
            let message = format!("'{text}' is not an IP address or CIDR network");
            self.error_at(value.referenced, key, message);
        }
        parsed.map(|net| net.trunc())
    }

    pub fn duration(
        &mut self,
        key: &str,
        value: Option<&Spanned<String>>,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        parse_duration(&value.value).unwrap_or_else(|message| {
            self.error_at(value.referenced, key, message);
            default
        })
    }

    /// A whole number that must lie in `min..=max`.
    pub fn number(
        &mut self,
        key: &str,
        value: Option<&Spanned<u64>>,
        default: u64,
        range: (u64, u64),
    ) -> u64 {
        let Some(value) = value else { return default };
        let (min, max) = range;
        if value.value < min || value.value > max {
            let message = format!("{} is out of range ({min} to {max})", value.value);
            self.error_at(value.referenced, key, message);
            return default;
        }
        value.value
    }

    /// One word out of a closed set.
    pub fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: Option<&Spanned<String>>,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(value) = value else { return default };
        let found = choices.iter().find(|(name, _)| *name == value.value.trim());
        if let Some((_, choice)) = found {
            return *choice;
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let message = format!("'{}' is not one of: {}", value.value, names.join(", "));
        self.error_at(value.referenced, key, message);
        default
    }

    /// A DNS host name (letters, digits, hyphens, dots); used for our own names.
    pub fn hostname(
        &mut self,
        key: &str,
        value: Option<&Spanned<String>>,
        default: &str,
    ) -> String {
        let Some(value) = value else {
            return default.to_string();
        };
        let name = value.value.trim();
        if is_hostname(name) {
            return name.to_string();
        }
        let message = format!("'{name}' is not a valid host name");
        self.error_at(value.referenced, key, message);
        default.to_string()
    }
}

pub fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
