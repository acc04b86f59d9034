//! DKIM signature verification of our own (RFC 6376, RFC 8463 for
//! Ed25519, RFC 8301 for what is no longer valid).
//!
//! It is ours rather than `mail-auth`'s for the cost (issue 16): that one
//! parses the whole message, copies the body for each hash and parses the
//! DER key on every verification, which made the check about twice its
//! cryptography. Here the header section is split once (byte ranges into
//! the message), each body hash is streamed once per (canonicalization,
//! `l=`) pair, and keys stay parsed ([`Keys`]).
//!
//! Results, per signature, in the words of RFC 8601:
//! - `neutral`: the signature cannot be processed (syntax, an unknown or
//!   withdrawn algorithm such as rsa-sha1, expired);
//! - `fail`: the body hash or the signature does not match, `i=` is not
//!   within `d=`, or an RSA key is under 1024 bits;
//! - `permerror`: no usable key (none published, revoked, invalid);
//! - `temperror`: the key could not be fetched.

use base64ct::{Base64, Encoding};

use super::arc_rules::tag_list;
use super::canon::{self, Canon};
use super::headers::HeaderField;
use super::keys::{KeyError, KeySource, KeyType};
use crate::judgement::{AuthResult, DkimFact};

/// Signatures verified per message; later ones are not looked at. Each
/// costs a DNS query and a verification, so a message cannot make us do
/// more than this many.
pub const MAX_SIGNATURES: usize = 8;

/// Why a signature does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    #[error("the signature has expired")]
    Expired,
    #[error("the body hash does not match")]
    BodyHash,
    #[error("i= is not within d=")]
    Identity,
    #[error("the key does not verify the signature")]
    Signature,
    #[error("{0}")]
    Key(KeyError),
}

impl SignatureError {
    pub fn result(&self) -> AuthResult {
        match self {
            SignatureError::Malformed(_)
            | SignatureError::Unsupported(_)
            | SignatureError::Expired => AuthResult::Neutral,
            SignatureError::BodyHash | SignatureError::Identity | SignatureError::Signature => {
                AuthResult::Fail
            }
            SignatureError::Key(e) => e.result(),
        }
    }
}

/// What a DKIM-Signature field says, checked for syntax.
struct Signature {
    kind: KeyType,
    header_canon: Canon,
    body_canon: Canon,
    domain: String,
    selector: String,
    /// The domain of `i=`, when given.
    identity: Option<String>,
    names: String,
    body_hash: Vec<u8>,
    signature: Vec<u8>,
    limit: Option<usize>,
    expires: Option<u64>,
}

/// The body hashes of one message, each made once.
#[derive(Default)]
struct BodyHashes(Vec<(Canon, Option<usize>, Vec<u8>)>);

impl BodyHashes {
    fn get(&mut self, body: &[u8], canon: Canon, limit: Option<usize>) -> &[u8] {
        let at = self
            .0
            .iter()
            .position(|(c, l, _)| *c == canon && *l == limit);
        let at = at.unwrap_or_else(|| {
            let hash = canon::body_hash(body, canon, limit).as_ref().to_vec();
            self.0.push((canon, limit, hash));
            self.0.len() - 1
        });
        &self.0[at].2
    }
}

/// Every DKIM signature of `message` (its header section split as
/// `fields`), at most [`MAX_SIGNATURES`], in header order. `now`: seconds
/// since the epoch, for `x=`.
pub async fn verify_all(
    keys: &impl KeySource,
    message: &[u8],
    fields: &[HeaderField<'_>],
    now: u64,
) -> Vec<DkimFact> {
    let body = canon::body_of(message, fields);
    let mut hashes = BodyHashes::default();
    let mut facts = Vec::new();
    let signatures = fields.iter().filter(|f| f.is("DKIM-Signature"));
    for field in signatures.take(MAX_SIGNATURES) {
        let tags = tag_list(field.value).map_err(SignatureError::Malformed);
        let (domain, selector) = tags.as_ref().map(names_of).unwrap_or_default();
        let verified = match tags.and_then(|tags| parse(&tags)) {
            Ok(signature) => {
                let context = Context { fields, body, now };
                verify(keys, &context, &mut hashes, field, &signature).await
            }
            Err(e) => Err(e),
        };
        let result = verified.map_or_else(|e| e.result(), |()| AuthResult::Pass);
        facts.push(DkimFact {
            result,
            domain,
            selector,
        });
    }
    facts
}

/// What every signature of a message is checked against.
struct Context<'a, 'm> {
    fields: &'a [HeaderField<'m>],
    body: &'a [u8],
    now: u64,
}

/// `d=` (lowercased) and `s=` as far as they can be read, for the result.
fn names_of(tags: &Tags) -> (String, String) {
    let get = |name: &str| tag(tags, name).unwrap_or_default();
    (get("d").to_ascii_lowercase(), get("s").to_string())
}

/// Expiry, body hash, key, identity, then the signature over the header
/// block: the cheap refusals first, the DNS query and the RSA last.
async fn verify(
    keys: &impl KeySource,
    context: &Context<'_, '_>,
    hashes: &mut BodyHashes,
    field: &HeaderField<'_>,
    signature: &Signature,
) -> Result<(), SignatureError> {
    if signature.expires.is_some_and(|x| x < context.now) {
        return Err(SignatureError::Expired);
    }
    let body_hash = hashes.get(context.body, signature.body_canon, signature.limit);
    if body_hash != signature.body_hash.as_slice() {
        return Err(SignatureError::BodyHash);
    }
    let name = format!("{}._domainkey.{}", signature.selector, signature.domain);
    let key = keys.key(&name).await.map_err(SignatureError::Key)?;
    if key.kind != signature.kind {
        return Err(SignatureError::Key(KeyError::Invalid(
            "the key is not of the signature's type".into(),
        )));
    }
    check_identity(signature, key.strict)?;
    let data = canon::signed_header_block(
        context.fields,
        &signature.names,
        field,
        signature.header_canon,
    );
    match key.verifies(&data, &signature.signature) {
        true => Ok(()),
        false => Err(SignatureError::Signature),
    }
}

/// `i=`'s domain is `d=` or below it; only `d=` itself under `t=s`.
fn check_identity(signature: &Signature, strict: bool) -> Result<(), SignatureError> {
    let Some(identity) = &signature.identity else {
        return Ok(());
    };
    let domain = &signature.domain;
    let below = identity
        .strip_suffix(domain.as_str())
        .is_some_and(|rest| rest.ends_with('.'));
    match identity == domain || (below && !strict) {
        true => Ok(()),
        false => Err(SignatureError::Identity),
    }
}

type Tags = Vec<(String, String)>;

fn tag<'t>(tags: &'t Tags, name: &str) -> Option<&'t str> {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn required<'t>(tags: &'t Tags, name: &'static str) -> Result<&'t str, SignatureError> {
    match tag(tags, name) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(SignatureError::Malformed(format!("no {name}= tag"))),
    }
}

/// The tags of a DKIM-Signature (RFC 6376 3.5), every required one
/// present and valid.
fn parse(tags: &Tags) -> Result<Signature, SignatureError> {
    if required(tags, "v")? != "1" {
        return Err(SignatureError::Unsupported("a version other than v=1"));
    }
    let kind = algorithm(required(tags, "a")?)?;
    let (header_canon, body_canon) = match tag(tags, "c") {
        None => (Canon::Simple, Canon::Simple),
        Some(c) => Canon::pair(c).ok_or(SignatureError::Unsupported("this c="))?,
    };
    let names = required(tags, "h")?;
    if !names
        .split(':')
        .any(|n| n.trim().eq_ignore_ascii_case("from"))
    {
        return Err(SignatureError::Malformed("h= does not sign From".into()));
    }
    if tag(tags, "q").is_some_and(|q| !q.split(':').any(|m| m == "dns/txt")) {
        return Err(SignatureError::Unsupported(
            "a key query method other than dns/txt",
        ));
    }
    Ok(Signature {
        kind,
        header_canon,
        body_canon,
        domain: required(tags, "d")?.to_ascii_lowercase(),
        selector: required(tags, "s")?.to_string(),
        identity: identity(tags)?,
        names: names.to_string(),
        body_hash: base64(required(tags, "bh")?, "bh")?,
        signature: base64(required(tags, "b")?, "b")?,
        limit: number(tags, "l")?.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        expires: expiry(tags)?,
    })
}

/// rsa-sha256 and ed25519-sha256; rsa-sha1 is no longer valid (RFC 8301).
fn algorithm(value: &str) -> Result<KeyType, SignatureError> {
    match value.to_ascii_lowercase().as_str() {
        "rsa-sha256" => Ok(KeyType::Rsa),
        "ed25519-sha256" => Ok(KeyType::Ed25519),
        "rsa-sha1" => Err(SignatureError::Unsupported("rsa-sha1 (RFC 8301)")),
        _ => Err(SignatureError::Unsupported("this a=")),
    }
}

fn identity(tags: &Tags) -> Result<Option<String>, SignatureError> {
    let Some(i) = tag(tags, "i") else {
        return Ok(None);
    };
    match i.rsplit_once('@') {
        Some((_, domain)) if !domain.is_empty() => Ok(Some(domain.to_ascii_lowercase())),
        _ => Err(SignatureError::Malformed("i= without a domain".into())),
    }
}

fn base64(value: &str, name: &str) -> Result<Vec<u8>, SignatureError> {
    Base64::decode_vec(value)
        .map_err(|_| SignatureError::Malformed(format!("{name}= is not base64")))
}

fn number(tags: &Tags, name: &str) -> Result<Option<u64>, SignatureError> {
    let Some(value) = tag(tags, name) else {
        return Ok(None);
    };
    let digits =
        !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit());
    match digits {
        true => Ok(Some(value.parse().unwrap_or(u64::MAX))),
        false => Err(SignatureError::Malformed(format!(
            "{name}= is not a number"
        ))),
    }
}

/// `x=`, which must lie after `t=` when both are given.
fn expiry(tags: &Tags) -> Result<Option<u64>, SignatureError> {
    let (signed, expires) = (number(tags, "t")?, number(tags, "x")?);
    match (signed, expires) {
        (Some(t), Some(x)) if x <= t => Err(SignatureError::Malformed("x= is not after t=".into())),
        _ => Ok(expires),
    }
}

#[cfg(test)]
mod tests {
    use super::super::headers::header_fields;
    use super::*;

    fn parsed(value: &str) -> Result<Signature, SignatureError> {
        let message = format!("DKIM-Signature: {value}\r\n\r\n");
        let fields = header_fields(message.as_bytes());
        parse(&tag_list(fields[0].value).map_err(SignatureError::Malformed)?)
    }

    const GOOD: &str = "v=1; a=rsa-sha256; c=relaxed/simple; d=Example.COM; s=sel; \
        h=from:to; bh=YWJj; b=ZGVm";

    #[test]
    fn signature_tags() {
        let signature = parsed(GOOD).unwrap();
        assert_eq!(signature.domain, "example.com");
        assert_eq!(
            (signature.header_canon, signature.body_canon),
            (Canon::Relaxed, Canon::Simple)
        );
        assert_eq!(
            (
                signature.body_hash.as_slice(),
                signature.signature.as_slice()
            ),
            (&b"abc"[..], &b"def"[..])
        );
        let cases: &[(&str, &str)] = &[
            ("v=2", "unsupported: a version other than v=1"),
            ("a=rsa-sha1", "unsupported: rsa-sha1 (RFC 8301)"),
            ("a=dsa-sha256", "unsupported: this a="),
            ("c=nowsp", "unsupported: this c="),
            ("h=to:subject", "malformed signature: h= does not sign From"),
            ("bh=%%", "malformed signature: bh= is not base64"),
            ("l=12x", "malformed signature: l= is not a number"),
            ("t=20; x=10", "malformed signature: x= is not after t="),
            ("i=nobody", "malformed signature: i= without a domain"),
            (
                "q=http",
                "unsupported: a key query method other than dns/txt",
            ),
            ("s=", "malformed signature: no s= tag"),
        ];
        for (change, want) in cases {
            let name = change.split('=').next().unwrap();
            let mut tags: Vec<String> = GOOD
                .split("; ")
                .filter(|t| !t.starts_with(&format!("{name}=")))
                .map(str::to_string)
                .collect();
            tags.push(change.to_string());
            let got = parsed(&tags.join("; ")).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(*want), "{change}");
        }
    }

    #[test]
    fn identity_within_domain() {
        let cases = [
            ("i=@example.com", false, true),
            ("i=a@mail.example.com", false, true),
            ("i=a@mail.example.com", true, false),
            ("i=a@badexample.com", false, false),
            ("i=a@example.org", false, false),
        ];
        for (i, strict, ok) in cases {
            let signature = parsed(&format!("{GOOD}; {i}")).unwrap();
            assert_eq!(
                check_identity(&signature, strict).is_ok(),
                ok,
                "{i} {strict}"
            );
        }
    }

    #[test]
    fn results_of_errors() {
        let cases = [
            (SignatureError::Expired, AuthResult::Neutral),
            (SignatureError::BodyHash, AuthResult::Fail),
            (SignatureError::Signature, AuthResult::Fail),
            (
                SignatureError::Key(KeyError::Revoked),
                AuthResult::PermError,
            ),
            (
                SignatureError::Key(KeyError::Unavailable),
                AuthResult::TempError,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.result(), want, "{error}");
        }
    }
}
