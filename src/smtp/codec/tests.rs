use super::*;

async fn stream_with(input: &[u8]) -> SmtpStream<tokio::io::DuplexStream> {
    let (ours, mut theirs) = tokio::io::duplex(1 << 20);
    theirs.write_all(input).await.unwrap();
    drop(theirs);
    SmtpStream::new(ours)
}

fn limits(normalize: bool) -> DataLimits {
    DataLimits {
        max_size: 10_000,
        max_line: 1000,
        normalize,
    }
}

fn text(bytes: &[u8], canonical: bool) -> Line {
    Line::Text {
        bytes: BytesMut::from(bytes),
        canonical,
    }
}

#[tokio::test]
async fn line_table() {
    let cases: Vec<(&[u8], usize, Line)> = vec![
        (b"EHLO x\r\n", 512, text(b"EHLO x", true)),
        (b"EHLO x\n", 512, text(b"EHLO x", false)),
        (b"EHLO\rx\r\n", 512, text(b"EHLO\rx", false)),
        (b"\r\n", 512, text(b"", true)),
        (b"0123456789\r\n", 12, text(b"0123456789", true)),
        (b"01234567890\r\n", 12, Line::TooLong),
    ];
    for (input, max, want) in cases {
        let mut s = stream_with(input).await;
        assert_eq!(s.read_line(max).await.unwrap(), want, "{input:?}");
    }
}

#[tokio::test]
async fn overlong_line_is_dropped_and_next_line_survives() {
    let mut input = vec![b'A'; 100_000];
    input.extend_from_slice(b"\r\nQUIT\r\n");
    let mut s = stream_with(&input).await;
    assert_eq!(s.read_line(512).await.unwrap(), Line::TooLong);
    assert_eq!(s.read_line(512).await.unwrap(), text(b"QUIT", true));
    assert!(matches!(s.read_line(512).await, Err(ReadError::Closed)));
}

#[tokio::test]
async fn data_is_unstuffed_and_ends_on_lone_dot() {
    let mut s = stream_with(b"Subject: x\r\n\r\n..dot\r\n.\r\nQUIT\r\n").await;
    let body = s.read_data(limits(false)).await.unwrap();
    assert_eq!(body.flaw, None);
    assert_eq!(body.bytes, b"Subject: x\r\n\r\n.dot\r\n");
    assert_eq!(s.read_line(512).await.unwrap(), text(b"QUIT", true));
}

/// The end-of-data sequences of shared/conformance/smtp-smuggling.md.
const SMUGGLING: &[(&str, &[u8])] = &[
    ("lflf", b"\n.\n"),
    ("crcr", b"\r.\r"),
    ("crlf-bare", b"\r.\n"),
    ("lfcr", b"\n.\r"),
    ("lfcrlf", b"\n.\r\n"),
    ("crlflf", b"\r\n.\n"),
    ("crcrlf", b"\r.\r\n"),
    ("crlfcr", b"\r\n.\r"),
    ("nullbefore", b"\r\n\x00.\r\n"),
    ("nullafter", b"\r\n.\x00\r\n"),
    ("crlf-crcrlf", b"\r\n.\r\r\n"),
    ("crcrlf-crcrlf", b"\r\r\n.\r\r\n"),
];

fn smuggling_input(sequence: &[u8]) -> Vec<u8> {
    let mut input = b"Subject: one\r\n\r\nfirst".to_vec();
    input.extend_from_slice(sequence);
    input.extend_from_slice(
        b"MAIL FROM:<evil@x.y>\r\nRCPT TO:<v@x.y>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
    );
    input
}

#[tokio::test]
async fn smuggling_sequences_never_end_data_in_reject_mode() {
    for (name, sequence) in SMUGGLING {
        let mut s = stream_with(&smuggling_input(sequence)).await;
        let body = s.read_data(limits(false)).await.unwrap();
        assert!(body.flaw.is_some(), "{name}: must be flagged");
        assert_eq!(
            s.read_line(512).await.unwrap(),
            text(b"QUIT", true),
            "{name}"
        );
    }
}

#[tokio::test]
async fn smuggling_sequences_are_one_canonical_message_when_normalized() {
    for (name, sequence) in SMUGGLING {
        let mut s = stream_with(&smuggling_input(sequence)).await;
        let body = s.read_data(limits(true)).await.unwrap();
        let nul = name.starts_with("null");
        assert_eq!(body.flaw, nul.then_some(DataFlaw::Nul), "{name}");
        assert_eq!(
            s.read_line(512).await.unwrap(),
            text(b"QUIT", true),
            "{name}"
        );
        assert_canonical(&body.bytes, name);
        let found = body.bytes.windows(8).any(|w| w == b"smuggled");
        assert!(
            nul || found,
            "{name}: the second message stays inside the first"
        );
    }
}

fn assert_canonical(bytes: &[u8], name: &str) {
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(bytes.get(i + 1), Some(&b'\n'), "{name}: bare CR at {i}"),
            b'\n' => assert_eq!(
                bytes.get(i.wrapping_sub(1)),
                Some(&b'\r'),
                "{name}: bare LF at {i}"
            ),
            _ => {}
        }
    }
}

#[tokio::test]
async fn oversized_message_is_read_to_the_end_and_flagged() {
    let mut input = Vec::new();
    for _ in 0..500 {
        input.extend_from_slice(&[b'x'; 98]);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b".\r\nNOOP\r\n");
    let mut s = stream_with(&input).await;
    let body = s.read_data(limits(false)).await.unwrap();
    assert_eq!(body.flaw, Some(DataFlaw::TooBig));
    assert!(body.bytes.is_empty(), "memory released");
    assert_eq!(body.received, 50_000);
    assert_eq!(s.read_line(512).await.unwrap(), text(b"NOOP", true));
}

#[tokio::test]
async fn overlong_data_line_is_flagged_without_buffering_it() {
    let mut input = b"a\r\n".to_vec();
    input.extend_from_slice(&vec![b'y'; 50_000]);
    input.extend_from_slice(b"\r\n.\r\nNOOP\r\n");
    let mut s = stream_with(&input).await;
    let body = s.read_data(limits(false)).await.unwrap();
    assert_eq!(body.flaw, Some(DataFlaw::LineTooLong));
    assert_eq!(s.read_line(512).await.unwrap(), text(b"NOOP", true));
}

#[tokio::test]
async fn data_cut_off_is_an_error() {
    let mut s = stream_with(b"Subject: x\r\n\r\nbody\r\n").await;
    assert!(matches!(
        s.read_data(limits(false)).await,
        Err(ReadError::Closed)
    ));
}

#[test]
fn dot_stuffing_table() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n..c\r\n", b"a\r\n..b\r\n...c\r\n.\r\n"),
        (b"no newline", b"no newline\r\n.\r\n"),
        (b".", b"..\r\n.\r\n"),
        (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
        (
            b"..\r\n.\r\n.x\r\nend.\r\n",
            b"...\r\n..\r\n..x\r\nend.\r\n.\r\n",
        ),
        (b"a.\r\n\r\n.\r\n", b"a.\r\n\r\n..\r\n.\r\n"),
    ];
    for (body, want) in cases {
        let mut out = Vec::new();
        dot_stuff_into(&mut out, body);
        assert_eq!(out, *want, "{:?}", String::from_utf8_lossy(body));
    }
}

/// Line by line, as RFC 5321 4.5.2 states it: the reference for the fast
/// search above.
fn dot_stuff_by_lines(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !body.is_empty() && !body.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[test]
fn dot_stuffing_matches_line_by_line_on_every_short_mix() {
    let pieces: [&[u8]; 5] = [b".", b"\r\n", b"x", b"\n", b".."];
    // Every sequence of up to five pieces, cut at ten octets.
    let mut bodies: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..5 {
        let longer: Vec<Vec<u8>> = bodies
            .iter()
            .flat_map(|b| pieces.iter().map(move |p| [b.as_slice(), p].concat()))
            .collect();
        bodies.extend(longer.into_iter().filter(|b| b.len() <= 10));
        bodies.sort();
        bodies.dedup();
    }
    for body in &bodies {
        let mut out = Vec::new();
        dot_stuff_into(&mut out, body);
        assert_eq!(out, dot_stuff_by_lines(body), "{body:?}");
    }
}

/// Under `bare_newline: normalize` a lone dot after a bare CR is the same
/// line as a lone dot after a bare LF: de-stuffed alike, and neither ends
/// the message.
#[tokio::test]
async fn lone_dot_after_bare_cr_or_bare_lf_is_one_treatment() {
    let cases: [(&str, &[u8]); 4] = [
        ("bare LF", b"a\n.\r\nb\r\n.\r\nQUIT\r\n"),
        ("bare CR", b"a\r.\r\nb\r\n.\r\nQUIT\r\n"),
        ("bare LF, stuffed", b"a\n..x\r\nb\r\n.\r\nQUIT\r\n"),
        ("bare CR, stuffed", b"a\r..x\r\nb\r\n.\r\nQUIT\r\n"),
    ];
    let mut bodies = Vec::new();
    for (name, input) in cases {
        let mut s = stream_with(input).await;
        let body = s.read_data(limits(true)).await.unwrap();
        assert_eq!(body.flaw, None, "{name}");
        assert_eq!(
            s.read_line(512).await.unwrap(),
            text(b"QUIT", true),
            "{name}"
        );
        bodies.push(body.bytes);
    }
    assert_eq!(bodies[0], b"a\r\n\r\nb\r\n", "bare LF");
    assert_eq!(bodies[1], bodies[0], "bare CR");
    assert_eq!(bodies[2], b"a\r\n.x\r\nb\r\n", "bare LF, stuffed");
    assert_eq!(bodies[3], bodies[2], "bare CR, stuffed");
}
