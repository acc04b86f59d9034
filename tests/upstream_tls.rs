//! TLS towards the upstream (`upstream.tls`): STARTTLS against the
//! recording upstream and against a real Postfix smtpd with a certificate
//! made by the test. Whatever goes wrong with TLS, the client hears a 4xx
//! and nothing travels in clear when TLS was required; an upstream that
//! offers STARTTLS but cannot complete it stops the start.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use spamgate::config::Config;
use tokio::net::TcpListener;

use common::cli::{free_port, Running};
use common::client::{message, Client, Reply};
use common::postfix::{Postfix, MAILBOX};
use common::tls::TestCert;
use common::upstream::{closed_port, Behaviour, Fault, Recorder, Step};
use common::{test_config, Spamgate};

/// A test configuration with `upstream.tls` set to the flow mapping `tls`.
fn config_with_tls(upstream: std::net::SocketAddr, tls: &str, extra: &str) -> String {
    let yaml = test_config(upstream, extra);
    let with_tls = yaml.replacen(
        "  xclient: true\n",
        &format!("  xclient: true\n  tls: {tls}\n"),
        1,
    );
    assert_ne!(yaml, with_tls, "test_config's upstream section changed");
    with_tls
}

fn offering(cert: &TestCert) -> Behaviour {
    Behaviour {
        starttls: Some(cert.server_config()),
        ..Default::default()
    }
}

/// `verify: true` against the test certificate, which names `localhost`.
fn verified(cert: &TestCert, mode: &str) -> String {
    format!(
        "{{mode: {mode}, verify: true, ca_file: '{}', server_name: localhost}}",
        cert.cert.path().display()
    )
}

async fn send_one(spamgate: &Spamgate, subject: &str) -> Reply {
    let mut client = Client::ready(spamgate.addr).await;
    client
        .send_mail("a@example.com", &["b@example.net"], &message(subject))
        .await
}

fn tls_metric(result: &str) -> String {
    format!("spamgate_upstream_tls_total{{result=\"{result}\"}}")
}

fn assert_tempfail(reply: &Reply) {
    assert_eq!(reply.code, 451, "a 4xx, never a 250: {reply:?}");
    assert_eq!(reply.status(), Some("4.4.1"), "{reply:?}");
}

#[tokio::test]
async fn starttls_comes_before_xclient_and_the_message_travels_encrypted() {
    let cert = TestCert::new();
    let upstream = Recorder::start(offering(&cert)).await;
    let yaml = config_with_tls(upstream.addr, &verified(&cert, "opportunistic"), "");
    let spamgate = Spamgate::start(&yaml).await;

    let reply = send_one(&spamgate, "encrypted").await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted[0].tls.as_deref(), Some("TLSv1_3"));
    assert!(!accepted[0].xclient.is_empty(), "XCLIENT sent over TLS");
    let session: Vec<String> = upstream
        .commands_of(accepted[0].connection)
        .into_iter()
        .take(6)
        .map(|c| c.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        session,
        ["EHLO", "STARTTLS", "EHLO", "XCLIENT", "EHLO", "MAIL"],
        "EHLO again after TLS, and only then the client's identity"
    );
    assert_eq!(spamgate.metric(&tls_metric("established")).await, 1.0);
}

/// Also with verification on: no STARTTLS offered is plaintext as
/// documented, not a failed start.
#[tokio::test]
async fn opportunistic_stays_plain_when_starttls_is_not_offered() {
    let cert = TestCert::new();
    let upstream = Recorder::start(Behaviour::default()).await;
    let tls = verified(&cert, "opportunistic");
    let spamgate = Spamgate::start(&config_with_tls(upstream.addr, &tls, "")).await;

    let reply = send_one(&spamgate, "plain").await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(upstream.wait_accepted(1).await[0].tls, None);
    assert!(!upstream.commands().iter().any(|c| c == "STARTTLS"));
    assert_eq!(spamgate.metric(&tls_metric("not_offered")).await, 1.0);
}

#[tokio::test]
async fn required_without_starttls_gets_4xx_and_nothing_is_relayed() {
    let cert = TestCert::new();
    let upstream = Recorder::start(offering(&cert)).await;
    let tls = "{mode: required, verify: false}";
    let spamgate = Spamgate::start(&config_with_tls(upstream.addr, tls, "")).await;
    // The banner means startup (and its TLS check) is over; then the
    // upstream stops offering STARTTLS, as after a botched reconfiguration.
    let mut client = Client::ready(spamgate.addr).await;
    upstream.set_behaviour(Behaviour::default());

    let mail = client.cmd("MAIL FROM:<a@example.com>").await;
    assert_tempfail(&mail);
    assert!(upstream.accepted().is_empty());
    let in_clear = upstream.commands();
    assert!(
        !in_clear
            .iter()
            .any(|c| c.starts_with("MAIL") || c.starts_with("XCLIENT")),
        "nothing about the client in clear: {in_clear:?}"
    );
    assert_eq!(spamgate.metric(&tls_metric("not_offered")).await, 1.0);
}

/// A CA file trusting both certificates: the second one then fails only
/// on its name.
fn trusting(certs: &[&TestCert]) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".pem").tempfile().unwrap();
    let pems: Vec<&str> = certs.iter().map(|c| c.cert_pem.as_str()).collect();
    std::fs::write(file.path(), pems.concat()).unwrap();
    file
}

/// The ways an offered STARTTLS fails, each as `(upstream behaviour,
/// upstream.tls, what the error says)`, all in `opportunistic` mode:
/// refused with 454, a trusted certificate for another name, and a
/// certificate from an unknown CA.
fn failing_starttls(
    cert: &TestCert,
    named: &TestCert,
    ca: &tempfile::NamedTempFile,
) -> Vec<(Behaviour, String, &'static str)> {
    let other = TestCert::new();
    let refusing = Behaviour {
        fault: Some((Step::Starttls, Fault::Reply(454))),
        ..offering(cert)
    };
    let trusted = format!(
        "{{mode: opportunistic, ca_file: '{}', server_name: localhost}}",
        ca.path().display()
    );
    vec![
        (
            refusing,
            "{mode: opportunistic, verify: false}".into(),
            "STARTTLS refused",
        ),
        (
            offering(named),
            trusted.clone(),
            "not valid for name \"localhost\"",
        ),
        // Same issuer name as the trusted ones, so webpki says BadSignature.
        (offering(&other), trusted, "invalid peer certificate"),
    ]
}

/// The upstream starts failing STARTTLS after spamgate started (its
/// certificate replaced, its TLS broken): each message gets a 4xx, and
/// nothing falls back to plaintext.
#[tokio::test]
async fn starttls_failing_after_the_start_gets_4xx() {
    let cert = TestCert::new();
    let named = TestCert::for_name("mx.other.test");
    let ca = trusting(&[&cert, &named]);
    for (broken, tls, _) in failing_starttls(&cert, &named, &ca) {
        let upstream = Recorder::start(offering(&cert)).await;
        let spamgate = Spamgate::start(&config_with_tls(upstream.addr, &tls, "")).await;
        // The banner means the startup check passed against the good upstream.
        let mut client = Client::ready(spamgate.addr).await;
        upstream.set_behaviour(broken);
        assert_tempfail(&client.cmd("MAIL FROM:<a@example.com>").await);
        assert_eq!(spamgate.metric(&tls_metric("failed")).await, 1.0, "{tls}");
        assert!(upstream.accepted().is_empty());
        let commands = upstream.commands();
        assert!(
            !commands.iter().any(|c| c.starts_with("MAIL")),
            "no plaintext fallback: {commands:?}"
        );
    }
}

/// The same failures found by the startup probe stop the start in
/// `opportunistic` mode too, with an error that names the upstream and
/// the reason, instead of a server that defers every message.
#[tokio::test]
async fn opportunistic_start_stops_when_offered_starttls_fails() {
    let cert = TestCert::new();
    let named = TestCert::for_name("mx.other.test");
    let ca = trusting(&[&cert, &named]);
    for (broken, tls, reason) in failing_starttls(&cert, &named, &ca) {
        let upstream = Recorder::start(broken).await;
        let error = startup_result(&config_with_tls(upstream.addr, &tls, ""))
            .await
            .expect_err(&tls);
        let address = upstream.addr.to_string();
        assert!(error.contains(&address), "names the upstream: {error}");
        assert!(error.contains(reason), "says why ({reason}): {error}");
        assert!(error.contains("451 4.4.1"), "{error}");
    }
}

/// An upstream that is down at startup does not stop it, in either TLS
/// mode: it may come up after spamgate. Clients get 451 meanwhile.
#[tokio::test]
async fn an_unreachable_upstream_does_not_stop_the_start() {
    let cert = TestCert::new();
    let down = closed_port().await;
    for mode in ["opportunistic", "required"] {
        let spamgate = Spamgate::start(&config_with_tls(down, &verified(&cert, mode), "")).await;
        let mut client = Client::ready(spamgate.addr).await;
        assert_tempfail(&client.cmd("MAIL FROM:<a@example.com>").await);
    }
}

/// Nor does one that accepts the connection but never greets: the startup
/// check gives up after `upstream_connect` instead of waiting for
/// `upstream_command`.
#[tokio::test]
async fn a_stalled_upstream_does_not_hold_the_start() {
    let cert = TestCert::new();
    let stalled = Recorder::start(Behaviour {
        fault: Some((Step::Greeting, Fault::Stall)),
        ..offering(&cert)
    })
    .await;
    let timeouts = "timeouts: {upstream_connect: 1s, upstream_command: 60s, shutdown_drain: 5s}";
    let tls = verified(&cert, "opportunistic");
    let spamgate = Spamgate::start(&config_with_tls(stalled.addr, &tls, timeouts)).await;
    // Held for upstream_command, the banner would miss the client's 20 s.
    Client::ready(spamgate.addr).await;
}

/// Starts spamgate the way `spamgate run` does and returns how it ended.
async fn startup_result(yaml: &str) -> Result<(), String> {
    let config = Config::from_yaml(yaml, Path::new("t.yaml")).unwrap();
    let listeners = spamgate::Listeners {
        smtp: vec![TcpListener::bind("127.0.0.1:0").await.unwrap()],
        metrics: None,
    };
    let run = spamgate::server::try_run(listeners, config, std::future::pending());
    match tokio::time::timeout(std::time::Duration::from_secs(20), run).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Ok(()), // still serving: startup went through
    }
}

#[tokio::test]
async fn required_tls_that_cannot_work_stops_the_start() {
    let (cert, other) = (TestCert::new(), TestCert::new());
    let plain = Recorder::start(Behaviour::default()).await;
    let tls = "{mode: required, verify: false}";
    let error = startup_result(&config_with_tls(plain.addr, tls, ""))
        .await
        .unwrap_err();
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(error.contains(&plain.addr.to_string()), "{error}");

    let offering = Recorder::start(offering(&cert)).await;
    let yaml = config_with_tls(offering.addr, &verified(&other, "required"), "");
    let error = startup_result(&yaml).await.unwrap_err();
    assert!(error.contains("TLS to the upstream failed"), "{error}");
    assert!(error.contains(&offering.addr.to_string()), "{error}");
}

/// A real Postfix smtpd with STARTTLS: opportunistic without verification
/// and required with verification both deliver, and Postfix's own trace
/// shows the TLS session; a name mismatch found by the startup probe
/// stops the start, also in `opportunistic` mode.
#[tokio::test]
async fn postfix_receives_over_tls() {
    let cert = TestCert::new();
    let postfix = Postfix::start_with_tls(&cert).await;
    let relay_only = "auth: {spf: {mode: 'off'}, dkim: {mode: 'off'}, arc: {mode: 'off'}, dmarc: {mode: 'off'}, from_header: 'off'}";
    let wrong_name = format!(
        "{{mode: opportunistic, ca_file: '{}', server_name: mx.other.test}}",
        cert.cert.path().display()
    );
    let error = startup_result(&config_with_tls(postfix.addr, &wrong_name, relay_only))
        .await
        .unwrap_err();
    assert!(error.contains(&postfix.addr.to_string()), "{error}");
    assert!(error.contains("not valid for name"), "{error}");
    let cases = [
        "{mode: opportunistic, verify: false}".to_string(),
        verified(&cert, "required"),
    ];
    for tls in cases {
        let spamgate = Spamgate::start(&config_with_tls(postfix.addr, &tls, relay_only)).await;
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail("alice@example.com", &[MAILBOX], &message("over-tls"))
            .await;
        assert_eq!(reply.code, 250, "{tls}: {reply:?}\n{}", postfix.log());
    }
    let mailbox = postfix.wait_mailbox(2).await;
    assert_eq!(mailbox.len(), 2);
    for message in mailbox {
        let received = message
            .split("\nReceived: ")
            .find(|h| h.contains("by postfix.test"))
            .unwrap_or_default()
            .to_string();
        assert!(received.contains("using TLSv1.3"), "{message}");
    }
    postfix.wait_log("TLS connection established from").await;
}

/// `spamgate run` with JSON logs, relaying to `upstream` with `tls`.
fn run_with_json_log(
    upstream: std::net::SocketAddr,
    tls: &str,
) -> (Running, tempfile::NamedTempFile) {
    let port = free_port();
    let extra = format!("listen: ['127.0.0.1:{port}']\nlog: {{format: json, level: info}}");
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), config_with_tls(upstream, tls, &extra)).unwrap();
    (Running::start(file.path(), port, Stdio::piped()), file)
}

/// The JSON log lines whose `message` is `message`.
fn log_events(log: &str, message: &str) -> Vec<serde_json::Value> {
    let events = log.lines().filter_map(|l| serde_json::from_str(l).ok());
    let of = |e: &serde_json::Value| e["message"] == message;
    events.filter(of).collect()
}

fn field<'a>(event: &'a serde_json::Value, name: &str) -> &'a str {
    event[name].as_str().unwrap_or_default()
}

/// The `upstream_tls` field of the transaction line for sender `from`.
fn upstream_tls_of<'a>(log: &'a [serde_json::Value], from: &str) -> Option<&'a str> {
    let line = log.iter().find(|e| field(e, "from") == from)?;
    Some(field(line, "upstream_tls"))
}

/// Sends one message from `from` on a session of its own.
async fn deliver(addr: std::net::SocketAddr, from: &str) {
    let mut client = Client::ready(addr).await;
    let reply = client
        .send_mail(from, &["b@example.net"], &message("log"))
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// Waits until the upstream has accepted `n` connections from sessions
/// (the start-up probe's left out).
async fn wait_connections(upstream: &Recorder, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.connections() < n {
        assert!(Instant::now() < deadline, "{n} upstream connections");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The transaction log line says which TLS session carried the message to
/// the upstream (version and cipher, as the upstream itself saw them), and
/// nothing when it went in plaintext; the startup probe's line says what
/// the upstream offered and which TLS session the probe made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_line_names_the_upstream_tls_session() {
    let cert = TestCert::new();
    let upstream = Recorder::start(offering(&cert)).await;
    let (running, _config) = run_with_json_log(upstream.addr, &verified(&cert, "opportunistic"));
    deliver(running.addr, "tls@example.com").await;
    // The session's connection had STARTTLS on offer (the start-up
    // probe's is not counted).
    wait_connections(&upstream, 1).await;
    upstream.set_behaviour(Behaviour::default());
    deliver(running.addr, "plain@example.com").await;
    let (_, log) = tokio::task::spawn_blocking(move || running.terminate())
        .await
        .unwrap();

    let accepted = upstream.wait_accepted(2).await;
    let tls = (accepted[0].tls.as_deref(), accepted[1].tls.as_deref());
    assert_eq!(tls, (Some("TLSv1_3"), None), "the second went in clear");
    let expected = format!("TLSv1.3 {}", accepted[0].cipher.as_deref().unwrap());
    let transactions = log_events(&log, "transaction");
    let logged = |from| upstream_tls_of(&transactions, from);
    assert_eq!(logged("tls@example.com"), Some(expected.as_str()), "{log}");
    assert_eq!(logged("plain@example.com"), Some(""), "{log}");

    let probe = log_events(&log, "upstream probed");
    let probe = probe.first().expect("the probe's line");
    assert_eq!(probe["starttls"], true, "{probe}");
    // What spamgate will do, beside what the upstream offers.
    assert_eq!(field(probe, "xclient"), "used", "{probe}");
    assert!(
        field(probe, "relays_for_outsiders").starts_with("YES"),
        "{probe}"
    );
    assert_eq!(field(probe, "tls"), expected, "{probe}");
}
