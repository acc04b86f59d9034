//! ARC rules `mail-auth` 0.15.1 does not enforce, checked before its chain
//! validation (RFC 8617, RFC 6376 3.2): every ARC-Seal and
//! ARC-Message-Signature is a well-formed tag list with its required tags,
//! signs with rsa-sha256 only and never signs an ARC-Seal from the AMS;
//! and ARC headers without a complete set are a broken chain, not "no
//! chain". Keys under 1024 bits (RFC 8301) are refused by the crypto
//! backend (aws-lc), in `mail-auth` and in [`super::arc_verify`] alike.

use super::headers::HeaderField;
pub use super::tags::tag_list;

const SEAL: &str = "ARC-Seal";
const SIGNATURE: &str = "ARC-Message-Signature";
const RESULTS: &str = "ARC-Authentication-Results";

/// True if the message carries any ARC header at all.
pub fn has_arc_headers(fields: &[HeaderField<'_>]) -> bool {
    fields
        .iter()
        .any(|f| f.is(SEAL) || f.is(SIGNATURE) || f.is(RESULTS))
}

/// The first rule an ARC header breaks, if any.
pub fn structural_failure(fields: &[HeaderField<'_>]) -> Option<String> {
    for field in fields.iter().filter(|f| f.is(SEAL) || f.is(SIGNATURE)) {
        let seal = field.is(SEAL);
        let name = if seal { SEAL } else { SIGNATURE };
        let tags = match tag_list(field.value) {
            Ok(tags) => tags,
            Err(why) => return Some(format!("{name}: {why}")),
        };
        if let Some(why) = tag_problem(&tags, seal) {
            return Some(format!("{name}: {why}"));
        }
    }
    None
}

fn tag_problem(tags: &[(String, String)], seal: bool) -> Option<String> {
    let required: &[&str] = match seal {
        true => &["a", "b", "cv", "d", "i", "s"],
        false => &["a", "b", "bh", "d", "h", "i", "s"],
    };
    let get = |name: &str| {
        tags.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(missing) = required.iter().find(|r| get(r).is_none()) {
        return Some(format!("no {missing}= tag"));
    }
    if !get("a").is_some_and(|a| a.eq_ignore_ascii_case("rsa-sha256")) {
        return Some("only rsa-sha256 is allowed".to_string());
    }
    let signs_seal = get("h").is_some_and(|h| {
        h.split(':')
            .any(|name| name.trim().eq_ignore_ascii_case(SEAL))
    });
    signs_seal.then(|| "the signature covers ARC-Seal".to_string())
}

/// True if some ARC-Message-Signature has no `c=` or an empty `h=`: the
/// forms `mail-auth` 0.15.1 reads differently from the ARC reference
/// implementation and the ARC test suite, so that the chain is validated
/// by [`super::arc_verify`] instead.
pub fn lenient_signature(fields: &[HeaderField<'_>]) -> bool {
    fields.iter().filter(|f| f.is(SIGNATURE)).any(|field| {
        let tags = tag_list(field.value).unwrap_or_default();
        let get = |name: &str| tags.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        get("c").is_none() || get("h").is_some_and(|h| h.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::super::headers::header_fields;
    use super::*;

    #[test]
    fn structure_table() {
        let seal = "ARC-Seal: a=rsa-sha256; b=x; cv=none; d=example.org; i=1; s=s\r\n";
        let ams =
            "ARC-Message-Signature: a=rsa-sha256; b=x; bh=y; d=example.org; h=from; i=1; s=s\r\n";
        let cases = [
            (format!("{seal}{ams}"), None),
            (
                format!("{}{ams}", seal.replace("a=rsa-sha256", "a=rsa-sha1")),
                Some("rsa-sha256"),
            ),
            (
                format!("{}{ams}", seal.replace("s=s", "S=s")),
                Some("no s= tag"),
            ),
            (
                format!("{seal}{}", ams.replace("h=from", "h=from:arc-seal")),
                Some("covers"),
            ),
            (
                format!("{seal}{}", ams.replace("a=rsa-sha256; ", "")),
                Some("no a= tag"),
            ),
        ];
        for (headers, want) in cases {
            let message = format!("{headers}From: a@b.example\r\n\r\nbody\r\n");
            let got = structural_failure(&header_fields(message.as_bytes()));
            match want {
                None => assert_eq!(got, None, "{headers}"),
                Some(needle) => assert!(
                    got.as_deref().unwrap_or("").contains(needle),
                    "{headers}: {got:?}"
                ),
            }
        }
    }
}
