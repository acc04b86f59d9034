//! End-to-end tests of the relay core: real TCP SMTP sessions against
//! spamgate in-process, relaying to a recording upstream.

mod common;

use common::client::{message, Client};
use common::conformance::{assert_nothing_smuggled, smuggle, smuggling_sequences};
use common::upstream::{closed_port, Behaviour, Fault, Recorder, Step};
use common::{test_config, Spamgate};

async fn setup(behaviour: Behaviour, extra: &str) -> (Recorder, Spamgate) {
    let upstream = Recorder::start(behaviour).await;
    let spamgate = Spamgate::start(&test_config(upstream.addr, extra)).await;
    (upstream, spamgate)
}

#[tokio::test]
async fn relays_a_message_with_xclient_and_exact_content() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    let body =
        "From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n";
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], body)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(reply.status(), Some("2.0.0"));
    assert!(
        reply.text().contains("queued as REC1"),
        "upstream's own reply is relayed: {reply:?}"
    );
    let got = upstream.wait_accepted(1).await.remove(0);
    assert_eq!(got.mail_from, "a@example.com");
    assert_eq!(got.rcpts, ["b@example.net"]);
    let text = String::from_utf8(got.message.clone()).unwrap();
    let start = text.find("Received: ").expect("our Received header");
    let (trace, rest) = text[start..].split_once(";\r\n\t").unwrap();
    let expected = "Received: from client.example ([127.0.0.1])\r\n\tby spamgate.test (spamgate) with ESMTP id ";
    assert!(trace.starts_with(expected), "{trace}");
    assert!(trace.ends_with("for <b@example.net>"), "{trace}");
    assert!(
        rest.ends_with(body),
        "content arrives unchanged after our headers: {rest:?}"
    );
    let wire = String::from_utf8(got.wire.clone()).unwrap();
    assert!(wire.ends_with("\r\nFrom: a@example.com\r\nSubject: dots\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n.\r\n"), "dot-stuffed: {wire:?}");
    assert_eq!(got.xclient.len(), 1, "{:?}", got.xclient);
    let xclient = &got.xclient[0];
    for attribute in [
        "ADDR=127.0.0.1",
        "HELO=client.example",
        "PROTO=ESMTP",
        "NAME=[UNAVAILABLE]",
    ] {
        assert!(xclient.contains(attribute), "{xclient}");
    }
}

async fn ehlo_lines(addr: std::net::SocketAddr) -> Vec<String> {
    let mut client = Client::greeted(addr).await;
    client.cmd("EHLO c.example").await.lines
}

#[tokio::test]
async fn ehlo_lists_extensions_and_smtputf8_learned_from_the_upstream() {
    let (_upstream, spamgate) = setup(Behaviour::default(), "").await;
    let lines = ehlo_lines(spamgate.addr).await;
    for extension in [
        "PIPELINING",
        "SIZE 26214400",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(
            lines.iter().any(|l| l == extension),
            "{extension} in {lines:?}"
        );
    }
    // The startup probe learns SMTPUTF8 from the upstream without any mail.
    let mut offered = false;
    for _ in 0..500 {
        offered = ehlo_lines(spamgate.addr)
            .await
            .iter()
            .any(|l| l == "SMTPUTF8");
        if offered {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        offered,
        "SMTPUTF8 offered once the upstream is known to have it"
    );
    let mut client = Client::ready(spamgate.addr).await;
    let utf8 = client
        .cmd("MAIL FROM:<j\u{f6}rg@example.com> SMTPUTF8")
        .await;
    assert_eq!(utf8.code, 250, "{utf8:?}");
}

#[tokio::test]
async fn smtputf8_is_not_offered_when_the_upstream_lacks_it() {
    let behaviour = Behaviour {
        smtputf8: false,
        ..Behaviour::default()
    };
    let (upstream, spamgate) = setup(behaviour, "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(
        client
            .send_mail("a@example.com", &["b@example.net"], &message("one"))
            .await
            .code,
        250
    );
    assert!(upstream.connections() >= 1);
    assert!(!ehlo_lines(spamgate.addr)
        .await
        .iter()
        .any(|l| l == "SMTPUTF8"));
    let utf8 = client
        .cmd("MAIL FROM:<j\u{f6}rg@example.com> SMTPUTF8")
        .await;
    assert_eq!((utf8.code, utf8.status()), (553, Some("5.6.7")));
}

#[tokio::test]
async fn non_ascii_sender_without_smtputf8_is_refused() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client.cmd("MAIL FROM:<j\u{f6}rg@example.com>").await;
    assert_eq!((reply.code, reply.status()), (553, Some("5.6.7")));
    assert!(
        upstream.commands().iter().all(|c| !c.starts_with("MAIL")),
        "refused before the upstream"
    );
}

#[tokio::test]
async fn several_transactions_share_one_upstream_session() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    for i in 0..3 {
        let reply = client
            .send_mail(
                "a@example.com",
                &["b@example.net"],
                &message(&format!("m{i}")),
            )
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
    }
    assert_eq!(client.cmd("QUIT").await.code, 221);
    let accepted = upstream.wait_accepted(3).await;
    assert!(
        accepted
            .iter()
            .all(|m| m.connection == accepted[0].connection),
        "one upstream session"
    );
}

#[tokio::test]
async fn upstream_judges_recipients_in_real_time() {
    let behaviour = Behaviour {
        unknown_rcpts: vec!["nobody@example.net".into()],
        ..Behaviour::default()
    };
    let (upstream, spamgate) = setup(behaviour, "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    let unknown = client.cmd("RCPT TO:<nobody@example.net>").await;
    assert_eq!((unknown.code, unknown.status()), (550, Some("5.1.1")));
    assert!(unknown.text().contains("Recipient address rejected"));
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client
        .send(b"From: a@example.com\r\nSubject: x\r\n\r\nhi\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(upstream.wait_accepted(1).await[0].rcpts, ["b@example.net"]);
}

#[tokio::test]
async fn client_rset_resets_the_upstream_transaction() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("RSET").await.code, 250);
    assert_eq!(
        client.cmd("DATA").await.code,
        503,
        "no transaction after RSET"
    );
    assert!(upstream.commands().iter().any(|c| c == "RSET"));
    let reply = client
        .send_mail("c@example.com", &["d@example.net"], &message("after-rset"))
        .await;
    assert_eq!(reply.code, 250);
    assert_eq!(upstream.wait_accepted(1).await[0].rcpts, ["d@example.net"]);
}

#[tokio::test]
async fn simple_commands_and_sequence_errors() {
    let (_upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::greeted(spamgate.addr).await;
    let cases: &[(&str, u16, Option<&str>)] = &[
        ("MAIL FROM:<a@example.com>", 503, Some("5.5.1")),
        ("EHLO c.example", 250, None),
        ("NOOP", 250, Some("2.0.0")),
        ("VRFY root", 252, Some("2.5.2")),
        ("HELP", 214, Some("2.0.0")),
        ("EXPN staff", 502, Some("5.5.1")),
        ("FOO bar", 500, Some("5.5.1")),
        ("RCPT TO:<b@example.net>", 503, Some("5.5.1")),
        ("DATA", 503, Some("5.5.1")),
        ("MAIL FROM:<a@example.com> RET=HDRS", 555, Some("5.5.4")),
        ("MAIL FROM:broken", 501, Some("5.5.4")),
        ("MAIL FROM:<a@example.com>", 250, Some("2.1.0")),
        ("MAIL FROM:<a@example.com>", 503, Some("5.5.1")),
        ("DATA", 554, Some("5.5.1")),
        ("RSET", 250, Some("2.0.0")),
        ("QUIT", 221, Some("2.0.0")),
    ];
    for (line, code, status) in cases {
        let reply = client.cmd(line).await;
        assert_eq!(
            (reply.code, reply.status()),
            (*code, *status),
            "{line}: {reply:?}"
        );
    }
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn declared_size_over_the_limit_is_refused_at_mail() {
    let (upstream, spamgate) =
        setup(Behaviour::default(), "limits: {max_message_size: 10000}").await;
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client.cmd("MAIL FROM:<a@example.com> SIZE=10001").await;
    assert_eq!((reply.code, reply.status()), (552, Some("5.3.4")));
    assert_eq!(
        client.cmd("MAIL FROM:<a@example.com> SIZE=9000").await.code,
        250
    );
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert!(upstream.commands().iter().any(|c| c.contains("SIZE=9000")));
}

/// An upstream offering CHUNKING gets the message as one `BDAT n LAST`:
/// exactly the octets DATA would deliver, unstuffed, and no DATA command.
/// `upstream.chunking: false` keeps DATA.
#[tokio::test]
async fn bdat_carries_the_message_when_the_upstream_offers_chunking() {
    let body =
        "From: a@example.com\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n";
    for (chunking, bdat) in [("", true), ("  chunking: false\n", false)] {
        let behaviour = Behaviour {
            chunking: true,
            ..Behaviour::default()
        };
        let upstream = Recorder::start(behaviour).await;
        let config = test_config(upstream.addr, "")
            .replace("  xclient: true\n", &format!("  xclient: true\n{chunking}"));
        let spamgate = Spamgate::start(&config).await;
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], body)
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let got = upstream.wait_accepted(1).await.remove(0);
        let text = String::from_utf8(got.message.clone()).unwrap();
        assert!(
            text.contains("\r\nReceived: from client.example") && text.ends_with(body),
            "{text:?}"
        );
        let commands = upstream.commands();
        let announced = format!("BDAT {} LAST", got.message.len());
        assert_eq!(commands.contains(&announced), bdat, "{commands:?}");
        assert_eq!(commands.iter().any(|c| c == "DATA"), !bdat, "{commands:?}");
    }
}

/// Over BDAT too, the upstream's word on the message is what the client
/// gets, and a lost or silent upstream is a 4xx.
#[tokio::test]
async fn bdat_faults_never_give_a_false_250() {
    let cases = [
        (Fault::Close, 451),
        (Fault::Stall, 451),
        (Fault::Reply(554), 554),
        (Fault::Reply(452), 452),
    ];
    let timeouts = "timeouts: {upstream_command: 1s, upstream_data: 1s}";
    for (fault, want) in cases {
        let behaviour = Behaviour {
            chunking: true,
            fault: Some((Step::Dot, fault)),
            ..Behaviour::default()
        };
        let (upstream, spamgate) = setup(behaviour, timeouts).await;
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &message("bdat"))
            .await;
        assert_eq!(reply.code, want, "{fault:?}: {reply:?}");
        assert!(upstream.commands().iter().any(|c| c.starts_with("BDAT")));
        assert!(upstream.accepted().is_empty());
    }
}

/// The last `n` commands the upstream received.
fn last_commands(upstream: &Recorder, n: usize) -> Vec<String> {
    let commands = upstream.commands();
    commands[commands.len().saturating_sub(n)..].to_vec()
}

/// An upstream offering PIPELINING gets MAIL together with the first RCPT
/// (one round trip fewer per message); one without it gets MAIL at once.
#[tokio::test]
async fn mail_goes_upstream_with_the_first_rcpt_when_pipelining() {
    for pipelining in [true, false] {
        let behaviour = Behaviour {
            pipelining,
            ..Behaviour::default()
        };
        let (upstream, spamgate) = setup(behaviour, "").await;
        let mut client = Client::ready(spamgate.addr).await;
        assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
        let sent_at_mail = upstream.commands().iter().any(|c| c.starts_with("MAIL"));
        assert_eq!(sent_at_mail, !pipelining, "pipelining {pipelining}");
        assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
        assert_eq!(client.cmd("RCPT TO:<c@example.net>").await.code, 250);
        let want = [
            "MAIL FROM:<a@example.com>",
            "RCPT TO:<b@example.net>",
            "RCPT TO:<c@example.net>",
        ];
        assert_eq!(last_commands(&upstream, 3), want, "pipelining {pipelining}");
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &message("p"))
            .await;
        assert_eq!(reply.code, 503, "nested MAIL is still refused: {reply:?}");
    }
}

/// The upstream refusing the sender answers every RCPT; nothing is
/// relayed and the next transaction starts clean.
#[tokio::test]
async fn sender_refused_upstream_answers_each_rcpt() {
    let behaviour = Behaviour {
        fault: Some((Step::Mail, Fault::Reply(553))),
        ..Behaviour::default()
    };
    let (upstream, spamgate) = setup(behaviour, "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    for rcpt in ["b@example.net", "c@example.net"] {
        let reply = client.cmd(&format!("RCPT TO:<{rcpt}>")).await;
        assert_eq!((reply.code, reply.status()), (553, Some("5.0.0")), "{rcpt}");
    }
    assert_eq!(client.cmd("DATA").await.code, 554);
    let mails = upstream
        .commands()
        .iter()
        .filter(|c| c.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 1, "the refused MAIL went once");
    assert_eq!(client.cmd("RSET").await.code, 250);
    assert!(upstream.accepted().is_empty());
}

#[tokio::test]
async fn oversized_message_is_refused_and_the_session_survives() {
    let (upstream, spamgate) =
        setup(Behaviour::default(), "limits: {max_message_size: 10000}").await;
    let mut client = Client::ready(spamgate.addr).await;
    let big = format!(
        "Subject: big\r\n\r\n{}",
        "x".repeat(78)
            .repeat(200)
            .replace(&"x".repeat(78), &format!("{}\r\n", "x".repeat(78)))
    );
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &big)
        .await;
    assert_eq!(
        (reply.code, reply.status()),
        (552, Some("5.3.4")),
        "{reply:?}"
    );
    assert_eq!(client.cmd("NOOP").await.code, 250);
    let small = client
        .send_mail("a@example.com", &["b@example.net"], &message("small"))
        .await;
    assert_eq!(small.code, 250);
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(
        accepted.len(),
        1,
        "the big message never reached the upstream"
    );
    assert!(String::from_utf8_lossy(&accepted[0].message).contains("Subject: small"));
}

#[tokio::test]
async fn recipient_limit_gives_452() {
    let (upstream, spamgate) = setup(Behaviour::default(), "limits: {max_recipients: 2}").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<r1@example.net>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<r2@example.net>").await.code, 250);
    let third = client.cmd("RCPT TO:<r3@example.net>").await;
    assert_eq!((third.code, third.status()), (452, Some("4.5.3")));
    assert_eq!(client.cmd("DATA").await.code, 354);
    client
        .send(b"From: a@example.com\r\nSubject: two\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(upstream.wait_accepted(1).await[0].rcpts.len(), 2);
}

#[tokio::test]
async fn connection_limits_give_421() {
    let extra = "limits: {max_connections: 3, max_connections_per_ip: 2}";
    let (_upstream, spamgate) = setup(Behaviour::default(), extra).await;
    let _a = Client::greeted(spamgate.addr).await;
    let _b = Client::greeted(spamgate.addr).await;
    let mut third = Client::connect(spamgate.addr).await;
    let refused = third.reply().await;
    assert_eq!((refused.code, refused.status()), (421, Some("4.7.0")));
    assert!(third.is_closed().await);
    let metric = r#"spamgate_rejections_total{stage="connect",reason="max_connections_per_ip"}"#;
    assert_eq!(spamgate.metric(metric).await, 1.0);
}

#[tokio::test]
async fn total_connection_limit_gives_421() {
    let extra = "limits: {max_connections: 2, max_connections_per_ip: 10}";
    let (_upstream, spamgate) = setup(Behaviour::default(), extra).await;
    let _a = Client::greeted(spamgate.addr).await;
    let _b = Client::greeted(spamgate.addr).await;
    let mut third = Client::connect(spamgate.addr).await;
    assert_eq!(third.reply().await.code, 421);
    drop(_a);
    // The slot comes back once the first session has ended.
    let mut retry = None;
    for _ in 0..200 {
        let mut c = Client::connect(spamgate.addr).await;
        if c.reply().await.code == 220 {
            retry = Some(c);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(retry.is_some(), "a freed slot is reused");
}

#[tokio::test]
async fn too_many_bad_commands_close_the_session() {
    let (_upstream, spamgate) = setup(Behaviour::default(), "limits: {max_bad_commands: 3}").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("BOGUS").await.code, 500);
    assert_eq!(client.cmd("BOGUS").await.code, 500);
    assert_eq!(client.cmd("BOGUS").await.code, 500);
    let last = client.reply().await;
    assert_eq!((last.code, last.status()), (421, Some("4.7.0")));
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn long_and_bare_newline_commands_are_refused() {
    let (_upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    let long = format!("NOOP {}", "a".repeat(600));
    let reply = client.cmd(&long).await;
    assert_eq!((reply.code, reply.status()), (500, Some("5.5.2")));
    client.send(b"NOOP\n").await;
    let bare = client.reply().await;
    assert_eq!((bare.code, bare.status()), (500, Some("5.5.2")));
    assert_eq!(client.cmd("NOOP").await.code, 250, "the session goes on");
}

#[tokio::test]
async fn pipelining_without_ehlo_is_refused() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::greeted(spamgate.addr).await;
    assert_eq!(client.cmd("HELO c.example").await.code, 250);
    client
        .send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\n")
        .await;
    let reply = client.reply().await;
    assert_eq!((reply.code, reply.status()), (554, Some("5.5.0")));
    assert!(client.is_closed().await);
    assert!(upstream.commands().iter().all(|c| !c.starts_with("RCPT")));
}

#[tokio::test]
async fn pipelined_transaction_after_ehlo_is_fine() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    client.send(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n").await;
    for want in [250, 250, 250, 354] {
        assert_eq!(client.reply().await.code, want);
    }
    client
        .send(b"From: a@example.com\r\nSubject: p\r\n\r\nx\r\n.\r\nQUIT\r\n")
        .await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(client.reply().await.code, 221);
    assert_eq!(upstream.wait_accepted(1).await[0].rcpts.len(), 2);
}

#[tokio::test]
async fn bytes_after_data_before_354_are_refused() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    client
        .send(b"DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
        .await;
    let reply = client.reply().await;
    assert_eq!(
        (reply.code, reply.status()),
        (554, Some("5.5.0")),
        "{reply:?}"
    );
    assert!(client.is_closed().await);
    assert!(upstream.accepted().is_empty());
}

#[tokio::test]
async fn smuggling_sequences_are_rejected_and_never_reach_the_upstream() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let sequences = smuggling_sequences();
    for (name, sequence) in &sequences {
        let mut client = Client::ready(spamgate.addr).await;
        let (first, second) = smuggle(&mut client, sequence).await;
        assert_eq!((first, second), (550, 250), "{name}");
    }
    assert_nothing_smuggled(&upstream, sequences.len()).await;
}

#[tokio::test]
async fn smuggling_sequences_are_normalised_into_one_message() {
    let (upstream, spamgate) = setup(Behaviour::default(), "smtp: {bare_newline: normalize}").await;
    // NUL is refused in every mode; the others become one canonical message.
    let sequences: Vec<_> = smuggling_sequences()
        .into_iter()
        .filter(|(_, s)| !s.contains(&0))
        .collect();
    for (name, sequence) in &sequences {
        let mut client = Client::ready(spamgate.addr).await;
        assert_eq!(smuggle(&mut client, sequence).await, (250, 250), "{name}");
    }
    let accepted = upstream.wait_accepted(2 * sequences.len()).await;
    assert!(upstream
        .commands()
        .iter()
        .all(|c| !c.contains("evil@example.org")));
    for got in accepted.iter().filter(|m| m.mail_from == "a@example.com") {
        assert!(
            got.wire.windows(8).any(|w| w == b"smuggled"),
            "text stays inside the carrier"
        );
        for (i, &b) in got.wire.iter().enumerate() {
            match b {
                b'\r' => assert_eq!(got.wire.get(i + 1), Some(&b'\n'), "bare CR upstream"),
                b'\n' => assert_eq!(got.wire[i - 1], b'\r', "bare LF upstream"),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn upstream_refusing_connections_gives_451_at_mail() {
    let spamgate = Spamgate::start(&test_config(closed_port().await, "")).await;
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client.cmd("MAIL FROM:<a@example.com>").await;
    assert_eq!((reply.code, reply.status()), (451, Some("4.4.1")));
    assert_eq!(client.cmd("NOOP").await.code, 250, "session is clean");
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 503);
    let metric = r#"spamgate_upstream_errors_total{kind="connect"}"#;
    assert!(spamgate.metric(metric).await >= 1.0);
}

/// Every injected upstream fault ends in a 4xx or the upstream's own
/// refusal, never a 250, and the session can go on.
#[tokio::test]
async fn upstream_faults_never_give_a_false_250() {
    let cases: &[(Step, Fault, u16)] = &[
        (Step::Greeting, Fault::Close, 451),
        (Step::Greeting, Fault::Reply(554), 451),
        (Step::Ehlo, Fault::Close, 451),
        (Step::Mail, Fault::Close, 451),
        (Step::Mail, Fault::Stall, 451),
        (Step::Mail, Fault::Reply(452), 452),
        (Step::Rcpt, Fault::Close, 451),
        (Step::Rcpt, Fault::Reply(550), 550),
        (Step::Data, Fault::Close, 451),
        (Step::Data, Fault::Reply(554), 554),
        (Step::Dot, Fault::Close, 451),
        (Step::Dot, Fault::Stall, 451),
        (Step::Dot, Fault::Reply(451), 451),
        (Step::Dot, Fault::Reply(554), 554),
    ];
    let timeouts = "timeouts: {upstream_connect: 2s, upstream_command: 1s, upstream_data: 1s, shutdown_drain: 2s}";
    for &(step, fault, want) in cases {
        let behaviour = Behaviour {
            fault: Some((step, fault)),
            ..Behaviour::default()
        };
        let (upstream, spamgate) = setup(behaviour, timeouts).await;
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail("a@example.com", &["b@example.net"], &message("fault"))
            .await;
        assert_eq!(reply.code, want, "{step:?} {fault:?}: {reply:?}");
        assert!(reply.status().is_some(), "enhanced code on {reply:?}");
        assert_eq!(
            client.cmd("NOOP").await.code,
            250,
            "{step:?} {fault:?}: session survives"
        );
        assert!(upstream.accepted().is_empty());
    }
}

/// An upstream 421 closes the channel (RFC 5321 4.2.2): the client hears
/// it and is hung up on, not left in a session the upstream has left.
#[tokio::test]
async fn upstream_421_closes_the_client_session() {
    // At MAIL (pipelined with the RCPT, after which the upstream hangs
    // up) or at RCPT: the client hears the upstream's 421, not a 451.
    for step in [Step::Mail, Step::Rcpt] {
        let behaviour = Behaviour {
            fault: Some((step, Fault::Reply(421))),
            ..Behaviour::default()
        };
        let (upstream, spamgate) = setup(behaviour, "").await;
        let mut client = Client::ready(spamgate.addr).await;
        assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
        let reply = client.cmd("RCPT TO:<b@example.net>").await;
        assert_eq!(reply.code, 421, "{step:?}: {reply:?}");
        assert!(
            client.is_closed().await,
            "{step:?}: the session ends after a 421"
        );
        assert!(upstream.accepted().is_empty());
    }
}

#[tokio::test]
async fn idle_client_is_timed_out_with_421() {
    let timeouts = "timeouts: {idle: 1s}";
    let (_upstream, spamgate) = setup(Behaviour::default(), timeouts).await;
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client.reply().await;
    assert_eq!((reply.code, reply.status()), (421, Some("4.4.2")));
    assert!(client.is_closed().await);
}

#[tokio::test]
async fn slow_data_is_timed_out_without_relaying() {
    let (upstream, spamgate) = setup(Behaviour::default(), "timeouts: {data: 1s}").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(client.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client.send(b"Subject: slow\r\n").await;
    assert_eq!(client.reply().await.code, 421);
    assert!(upstream.accepted().is_empty());
}

#[tokio::test]
async fn denied_networks_are_refused_at_connect() {
    let extra = "checks: {ip_lists: {deny: ['127.0.0.0/8']}}";
    let (_upstream, spamgate) = setup(Behaviour::default(), extra).await;
    let mut client = Client::connect(spamgate.addr).await;
    let reply = client.reply().await;
    assert_eq!((reply.code, reply.status()), (554, Some("5.7.1")));
    assert!(client.is_closed().await);
    let metric = r#"spamgate_rejections_total{stage="connect",reason="ip_lists"}"#;
    assert_eq!(spamgate.metric(metric).await, 1.0);
}

#[tokio::test]
async fn allow_list_wins_over_deny_list() {
    let extra = "checks: {ip_lists: {deny: ['127.0.0.0/8'], allow: ['127.0.0.1']}}";
    let (_upstream, spamgate) = setup(Behaviour::default(), extra).await;
    Client::ready(spamgate.addr).await;
}

#[tokio::test]
async fn shutdown_lets_a_transaction_finish_and_closes_idle_sessions() {
    let (upstream, mut spamgate) = setup(Behaviour::default(), "").await;
    let mut idle = Client::ready(spamgate.addr).await;
    let mut busy = Client::ready(spamgate.addr).await;
    assert_eq!(busy.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(busy.cmd("RCPT TO:<b@example.net>").await.code, 250);
    spamgate.begin_stop();
    let bye = idle.reply().await;
    assert_eq!((bye.code, bye.status()), (421, Some("4.3.2")));
    assert_eq!(busy.cmd("DATA").await.code, 354);
    busy.send(b"From: a@example.com\r\nSubject: in flight\r\n\r\nx\r\n.\r\n")
        .await;
    assert_eq!(
        busy.reply().await.code,
        250,
        "the transaction in flight completes"
    );
    assert_eq!(
        busy.cmd("NOOP").await.code,
        421,
        "then the session is closed"
    );
    spamgate.stopped().await;
    assert_eq!(upstream.accepted().len(), 1);
}

#[tokio::test]
async fn drain_timeout_closes_stuck_transactions() {
    let extra = "timeouts: {shutdown_drain: 1s, upstream_command: 5s}";
    let (upstream, mut spamgate) = setup(Behaviour::default(), extra).await;
    let mut busy = Client::ready(spamgate.addr).await;
    assert_eq!(busy.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    spamgate.begin_stop();
    let reply = busy.reply().await;
    assert_eq!((reply.code, reply.status()), (421, Some("4.3.2")));
    spamgate.stopped().await;
    assert!(upstream.accepted().is_empty());
}

#[tokio::test]
async fn metrics_count_sessions_and_verdicts() {
    let (_upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    assert_eq!(
        client
            .send_mail("a@example.com", &["b@example.net"], &message("m"))
            .await
            .code,
        250
    );
    assert_eq!(client.cmd("QUIT").await.code, 221);
    assert!(client.is_closed().await);
    let text = spamgate.metrics().await;
    for name in [
        "spamgate_sessions_total",
        "spamgate_active_sessions",
        "spamgate_upstream_errors_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {}", name.trim_end_matches("_total"))),
            "{name}"
        );
    }
    assert_eq!(
        spamgate
            .metric(r#"spamgate_messages_total{verdict="accept"}"#)
            .await,
        1.0
    );
    assert_eq!(spamgate.metric("spamgate_sessions_total").await, 1.0);
    assert!(text.contains("spamgate_build_info{version="));
}

#[tokio::test]
async fn overlong_data_line_is_refused_and_never_relayed() {
    let (upstream, spamgate) = setup(Behaviour::default(), "").await;
    let mut client = Client::ready(spamgate.addr).await;
    let body = format!(
        "From: a@example.com\r\nSubject: long\r\n\r\n{}\r\n",
        "y".repeat(1200)
    );
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &body)
        .await;
    assert_eq!(
        (reply.code, reply.status()),
        (550, Some("5.5.2")),
        "{reply:?}"
    );
    assert!(reply.text().contains("longer than 1000"), "{reply:?}");
    assert_eq!(client.cmd("NOOP").await.code, 250, "the session goes on");
    assert!(upstream.accepted().is_empty());
    assert!(
        upstream.commands().iter().any(|c| c == "RSET"),
        "upstream transaction reset"
    );
}

#[tokio::test]
async fn session_lifetime_is_bounded_even_for_a_busy_client() {
    let (_upstream, spamgate) =
        setup(Behaviour::default(), "timeouts: {session: 1s, idle: 1m}").await;
    let mut client = Client::ready(spamgate.addr).await;
    let started = std::time::Instant::now();
    let mut last = client.cmd("NOOP").await;
    while last.code == 250 && started.elapsed() < std::time::Duration::from_secs(15) {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        last = client.cmd("NOOP").await;
    }
    assert_eq!((last.code, last.status()), (421, Some("4.4.2")), "{last:?}");
    assert!(client.is_closed().await);
}
