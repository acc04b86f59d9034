//! The identity of a message for learning: SHA-256 over a normalised form,
//! so that two copies of one message (delivered to two mailboxes, relayed
//! twice, saved with CRLF or LF) are one message, and learning it twice
//! counts once.
//!
//! The form is a few header fields that a copy keeps (Message-ID, Date,
//! From, Subject, unfolded, whitespace collapsed) and the body with line
//! ends and trailing whitespace normalised. Received, Delivered-To and the
//! other trace fields that differ per copy are left out.

use aws_lc_rs::digest::{Context, SHA256};
use mail_parser::MessageParser;

use super::db::Digest;

const FIELDS: [&str; 4] = ["Message-ID", "Date", "From", "Subject"];

/// The digest of `raw`, truncated to 128 bits.
pub fn digest(raw: &[u8]) -> Digest {
    let mut sum = Context::new(&SHA256);
    if let Some(message) = MessageParser::new().parse_headers(raw) {
        let headers = message.root().headers();
        for name in FIELDS {
            let value = headers.get(name).map(|h| h.raw_value()).unwrap_or_default();
            sum.update(name.as_bytes());
            sum.update(b":");
            sum.update(&collapse(value));
            sum.update(b"\n");
        }
    }
    sum.update(b"\n");
    for line in body(raw).split(|&b| b == b'\n') {
        sum.update(line.trim_ascii_end());
        sum.update(b"\n");
    }
    let full = sum.finish();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full.as_ref()[..16]);
    out
}

/// The bytes after the header block (the whole input if it has none).
fn body(raw: &[u8]) -> &[u8] {
    let crlf = memchr::memmem::find(raw, b"\r\n\r\n").map(|i| i + 4);
    let lf = memchr::memmem::find(raw, b"\n\n").map(|i| i + 2);
    let start = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(0),
    };
    &raw[start..]
}

/// Runs of whitespace (folding included) as one space, ends trimmed.
fn collapse(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for word in value
        .split(u8::is_ascii_whitespace)
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_one_message() {
        let a = b"Received: from a by b\r\nMessage-ID: <1@x>\r\nSubject: hi\r\n there\r\n\r\nbody  \r\nline\r\n";
        let b = b"Received: from c by d\nDelivered-To: me@x\nMessage-ID: <1@x>\nSubject: hi there\n\nbody\nline\n";
        let other = b"Message-ID: <1@x>\r\nSubject: hi there\r\n\r\nbody\r\nline changed\r\n";
        assert_eq!(digest(a), digest(b));
        assert_ne!(digest(a), digest(other));
        assert_ne!(
            digest(b"Subject: a\r\n\r\nx"),
            digest(b"Subject: b\r\n\r\nx")
        );
    }
}
