//! Table-driven tests of the PROXY header parser, and of reading one off a
//! real byte stream (split reads, early client bytes, timeouts).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn sa(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn proxied(source: &str, destination: &str) -> Header {
    Header::Proxied {
        source: sa(source),
        destination: sa(destination),
    }
}

/// A v2 header: command byte, family/transport byte, then the payload.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(command);
    out.push(family);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn v2_inet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p
}

fn v2_inet6(src: &str, dst: &str, sport: u16, dport: u16) -> Vec<u8> {
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    let mut p = Vec::new();
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p
}

type Expect = Result<Parsed, ParseError>;

fn complete(header: Header, len: usize) -> Expect {
    Ok(Parsed::Complete { header, len })
}

#[test]
fn v1_table() {
    let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n";
    let long_unknown = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX));
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "tcp4",
            line.to_vec(),
            complete(proxied("203.0.113.7:40000", "192.0.2.1:25"), line.len()),
        ),
        (
            "tcp4 followed by smtp",
            [&line[..], b"EHLO x\r\n"].concat(),
            complete(proxied("203.0.113.7:40000", "192.0.2.1:25"), line.len()),
        ),
        (
            "tcp6",
            b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n".to_vec(),
            complete(proxied("[2001:db8::7]:65535", "[2001:db8::1]:0"), 44),
        ),
        (
            "tcp6 with a mapped v4 source becomes v4",
            b"PROXY TCP6 ::ffff:198.51.100.2 ::1 1 2\r\n".to_vec(),
            complete(
                Header::Proxied {
                    source: sa("198.51.100.2:1"),
                    destination: sa("[::1]:2"),
                },
                40,
            ),
        ),
        (
            "unknown",
            b"PROXY UNKNOWN\r\n".to_vec(),
            complete(Header::Unknown, 15),
        ),
        (
            "unknown with addresses",
            b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n".to_vec(),
            complete(Header::Unknown, 39),
        ),
        ("empty", b"".to_vec(), Ok(Parsed::Incomplete)),
        ("prefix only", b"PRO".to_vec(), Ok(Parsed::Incomplete)),
        ("truncated", line[..30].to_vec(), Ok(Parsed::Incomplete)),
        (
            "no cr",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n".to_vec(),
            Err(ParseError::V1("line does not end in CRLF")),
        ),
        (
            "smtp instead",
            b"EHLO client\r\n".to_vec(),
            Err(ParseError::NoSignature),
        ),
        (
            "lower case",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Err(ParseError::NoSignature),
        ),
        (
            "family",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Err(ParseError::V1("unknown protocol family")),
        ),
        (
            "v6 in tcp4",
            b"PROXY TCP4 ::1 ::1 1 2\r\n".to_vec(),
            Err(ParseError::V1("bad address for its family")),
        ),
        (
            "v4 in tcp6",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Err(ParseError::V1("bad address for its family")),
        ),
        (
            "octet",
            b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n".to_vec(),
            Err(ParseError::V1("bad address for its family")),
        ),
        (
            "missing port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n".to_vec(),
            Err(ParseError::V1("expected 4 address fields")),
        ),
        (
            "extra field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(),
            Err(ParseError::V1("expected 4 address fields")),
        ),
        (
            "double space",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Err(ParseError::V1("expected 4 address fields")),
        ),
        (
            "port range",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n".to_vec(),
            Err(ParseError::V1("port out of range")),
        ),
        (
            "port sign",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n".to_vec(),
            Err(ParseError::V1("bad port")),
        ),
        (
            "port zero pad",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n".to_vec(),
            Err(ParseError::V1("bad port")),
        ),
        (
            "binary",
            b"PROXY TCP4 \xff\r\n".to_vec(),
            Err(ParseError::V1("not ASCII")),
        ),
        (
            "oversized",
            long_unknown.into_bytes(),
            Err(ParseError::V1TooLong),
        ),
        (
            "oversized without newline",
            [b"PROXY ".as_slice(), &[b'A'; 200]].concat(),
            Err(ParseError::V1TooLong),
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(parse(&input), expected, "{name}");
    }
}

#[test]
fn v2_table() {
    let inet = v2_inet([203, 0, 113, 7], [192, 0, 2, 1], 40000, 25);
    let inet6 = v2_inet6("2001:db8::7", "2001:db8::1", 1234, 25);
    let with_tlv = [inet.clone(), vec![0x04, 0x00, 0x03, b'a', b'b', b'c']].concat();
    let full = v2(0x21, 0x11, &inet);
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "inet",
            full.clone(),
            complete(proxied("203.0.113.7:40000", "192.0.2.1:25"), 28),
        ),
        (
            "inet followed by smtp",
            [full.clone(), b"EHLO x\r\n".to_vec()].concat(),
            complete(proxied("203.0.113.7:40000", "192.0.2.1:25"), 28),
        ),
        (
            "inet6",
            v2(0x21, 0x21, &inet6),
            complete(proxied("[2001:db8::7]:1234", "[2001:db8::1]:25"), 52),
        ),
        (
            "tlvs ignored",
            v2(0x21, 0x11, &with_tlv),
            complete(proxied("203.0.113.7:40000", "192.0.2.1:25"), 34),
        ),
        ("local", v2(0x20, 0x00, &[]), complete(Header::Local, 16)),
        (
            "local ignores addresses",
            v2(0x20, 0x11, &inet),
            complete(Header::Local, 28),
        ),
        (
            "unspec family",
            v2(0x21, 0x00, &[]),
            complete(Header::Unknown, 16),
        ),
        (
            "unix family",
            v2(0x21, 0x31, &[0; 216]),
            complete(Header::Unknown, 232),
        ),
        (
            "signature prefix",
            V2_SIGNATURE[..5].to_vec(),
            Ok(Parsed::Incomplete),
        ),
        (
            "fixed part truncated",
            full[..14].to_vec(),
            Ok(Parsed::Incomplete),
        ),
        (
            "addresses truncated",
            full[..20].to_vec(),
            Ok(Parsed::Incomplete),
        ),
        (
            "bad signature",
            [&V2_SIGNATURE[..11], b"X"].concat(),
            Err(ParseError::NoSignature),
        ),
        (
            "version 1",
            v2(0x11, 0x11, &inet),
            Err(ParseError::V2("version is not 2")),
        ),
        (
            "version 3",
            v2(0x31, 0x11, &inet),
            Err(ParseError::V2("version is not 2")),
        ),
        (
            "command",
            v2(0x22, 0x11, &inet),
            Err(ParseError::V2("unknown command")),
        ),
        (
            "family",
            v2(0x21, 0x41, &inet),
            Err(ParseError::V2("unknown address family")),
        ),
        (
            "udp",
            v2(0x21, 0x12, &inet),
            Err(ParseError::V2("not a stream (TCP) connection")),
        ),
        (
            "short inet",
            v2(0x21, 0x11, &inet[..11]),
            Err(ParseError::V2(
                "address block shorter than its family needs",
            )),
        ),
        (
            "short inet6",
            v2(0x21, 0x21, &inet),
            Err(ParseError::V2(
                "address block shorter than its family needs",
            )),
        ),
        (
            "oversized",
            v2(0x21, 0x11, &[0; V2_MAX_PAYLOAD + 1]),
            Err(ParseError::V2TooLong(V2_MAX_PAYLOAD + 1)),
        ),
        (
            "oversized, only the length seen",
            v2(0x21, 0x11, &[0; 4000])[..16].to_vec(),
            Err(ParseError::V2TooLong(4000)),
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(parse(&input), expected, "{name}");
    }
}

#[test]
fn labels_are_a_closed_set() {
    assert_eq!(Header::Local.label(), "local");
    assert_eq!(Header::Unknown.label(), "unknown");
    assert_eq!(proxied("192.0.2.1:1", "192.0.2.2:2").label(), "proxied");
    assert_eq!(Header::Local.source(), None);
    assert_eq!(ProxyError::Closed.label(), "closed");
    assert_eq!(ProxyError::Truncated.label(), "invalid");
    assert_eq!(ProxyError::Timeout(Duration::ZERO).label(), "timeout");
}

/// Writes `chunks` with a pause between them, as a slow balancer would.
async fn feed(chunks: Vec<Vec<u8>>) -> tokio::io::DuplexStream {
    let (client, server) = tokio::io::duplex(4096);
    tokio::spawn(async move {
        let mut client = client;
        for chunk in chunks {
            client.write_all(&chunk).await.unwrap();
            tokio::task::yield_now().await;
        }
        // Keep the client open until the server side is done with it.
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    });
    server
}

#[tokio::test]
async fn reads_split_header_and_keeps_early_bytes() {
    let header = b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 25\r\n";
    let chunks = vec![
        header[..7].to_vec(),
        header[7..30].to_vec(),
        [&header[30..], b"EHLO x\r\n"].concat(),
    ];
    let mut io = feed(chunks).await;
    let (parsed, early) = read_header(&mut io, Duration::from_secs(5)).await.unwrap();
    assert_eq!(parsed, proxied("203.0.113.7:40000", "192.0.2.1:25"));
    let mut rewound = Rewound::new(early, io);
    let mut line = [0u8; 8];
    rewound.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"EHLO x\r\n");
}

#[tokio::test]
async fn rewound_serves_early_bytes_then_the_stream() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut rewound = Rewound::new(b"abc".to_vec(), server);
    client.write_all(b"def").await.unwrap();
    let mut out = [0u8; 6];
    rewound.read_exact(&mut out).await.unwrap();
    assert_eq!(&out, b"abcdef");
    rewound.write_all(b"reply").await.unwrap();
    let mut echoed = [0u8; 5];
    client.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"reply");
}

#[tokio::test]
async fn read_errors() {
    let v2_head = v2(0x21, 0x11, &v2_inet([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("nothing then close", vec![], "closed"),
        (
            "truncated v1 then close",
            b"PROXY TCP4 1.2".to_vec(),
            "invalid",
        ),
        ("truncated v2 then close", v2_head[..20].to_vec(), "invalid"),
        ("garbage", b"HELO x\r\n".to_vec(), "invalid"),
    ];
    for (name, bytes, label) in cases {
        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&bytes).await.unwrap();
        drop(client);
        let error = read_header(&mut server, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error.label(), label, "{name}: {error}");
    }
}

#[tokio::test]
async fn silent_peer_times_out() {
    let (_client, mut server) = tokio::io::duplex(64);
    let error = read_header(&mut server, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(error, ProxyError::Timeout(_)), "{error}");
}
