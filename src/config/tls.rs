//! The `tls:` section: certificate, implicit-TLS listeners, and listeners
//! where STARTTLS is mandatory before MAIL.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub implicit_listen: Vec<Spanned<String>>,
    pub required_on: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// PEM certificate chain and private key; `None` turns TLS off.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Listeners that speak TLS from the first byte (port 465).
    pub implicit_listen: Vec<SocketAddr>,
    /// Plain listeners where MAIL is refused until STARTTLS.
    pub required_on: Vec<SocketAddr>,
}

impl TlsConfig {
    pub fn is_implicit(&self, listener: SocketAddr) -> bool {
        self.implicit_listen.contains(&listener)
    }

    pub fn is_required(&self, listener: SocketAddr) -> bool {
        self.required_on.contains(&listener)
    }
}

pub fn validate(v: &mut Validator, raw: &RawTls, listen: &[SocketAddr]) -> TlsConfig {
    let files = files(v, raw);
    let implicit_listen: Vec<SocketAddr> = raw
        .implicit_listen
        .iter()
        .filter_map(|a| v.socket_addr("tls.implicit_listen", a))
        .collect();
    let required_on = required_on(v, raw, listen);
    let first_listener = raw.implicit_listen.first().or(raw.required_on.first());
    if let (None, Some(at)) = (&files, first_listener) {
        v.error_at(
            at.referenced,
            "tls",
            "TLS listeners need tls.cert and tls.key",
        );
    }
    TlsConfig {
        files,
        implicit_listen,
        required_on,
    }
}

fn required_on(v: &mut Validator, raw: &RawTls, listen: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for entry in &raw.required_on {
        let Some(addr) = v.socket_addr("tls.required_on", entry) else {
            continue;
        };
        if !listen.contains(&addr) {
            v.error_at(
                entry.referenced,
                "tls.required_on",
                format!("{addr} is not in listen"),
            );
        }
        out.push(addr);
    }
    out
}

fn files(v: &mut Validator, raw: &RawTls) -> Option<(PathBuf, PathBuf)> {
    match (&raw.cert, &raw.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let (cert_path, key_path) = (PathBuf::from(&cert.value), PathBuf::from(&key.value));
            if let Err(error) = crate::tls::validate(&cert_path, &key_path) {
                v.error_at(cert.referenced, "tls.cert", error.to_string());
            }
            Some((cert_path, key_path))
        }
        (Some(one), None) | (None, Some(one)) => {
            v.error_at(one.referenced, "tls", "tls.cert and tls.key go together");
            None
        }
    }
}
