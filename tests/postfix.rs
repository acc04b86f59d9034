//! End-to-end tests with Postfix's own programs around spamgate:
//! `smtp-source` and `swaks` as clients, `smtp-sink` and a private, real
//! Postfix (master, smtpd, cleanup, qmgr, virtual) as the upstream.

mod common;

use std::net::SocketAddr;

use common::client::{message, Client, Reply};
use common::postfix::{smtp_source, swaks, Postfix, Run, SmtpSink, MAILBOX, POSTFIX_DOMAIN};
use common::{test_config, without_xclient, Spamgate};

const ACCEPTED: &str = "spamgate_messages_total{verdict=\"accept\"}";

/// The test client's own address: distinct from 127.0.0.1, where spamgate
/// connects to the upstream from, so that the upstream can only know it
/// through XCLIENT.
const CLIENT_IP: &str = "127.0.0.2";
const CLIENT_HELO: &str = "real-client.example";

/// These tests are about relaying; sender authentication (which needs DNS
/// these tests do not serve) is off, as in `bench/relay.sh`.
const RELAY_ONLY: &str = "limits:\n  max_connections_per_ip: 200
auth:
  spf: {mode: \"off\"}
  dkim: {mode: \"off\"}
  arc: {mode: \"off\"}
  dmarc: {mode: \"off\"}
  from_header: \"off\"";

/// spamgate in front of a real Postfix, which authorises its XCLIENT.
async fn spamgate_for(upstream: SocketAddr) -> Spamgate {
    Spamgate::start(&test_config(upstream, RELAY_ONLY)).await
}

/// smtp-sink accepts every recipient and offers no XCLIENT with ADDR:
/// spamgate passes nothing on and relays only for its relay domains.
async fn spamgate_for_sink(sink: SocketAddr) -> Spamgate {
    Spamgate::start(&without_xclient(test_config(sink, RELAY_ONLY))).await
}

/// smtp-source sends `messages` in `sessions` parallel sessions (one
/// message per session unless `-d` is among `extra`); every one must reach
/// smtp-sink intact, and spamgate must count each as accepted.
async fn smtp_source_delivers_all(messages: usize, sessions: usize, extra: &[&str]) {
    let sink = SmtpSink::start().await;
    let gate = spamgate_for_sink(sink.addr).await;
    let (m, s) = (messages.to_string(), sessions.to_string());
    let mut args = vec!["-s", &s, "-m", &m, "-l", "4096", "-M", "source.example"];
    args.extend_from_slice(&["-f", "sender@example.com", "-t", "rcpt@example.net"]);
    args.extend_from_slice(extra);
    let run = smtp_source(gate.addr, &args).await;
    assert!(run.success(), "smtp-source failed: {}", run.output());

    let dumps = sink.wait_count(messages).await;
    assert_eq!(
        dumps.len(),
        messages,
        "smtp-sink got more messages than were sent"
    );
    let mut ids: Vec<String> = dumps
        .iter()
        .filter_map(|d| header(d, "Message-Id:"))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), messages, "each message arrived exactly once");
    for dump in &dumps {
        assert!(dump.contains("X-Mail-Args: <sender@example.com>"), "{dump}");
        assert!(dump.contains("X-Rcpt-Args: <rcpt@example.net>"), "{dump}");
        assert_eq!(payload_bytes(dump), 4096, "payload damaged:\n{dump}");
    }
    assert_eq!(gate.metric(ACCEPTED).await, messages as f64);
}

#[tokio::test]
async fn smtp_source_one_message_per_session_all_reach_smtp_sink() {
    smtp_source_delivers_all(40, 5, &[]).await;
}

#[tokio::test]
async fn smtp_source_many_messages_per_session_all_reach_smtp_sink() {
    smtp_source_delivers_all(60, 3, &["-d"]).await;
}

/// swaks from a distinct loopback address, with a body line that starts
/// with a dot (dot-stuffing must survive both hops).
async fn swaks_message_reaches_smtp_sink(subject: &str, extra: &[&str]) {
    let sink = SmtpSink::start().await;
    let gate = spamgate_for_sink(sink.addr).await;
    let header = format!("Subject: {subject}");
    let mut args = vec!["--from", "alice@example.com", "--to", "bob@example.net"];
    args.extend_from_slice(&["--ehlo", CLIENT_HELO, "--local-interface", CLIENT_IP]);
    args.extend_from_slice(&[
        "--header",
        &header,
        "--body",
        "line one\n.leading dot\nlast line",
    ]);
    args.extend_from_slice(extra);
    let run = swaks(gate.addr, &args).await;
    assert!(run.success(), "swaks failed:\n{}", run.output());
    assert!(
        final_reply(&run).starts_with("250 2.0.0"),
        "{}",
        run.output()
    );

    let dumps = sink.wait_count(1).await;
    assert_eq!(dumps.len(), 1);
    let dump = &dumps[0];
    assert!(dump.contains(&format!("\n{header}\n")), "{dump}");
    assert!(
        dump.contains("\nline one\n.leading dot\nlast line\n"),
        "{dump}"
    );
    assert_eq!(
        header_value(dump, "X-Helo-Args:").as_deref(),
        Some("spamgate.test"),
        "{dump}"
    );
    assert_eq!(gate.metric(ACCEPTED).await, 1.0);
}

#[tokio::test]
async fn swaks_message_reaches_smtp_sink_through_spamgate() {
    swaks_message_reaches_smtp_sink("plain", &[]).await;
}

#[tokio::test]
async fn swaks_pipelined_message_reaches_smtp_sink_through_spamgate() {
    swaks_message_reaches_smtp_sink("pipelined", &["--pipeline"]).await;
}

/// smtp-sink offers XCLIENT with NAME and HELO but no ADDR: the upstream
/// would see every client as spamgate's own address, which an MTA may trust
/// to relay anywhere. With `upstream.xclient` on, spamgate fails closed:
/// 451 to the client, nothing reaches the sink, the cause is counted.
#[tokio::test]
async fn xclient_without_addr_fails_closed() {
    let sink = SmtpSink::start_with(&[]).await;
    let gate = Spamgate::start(&test_config(sink.addr, RELAY_ONLY)).await;
    let mut client = Client::ready(gate.addr).await;
    let reply = client
        .send_mail(
            "a@example.com",
            &["b@example.net"],
            &message("xclient-no-addr"),
        )
        .await;
    assert_eq!(reply.code, 451, "{reply:?}");
    assert_eq!(
        gate.metric("spamgate_upstream_errors_total{kind=\"xclient\"}")
            .await,
        1.0
    );
    client.cmd("QUIT").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        sink.count(),
        0,
        "nothing may reach an upstream that cannot be told the client"
    );
}

/// A real Postfix behind spamgate learns the real client through XCLIENT:
/// its Received header and its log name the client's address and HELO,
/// not spamgate's.
#[tokio::test]
async fn postfix_sees_the_real_client_through_xclient() {
    let postfix = Postfix::start().await;
    let gate = spamgate_for(postfix.addr).await;
    let mut args = vec!["--from", "alice@example.com", "--to", MAILBOX];
    args.extend_from_slice(&["--ehlo", CLIENT_HELO, "--local-interface", CLIENT_IP]);
    args.extend_from_slice(&["--header", "Subject: through spamgate"]);
    let run = swaks(gate.addr, &args).await;
    assert!(
        run.success(),
        "swaks failed:\n{}\nPostfix log:\n{}",
        run.output(),
        postfix.log()
    );

    let delivered = postfix.wait_mailbox(1).await;
    let message = &delivered[0];
    assert!(message.contains("Subject: through spamgate"), "{message}");
    let received = header(message, "Received:").expect("Postfix adds Received");
    assert!(
        received.contains(&format!("[{CLIENT_IP}])")),
        "client address: {received}"
    );
    assert!(
        received.starts_with(&format!("Received: from {CLIENT_HELO} (")),
        "Postfix must name the client's HELO, not spamgate's: {received}"
    );
    let logged = postfix.wait_log(": client=").await;
    assert!(
        logged.contains(&format!("[{CLIENT_IP}]")),
        "Postfix log: {logged}"
    );
    // Postfix offers CHUNKING: the message went as BDAT, MAIL and RCPT
    // in one pipelined write (Postfix counts each command it answered).
    let counts = postfix
        .wait_log(&format!("disconnect from unknown[{CLIENT_IP}]"))
        .await;
    for count in ["mail=1", "rcpt=1", "bdat=1"] {
        assert!(counts.contains(count), "{count} in {counts}");
    }
    assert!(!counts.contains("data="), "no DATA: {counts}");
}

/// Postfix refuses an unknown recipient; spamgate hands that refusal to the
/// client at RCPT, in real time, and still relays the good recipient.
#[tokio::test]
async fn postfix_refuses_unknown_recipient_at_rcpt_in_real_time() {
    let postfix = Postfix::start().await;
    let gate = spamgate_for(postfix.addr).await;
    let mut client = Client::ready(gate.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<alice@example.com>").await.code, 250);

    let unknown = client
        .cmd(&format!("RCPT TO:<nobody@{POSTFIX_DOMAIN}>"))
        .await;
    assert_eq!(unknown.code, 550, "{unknown:?}");
    assert_eq!(unknown.status(), Some("5.1.1"), "{unknown:?}");
    assert!(
        unknown
            .text()
            .contains("User unknown in virtual mailbox table"),
        "{unknown:?}"
    );
    let refusal = postfix
        .wait_log(&format!("to=<nobody@{POSTFIX_DOMAIN}>"))
        .await;
    assert!(refusal.contains("NOQUEUE: reject: RCPT"), "{refusal}");

    assert_eq!(client.cmd(&format!("RCPT TO:<{MAILBOX}>")).await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client
        .send(common::client::dot_stuffed(&message("known-rcpt")).as_bytes())
        .await;
    let done = client.reply().await;
    assert_eq!(done.code, 250, "{done:?}");
    let delivered = postfix.wait_mailbox(1).await;
    assert!(
        delivered[0].contains("Subject: known-rcpt"),
        "{}",
        delivered[0]
    );
    assert_eq!(client.cmd("QUIT").await.code, 221);
}

/// smtp-sink dies (SIGKILL) while smtp-source is sending through spamgate
/// and while other clients are mid-transaction: every client gets a 4xx,
/// and no client got a 250 for a message the sink does not have.
#[tokio::test]
async fn smtp_sink_killed_mid_run_gives_4xx_and_never_a_false_250() {
    let mut sink = SmtpSink::start().await;
    let gate = spamgate_for_sink(sink.addr).await;
    let mut done = Client::ready(gate.addr).await;
    assert_eq!(
        done.send_mail("a@example.com", &["b@example.net"], &message("before"))
            .await
            .code,
        250
    );
    assert_eq!(done.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(done.cmd("RCPT TO:<b@example.net>").await.code, 250);
    let mut in_data = Client::ready(gate.addr).await;
    assert_eq!(in_data.cmd("MAIL FROM:<a@example.com>").await.code, 250);
    assert_eq!(in_data.cmd("RCPT TO:<b@example.net>").await.code, 250);
    assert_eq!(in_data.cmd("DATA").await.code, 354);
    let cut_message = common::client::dot_stuffed(&message("cut"));
    let (first_half, second_half) = cut_message.split_at(cut_message.len() / 2);
    in_data.send(first_half.as_bytes()).await;

    // Three smtp-source processes of one session each, so that each one's
    // verbose log pairs every final dot with its reply.
    const ARGS: [&str; 10] = [
        "-v",
        "-d",
        "-m",
        "100000",
        "-l",
        "4096",
        "-f",
        "a@example.com",
        "-t",
        "b@example.net",
    ];
    let sources: Vec<_> = (0..3)
        .map(|_| tokio::spawn(smtp_source(gate.addr, &ARGS)))
        .collect();
    sink.wait_count(21).await;
    sink.kill();
    let kept = sink.count();

    let after_kill = finish(&mut done).await;
    assert!(
        after_kill.code / 100 == 4,
        "open transaction: {after_kill:?}"
    );
    in_data.send(second_half.as_bytes()).await;
    let cut = in_data.reply().await;
    assert!(cut.code / 100 == 4, "message in DATA: {cut:?}");
    let mut late = Client::ready(gate.addr).await;
    let refused = late.cmd("MAIL FROM:<a@example.com>").await;
    assert!(refused.code / 100 == 4, "new session: {refused:?}");

    let mut told_accepted = 1;
    for source in sources {
        let run = source.await.unwrap();
        assert!(
            !run.success(),
            "smtp-source cannot have succeeded:\n{}",
            run.output()
        );
        let replies = replies(&run);
        assert!(
            replies.iter().any(|r| r.starts_with('4')),
            "no 4xx:\n{}",
            run.output()
        );
        assert!(
            !replies.iter().any(|r| r.starts_with('5')),
            "a 5xx:\n{}",
            run.output()
        );
        told_accepted += dot_replies(&run)
            .iter()
            .filter(|r| r.starts_with("250"))
            .count();
    }
    assert!(
        told_accepted <= kept,
        "clients were told {told_accepted} accepted, the sink kept {kept}"
    );
    assert_eq!(gate.metric(ACCEPTED).await, told_accepted as f64);
    assert!(
        gate.metric("spamgate_upstream_errors_total{kind=\"connect\"}")
            .await
            >= 1.0
    );
}

/// Sends DATA and a message if DATA is accepted; returns the final reply
/// (or the refusal of DATA).
async fn finish(client: &mut Client) -> Reply {
    let data = client.cmd("DATA").await;
    if data.code != 354 {
        return data;
    }
    client
        .send(common::client::dot_stuffed(&message("after-kill")).as_bytes())
        .await;
    client.reply().await
}

/// Every reply smtp-source (`-v`) got.
fn replies(run: &Run) -> Vec<String> {
    let lines = run.output();
    lines
        .lines()
        .filter_map(|l| l.split_once(": <<< "))
        .map(|(_, r)| r.to_string())
        .collect()
}

/// The replies smtp-source (`-v`, one session) got to its final dots.
fn dot_replies(run: &Run) -> Vec<String> {
    let mut replies = Vec::new();
    let mut after_dot = false;
    for line in run.output().lines() {
        if line.ends_with(": .") {
            after_dot = true;
        } else if let Some((_, reply)) = line.split_once(": <<< ").filter(|_| after_dot) {
            replies.push(reply.to_string());
            after_dot = false;
        }
    }
    replies
}

/// The reply swaks got after the message's final dot.
fn final_reply(run: &Run) -> String {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let dot = lines
        .iter()
        .rposition(|l| l.trim_end() == " -> .")
        .unwrap_or(0);
    lines[dot..]
        .iter()
        .find_map(|l| l.strip_prefix("<-  ").or_else(|| l.strip_prefix("<** ")))
        .unwrap_or("")
        .to_string()
}

/// The first header `name` of a message, continuation lines included.
fn header(message: &str, name: &str) -> Option<String> {
    let mut lines = message.lines().skip_while(|l| !l.starts_with(name));
    let mut field = lines.next()?.to_string();
    for continuation in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        field.push('\n');
        field.push_str(continuation);
    }
    Some(field)
}

fn header_value(message: &str, name: &str) -> Option<String> {
    header(message, name)?
        .strip_prefix(name)
        .map(|v| v.trim().to_string())
}

/// The size of smtp-source's payload as it counts it (`-l`): the line
/// ends between lines count, the one after the last line does not.
fn payload_bytes(dump: &str) -> usize {
    let body = dump.split_once("\n\n").map_or("", |(_, body)| body);
    let lines = body.lines().filter(|l| !l.is_empty());
    lines.map(|l| l.len() + 2).sum::<usize>().saturating_sub(2)
}

/// Recipients that would make a trusting MTA an open relay, in the forms
/// Postfix would route elsewhere: plain, source-routed, percent hack, bang
/// path, quoted local part holding an `@`.
const OUTSIDE: [&str; 5] = [
    "<victim@outside.example>",
    "<@example.test:victim@outside.example>",
    "<victim%outside.example@example.test>",
    "<outside.example!victim@example.test>",
    "<\"victim@outside.example\"@example.test>",
];

/// The real Postfix trusts 127.0.0.0/8 (Debian's default `mynetworks`) and
/// the client comes from 127.0.0.2: only spamgate's own relay control stands
/// between it and the world. Each outside form gets 554 from spamgate and
/// never reaches Postfix; the inside recipient is delivered.
#[tokio::test]
async fn relay_domains_refuse_every_outside_form_before_postfix_sees_it() {
    let postfix = Postfix::start().await;
    let extra = format!("{RELAY_ONLY}\nrelay_domains: [{POSTFIX_DOMAIN}]");
    let gate = Spamgate::start(&test_config(postfix.addr, &extra)).await;
    let mut client = Client::connect_from(gate.addr, CLIENT_IP.parse().unwrap()).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO real-client.example").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<alice@example.com>").await.code, 250);
    for rcpt in OUTSIDE {
        let reply = client.cmd(&format!("RCPT TO:{rcpt}")).await;
        assert_eq!(
            (reply.code, reply.status()),
            (554, Some("5.7.1")),
            "{rcpt}: {reply:?}"
        );
        assert!(reply.text().contains("Relay access denied"), "{reply:?}");
    }
    assert_eq!(client.cmd(&format!("RCPT TO:<{MAILBOX}>")).await.code, 250);
    assert_eq!(client.cmd("DATA").await.code, 354);
    client
        .send(common::client::dot_stuffed(&message("inside")).as_bytes())
        .await;
    assert_eq!(client.reply().await.code, 250);
    assert_eq!(postfix.wait_mailbox(1).await.len(), 1);
    let denied = "spamgate_rejections_total{stage=\"rcpt\",reason=\"relay\"}";
    assert_eq!(gate.metric(denied).await, OUTSIDE.len() as f64);
    let log = postfix.log();
    assert!(
        !log.contains("outside.example"),
        "Postfix saw an outside recipient:\n{log}"
    );
}

/// Postfix does not authorise spamgate's XCLIENT (the guide's first step
/// forgotten): spamgate relays nothing through it (451, never a silent
/// relay as 127.0.0.1) and counts the cause.
#[tokio::test]
async fn unauthorised_xclient_relays_nothing() {
    let postfix = Postfix::start_with("smtpd_authorized_xclient_hosts =\n").await;
    let extra = format!("{RELAY_ONLY}\nrelay_domains: []");
    let gate = Spamgate::start(&test_config(postfix.addr, &extra)).await;
    let mut client = Client::connect_from(gate.addr, CLIENT_IP.parse().unwrap()).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO real-client.example").await.code, 250);
    let mail = client.cmd("MAIL FROM:<alice@example.com>").await;
    assert_eq!(mail.code, 451, "{mail:?}");
    let rcpt = client.cmd("RCPT TO:<victim@outside.example>").await;
    assert!(
        (400..600).contains(&rcpt.code) && rcpt.code != 250,
        "{rcpt:?}"
    );
    client.cmd("QUIT").await;
    assert!(
        gate.metric("spamgate_upstream_errors_total{kind=\"xclient\"}")
            .await
            >= 1.0
    );
    let log = postfix.log();
    assert!(!log.contains("victim@outside.example"), "{log}");
}

/// `upstream.xclient: false` without `relay_domains` in front of a Postfix
/// that trusts spamgate's address: the start-up probe finds the open relay
/// and spamgate refuses to start, naming the fixes; Postfix queued nothing.
#[tokio::test]
async fn an_open_upstream_without_relay_domains_stops_the_start() {
    let postfix = Postfix::start().await;
    let extra = format!("{RELAY_ONLY}\nrelay_domains: []");
    let yaml = without_xclient(test_config(postfix.addr, &extra));
    let config = spamgate::Config::from_yaml(&yaml, std::path::Path::new("t.yaml")).unwrap();
    let listeners = spamgate::Listeners {
        smtp: vec![tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()],
        metrics: None,
    };
    let run = spamgate::server::try_run(listeners, config, std::future::pending());
    let ended = tokio::time::timeout(std::time::Duration::from_secs(20), run).await;
    let error = ended
        .expect("the start must stop")
        .expect_err("an open relay");
    let text = error.to_string();
    assert!(text.contains("open relay"), "{text}");
    for fix in [
        "relay_domains",
        "smtpd_authorized_xclient_hosts",
        "mynetworks",
    ] {
        assert!(text.contains(fix), "{fix} missing from: {text}");
    }
    let log = postfix.log();
    assert!(!log.contains("status=sent"), "{log}");
}
