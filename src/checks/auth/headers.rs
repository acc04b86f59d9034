//! The header section as byte ranges, so that a field can be counted,
//! read or left out of the relayed message exactly as it was received.

use std::ops::Range;

/// One header field: its name, its unfolded-as-received value and the
/// bytes it occupies (continuation lines and the final CRLF included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField<'m> {
    pub name: &'m [u8],
    pub value: &'m [u8],
    pub range: Range<usize>,
}

impl HeaderField<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The fields of the header section of `message` (canonical CRLF). The
/// section ends at the empty line, or at the first line that is neither a
/// field nor a continuation.
pub fn header_fields(message: &[u8]) -> Vec<HeaderField<'_>> {
    let mut fields: Vec<HeaderField<'_>> = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let end = line_end(message, at);
        let line = &message[at..end];
        if line.starts_with(b"\r\n") || line.is_empty() {
            break;
        }
        match (line[0], fields.last_mut()) {
            (b' ' | b'\t', Some(field)) => {
                field.range.end = end;
                field.value = &message[field.value_start()..value_end(message, end)];
            }
            _ => match field(message, at, end) {
                Some(field) => fields.push(field),
                None => break,
            },
        }
        at = end;
    }
    fields
}

impl HeaderField<'_> {
    fn value_start(&self) -> usize {
        self.range.start + self.name.len() + 1
    }
}

/// One past the LF ending the line at `at` (or the end of the message).
fn line_end(message: &[u8], at: usize) -> usize {
    memchr::memchr(b'\n', &message[at..]).map_or(message.len(), |i| at + i + 1)
}

/// The end of a value: before the line's CRLF.
fn value_end(message: &[u8], end: usize) -> usize {
    let mut end = end;
    while end > 0 && matches!(message[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    end
}

fn field(message: &[u8], at: usize, end: usize) -> Option<HeaderField<'_>> {
    let line = &message[at..end];
    let colon = memchr::memchr(b':', line)?;
    let name = &line[..colon];
    let valid = !name.is_empty() && name.iter().all(|b| (33..=126).contains(b));
    valid.then(|| HeaderField {
        name,
        value: &message[at + colon + 1..value_end(message, end).max(at + colon + 1)],
        range: at..end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message and the (name, value) pairs it should yield.
    type Case<'a> = (&'a [u8], &'a [(&'a str, &'a str)]);

    #[test]
    fn fields_table() {
        let cases: &[Case] = &[
            (
                b"From: a@b\r\nTo: c\r\n\r\nbody",
                &[("From", " a@b"), ("To", " c")],
            ),
            (
                b"Subject: one\r\n two\r\nX: y\r\n\r\n",
                &[("Subject", " one\r\n two"), ("X", " y")],
            ),
            (b"A: 1\r\nnot a field\r\nB: 2\r\n\r\n", &[("A", " 1")]),
            (b"A:\r\n\r\n", &[("A", "")]),
            (b"\r\nA: 1\r\n", &[]),
            (b"Bad Name: 1\r\n\r\n", &[]),
        ];
        for (message, want) in cases {
            let got: Vec<(String, String)> = header_fields(message)
                .iter()
                .map(|f| {
                    let name = String::from_utf8_lossy(f.name).into_owned();
                    (name, String::from_utf8_lossy(f.value).into_owned())
                })
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(message));
        }
    }

    #[test]
    fn ranges_cover_whole_fields() {
        let message = b"A: 1\r\n 2\r\nB: 3\r\n\r\nbody";
        let fields = header_fields(message);
        assert_eq!(&message[fields[0].range.clone()], b"A: 1\r\n 2\r\n");
        assert_eq!(&message[fields[1].range.clone()], b"B: 3\r\n");
    }
}
