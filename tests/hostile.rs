//! Hostile input and hostile load, end to end against spamgate in-process:
//! NUL bytes and invalid UTF-8 in every field, input without newlines,
//! slowloris clients, hundreds of idle connections, clients vanishing at
//! every byte of the dialogue, and a small zero-loss ledger through an
//! upstream that drops connections at random (the same code as
//! `bench/ledger.sh`, which runs the 50,000-message version).

mod common;
#[path = "../examples/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn setup(extra: &str) -> (Recorder, Spamgate) {
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = Spamgate::start(&test_config(upstream.addr, extra)).await;
    (upstream, spamgate)
}

/// Waits (with a deadline) until spamgate has no session left.
async fn wait_no_sessions(spamgate: &Spamgate) {
    for _ in 0..2000 {
        if spamgate.metric("spamgate_active_sessions").await == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("sessions still active after 20 s");
}

/// Byte sequences that must never reach the upstream inside a command.
const POISONS: &[(&str, &[u8])] = &[
    ("nul", b"\x00"),
    ("invalid", b"\xff"),
    ("truncated", b"\xc3"),
    ("overlong", b"\xc0\xaf"),
    ("surrogate", b"\xed\xa0\x80"),
    ("c1-control", b"\xc2\x80"),
    ("del", b"\x7f"),
    ("bare-cr", b"\r"),
];

/// A source route is accepted and dropped (RFC 5321 §4.1.1.3) without
/// looking inside, so a poisoned route may get a 250: what matters is that
/// the poison is not relayed, which the test checks upstream.
const IGNORED_ROUTE: &str = "MAIL FROM:<@rXoute:a@example.com>";

/// Command templates; `X` is replaced by a poison.
const OUTSIDE_TRANSACTION: &[&str] = &[
    "EHLO aXb.example",
    "HELO aXb.example",
    "EHLO X",
    "MAIL FROM:<aXb@example.com>",
    "MAIL FROM:<a@exXample.com>",
    "MAIL FROM:<\"aXb\"@example.com>",
    IGNORED_ROUTE,
    "MAIL FROM:<a@example.com> SIZE=1X",
    "MAIL FROM:<a@example.com> BODY=8BITMIMEX",
    "MAIL FROM:<a@example.com> X",
    "MAILX FROM:<a@example.com>",
    "MAIL FROMX:<a@example.com>",
    "X",
];
const INSIDE_TRANSACTION: &[&str] = &[
    "RCPT TO:<bXc@example.net>",
    "RCPT TO:<b@example.neXt>",
    "RCPT TO:<b@[192.0.2.1X]>",
    "RCPT TO:<b@example.net> X",
    "RCPTX TO:<b@example.net>",
    "DATAX",
    "DATA aXb",
    "RSETX",
];

fn poisoned(template: &str, poison: &[u8]) -> Vec<u8> {
    let (head, tail) = template.split_once('X').expect("template has X");
    [head.as_bytes(), poison, tail.as_bytes(), b"\r\n"].concat()
}

#[tokio::test]
async fn nul_and_invalid_utf8_in_any_command_field_are_refused_and_never_relayed() {
    let (upstream, spamgate) = setup("limits: {max_bad_commands: 1000}").await;
    let mut client = Client::ready(spamgate.addr).await;
    for (name, poison) in POISONS {
        for template in OUTSIDE_TRANSACTION {
            client.send(&poisoned(template, poison)).await;
            let reply = client.reply().await;
            if reply.code == 250 && *template == IGNORED_ROUTE {
                assert_eq!(client.cmd("RSET").await.code, 250);
                continue;
            }
            assert!(reply.code >= 500, "{template} with {name}: {reply:?}");
        }
        assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
        for template in INSIDE_TRANSACTION {
            client.send(&poisoned(template, poison)).await;
            let reply = client.reply().await;
            assert!(reply.code >= 500, "{template} with {name}: {reply:?}");
        }
        assert_eq!(client.cmd("RSET").await.code, 250, "{name}");
    }
    let last = client
        .send_mail("a@example.com", &["b@example.net"], &message("clean"))
        .await;
    assert_eq!(last.code, 250, "the session survives the poison");
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted.len(), 1);
    for command in upstream.commands() {
        assert!(
            !command.chars().any(|c| c.is_control() || c == '\u{fffd}'),
            "relayed {command:?}"
        );
        let verb = command.split([' ', ':']).next().unwrap_or_default();
        let clean = match verb {
            "MAIL" => command == "MAIL FROM:<a@example.com>",
            "RCPT" => command == "RCPT TO:<b@example.net>",
            _ => ["EHLO", "XCLIENT", "RSET", "DATA", "QUIT"].contains(&verb),
        };
        assert!(clean, "a poisoned command was relayed: {command:?}");
    }
}

#[tokio::test]
async fn eight_bit_message_content_is_relayed_verbatim_but_nul_is_refused() {
    let (upstream, spamgate) = setup("").await;
    let mut client = Client::ready(spamgate.addr).await;
    let body = format!("{}caf\u{e9} \u{1F600}\r\n", message("8bit"));
    let raw: &[u8] = b"latin1 caf\xe9, broken \xc3\x28, lone \xff\r\n";
    let wire = [message("raw").as_bytes(), raw].concat();
    assert_eq!(
        client
            .send_mail("a@example.com", &["b@example.net"], &body)
            .await
            .code,
        250
    );
    assert_eq!(
        client
            .cmd("MAIL FROM:<a@example.com> BODY=8BITMIME")
            .await
            .code,
        250
    );
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send(&[wire.as_slice(), b".\r\n"].concat()).await;
    assert_eq!(
        client.reply().await.code,
        250,
        "invalid UTF-8 is legal 8-bit content"
    );
    let nul = format!("{}a\0b\r\n", message("nul"));
    let nul = client
        .send_mail("a@example.com", &["b@example.net"], &nul)
        .await;
    assert_eq!(nul.code, 550);
    let accepted = upstream.wait_accepted(2).await;
    assert_eq!(
        accepted.len(),
        2,
        "the NUL message never reached the upstream"
    );
    assert!(accepted[0]
        .message
        .ends_with("caf\u{e9} \u{1F600}\r\n".as_bytes()));
    assert!(
        accepted[1].message.ends_with(raw),
        "8-bit bytes changed on the way"
    );
}

#[tokio::test]
async fn megabytes_without_a_newline_are_refused_and_the_session_survives() {
    let (upstream, spamgate) = setup("limits: {max_message_size: 65536}").await;
    let mut client = Client::ready(spamgate.addr).await;
    let flood = vec![b'A'; 4 << 20];
    client.send(&flood).await;
    client.send(b"\r\n").await;
    assert_eq!(client.reply().await.code, 500, "overlong command");
    assert_eq!(client.cmd("NOOP").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send(&flood).await;
    client.send(b"\r\n.\r\n").await;
    let refused = client.reply().await;
    assert!(refused.code >= 500, "overlong data line: {refused:?}");
    let clean = client
        .send_mail("a@example.com", &["b@example.net"], &message("after"))
        .await;
    assert_eq!(clean.code, 250);
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        upstream.commands().iter().filter(|c| *c == "DATA").count(),
        1
    );
}

/// Sends `NOOP ...` a byte every 200 ms and returns (bytes sent, what
/// spamgate said) once spamgate closes the connection.
async fn slowloris(addr: SocketAddr) -> (usize, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut heard = Vec::new();
    let mut buf = [0u8; 512];
    for (sent, byte) in b"NOOP slowly..........................................................."
        .iter()
        .enumerate()
    {
        let read = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) => return (sent, String::from_utf8_lossy(&heard).into()),
            Ok(Ok(n)) => heard.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if stream.write_all(&[*byte]).await.is_err() {
            return (sent, String::from_utf8_lossy(&heard).into());
        }
    }
    panic!(
        "a slowloris client was never cut: {}",
        String::from_utf8_lossy(&heard)
    );
}

#[tokio::test]
async fn slowloris_clients_are_cut_at_the_idle_timeout_while_others_are_served() {
    let timeouts = "timeouts: {idle: 1s, session: 1h, upstream_connect: 5s, upstream_command: 5s, upstream_data: 5s}\nlimits: {max_connections_per_ip: 100}";
    let (upstream, spamgate) = setup(timeouts).await;
    let slow: Vec<_> = (0..20)
        .map(|_| tokio::spawn(slowloris(spamgate.addr)))
        .collect();
    for i in 0..3 {
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail(
                "a@example.com",
                &["b@example.net"],
                &message(&format!("m{i}")),
            )
            .await;
        assert_eq!(reply.code, 250);
    }
    for task in slow {
        let (sent, heard) = task.await.unwrap();
        assert!(heard.starts_with("220 "), "banner first: {heard:?}");
        assert!(heard.contains("\r\n421 "), "cut with a 421: {heard:?}");
        assert!(
            sent < 40,
            "cut after {sent} bytes, long after the 1 s idle timeout"
        );
    }
    assert_eq!(upstream.wait_accepted(3).await.len(), 3);
    wait_no_sessions(&spamgate).await;
}

#[tokio::test]
async fn hundreds_of_idle_connections_do_not_stop_service_and_all_end() {
    let limits = "limits: {max_connections: 1000, max_connections_per_ip: 1000}";
    let (upstream, spamgate) = setup(limits).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(Client::greeted(spamgate.addr).await);
    }
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("busy"))
        .await;
    assert_eq!(reply.code, 250);
    assert!(spamgate.metric("spamgate_active_sessions").await >= 301.0);
    drop(idle);
    drop(client);
    wait_no_sessions(&spamgate).await;
    assert_eq!(upstream.accepted().len(), 1);
}

/// The client's side of one lockstep dialogue: what to send, and whether a
/// reply (with this code) follows.
const DIALOGUE: &[(&[u8], Option<u16>)] = &[
    (b"EHLO client.example\r\n", Some(250)),
    (b"MAIL FROM:<a@example.com>\r\n", Some(250)),
    (b"RCPT TO:<b@example.net>\r\n", Some(250)),
    (b"DATA\r\n", Some(354)),
    (
        b"From: a@example.com\r\nTo: b@example.net\r\nSubject: cut\r\nDate: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <cut@example.com>\r\n\r\n..line one\r\nline two\r\n",
        None,
    ),
    (b".\r\n", Some(250)),
];

/// Plays the dialogue but stops after `cut` bytes and disconnects.
async fn play_until(addr: SocketAddr, cut: usize) {
    let mut client = Client::greeted(addr).await;
    let mut left = cut;
    for (bytes, reply) in DIALOGUE {
        let n = left.min(bytes.len());
        client.send(&bytes[..n]).await;
        left -= n;
        if n < bytes.len() {
            return;
        }
        if let Some(code) = reply {
            assert_eq!(client.reply().await.code, *code);
        }
    }
}

#[tokio::test]
async fn a_client_vanishing_at_any_byte_leaves_nothing_half_done_upstream() {
    let (upstream, spamgate) = setup("").await;
    let total: usize = DIALOGUE.iter().map(|(b, _)| b.len()).sum();
    for cut in 0..total {
        play_until(spamgate.addr, cut).await;
        wait_no_sessions(&spamgate).await;
    }
    assert!(
        upstream.accepted().is_empty(),
        "a cut message was delivered"
    );
    let commands = upstream.commands();
    assert!(
        !commands.iter().any(|c| c == "DATA"),
        "DATA relayed for a message never finished"
    );
    let mails = commands.iter().filter(|c| c.starts_with("MAIL")).count();
    assert!(
        mails > 50,
        "the cuts inside the transaction reached the upstream ({mails})"
    );
    for (i, _) in commands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("MAIL"))
    {
        let closed = commands[i + 1..]
            .iter()
            .take_while(|c| !c.starts_with("MAIL"))
            .any(|c| c == "RSET" || c == "QUIT");
        assert!(
            closed,
            "transaction at command {i} left open upstream: {commands:?}"
        );
    }
    let quits = commands.iter().filter(|c| *c == "QUIT").count();
    assert_eq!(
        quits,
        upstream.connections(),
        "every upstream session was closed with QUIT"
    );
    play_until(spamgate.addr, total).await;
    assert_eq!(
        upstream.wait_accepted(1).await.len(),
        1,
        "the uncut dialogue delivers"
    );
}

#[tokio::test]
async fn ledger_through_a_flaky_upstream_loses_nothing() {
    let upstream = support::flaky::Flaky::start(0.02).await;
    let limits = "limits: {max_connections: 200, max_connections_per_ip: 200}";
    let spamgate = Spamgate::start(&test_config(upstream.addr, limits)).await;
    let messages = 2000;
    let client = support::ledger::send_all(spamgate.addr, messages, 20).await;
    let report = support::ledger::Report::new(messages, &client, &upstream.log());
    report.print();
    assert!(report.zero_loss(), "{report:?}");
    assert_eq!(report.refused_but_delivered, 0, "{report:?}");
    assert!(
        report.upstream_drops > 0 && report.tempfailed > 0,
        "faults were injected: {report:?}"
    );
    assert!(report.accepted > messages / 2, "{report:?}");
    let answered = report.accepted + report.tempfailed + report.permfailed + report.no_reply;
    assert_eq!(answered, messages);
}

/// Bug in src/smtp/command.rs: `trim()`, `trim_start()` and
/// `split_whitespace()` treat any Unicode whitespace (U+0085, U+00A0,
/// U+2003...) as an SMTP separator, where RFC 5321 allows only SP. The
/// commands below are accepted; nothing harmful is relayed (parameters are
/// re-rendered), but a strict parser must refuse them.
#[tokio::test]
async fn unicode_whitespace_is_not_an_smtp_separator() {
    let (_upstream, spamgate) = setup("limits: {max_bad_commands: 100}").await;
    let mut client = Client::ready(spamgate.addr).await;
    for line in [
        "EHLO \u{a0}client.example",
        "MAIL FROM:\u{2003}<a@example.com>",
        "MAIL FROM:<a@example.com> SIZE=1\u{85}",
        "RSET \u{85}",
    ] {
        let reply = client.cmd(line).await;
        assert!(reply.code >= 500, "{line:?} accepted: {reply:?}");
    }
}

/// Bug in src/upstream/xclient.rs: `xtext` cuts the value at 255 octets
/// *before* encoding, and each octet outside `!`..`~` (or `+`, `=`) becomes
/// three, so a 250-octet HELO of non-ASCII letters gives an XCLIENT line of
/// about 770 octets; `pack` cannot split one attribute. Postfix refuses
/// lines over its limits and the session then gets 451s.
#[tokio::test]
async fn xclient_lines_stay_within_512_octets_whatever_the_helo() {
    let (upstream, spamgate) = setup("").await;
    let mut client = Client::greeted(spamgate.addr).await;
    let helo = format!("{}.example", "\u{e9}".repeat(120));
    assert_eq!(client.cmd(&format!("EHLO {helo}")).await.code, 250);
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("x"))
        .await;
    assert_eq!(reply.code, 250);
    let commands = upstream.commands();
    let xclient: Vec<&String> = commands
        .iter()
        .filter(|c| c.starts_with("XCLIENT"))
        .collect();
    assert!(xclient.iter().any(|c| c.contains("HELO=")), "{xclient:?}");
    for line in xclient {
        assert!(
            line.len() + 2 <= 512,
            "XCLIENT line of {} octets",
            line.len() + 2
        );
    }
}

/// Bug in src/smtp/command.rs (`validate_mailbox`): the local part is not
/// checked against RFC 5321's Local-part (Dot-string or Quoted-string), so
/// `@`, `,`, `:` and `<` pass unquoted. `MAIL FROM:<@x:@,@b.c>` becomes
/// `MAIL FROM:<@,@b.c>` upstream, which spamgate's own parser refuses as a
/// bad source route: the checks judged one address, the upstream reads
/// another. Found by the `command` fuzz target (fuzz/seeds/command/
/// regress-local-part).
#[tokio::test]
async fn addresses_the_upstream_would_read_differently_are_refused() {
    let (upstream, spamgate) = setup("limits: {max_bad_commands: 100}").await;
    let mut client = Client::ready(spamgate.addr).await;
    for line in [
        "MAIL FROM:<@1r2ar:@,@b.c>",
        "MAIL FROM:<a<b@example.com>",
        "MAIL FROM:<a:b@example.com>",
        "MAIL FROM:<a,b@example.com>",
        "MAIL FROM:<a..b@example.com>",
    ] {
        let reply = client.cmd(line).await;
        if reply.code == 250 {
            client.cmd("RSET").await;
        }
        assert!(reply.code >= 500, "{line:?} accepted: {reply:?}");
    }
    assert!(upstream.commands().iter().all(|c| !c.starts_with("MAIL")));
}

/// Bug in src/smtp/codec.rs (`Framer::store`): the size check counts a
/// bare CR as one octet, but `bare_newline: normalize` stores it as CRLF,
/// so a message of bare-CR lines is relayed larger than
/// `limits.max_message_size` (by up to one line's worth of CRs). Found by
/// the `data_framer` fuzz target (fuzz/seeds/data_framer/regress-normalize-size).
#[tokio::test]
async fn normalized_messages_respect_the_size_limit() {
    let limits = "limits: {max_message_size: 1024}\nsmtp: {bare_newline: normalize}";
    let (upstream, spamgate) = setup(limits).await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    let head = message("cr");
    let body = [head.as_bytes(), &b"x\r".repeat(350), b"\r\n.\r\n"].concat();
    assert!(body.len() < 1024, "fits on the wire");
    client.send(&body).await;
    let reply = client.reply().await;
    assert!(reply.code == 250 || reply.code == 552, "{reply:?}");
    if reply.code == 250 {
        let got = upstream.wait_accepted(1).await;
        let ours = got[0].message.windows(5).position(|w| w == b"From:");
        let relayed = got[0].message.len() - ours.expect("the client's headers");
        assert!(
            relayed <= 1024,
            "relayed {relayed} octets past a 1024-octet limit"
        );
    }
}

/// Waits (with a deadline) until a metric shows `value`.
async fn wait_metric(spamgate: &Spamgate, sample: &str, value: f64) {
    for _ in 0..2000 {
        if spamgate.metric(sample).await == value {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{sample} is {}, expected {value}",
        spamgate.metric(sample).await
    );
}

/// A session in DATA: the 354 received, `bytes` of body sent, no dot yet.
async fn in_data(addr: SocketAddr, bytes: usize) -> Client {
    let mut client = Client::ready(addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send(message("memory").as_bytes()).await;
    client.send(&body_lines(bytes)).await;
    client
}

/// `bytes` of 100-octet lines.
fn body_lines(bytes: usize) -> Vec<u8> {
    let line = [&[b'x'; 98][..], b"\r\n"].concat();
    line.repeat(bytes / 100)
}

const MEMORY_IN_USE: &str = "spamgate_data_memory_bytes";

/// The DATA buffers of all sessions draw on `limits.data_memory_total`
/// (64 KiB here): a message that would pass it gets 452 at DATA or after
/// its dot, the other session's message is delivered, and the memory is
/// given back, so the refused client's retry goes through.
#[tokio::test]
async fn data_memory_is_bounded_across_sessions_and_given_back() {
    let limits = "limits: {max_message_size: 65536, data_memory_total: 65536}";
    let (upstream, spamgate) = setup(limits).await;

    // A holds 32 KiB (30 kB received); B's 40 kB message would need 64 KiB.
    let mut a = in_data(spamgate.addr, 30_000).await;
    wait_metric(&spamgate, MEMORY_IN_USE, 32768.0).await;
    let mut b = in_data(spamgate.addr, 40_000).await;
    b.send(b".\r\n").await;
    let refused = b.reply().await;
    assert_eq!(
        (refused.code, refused.status()),
        (452, Some("4.3.1")),
        "{refused:?}"
    );
    a.send(b".\r\n").await;
    assert_eq!(a.reply().await.code, 250);
    assert_eq!(upstream.wait_accepted(1).await.len(), 1);

    // A holds the whole pool (40 kB received): B is refused at DATA.
    let mut a = in_data(spamgate.addr, 40_000).await;
    wait_metric(&spamgate, MEMORY_IN_USE, 65536.0).await;
    assert_eq!(b.cmd("RSET").await.code, 250);
    assert_eq!(b.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(b.cmd("RCPT TO:<b@example.net>").await.code, 250);
    let at_data = b.cmd("DATA").await;
    assert_eq!(
        (at_data.code, at_data.status()),
        (452, Some("4.3.1")),
        "{at_data:?}"
    );
    a.send(b".\r\n").await;
    assert_eq!(a.reply().await.code, 250);
    wait_metric(&spamgate, MEMORY_IN_USE, 0.0).await;

    // Given back: B's retry of the same message goes through.
    assert_eq!(b.cmd("DATA").await.code, 354);
    b.send(message("memory").as_bytes()).await;
    b.send(&body_lines(40_000)).await;
    assert_eq!(b.cmd(".").await.code, 250);
    assert_eq!(upstream.wait_accepted(3).await.len(), 3);
    wait_metric(&spamgate, MEMORY_IN_USE, 0.0).await;
    let refusals = "spamgate_rejections_total{stage=\"data\",reason=\"data_memory\"}";
    assert_eq!(spamgate.metric(refusals).await, 2.0);
}
