//! The tag lists of DKIM signatures, DKIM key records and ARC headers
//! (RFC 6376 3.2).

/// A DKIM-style tag list (RFC 6376 3.2): `name=value` separated by `;`,
/// names `ALPHA *(ALPHA / DIGIT / "_")`, none twice, at most one
/// trailing `;`. Values lose their folding whitespace.
pub fn tag_list(value: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = String::from_utf8_lossy(value);
    let text = text.trim_end_matches([' ', '\t', '\r', '\n']);
    let text = text.strip_suffix(';').unwrap_or(text);
    let mut tags: Vec<(String, String)> = Vec::with_capacity(16);
    for spec in text.split(';') {
        let (name, value) = spec.split_once('=').ok_or("a tag without '='")?;
        let name = name.trim();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid tag name '{name}'"));
        }
        // A dozen tags at most in practice: a scan beats a hash set.
        if tags.iter().any(|(n, _)| n == name) {
            return Err(format!("tag {name}= twice"));
        }
        tags.push((name.to_string(), without_whitespace(value)));
    }
    Ok(tags)
}

/// A tag value with its folding and spaces removed (RFC 6376 3.2). The
/// char-by-char filter only for values that need it: `b=` alone is
/// hundreds of characters.
fn without_whitespace(value: &str) -> String {
    // The ASCII characters `char::is_whitespace` takes, \x0B included.
    let ascii_space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r');
    match value.is_ascii() && !value.bytes().any(ascii_space) {
        true => value.to_string(),
        false => value.chars().filter(|c| !c.is_whitespace()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        let cases: &[(&str, Result<usize, &str>)] = &[
            ("a=rsa-sha256; b=abc; cv=none", Ok(3)),
            ("a=1; b=2;", Ok(2)),
            (" a = 1 ;\r\n b=x y\r\n z", Ok(2)),
            ("a=1;; b=2", Err("without")),
            ("a=1; _=2", Err("invalid tag name")),
            ("a=1; a=2", Err("twice")),
            ("a", Err("without")),
        ];
        for (text, want) in cases {
            match (tag_list(text.as_bytes()), want) {
                (Ok(tags), Ok(n)) => assert_eq!(tags.len(), *n, "{text}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{text}: {e}"),
                (got, want) => panic!("{text}: {got:?} vs {want:?}"),
            }
        }
    }

    #[test]
    fn values_lose_their_whitespace() {
        let tags = tag_list(b"b=ab\r\n cd; bh=x\x0By; d=plain; s=\xc2\xa0sel").unwrap();
        let values: Vec<&str> = tags.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["abcd", "xy", "plain", "sel"]);
    }
}
