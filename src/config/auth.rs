//! The `auth` section: sender authentication (SPF, DKIM, ARC, DMARC) and
//! what spamgate does with the results.
//!
//! Every method has a [`Mode`]: `enforce` refuses when the method's own
//! policy says so, `tag` only reports (Authentication-Results, score),
//! `off` skips the method (DMARC then sees it as `none`).

use serde::Deserialize;

use super::span::S;
use super::validate::{is_hostname, Validator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Tag,
    Off,
}

impl Mode {
    pub fn is_on(self) -> bool {
        self != Mode::Off
    }
}

/// What a DMARC `p=quarantine` failure leads to under `enforce`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quarantine {
    /// Accept, with the score added (the upstream files it as spam).
    Tag,
    Reject,
}

/// What a DNS temporary error leads to when the outcome could have been a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempErrorAction {
    /// `451 4.7.x`: the client retries later.
    Tempfail,
    /// Accept as if the check had not refused (only the result is reported).
    Accept,
}

#[derive(Debug, Clone)]
pub struct SpfConfig {
    pub mode: Mode,
    /// Under `enforce`, refuse `fail` at MAIL FROM; off by default so that
    /// DMARC alone decides (forwarded mail often fails SPF).
    pub reject_fail: bool,
    /// Also check the HELO identity (RFC 7208 2.3) and report it.
    pub helo: bool,
    pub fail_score: f64,
    pub softfail_score: f64,
}

#[derive(Debug, Clone)]
pub struct MethodConfig {
    pub mode: Mode,
    pub fail_score: f64,
}

#[derive(Debug, Clone)]
pub struct DmarcConfig {
    pub mode: Mode,
    pub quarantine: Quarantine,
    /// Added on a DMARC failure that does not refuse (`p=none`, quarantine as tag, `tag` mode).
    pub fail_score: f64,
    pub quarantine_score: f64,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The `authserv-id` of our Authentication-Results headers.
    pub authserv_id: String,
    pub spf: SpfConfig,
    pub dkim: MethodConfig,
    pub arc: MethodConfig,
    pub dmarc: DmarcConfig,
    /// The RFC 5322 rule of exactly one From with one parsable domain.
    pub from_header: Mode,
    /// Our own domains (and their subdomains): mail claiming them must carry
    /// an aligned SPF or DKIM pass, DMARC record or not.
    pub protected_domains: Vec<String>,
    pub temperror: TempErrorAction,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAuth {
    pub authserv_id: Option<S<String>>,
    pub spf: RawSpf,
    pub dkim: RawMethod,
    pub arc: RawMethod,
    pub dmarc: RawDmarc,
    pub from_header: Option<S<String>>,
    pub protected_domains: Vec<S<String>>,
    pub temperror: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSpf {
    pub mode: Option<S<String>>,
    pub reject_fail: Option<bool>,
    pub helo: Option<bool>,
    pub fail_score: Option<S<f64>>,
    pub softfail_score: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMethod {
    pub mode: Option<S<String>>,
    pub fail_score: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDmarc {
    pub mode: Option<S<String>>,
    pub quarantine: Option<S<String>>,
    pub fail_score: Option<S<f64>>,
    pub quarantine_score: Option<S<f64>>,
}

const MODES: [(&str, Mode); 3] = [
    ("enforce", Mode::Enforce),
    ("tag", Mode::Tag),
    ("off", Mode::Off),
];

pub fn validate(v: &mut Validator, raw: &RawAuth, hostname: &str) -> AuthConfig {
    AuthConfig {
        authserv_id: v.hostname("auth.authserv_id", raw.authserv_id.as_ref(), hostname),
        spf: spf(v, &raw.spf),
        dkim: method(v, "dkim", &raw.dkim, 1.0),
        arc: method(v, "arc", &raw.arc, 0.0),
        dmarc: dmarc(v, &raw.dmarc),
        from_header: v.choice(
            "auth.from_header",
            raw.from_header.as_ref(),
            &MODES,
            Mode::Enforce,
        ),
        protected_domains: domains(v, &raw.protected_domains),
        temperror: v.choice(
            "auth.temperror",
            raw.temperror.as_ref(),
            &[
                ("tempfail", TempErrorAction::Tempfail),
                ("accept", TempErrorAction::Accept),
            ],
            TempErrorAction::Tempfail,
        ),
    }
}

fn spf(v: &mut Validator, raw: &RawSpf) -> SpfConfig {
    SpfConfig {
        mode: v.choice("auth.spf.mode", raw.mode.as_ref(), &MODES, Mode::Tag),
        reject_fail: raw.reject_fail.unwrap_or(false),
        helo: raw.helo.unwrap_or(false),
        fail_score: score(v, "auth.spf.fail_score", &raw.fail_score, 1.0),
        softfail_score: score(v, "auth.spf.softfail_score", &raw.softfail_score, 0.5),
    }
}

fn method(v: &mut Validator, name: &str, raw: &RawMethod, fail: f64) -> MethodConfig {
    MethodConfig {
        mode: v.choice(
            &format!("auth.{name}.mode"),
            raw.mode.as_ref(),
            &MODES,
            Mode::Tag,
        ),
        fail_score: score(v, &format!("auth.{name}.fail_score"), &raw.fail_score, fail),
    }
}

fn dmarc(v: &mut Validator, raw: &RawDmarc) -> DmarcConfig {
    DmarcConfig {
        mode: v.choice("auth.dmarc.mode", raw.mode.as_ref(), &MODES, Mode::Enforce),
        quarantine: v.choice(
            "auth.dmarc.quarantine",
            raw.quarantine.as_ref(),
            &[("tag", Quarantine::Tag), ("reject", Quarantine::Reject)],
            Quarantine::Tag,
        ),
        fail_score: score(v, "auth.dmarc.fail_score", &raw.fail_score, 2.0),
        quarantine_score: score(v, "auth.dmarc.quarantine_score", &raw.quarantine_score, 6.0),
    }
}

/// A score: any finite number (negative ones reward).
fn score(v: &mut Validator, key: &str, raw: &Option<S<f64>>, default: f64) -> f64 {
    let Some(value) = raw else { return default };
    if value.value.is_finite() {
        return value.value;
    }
    v.error_at(value.referenced, key, "must be a finite number");
    default
}

fn domains(v: &mut Validator, raw: &[S<String>]) -> Vec<String> {
    let mut out = Vec::new();
    for domain in raw {
        let name = domain
            .value
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if is_hostname(&name) && name.contains('.') {
            out.push(name);
        } else {
            let message = format!("'{}' is not a domain name", domain.value);
            v.error_at(domain.referenced, "auth.protected_domains", message);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    use super::*;

    fn load(yaml: &str) -> Result<Config, String> {
        Config::from_yaml(yaml, Path::new("t.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let auth = load("hostname: mx.example.net\n").unwrap().auth;
        assert_eq!(auth.authserv_id, "mx.example.net");
        assert_eq!(auth.dmarc.mode, Mode::Enforce);
        assert_eq!(auth.dmarc.quarantine, Quarantine::Tag);
        assert_eq!(auth.spf.mode, Mode::Tag);
        assert!(!auth.spf.reject_fail);
        assert_eq!(auth.from_header, Mode::Enforce);
        assert_eq!(auth.temperror, TempErrorAction::Tempfail);
        assert!(auth.protected_domains.is_empty());
    }

    #[test]
    fn values_and_errors_table() {
        let cases: &[(&str, Result<(), &str>)] = &[
            ("auth: {spf: {mode: enforce, reject_fail: true}}", Ok(())),
            ("auth: {dmarc: {quarantine: reject}}", Ok(())),
            ("auth: {protected_domains: [Example.COM.]}", Ok(())),
            ("auth: {dmarc: {mode: strict}}", Err("t.yaml:1:")),
            (
                "auth: {protected_domains: ['not a domain']}",
                Err("not a domain"),
            ),
            (
                "auth: {protected_domains: [localhost]}",
                Err("not a domain"),
            ),
            ("auth:\n  temperror: maybe\n", Err("t.yaml:2:")),
            (
                "auth: {authserv_id: 'bad id'}",
                Err("not a valid host name"),
            ),
            ("auth: {dkim: {bogus: 1}}", Err("bogus")),
        ];
        for (yaml, want) in cases {
            match (load(yaml), want) {
                (Ok(_), Ok(())) => {}
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{yaml}: {e}"),
                (got, want) => panic!("{yaml}: got {got:?}, want {want:?}"),
            }
        }
        let config = load("auth: {protected_domains: [Example.COM.]}").unwrap();
        assert_eq!(config.auth.protected_domains, vec!["example.com"]);
    }
}
