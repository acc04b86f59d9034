//! `upstream.tls`: STARTTLS towards the upstream MTA. Off by default, as
//! the upstream usually sits on the same host or network; `required` for
//! an upstream across a network nobody vouches for.

use std::path::PathBuf;

use serde::Deserialize;

use super::span::S;
use super::validate::Validator;
use crate::tls::client::{TlsClient, TlsClientError};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUpstreamTls {
    pub mode: Option<S<String>>,
    pub verify: Option<S<bool>>,
    pub ca_file: Option<S<String>>,
    pub server_name: Option<S<String>>,
}

/// When to use STARTTLS towards the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    #[default]
    Off,
    /// STARTTLS when the upstream's EHLO offers it, plain otherwise.
    Opportunistic,
    /// No STARTTLS, or a failed handshake: the client gets a 4xx.
    Required,
}

#[derive(Debug, Clone, Default)]
pub struct UpstreamTlsConfig {
    pub mode: UpstreamTlsMode,
    pub verify: bool,
    pub ca_file: Option<PathBuf>,
    pub server_name: String,
    /// Built here, once: reading `ca_file` is part of validating it, and
    /// every upstream connection then shares the result. `None` when off.
    pub client: Option<TlsClient>,
}

/// `host` is the upstream's, the default name to verify.
pub fn validate(v: &mut Validator, raw: &RawUpstreamTls, host: &str) -> UpstreamTlsConfig {
    let modes = [
        ("off", UpstreamTlsMode::Off),
        ("opportunistic", UpstreamTlsMode::Opportunistic),
        ("required", UpstreamTlsMode::Required),
    ];
    let mode = v.choice(
        "upstream.tls.mode",
        raw.mode.as_ref(),
        &modes,
        Default::default(),
    );
    let verify = raw.verify.as_ref().is_none_or(|b| b.value);
    let ca_file = raw.ca_file.as_ref().map(|f| PathBuf::from(f.value.trim()));
    let server_name = match &raw.server_name {
        Some(name) => name.value.trim().to_string(),
        None => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    };
    let mut config = UpstreamTlsConfig {
        mode,
        verify,
        ca_file,
        server_name,
        client: None,
    };
    if mode != UpstreamTlsMode::Off {
        config.client = client(v, raw, &config);
    }
    config
}

/// Builds the TLS client, reporting a bad file or name at its line.
fn client(v: &mut Validator, raw: &RawUpstreamTls, c: &UpstreamTlsConfig) -> Option<TlsClient> {
    let ca_file = c.ca_file.as_deref().filter(|_| c.verify);
    let error = match TlsClient::new(c.verify, ca_file, &c.server_name) {
        Ok(client) => return Some(client),
        Err(error) => error,
    };
    let (key, value) = match &error {
        TlsClientError::ServerName(_) => ("upstream.tls.server_name", &raw.server_name),
        TlsClientError::CaFile { .. } => ("upstream.tls.ca_file", &raw.ca_file),
        TlsClientError::Setup(_) => ("upstream.tls.mode", &raw.mode),
    };
    // A default server name comes from `upstream.address`.
    let value = value.as_ref().or(raw.mode.as_ref());
    if let Some(value) = value {
        v.error_at(value.referenced, key, error.to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;

    use super::UpstreamTlsMode;
    use crate::config::errors_in as errors;
    use crate::config::Config;

    fn ca_file() -> tempfile::NamedTempFile {
        let made = rcgen::generate_simple_self_signed(vec!["mx.test".to_string()]).unwrap();
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(made.cert.pem().as_bytes()).unwrap();
        file
    }

    #[test]
    fn off_by_default() {
        let config = Config::from_yaml("", Path::new("t.yaml")).unwrap();
        assert_eq!(config.upstream.tls.mode, UpstreamTlsMode::Off);
        assert!(config.upstream.tls.client.is_none());
    }

    #[test]
    fn server_name_defaults_to_the_upstream_host() {
        let yaml = "upstream:\n  address: 'mx.internal:25'\n  tls: {mode: opportunistic}\n";
        let config = Config::from_yaml(yaml, Path::new("t.yaml")).unwrap();
        let tls = &config.upstream.tls;
        assert_eq!(tls.mode, UpstreamTlsMode::Opportunistic);
        assert_eq!(tls.server_name, "mx.internal");
        assert!(tls.verify && tls.client.is_some());
        let yaml = "upstream:\n  address: '[::1]:25'\n  tls: {mode: required, verify: false}\n";
        let config = Config::from_yaml(yaml, Path::new("t.yaml")).unwrap();
        assert_eq!(config.upstream.tls.server_name, "::1");
        assert!(!config.upstream.tls.verify);
    }

    #[test]
    fn a_ca_file_is_read_at_validation() {
        let ca = ca_file();
        let yaml = format!(
            "upstream:\n  tls:\n    mode: required\n    ca_file: '{}'\n    server_name: mx.test\n",
            ca.path().display()
        );
        let config = Config::from_yaml(&yaml, Path::new("t.yaml")).unwrap();
        assert!(config.upstream.tls.client.is_some());
    }

    #[test]
    fn errors_point_at_lines() {
        let cases: &[(&str, u64, &str, &str)] = &[
            (
                "upstream:\n  tls:\n    mode: sometimes\n",
                3,
                "upstream.tls.mode",
                "not one of",
            ),
            (
                "upstream:\n  tls:\n    mode: required\n    ca_file: /nonexistent/ca.pem\n",
                4,
                "upstream.tls.ca_file",
                "cannot read CA certificates",
            ),
            (
                "upstream:\n  tls:\n    mode: required\n    server_name: 'bad name'\n",
                4,
                "upstream.tls.server_name",
                "not a valid TLS server name",
            ),
        ];
        for (yaml, line, key, message) in cases {
            let found = errors(yaml);
            assert!(
                found
                    .iter()
                    .any(|(l, k, m)| l == line && k == key && m.contains(message)),
                "{yaml:?}: expected line {line} {key} '{message}', got {found:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(!errors("upstream:\n  tls: {mode: off, verfy: false}\n").is_empty());
    }
}
