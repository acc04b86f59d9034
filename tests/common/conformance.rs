//! Test tables read from `../shared/conformance/`, so the tests follow the
//! shared specification instead of a copy of it.

use std::path::PathBuf;

use super::client::{message, Client};
use super::upstream::Recorder;

fn shared(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance")
        .join(name)
}

/// The end-of-data sequences of `smtp-smuggling.md`: `(name, bytes)`.
pub fn smuggling_sequences() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(shared("smtp-smuggling.md"))
        .expect("shared/conformance/smtp-smuggling.md");
    let rows: Vec<(String, Vec<u8>)> = text.lines().filter_map(row).collect();
    assert!(
        rows.len() >= 12,
        "expected the 12 sequences, found {}",
        rows.len()
    );
    rows
}

/// `| lflf | `\n.\n` |` → ("lflf", b"\n.\n").
fn row(line: &str) -> Option<(String, Vec<u8>)> {
    let cells: Vec<&str> = line.split('|').map(str::trim).collect();
    let (name, escaped) = (
        cells.get(1)?,
        cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?,
    );
    Some((name.to_string(), unescape(escaped)))
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (byte, len) = match rest.as_bytes() {
            [b'\\', b'n', ..] => (b'\n', 2),
            [b'\\', b'r', ..] => (b'\r', 2),
            [b'\\', b'x', h, l, ..] => (
                u8::from_str_radix(&format!("{}{}", *h as char, *l as char), 16).unwrap(),
                4,
            ),
            _ => (c as u8, c.len_utf8()),
        };
        out.push(byte);
        rest = &rest[len..];
    }
    out
}

/// Sends one message with `sequence` inside, followed by a smuggled
/// transaction, the real end, then a clean second transaction.
pub async fn smuggle(client: &mut Client, sequence: &[u8]) -> (u16, u16) {
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    let mut data = b"From: a@example.com\r\nSubject: carrier\r\n\r\nfirst".to_vec();
    data.extend_from_slice(sequence);
    data.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n");
    client.send(&data).await;
    let first = client.reply().await.code;
    let second = client
        .send_mail("c@example.com", &["d@example.net"], &message("clean"))
        .await
        .code;
    (first, second)
}

/// After one [`smuggle`] per sequence: only the clean follow-up messages
/// reached the upstream, and nothing of the smuggled transaction did.
pub async fn assert_nothing_smuggled(upstream: &Recorder, sequences: usize) {
    let accepted = upstream.wait_accepted(sequences).await;
    assert_eq!(accepted.len(), sequences, "only the clean messages arrived");
    for got in &accepted {
        assert_eq!(got.mail_from, "c@example.com");
        assert!(!got.wire.windows(8).any(|w| w == b"smuggled"));
    }
    assert!(upstream
        .commands()
        .iter()
        .all(|c| !c.contains("evil@example.org")));
}
