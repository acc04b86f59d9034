//! The XCLIENT encoder: whatever the client told us (HELO is client text),
//! every line we send stays within 512 octets CRLF included, carries only
//! printable ASCII, names each offered attribute once, and decodes back to
//! the values we meant (HELO cut where its xtext form reaches 255 characters).
#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use spamgate::upstream::xclient::{commands, ClientIdentity};

const ATTRIBUTES: [&str; 6] = ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 20 {
        return;
    }
    let (head, text) = data.split_at(20);
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&head[..16]);
    let addr = match head[16] & 1 {
        0 => IpAddr::from([octets[0], octets[1], octets[2], octets[3]]),
        _ => IpAddr::from(octets),
    };
    let mut parts = text
        .split(|&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let client = ClientIdentity {
        addr,
        port: u16::from_be_bytes([head[17], head[18]]),
        name: parts.next().filter(|_| head[16] & 2 != 0),
        helo: parts.next().filter(|_| head[16] & 4 != 0),
        esmtp: head[16] & 8 != 0,
    };
    let offered: Vec<String> = ATTRIBUTES
        .iter()
        .enumerate()
        .filter(|(i, _)| head[19] & (1 << i) != 0)
        .map(|(_, a)| {
            if head[16] & 16 != 0 {
                a.to_lowercase()
            } else {
                a.to_string()
            }
        })
        .collect();
    let sent = decode_all(&commands(&client, &offered));
    for name in ["NAME", "ADDR", "PORT", "PROTO", "HELO"] {
        let wanted = offered.iter().any(|o| o.eq_ignore_ascii_case(name));
        assert_eq!(sent.contains_key(name), wanted, "{name} offered={wanted}");
    }
    if let (Some(helo), Some(sent)) = (&client.helo, sent.get("HELO")) {
        check_cut(helo.as_bytes(), sent);
    }
});

/// The HELO is cut so that its xtext form fits 255 characters, never
/// inside an octet, and no shorter than that: the sent value decodes to
/// the longest prefix of the client's HELO whose encoding fits.
fn check_cut(helo: &[u8], sent: &[u8]) {
    assert!(helo.starts_with(sent), "HELO does not decode to a prefix");
    let used = encoded_len(sent);
    assert!(used <= 255, "encoded HELO of {used} characters");
    if let Some(&next) = helo.get(sent.len()) {
        assert!(
            used + encoded_len(&[next]) > 255,
            "HELO cut short: {used} characters and the next octet fits"
        );
    }
}

/// RFC 3461 xtext length: printable ASCII but `+` and `=` as is, the rest `+XX`.
fn encoded_len(bytes: &[u8]) -> usize {
    let plain = |b: &u8| (b'!'..=b'~').contains(b) && *b != b'+' && *b != b'=';
    bytes.iter().map(|b| if plain(b) { 1 } else { 3 }).sum()
}

/// Checks every line and returns each attribute's decoded value.
fn decode_all(lines: &[String]) -> HashMap<String, Vec<u8>> {
    let mut seen = HashMap::new();
    for line in lines {
        assert!(
            line.len() + 2 <= 512,
            "XCLIENT line of {} octets",
            line.len() + 2
        );
        let rest = line.strip_prefix("XCLIENT ").expect("starts with XCLIENT");
        assert!(
            rest.bytes()
                .all(|b| b == b' ' || (b'!'..=b'~').contains(&b)),
            "{line:?}"
        );
        for attribute in rest.split(' ') {
            let (name, value) = attribute.split_once('=').expect("NAME=value");
            let previous = seen.insert(name.to_ascii_uppercase(), xtext_decode(value));
            assert!(previous.is_none(), "{name} sent twice");
        }
    }
    seen
}

fn xtext_decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
            out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
            i += 3;
        } else {
            assert!(bytes[i] != b'=', "bare = in xtext");
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
