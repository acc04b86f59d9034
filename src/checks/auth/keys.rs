//! DKIM key records (RFC 6376 3.6.1), shared by the DKIM and ARC
//! verifiers and parsed once per record text.
//!
//! Parsing a DER key costs about as much as the RSA verification itself
//! (3–4 µs of ~20 here), so parsed keys are kept, keyed by the TXT record
//! they came from. The DNS answer is still asked for every signature and
//! kept only for its TTL (`Dns::txt`), so a key the domain rotates or
//! revokes is seen as soon as its answer expires.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{
    ParsedPublicKey, ED25519, RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
};
use base64ct::{Base64, Encoding};

use super::arc_rules::tag_list;
use crate::dns::Dns;
use crate::judgement::AuthResult;

/// Parsed keys kept before the table is emptied and refilled: a bound
/// against a flood of distinct records, far above what one site meets.
const CAPACITY: usize = 1024;

/// The signing algorithms a key can serve (RFC 6376 3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

/// One usable public key and the flags of its record.
pub struct Key {
    pub kind: KeyType,
    /// `t=s`: the `i=` domain must be `d=` itself, not a subdomain.
    pub strict: bool,
    public: ParsedPublicKey,
}

impl Key {
    /// True if `signature` signs `data` (the canonical header block).
    /// Ed25519-SHA256 signs the SHA-256 of that block (RFC 8463 3);
    /// RSA keys under 1024 bits never verify (RFC 8301 3.2).
    pub fn verifies(&self, data: &[u8], signature: &[u8]) -> bool {
        match self.kind {
            KeyType::Rsa => self.public.verify_sig(data, signature),
            KeyType::Ed25519 => self
                .public
                .verify_sig(digest(&SHA256, data).as_ref(), signature),
        }
        .is_ok()
    }
}

/// Why no key could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key record: {0}")]
    Missing(String),
    #[error("the key could not be fetched (temporary DNS error)")]
    Unavailable,
    #[error("the key is revoked")]
    Revoked,
    #[error("invalid key record: {0}")]
    Invalid(String),
}

impl KeyError {
    /// The DKIM result of a signature whose key is missing this way.
    pub fn result(&self) -> AuthResult {
        match self {
            KeyError::Unavailable => AuthResult::TempError,
            _ => AuthResult::PermError,
        }
    }
}

/// Where the verifiers get the key published at a name
/// (`selector._domainkey.domain`): DNS in the proxy ([`DnsKeys`]),
/// records given up front in benchmarks ([`RecordKeys`]).
pub trait KeySource {
    fn key(&self, name: &str) -> impl Future<Output = Result<Arc<Key>, KeyError>> + Send;
}

/// Keys from DNS, parsed once per record.
pub struct DnsKeys<'a> {
    pub dns: &'a Dns,
    pub keys: &'a Keys,
}

impl KeySource for DnsKeys<'_> {
    async fn key(&self, name: &str) -> Result<Arc<Key>, KeyError> {
        self.keys.fetch(self.dns, name).await
    }
}

/// Key records given up front, by name: the verifier's cost without a
/// resolver, for `examples/dkim_floor.rs`.
#[derive(Default)]
pub struct RecordKeys {
    records: HashMap<String, String>,
    keys: Keys,
}

impl RecordKeys {
    pub fn with(mut self, name: &str, record: &str) -> Self {
        self.records.insert(name.to_string(), record.to_string());
        self
    }
}

impl KeySource for RecordKeys {
    async fn key(&self, name: &str) -> Result<Arc<Key>, KeyError> {
        match self.records.get(name) {
            Some(record) => self.keys.parsed(record),
            None => Err(KeyError::Missing(name.to_string())),
        }
    }
}

/// The parsed keys of the records seen lately.
pub struct Keys {
    parsed: Mutex<HashMap<String, Result<Arc<Key>, KeyError>>>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            parsed: Mutex::new(HashMap::new()),
        }
    }
}

impl Keys {
    /// The key published at `name` (`selector._domainkey.domain`): the
    /// first of its TXT records that is a valid key.
    pub async fn fetch(&self, dns: &Dns, name: &str) -> Result<Arc<Key>, KeyError> {
        let records = match dns.txt(name).await {
            Ok(records) => records,
            Err(e) if e.is_temporary() => return Err(KeyError::Unavailable),
            Err(e) => return Err(KeyError::Missing(e.to_string())),
        };
        let mut last = KeyError::Missing("no TXT record".into());
        for record in &records {
            match self.parsed(record) {
                Ok(key) => return Ok(key),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn parsed(&self, record: &str) -> Result<Arc<Key>, KeyError> {
        let mut table = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = table.get(record) {
            return known.clone();
        }
        if table.len() >= CAPACITY {
            table.clear();
        }
        let parsed = parse(record).map(Arc::new);
        table.insert(record.to_string(), parsed.clone());
        parsed
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.parsed.lock().map_or(0, |t| t.len())
    }
}

/// A key record's tags: `v=DKIM1` if given, a known `k=`, `h=` allowing
/// SHA-256, `s=` allowing email, and a non-empty `p=`.
fn parse(record: &str) -> Result<Key, KeyError> {
    let tags = tag_list(record.as_bytes()).map_err(KeyError::Invalid)?;
    let tag = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let listed = |name: &str, want: &[&str]| {
        tag(name).is_none_or(|v| {
            v.split(':')
                .any(|w| want.iter().any(|x| w.eq_ignore_ascii_case(x)))
        })
    };
    if tag("v").is_some_and(|v| v != "DKIM1") {
        return Err(KeyError::Invalid("not a DKIM1 record".into()));
    }
    let kind = match tag("k").unwrap_or("rsa").to_ascii_lowercase().as_str() {
        "rsa" => KeyType::Rsa,
        "ed25519" => KeyType::Ed25519,
        other => return Err(KeyError::Invalid(format!("unknown key type {other}"))),
    };
    if !listed("h", &["sha256"]) || !listed("s", &["*", "email"]) {
        return Err(KeyError::Invalid("the key is not for SHA-256 email".into()));
    }
    let strict = tag("t").is_some_and(|t| t.split(':').any(|f| f == "s"));
    let public = public_key(kind, tag("p"))?;
    Ok(Key {
        kind,
        strict,
        public,
    })
}

/// `p=`: DER (SubjectPublicKeyInfo or RSAPublicKey) for RSA, the 32 raw
/// bytes for Ed25519 (RFC 8463 4).
fn public_key(kind: KeyType, p: Option<&str>) -> Result<ParsedPublicKey, KeyError> {
    let bytes = match p {
        None => return Err(KeyError::Invalid("no p= tag".into())),
        Some("") => return Err(KeyError::Revoked),
        Some(p) => {
            Base64::decode_vec(p).map_err(|_| KeyError::Invalid("p= is not base64".into()))?
        }
    };
    let parsed = match kind {
        KeyType::Rsa => {
            ParsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, bytes)
        }
        KeyType::Ed25519 => ParsedPublicKey::new(&ED25519, bytes),
    };
    parsed.map_err(|e| KeyError::Invalid(format!("p= is not a key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_KEY: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    #[test]
    fn key_records() {
        let cases: &[(&str, Result<KeyType, &str>)] = &[
            (
                &format!("v=DKIM1; k=ed25519; p={ED_KEY}"),
                Ok(KeyType::Ed25519),
            ),
            (
                &format!("k=ed25519; h=sha1:sha256; s=email; p={ED_KEY}"),
                Ok(KeyType::Ed25519),
            ),
            ("v=DKIM1; k=rsa; p=", Err("the key is revoked")),
            (
                "v=DKIM2; p=abc",
                Err("invalid key record: not a DKIM1 record"),
            ),
            (
                "k=dsa; p=abc",
                Err("invalid key record: unknown key type dsa"),
            ),
            (
                &format!("k=ed25519; h=sha1; p={ED_KEY}"),
                Err("invalid key record: the key is not for SHA-256 email"),
            ),
            (
                &format!("k=ed25519; s=tlsrpt; p={ED_KEY}"),
                Err("invalid key record: the key is not for SHA-256 email"),
            ),
            ("k=rsa", Err("invalid key record: no p= tag")),
            ("k=rsa; p=!!", Err("invalid key record: p= is not base64")),
        ];
        for (record, want) in cases {
            let got = parse(record).map(|k| k.kind).map_err(|e| e.to_string());
            assert_eq!(got, want.map_err(str::to_string), "{record}");
        }
    }

    #[test]
    fn strict_flag() {
        let key = parse(&format!("k=ed25519; t=y:s; p={ED_KEY}")).unwrap();
        assert!(key.strict);
        assert!(
            !parse(&format!("k=ed25519; t=y; p={ED_KEY}"))
                .unwrap()
                .strict
        );
    }

    #[test]
    fn parsed_once_per_record() {
        let keys = Keys::default();
        let record = format!("k=ed25519; p={ED_KEY}");
        let first = keys.parsed(&record).unwrap();
        let second = keys.parsed(&record).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert!(keys.parsed("k=rsa; p=").is_err());
        assert_eq!(keys.len(), 2);
    }
}
