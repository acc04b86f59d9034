//! XCLIENT (Postfix's extension) tells the upstream who the real client is,
//! so that its own restrictions and Received header see that client rather
//! than spamgate. <https://www.postfix.org/XCLIENT_README.html>

use std::net::IpAddr;

/// The longest command line we send, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_LINE: usize = 512;

/// What we can tell the upstream about the client.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub addr: IpAddr,
    pub port: u16,
    /// Forward-confirmed reverse name, when known.
    pub name: Option<String>,
    pub helo: Option<String>,
    pub esmtp: bool,
}

/// Builds the XCLIENT command lines (without CRLF) for the attributes the
/// upstream announced, split so that no line exceeds 512 octets.
pub fn commands(client: &ClientIdentity, offered: &[String]) -> Vec<String> {
    let attributes = attributes(client)
        .into_iter()
        .filter(|(name, _)| offered.iter().any(|o| o.eq_ignore_ascii_case(name)))
        .map(|(name, value)| format!("{name}={}", xtext(&value)));
    pack(attributes)
}

fn attributes(client: &ClientIdentity) -> Vec<(&'static str, String)> {
    let addr = match client.addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("IPV6:{v6}"),
        },
    };
    let unavailable = || "[UNAVAILABLE]".to_string();
    vec![
        ("ADDR", addr),
        ("PORT", client.port.to_string()),
        ("NAME", client.name.clone().unwrap_or_else(unavailable)),
        ("HELO", client.helo.clone().unwrap_or_else(unavailable)),
        (
            "PROTO",
            if client.esmtp { "ESMTP" } else { "SMTP" }.to_string(),
        ),
    ]
}

fn pack(attributes: impl Iterator<Item = String>) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for attribute in attributes {
        match lines.last_mut() {
            Some(line) if line.len() + 1 + attribute.len() + 2 <= MAX_LINE => {
                line.push(' ');
                line.push_str(&attribute);
            }
            _ => lines.push(format!("XCLIENT {attribute}")),
        }
    }
    lines
}

/// RFC 3461 xtext: `+`, `=`, and anything outside `!`..`~` as `+XX`.
/// The encoded value is cut at 255 characters (never inside a `+XX`), as
/// Postfix refuses longer ones and the line must stay within 512 octets.
pub fn xtext(value: &str) -> String {
    const MAX: usize = 255;
    let mut out = String::with_capacity(value.len().min(MAX));
    for &b in value.as_bytes() {
        let piece = match b {
            b'!'..=b'~' if b != b'+' && b != b'=' => (b as char).to_string(),
            _ => format!("+{b:02X}"),
        };
        if out.len() + piece.len() > MAX {
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<String> {
        ["NAME", "ADDR", "PORT", "PROTO", "HELO", "LOGIN"]
            .map(String::from)
            .to_vec()
    }

    fn client(addr: &str, helo: Option<&str>) -> ClientIdentity {
        ClientIdentity {
            addr: addr.parse().unwrap(),
            port: 40000,
            name: None,
            helo: helo.map(String::from),
            esmtp: true,
        }
    }

    #[test]
    fn xtext_table() {
        let cases = [
            ("a.b", "a.b"),
            ("a+b=c", "a+2Bb+3Dc"),
            ("a b", "a+20b"),
            ("\u{e9}", "+C3+A9"),
        ];
        assert_eq!(xtext(&"\u{e9}".repeat(200)).len(), 255);
        assert_eq!(xtext(&"a".repeat(300)).len(), 255);
        for (input, want) in cases {
            assert_eq!(xtext(input), want);
        }
    }

    #[test]
    fn one_line_when_it_fits() {
        let lines = commands(&client("192.0.2.1", Some("mx.example")), &all());
        assert_eq!(
            lines,
            vec![
                "XCLIENT ADDR=192.0.2.1 PORT=40000 NAME=[UNAVAILABLE] HELO=mx.example PROTO=ESMTP"
            ]
        );
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        let v6 = commands(&client("2001:db8::1", None), &["ADDR".into()]);
        assert_eq!(v6, vec!["XCLIENT ADDR=IPV6:2001:db8::1"]);
        let mapped = commands(&client("::ffff:192.0.2.1", None), &["ADDR".into()]);
        assert_eq!(mapped, vec!["XCLIENT ADDR=192.0.2.1"]);
    }

    #[test]
    fn only_offered_attributes_are_sent() {
        let lines = commands(
            &client("192.0.2.1", Some("h")),
            &["ADDR".into(), "HELO".into()],
        );
        assert_eq!(lines, vec!["XCLIENT ADDR=192.0.2.1 HELO=h"]);
    }

    #[test]
    fn long_values_are_split_across_lines_of_at_most_512() {
        let mut c = client("192.0.2.1", Some(&"h".repeat(250)));
        c.name = Some(format!("{}.example", "n".repeat(240)));
        let lines = commands(&c, &all());
        assert!(lines.len() >= 2, "{lines:?}");
        for line in &lines {
            assert!(line.len() + 2 <= MAX_LINE, "{} octets", line.len());
            assert!(line.starts_with("XCLIENT "));
        }
        let joined = lines.join(" ");
        for name in ["ADDR=", "PORT=", "NAME=", "HELO=", "PROTO="] {
            assert!(joined.contains(name), "{name} missing");
        }
    }
}
