//! TLS towards the upstream (`upstream.tls`): STARTTLS against the
//! recording upstream and against a real Postfix smtpd with a certificate
//! made by the test. Whatever goes wrong with TLS, the client hears a 4xx
//! and nothing travels in clear when TLS was required.

mod common;

use std::path::Path;

use spamgate::config::Config;
use tokio::net::TcpListener;

use common::client::{message, Client, Reply};
use common::postfix::{Postfix, MAILBOX};
use common::tls::TestCert;
use common::upstream::{Behaviour, Fault, Recorder, Step};
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

#[tokio::test]
async fn opportunistic_stays_plain_when_starttls_is_not_offered() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let tls = "{mode: opportunistic, verify: false}";
    let spamgate = Spamgate::start(&config_with_tls(upstream.addr, tls, "")).await;

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

#[tokio::test]
async fn a_refused_or_unverifiable_starttls_gets_4xx() {
    let (cert, other) = (TestCert::new(), TestCert::new());
    let refusing = Recorder::start(Behaviour {
        fault: Some((Step::Starttls, Fault::Reply(454))),
        ..offering(&cert)
    })
    .await;
    let upstream = Recorder::start(offering(&cert)).await;
    let wrong_name = format!(
        "{{mode: opportunistic, ca_file: '{}', server_name: mx.other.test}}",
        cert.cert.path().display()
    );
    let cases = [
        (
            &refusing,
            "{mode: opportunistic, verify: false}".to_string(),
        ),
        (&upstream, wrong_name),
        (&upstream, verified(&other, "opportunistic")),
    ];
    for (recorder, tls) in cases {
        let spamgate = Spamgate::start(&config_with_tls(recorder.addr, &tls, "")).await;
        let mut client = Client::ready(spamgate.addr).await;
        assert_tempfail(&client.cmd("MAIL FROM:<a@example.com>").await);
        assert_eq!(spamgate.metric(&tls_metric("failed")).await, 1.0, "{tls}");
    }
    assert!(refusing.accepted().is_empty() && upstream.accepted().is_empty());
    assert!(
        !refusing.commands().iter().any(|c| c.starts_with("MAIL")),
        "no plaintext fallback after a refused STARTTLS"
    );
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

    let offering = Recorder::start(offering(&cert)).await;
    let yaml = config_with_tls(offering.addr, &verified(&other, "required"), "");
    let error = startup_result(&yaml).await.unwrap_err();
    assert!(error.contains("TLS to the upstream failed"), "{error}");
}

/// A real Postfix smtpd with STARTTLS: opportunistic without verification
/// and required with verification both deliver, and Postfix's own trace
/// shows the TLS session; a name mismatch gets a 4xx.
#[tokio::test]
async fn postfix_receives_over_tls() {
    let cert = TestCert::new();
    let postfix = Postfix::start_with_tls(&cert).await;
    let relay_only = "auth: {spf: {mode: 'off'}, dkim: {mode: 'off'}, arc: {mode: 'off'}, dmarc: {mode: 'off'}, from_header: 'off'}";
    let wrong_name = format!(
        "{{mode: opportunistic, ca_file: '{}', server_name: mx.other.test}}",
        cert.cert.path().display()
    );
    let cases = [
        ("{mode: opportunistic, verify: false}".to_string(), 250),
        (verified(&cert, "required"), 250),
        (wrong_name, 451),
    ];
    let mut delivered = 0;
    for (tls, code) in cases {
        let spamgate = Spamgate::start(&config_with_tls(postfix.addr, &tls, relay_only)).await;
        let mut client = Client::ready(spamgate.addr).await;
        let reply = client
            .send_mail("alice@example.com", &[MAILBOX], &message("over-tls"))
            .await;
        assert_eq!(reply.code, code, "{tls}: {reply:?}\n{}", postfix.log());
        delivered += usize::from(code == 250);
    }
    let mailbox = postfix.wait_mailbox(delivered).await;
    assert_eq!(mailbox.len(), 2, "the 451 delivered nothing");
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
