//! ARC chain validation of our own (RFC 8617 5.2), for the chains whose
//! ARC-Message-Signature `mail-auth` 0.15.1 reads differently from the
//! ARC reference implementation (dkimpy) and the ARC test suite: an AMS
//! without `c=` (ARC canonicalizes relaxed/relaxed there; `mail-auth`
//! applies DKIM's simple/simple) and an AMS with an empty `h=` (it signs
//! only itself; `mail-auth` rejects it as a missing tag). Everything else
//! is the same algorithm: the newest AMS and every ARC-Seal must verify.

use std::time::{SystemTime, UNIX_EPOCH};

use base64ct::{Base64, Encoding};

use super::arc_rules::{self, tag_list};
use super::canon::{self, Canon};
use super::headers::{header_fields, HeaderField};
use super::keys::{KeyError, KeyType, Keys};
use crate::dns::Dns;
use crate::judgement::AuthResult;

const MAX_SETS: usize = 50;

/// Why a chain does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("{0}")]
    Malformed(String),
    #[error("ARC instance {0} is not one complete set")]
    IncompleteSet(usize),
    #[error("ARC-Seal {0} has the wrong cv=")]
    ChainValidation(usize),
    #[error("ARC-Message-Signature: {0}")]
    Signature(&'static str),
    #[error("{0}: {1}")]
    Key(String, String),
    #[error("{0}: temporary DNS error")]
    KeyUnavailable(String),
}

/// One ARC set: its three header fields.
struct Set<'f, 'm> {
    seal: &'f HeaderField<'m>,
    signature: &'f HeaderField<'m>,
    results: &'f HeaderField<'m>,
}

type Tags = Vec<(String, String)>;

fn tag<'t>(tags: &'t Tags, name: &str) -> Option<&'t str> {
    tags.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The ARC result of a whole message: none without ARC headers, pass,
/// fail, or temperror when a key could not be fetched.
pub async fn validate(dns: &Dns, keys: &Keys, message: &[u8]) -> AuthResult {
    let fields = header_fields(message);
    if !arc_rules::has_arc_headers(&fields) {
        return AuthResult::None;
    }
    let signer = Signer { dns, keys };
    match chain(&signer, message, &fields).await {
        Ok(()) => AuthResult::Pass,
        Err(ChainError::KeyUnavailable(_)) => AuthResult::TempError,
        Err(_) => AuthResult::Fail,
    }
}

/// Where keys come from.
struct Signer<'a> {
    dns: &'a Dns,
    keys: &'a Keys,
}

async fn chain(
    signer: &Signer<'_>,
    message: &[u8],
    fields: &[HeaderField<'_>],
) -> Result<(), ChainError> {
    if let Some(why) = arc_rules::structural_failure(fields) {
        return Err(ChainError::Malformed(why));
    }
    let sets = sets(fields)?;
    for (at, set) in sets.iter().enumerate() {
        let want = if at == 0 { "none" } else { "pass" };
        let tags = tag_list(set.seal.value).map_err(ChainError::Malformed)?;
        if !tag(&tags, "cv").is_some_and(|cv| cv.eq_ignore_ascii_case(want)) {
            return Err(ChainError::ChainValidation(at + 1));
        }
    }
    let newest = sets.last().ok_or(ChainError::IncompleteSet(1))?;
    verify_signature(signer, message, fields, newest.signature).await?;
    for end in (1..=sets.len()).rev() {
        verify_seal(signer, &sets[..end]).await?;
    }
    Ok(())
}

/// The sets in instance order: instances 1 to N, each exactly once per
/// header, N at most 50.
fn sets<'f, 'm>(fields: &'f [HeaderField<'m>]) -> Result<Vec<Set<'f, 'm>>, ChainError> {
    let mut slots: Vec<[Option<&HeaderField<'m>>; 3]> = Vec::new();
    for field in fields {
        let (kind, instance) = match arc_kind(field) {
            Some(kind) => (kind, instance(field)?),
            None => continue,
        };
        if instance > MAX_SETS {
            return Err(ChainError::Malformed("more than 50 ARC sets".into()));
        }
        if slots.len() < instance {
            slots.resize(instance, [None; 3]);
        }
        let slot = &mut slots[instance - 1][kind];
        if slot.replace(field).is_some() {
            return Err(ChainError::IncompleteSet(instance));
        }
    }
    let complete = |(at, slot): (usize, &[Option<&'f HeaderField<'m>>; 3])| match slot {
        [Some(seal), Some(signature), Some(results)] => Ok(Set {
            seal,
            signature,
            results,
        }),
        _ => Err(ChainError::IncompleteSet(at + 1)),
    };
    slots.iter().enumerate().map(complete).collect()
}

/// 0 for ARC-Seal, 1 for ARC-Message-Signature, 2 for
/// ARC-Authentication-Results.
fn arc_kind(field: &HeaderField<'_>) -> Option<usize> {
    [
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
    ]
    .iter()
    .position(|name| field.is(name))
}

/// The `i=` of an ARC header: a tag of the seal and signature, the first
/// element of ARC-Authentication-Results.
fn instance(field: &HeaderField<'_>) -> Result<usize, ChainError> {
    let bad = || ChainError::Malformed("an ARC header without a valid i=".into());
    let number = match field.is("ARC-Authentication-Results") {
        true => results_instance(field.value),
        false => tag_value(field, "i"),
    };
    match number.ok_or_else(bad)?.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(bad()),
    }
}

fn results_instance(value: &[u8]) -> Option<String> {
    let value = String::from_utf8_lossy(value);
    let (name, number) = value.split(';').next()?.split_once('=')?;
    (name.trim() == "i").then(|| number.to_string())
}

fn tag_value(field: &HeaderField<'_>, name: &str) -> Option<String> {
    let tags = tag_list(field.value).ok()?;
    tag(&tags, name).map(str::to_string)
}

/// The newest ARC-Message-Signature: body hash, then the signature over
/// the fields of `h=` (possibly none) and itself.
async fn verify_signature(
    signer: &Signer<'_>,
    message: &[u8],
    fields: &[HeaderField<'_>],
    ams: &HeaderField<'_>,
) -> Result<(), ChainError> {
    let tags = tag_list(ams.value).map_err(ChainError::Malformed)?;
    let (header_canon, body_canon) = match tag(&tags, "c") {
        None => (Canon::Relaxed, Canon::Relaxed),
        Some(c) => Canon::pair(c).ok_or(ChainError::Signature("unknown c="))?,
    };
    if expired(&tags) {
        return Err(ChainError::Signature("expired"));
    }
    check_body_hash(message, fields, &tags, body_canon)?;
    let names = tag(&tags, "h").unwrap_or_default();
    let data = canon::signed_header_block(fields, names, ams, header_canon);
    verify(signer, &tags, &data).await
}

fn expired(tags: &Tags) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    tag(tags, "x")
        .and_then(|x| x.parse::<u64>().ok())
        .is_some_and(|x| x < now)
}

fn check_body_hash(
    message: &[u8],
    fields: &[HeaderField<'_>],
    tags: &Tags,
    canon: Canon,
) -> Result<(), ChainError> {
    let body = canon::body_of(message, fields);
    let limit = match tag(tags, "l") {
        None => None,
        Some(l) => Some(l.parse().map_err(|_| ChainError::Signature("bad l="))?),
    };
    let want = Base64::decode_vec(tag(tags, "bh").unwrap_or_default())
        .map_err(|_| ChainError::Signature("bh= is not base64"))?;
    let got = canon::body_hash(body, canon, limit);
    match got.as_ref() == want.as_slice() {
        true => Ok(()),
        false => Err(ChainError::Signature("body hash mismatch")),
    }
}

/// The seal of the last set in `sets`, over every set up to it
/// (relaxed, RFC 8617 5.1.1).
async fn verify_seal(signer: &Signer<'_>, sets: &[Set<'_, '_>]) -> Result<(), ChainError> {
    let Some((last, earlier)) = sets.split_last() else {
        return Ok(());
    };
    let mut data = Vec::new();
    for set in earlier {
        canon::header(&mut data, Canon::Relaxed, set.results, None);
        canon::header(&mut data, Canon::Relaxed, set.signature, None);
        canon::header(&mut data, Canon::Relaxed, set.seal, None);
    }
    canon::header(&mut data, Canon::Relaxed, last.results, None);
    canon::header(&mut data, Canon::Relaxed, last.signature, None);
    let seal = canon::without_b(last.seal.value);
    canon::header(&mut data, Canon::Relaxed, last.seal, Some(&seal));
    data.truncate(data.len() - 2);
    let tags = tag_list(last.seal.value).map_err(ChainError::Malformed)?;
    verify(signer, &tags, &data).await
}

/// Checks `b=` over `data` with the RSA key at `s=`/`d=`.
async fn verify(signer: &Signer<'_>, tags: &Tags, data: &[u8]) -> Result<(), ChainError> {
    let name = format!(
        "{}._domainkey.{}",
        tag(tags, "s").unwrap_or_default(),
        tag(tags, "d").unwrap_or_default()
    );
    let key = match signer.keys.fetch(signer.dns, &name).await {
        Ok(key) if key.kind == KeyType::Rsa => key,
        Ok(_) => return Err(ChainError::Key(name, "not an RSA key".into())),
        Err(KeyError::Unavailable) => return Err(ChainError::KeyUnavailable(name)),
        Err(e) => return Err(ChainError::Key(name, e.to_string())),
    };
    let signature = Base64::decode_vec(tag(tags, "b").unwrap_or_default())
        .map_err(|_| ChainError::Key(name.clone(), "b= is not base64".into()))?;
    match key.verifies(data, &signature) {
        true => Ok(()),
        false => Err(ChainError::Key(
            name,
            "the signature does not verify".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b_tag_is_emptied() {
        let cases: &[(&str, &str)] = &[
            ("a=1; b=xyz; bh=abc", "a=1; b=; bh=abc"),
            (" b = x\r\n y ;c=1", " b =;c=1"),
            ("bh=1; d=b", "bh=1; d=b"),
        ];
        for (value, want) in cases {
            let got = canon::without_b(value.as_bytes());
            assert_eq!(String::from_utf8_lossy(&got), *want, "{value}");
        }
    }

    #[test]
    fn signed_fields_bottom_up() {
        let message = b"A: 1\r\nB: 2\r\nA: 3\r\n\r\n";
        let fields = header_fields(message);
        let values = |names: &str| -> Vec<String> {
            canon::signed_fields(&fields, names)
                .iter()
                .map(|f| String::from_utf8_lossy(f.value).trim().to_string())
                .collect()
        };
        assert_eq!(values("a:b:a:a"), ["3", "2", "1"]);
        assert_eq!(values(""), Vec::<String>::new());
        assert_eq!(values("c"), Vec::<String>::new());
    }

    #[test]
    fn instances_and_sets() {
        let seal = |i: u32| format!("ARC-Seal: i={i}; a=rsa-sha256; b=x; cv=none; d=d; s=s\r\n");
        let ams = |i: u32| {
            format!("ARC-Message-Signature: i={i}; a=rsa-sha256; b=x; bh=y; d=d; h=from; s=s\r\n")
        };
        let aar = |i: u32| format!("ARC-Authentication-Results: i={i}; mx.example; spf=pass\r\n");
        let cases = [
            (format!("{}{}{}", seal(1), ams(1), aar(1)), Ok(1)),
            (format!("{}{}{}", seal(2), ams(2), aar(2)), Err(1)),
            (
                format!("{}{}{}{}", seal(1), seal(1), ams(1), aar(1)),
                Err(1),
            ),
            (format!("{}{}", seal(1), ams(1)), Err(1)),
        ];
        for (headers, want) in cases {
            let message = format!("{headers}From: a@b.example\r\n\r\nbody\r\n");
            let fields = header_fields(message.as_bytes());
            let got = sets(&fields).map(|s| s.len()).map_err(|e| match e {
                ChainError::IncompleteSet(n) => n,
                other => panic!("{other}"),
            });
            assert_eq!(got, want, "{headers}");
        }
    }
}
