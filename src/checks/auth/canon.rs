//! DKIM canonicalization (RFC 6376 3.4), for the ARC chains we validate
//! ourselves ([`super::arc_verify`]): `mail-auth` keeps its own private.

use super::headers::HeaderField;

/// One of the two canonicalization algorithms of RFC 6376 3.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canon {
    Simple,
    Relaxed,
}

impl Canon {
    /// The `header/body` pair of a `c=` value; a missing body part is
    /// `simple` (RFC 6376 3.5). `None` for an unknown algorithm.
    pub fn pair(value: &str) -> Option<(Canon, Canon)> {
        let (header, body) = value.split_once('/').unwrap_or((value, "simple"));
        Some((Canon::parse(header)?, Canon::parse(body)?))
    }

    fn parse(word: &str) -> Option<Canon> {
        match word.to_ascii_lowercase().as_str() {
            "simple" => Some(Canon::Simple),
            "relaxed" => Some(Canon::Relaxed),
            _ => None,
        }
    }
}

fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// Appends one header field, canonicalized, with its CRLF. `value`
/// replaces the field's value when given (a signature with `b=` emptied).
pub fn header(out: &mut Vec<u8>, canon: Canon, field: &HeaderField<'_>, value: Option<&[u8]>) {
    let value = value.unwrap_or(field.value);
    match canon {
        Canon::Simple => {
            out.extend_from_slice(field.name);
            out.push(b':');
            out.extend_from_slice(value);
        }
        Canon::Relaxed => {
            let name = field.name.trim_ascii_end();
            out.extend(name.iter().map(u8::to_ascii_lowercase));
            out.push(b':');
            relaxed_value(out, value);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// Unfolds, turns every run of whitespace into one space and drops the
/// whitespace at both ends.
fn relaxed_value(out: &mut Vec<u8>, value: &[u8]) {
    let mut space = false;
    let start = out.len();
    for &b in value.iter().filter(|b| !matches!(b, b'\r' | b'\n')) {
        if is_wsp(b) {
            space = true;
            continue;
        }
        if space && out.len() > start {
            out.push(b' ');
        }
        space = false;
        out.push(b);
    }
}

/// The canonical body, cut to `limit` bytes when the signature has `l=`.
pub fn body(body: &[u8], canon: Canon, limit: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    for line in lines(body) {
        match canon {
            Canon::Simple => out.extend_from_slice(line),
            Canon::Relaxed => relaxed_line(&mut out, line),
        }
        out.extend_from_slice(b"\r\n");
    }
    while out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    if out == b"\r\n" && canon == Canon::Relaxed {
        out.clear();
    }
    if out.is_empty() && canon == Canon::Simple {
        out.extend_from_slice(b"\r\n");
    }
    if let Some(limit) = limit {
        out.truncate(limit);
    }
    out
}

/// The body's lines without their CRLF; a last line without CRLF counts.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    let empty = body.is_empty();
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(move |_| !empty)
}

/// A body line without trailing whitespace and with every run of
/// whitespace inside it made one space.
fn relaxed_line(out: &mut Vec<u8>, line: &[u8]) {
    let end = line.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    let mut space = false;
    for &b in &line[..end] {
        if is_wsp(b) {
            space = true;
            continue;
        }
        if space {
            out.push(b' ');
        }
        space = false;
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::super::headers::header_fields;
    use super::*;

    #[test]
    fn bodies() {
        use Canon::{Relaxed, Simple};
        let cases: &[(&str, Canon, &str)] = &[
            ("", Simple, "\r\n"),
            ("", Relaxed, ""),
            ("\r\n\r\n", Simple, "\r\n"),
            ("\r\n\r\n", Relaxed, ""),
            ("a  b \t\r\n\r\n\r\n", Relaxed, "a b\r\n"),
            ("a  b \t\r\n\r\n\r\n", Simple, "a  b \t\r\n"),
            (" c\r\nd", Relaxed, " c\r\nd\r\n"),
            ("x\r\n \r\n", Relaxed, "x\r\n"),
            ("x\r\n \r\n", Simple, "x\r\n \r\n"),
        ];
        for (input, canon, want) in cases {
            let got = body(input.as_bytes(), *canon, None);
            assert_eq!(String::from_utf8_lossy(&got), *want, "{input:?} {canon:?}");
        }
        assert_eq!(body(b"abc\r\n", Simple, Some(2)), b"ab");
    }

    #[test]
    fn headers() {
        let message = b"SUBJect: \tHello  there \r\n  world\r\n\r\n";
        let fields = header_fields(message);
        let cases: &[(Canon, &str)] = &[
            (Canon::Relaxed, "subject:Hello there world\r\n"),
            (Canon::Simple, "SUBJect: \tHello  there \r\n  world\r\n"),
        ];
        for (canon, want) in cases {
            let mut out = Vec::new();
            header(&mut out, *canon, &fields[0], None);
            assert_eq!(String::from_utf8_lossy(&out), *want, "{canon:?}");
        }
    }

    #[test]
    fn canonicalization_pairs() {
        let cases = [
            ("relaxed/relaxed", Some((Canon::Relaxed, Canon::Relaxed))),
            ("Relaxed", Some((Canon::Relaxed, Canon::Simple))),
            ("simple/relaxed", Some((Canon::Simple, Canon::Relaxed))),
            ("", None),
            ("nowsp/simple", None),
        ];
        for (value, want) in cases {
            assert_eq!(Canon::pair(value), want, "{value}");
        }
    }
}
