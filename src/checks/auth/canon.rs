//! DKIM canonicalization (RFC 6376 3.4) and the inputs of a signature's
//! two hashes, for the DKIM signatures and ARC chains we verify ourselves
//! ([`super::dkim_verify`], [`super::arc_verify`]).

use aws_lc_rs::digest::{Context, Digest, SHA256};

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

/// The SHA-256 of the canonical body, cut to `limit` bytes when the
/// signature has `l=`, fed to the hash as it is made: the body is never
/// copied whole. Empty lines are held back until a line with text follows,
/// so that the trailing ones are dropped (RFC 6376 3.4.3, 3.4.4).
pub fn body_hash(body: &[u8], canon: Canon, limit: Option<usize>) -> Digest {
    let mut sink = Sink::new(limit);
    let mut held = 0usize;
    for line in lines(body) {
        let text = match canon {
            Canon::Simple => line,
            Canon::Relaxed => trim_wsp_end(line),
        };
        if text.is_empty() {
            held += 1;
            continue;
        }
        for _ in 0..std::mem::take(&mut held) {
            sink.push(b"\r\n");
        }
        match canon {
            Canon::Simple => sink.push(text),
            Canon::Relaxed => relaxed_line(&mut sink, text),
        }
        sink.push(b"\r\n");
    }
    if sink.fed == 0 && canon == Canon::Simple {
        sink.push(b"\r\n");
    }
    sink.finish()
}

/// Bytes on their way into the hash, gathered so that the many short
/// pieces of a relaxed body cost one hash update per few kilobytes.
struct Sink {
    context: Context,
    buffer: Vec<u8>,
    room: usize,
    fed: usize,
}

const SINK_BUFFER: usize = 4096;

impl Sink {
    fn new(limit: Option<usize>) -> Self {
        Sink {
            context: Context::new(&SHA256),
            buffer: Vec::with_capacity(SINK_BUFFER),
            room: limit.unwrap_or(usize::MAX),
            fed: 0,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[..bytes.len().min(self.room)];
        self.room -= bytes.len();
        self.fed += bytes.len();
        if self.buffer.len() + bytes.len() > SINK_BUFFER {
            self.context.update(&self.buffer);
            self.buffer.clear();
        }
        match bytes.len() >= SINK_BUFFER {
            true => self.context.update(bytes),
            false => self.buffer.extend_from_slice(bytes),
        }
    }

    fn finish(mut self) -> Digest {
        self.context.update(&self.buffer);
        self.context.finish()
    }
}

/// The body's lines without their CRLF; a last line without CRLF counts.
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(b"\r\n").unwrap_or(body);
    let empty = body.is_empty();
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(move |_| !empty)
}

fn trim_wsp_end(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|&b| !is_wsp(b)).map_or(0, |i| i + 1);
    &line[..end]
}

/// A body line, its trailing whitespace already gone, with every run of
/// whitespace inside it made one space. Most lines have only single
/// spaces between words and go to the hash whole.
fn relaxed_line(sink: &mut Sink, line: &[u8]) {
    if memchr::memchr(b'\t', line).is_none() && memchr::memmem::find(line, b"  ").is_none() {
        return sink.push(line);
    }
    let mut rest = line;
    while let Some(start) = rest.iter().position(|&b| is_wsp(b)) {
        sink.push(&rest[..start]);
        sink.push(b" ");
        let run = rest[start..].iter().take_while(|&&b| is_wsp(b)).count();
        rest = &rest[start + run..];
    }
    sink.push(rest);
}

/// The body of `message` whose header section is `fields`: what follows
/// the empty line.
pub fn body_of<'m>(message: &'m [u8], fields: &[HeaderField<'_>]) -> &'m [u8] {
    let start = fields.last().map_or(0, |f| f.range.end);
    let body = message.get(start..).unwrap_or_default();
    body.strip_prefix(b"\r\n").unwrap_or(body)
}

/// The fields `h=` names, each name taking the lowest unused instance
/// from the bottom up (RFC 6376 5.4.2); names with no instance left sign
/// nothing.
pub fn signed_fields<'f, 'm>(
    fields: &'f [HeaderField<'m>],
    names: &str,
) -> Vec<&'f HeaderField<'m>> {
    let mut used = vec![false; fields.len()];
    let mut out = Vec::new();
    for name in names.split(':').map(str::trim).filter(|n| !n.is_empty()) {
        let found = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].is(name));
        if let Some(i) = found {
            used[i] = true;
            out.push(&fields[i]);
        }
    }
    out
}

/// A signature field's value with the value of its `b=` tag removed.
pub fn without_b(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for (at, spec) in value.split(|&b| b == b';').enumerate() {
        if at > 0 {
            out.push(b';');
        }
        match spec.iter().position(|&b| b == b'=') {
            Some(eq) if spec[..eq].trim_ascii() == b"b" => out.extend_from_slice(&spec[..=eq]),
            _ => out.extend_from_slice(spec),
        }
    }
    out
}

/// The header block a signature signs: the fields `h=` names, then the
/// signature field itself with `b=` emptied and no final CRLF.
pub fn signed_header_block(
    fields: &[HeaderField<'_>],
    names: &str,
    signature: &HeaderField<'_>,
    canon: Canon,
) -> Vec<u8> {
    let mut data = Vec::new();
    for field in signed_fields(fields, names) {
        header(&mut data, canon, field, None);
    }
    header(
        &mut data,
        canon,
        signature,
        Some(&without_b(signature.value)),
    );
    data.truncate(data.len() - 2);
    data
}

#[cfg(test)]
mod tests {
    use super::super::headers::header_fields;
    use super::*;
    use aws_lc_rs::digest::digest;

    /// The canonical body built whole, the plain reading of RFC 6376 3.4.3
    /// and 3.4.4 that [`body_hash`] must agree with.
    fn body(body: &[u8], canon: Canon, limit: Option<usize>) -> Vec<u8> {
        let mut out = Vec::new();
        for line in lines(body) {
            match canon {
                Canon::Simple => out.extend_from_slice(line),
                Canon::Relaxed => {
                    let mut sink = Vec::new();
                    for word in trim_wsp_end(line)
                        .split(|&b| is_wsp(b))
                        .filter(|w| !w.is_empty())
                    {
                        if !sink.is_empty() || line.first().is_some_and(|&b| is_wsp(b)) {
                            sink.push(b' ');
                        }
                        sink.extend_from_slice(word);
                    }
                    out.extend_from_slice(&sink);
                }
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
            let hash = body_hash(input.as_bytes(), *canon, None);
            assert_eq!(hash.as_ref(), digest(&SHA256, want.as_bytes()).as_ref());
        }
        assert_eq!(body(b"abc\r\n", Simple, Some(2)), b"ab");
        let cut = body_hash(b"abc\r\n", Simple, Some(2));
        assert_eq!(cut.as_ref(), digest(&SHA256, b"ab").as_ref());
    }

    /// Bodies longer than the sink's buffer, with lines of every shape, and
    /// limits falling anywhere: the streamed hash equals the whole body's.
    #[test]
    fn streamed_hash_equals_the_whole_body() {
        let line = |i: usize| match i % 6 {
            0 => String::new(),
            5 => format!("single spaces only {i} "),
            1 => " \t ".to_string(),
            2 => format!("word {i}  and\t\tmore   "),
            3 => "x".repeat(i * 37 % 5000),
            _ => format!("\t lead {i}"),
        };
        let text: String = (0..400).map(|i| line(i) + "\r\n").collect();
        for canon in [Canon::Simple, Canon::Relaxed] {
            for limit in [None, Some(0), Some(1), Some(4095), Some(4097), Some(70_000)] {
                let want = digest(&SHA256, &body(text.as_bytes(), canon, limit));
                let got = body_hash(text.as_bytes(), canon, limit);
                assert_eq!(got.as_ref(), want.as_ref(), "{canon:?} {limit:?}");
            }
        }
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
