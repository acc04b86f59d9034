//! STARTTLS, implicit TLS and the STARTTLS command-injection probe, over
//! real TLS handshakes (rustls client, certificate made by the test).

mod common;

use spamgate::config::Config;
use tokio::net::TcpListener;

use common::client::{message, Client};
use common::conformance::{assert_nothing_smuggled, smuggle, smuggling_sequences};
use common::tls::TestCert;
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};

/// spamgate on two listeners: a plain one (STARTTLS, `required` if asked)
/// and an implicit-TLS one.
async fn start(
    cert: &TestCert,
    upstream: &Recorder,
    required: bool,
) -> (Spamgate, std::net::SocketAddr) {
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let implicit = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (plain_addr, implicit_addr) = (plain.local_addr().unwrap(), implicit.local_addr().unwrap());
    let mut tls = format!("  implicit_listen: ['{implicit_addr}']\n");
    if required {
        tls.push_str(&format!("  required_on: ['{plain_addr}']\n"));
    }
    let yaml = format!(
        "listen: ['{plain_addr}']\n{}",
        test_config(upstream.addr, &cert.yaml(&tls))
    );
    let config = Config::from_yaml(&yaml, std::path::Path::new("tls.yaml")).unwrap();
    (
        Spamgate::start_on(vec![plain, implicit], config).await,
        implicit_addr,
    )
}

#[tokio::test]
async fn starttls_resets_the_session_and_mail_flows_over_tls() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (spamgate, _) = start(&cert, &upstream, false).await;
    let mut client = Client::greeted(spamgate.addr).await;
    let ehlo = client.cmd("EHLO c.example").await;
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let mut client = cert.starttls(client).await;
    let before_ehlo = client.cmd("MAIL FROM:<a@example.com>").await;
    assert_eq!(
        before_ehlo.code, 503,
        "HELO state was discarded: {before_ehlo:?}"
    );
    let ehlo = client.cmd("EHLO c.example").await;
    assert!(
        !ehlo.lines.iter().any(|l| l == "STARTTLS"),
        "not offered twice: {ehlo:?}"
    );
    assert_eq!(client.cmd("STARTTLS").await.code, 503);
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("tls"))
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = upstream.wait_accepted(1).await.remove(0);
    assert_eq!(got.rcpts, ["b@example.net"]);
    let text = String::from_utf8(got.message).unwrap();
    assert!(text.contains("Received: from c.example ([127.0.0.1])\r\n\tby spamgate.test (spamgate) with ESMTPS id"), "{text}");
    assert!(text.contains("(version=TLSv1.3 cipher=TLS13_"), "{text}");
}

#[tokio::test]
async fn commands_pipelined_behind_starttls_are_refused() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (spamgate, _) = start(&cert, &upstream, false).await;
    let mut client = Client::ready(spamgate.addr).await;
    client
        .send(b"STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
        .await;
    let reply = client.reply().await;
    assert_eq!(
        (reply.code, reply.status()),
        (554, Some("5.5.0")),
        "{reply:?}"
    );
    assert!(client.is_closed().await);
    assert!(upstream.commands().iter().all(|c| !c.contains("injected")));
}

#[tokio::test]
async fn required_tls_refuses_mail_in_clear() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (spamgate, _) = start(&cert, &upstream, true).await;
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client.cmd("MAIL FROM:<a@example.com>").await;
    assert_eq!((reply.code, reply.status()), (530, Some("5.7.0")));
    let mut client = cert.starttls(client).await;
    assert_eq!(client.cmd("EHLO c.example").await.code, 250);
    assert_eq!(client.cmd("MAIL FROM:<a@example.com>").await.code, 250);
}

#[tokio::test]
async fn implicit_tls_listener_speaks_tls_from_the_first_byte() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (_spamgate, implicit) = start(&cert, &upstream, false).await;
    let mut client = cert.connect(implicit).await;
    assert_eq!(client.reply().await.code, 220);
    let ehlo = client.cmd("EHLO c.example").await;
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("465"))
        .await;
    assert_eq!(reply.code, 250);
    upstream.wait_accepted(1).await;
}

#[tokio::test]
async fn plain_text_on_the_implicit_listener_gets_nothing() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (_spamgate, implicit) = start(&cert, &upstream, false).await;
    let mut client = Client::connect(implicit).await;
    client.send(b"EHLO c.example\r\n").await;
    assert!(client.is_closed().await, "no SMTP in clear on a TLS port");
}

#[test]
fn missing_or_bad_certificates_are_config_errors() {
    let cert = TestCert::new();
    let only_cert = format!("tls:\n  cert: '{}'\n", cert.cert.path().display());
    let errors = Config::from_yaml(&only_cert, std::path::Path::new("t.yaml"))
        .unwrap_err()
        .0;
    assert_eq!(errors[0].key, "tls");
    let swapped = format!(
        "tls:\n  cert: '{}'\n  key: '{}'\n",
        cert.key.path().display(),
        cert.cert.path().display()
    );
    let errors = Config::from_yaml(&swapped, std::path::Path::new("t.yaml"))
        .unwrap_err()
        .0;
    assert_eq!((errors[0].key.as_str(), errors[0].line), ("tls.cert", 2));
    let orphan = "tls:\n  implicit_listen: ['127.0.0.1:465']\n";
    assert!(Config::from_yaml(orphan, std::path::Path::new("t.yaml")).is_err());
}

/// spamgate with one plain submission listener (STARTTLS then AUTH) in
/// front of an upstream that holds the account alice/secret.
async fn submission(cert: &TestCert) -> (Recorder, Spamgate) {
    let behaviour = Behaviour {
        account: Some(("alice".into(), "secret".into())),
        ..Behaviour::default()
    };
    let upstream = Recorder::start(behaviour).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let extra = format!("{}submission: {{listen: ['{addr}']}}\n", cert.yaml(""));
    let yaml = format!("listen: ['{addr}']\n{}", test_config(upstream.addr, &extra));
    let config = Config::from_yaml(&yaml, std::path::Path::new("submission.yaml")).unwrap();
    (upstream, Spamgate::start_on(vec![listener], config).await)
}

const ALICE_PLAIN: &str = "AGFsaWNlAHNlY3JldA=="; // "\0alice\0secret"

#[tokio::test]
async fn submission_needs_tls_then_auth_relayed_to_the_upstream() {
    let cert = TestCert::new();
    let (upstream, spamgate) = submission(&cert).await;
    let mut client = Client::ready(spamgate.addr).await;
    let clear = client.cmd(&format!("AUTH PLAIN {ALICE_PLAIN}")).await;
    assert_eq!(
        (clear.code, clear.status()),
        (538, Some("5.7.11")),
        "never AUTH in clear"
    );
    let mut client = cert.starttls(client).await;
    let ehlo = client.cmd("EHLO c.example").await;
    assert!(
        ehlo.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"),
        "{ehlo:?}"
    );
    let before = client.cmd("MAIL FROM:<alice@example.com>").await;
    assert_eq!((before.code, before.status()), (530, Some("5.7.0")));
    let wrong = client.cmd("AUTH PLAIN AGFsaWNlAHdyb25n").await;
    assert_eq!(
        (wrong.code, wrong.status()),
        (535, Some("5.7.8")),
        "the upstream's refusal is relayed"
    );
    let ok = client.cmd(&format!("AUTH PLAIN {ALICE_PLAIN}")).await;
    assert_eq!((ok.code, ok.status()), (235, Some("2.7.0")), "{ok:?}");
    let reply = client
        .send_mail(
            "alice@example.com",
            &["b@example.net"],
            &message("submitted"),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let got = upstream.wait_accepted(1).await.remove(0);
    assert_eq!(
        got.user.as_deref(),
        Some("alice"),
        "sent on the authenticated upstream session"
    );
    assert_eq!(
        spamgate
            .metric(r#"spamgate_smtp_auth_total{result="success"}"#)
            .await,
        1.0
    );
    assert_eq!(
        spamgate
            .metric(r#"spamgate_smtp_auth_total{result="failure"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn auth_login_challenges_are_relayed_step_by_step() {
    let cert = TestCert::new();
    let (_upstream, spamgate) = submission(&cert).await;
    let client = Client::ready(spamgate.addr).await;
    let mut client = cert.starttls(client).await;
    assert_eq!(client.cmd("EHLO c.example").await.code, 250);
    let user_prompt = client.cmd("AUTH LOGIN").await;
    assert_eq!(
        (user_prompt.code, user_prompt.text()),
        (334, "VXNlcm5hbWU6".to_string())
    );
    assert_eq!(client.cmd("YWxpY2U=").await.code, 334);
    let done = client.cmd("c2VjcmV0").await;
    assert_eq!(done.code, 235, "{done:?}");
    assert_eq!(
        client.cmd("AUTH PLAIN x").await.code,
        503,
        "only once per session"
    );
}

#[tokio::test]
async fn auth_is_not_offered_on_plain_mx_listeners() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (spamgate, _) = start(&cert, &upstream, false).await;
    let client = Client::ready(spamgate.addr).await;
    let mut client = cert.starttls(client).await;
    let ehlo = client.cmd("EHLO c.example").await;
    assert!(
        !ehlo.lines.iter().any(|l| l.starts_with("AUTH")),
        "{ehlo:?}"
    );
    assert_eq!(
        client.cmd(&format!("AUTH PLAIN {ALICE_PLAIN}")).await.code,
        502
    );
}

/// The smuggling probes of `../shared/conformance/smtp-smuggling.md` inside
/// a STARTTLS session: TLS must not change how the end of data is found.
#[tokio::test]
async fn smuggling_sequences_over_starttls_never_reach_the_upstream() {
    let (cert, upstream) = (TestCert::new(), Recorder::start(Behaviour::default()).await);
    let (spamgate, _) = start(&cert, &upstream, true).await;
    let sequences = smuggling_sequences();
    for (name, sequence) in &sequences {
        let mut client = Client::greeted(spamgate.addr).await;
        client.cmd("EHLO c.example").await;
        let mut client = cert.starttls(client).await;
        assert_eq!(client.cmd("EHLO c.example").await.code, 250);
        let (first, second) = smuggle(&mut client, sequence).await;
        assert_eq!((first, second), (550, 250), "{name}");
    }
    assert_nothing_smuggled(&upstream, sequences.len()).await;
}
