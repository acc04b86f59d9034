//! Sender authentication end to end, against real parts: the shared
//! resolver and every check ask a real DNS server (knotd on loopback),
//! messages are signed by dkimpy (an independent DKIM implementation), and
//! the SMTP tests go through spamgate to a recording upstream.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cli::{json, spamgate};
use common::client::Client;
use common::dns::{DnsServer, Zones};
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};
use spamgate::config::Config;
use spamgate::dns::{Dns, DnsError};
use spamgate::metrics::Metrics;
use spamgate::offline::{TestInput, TestReport};

const RSA_SELECTOR: &str = "rsa";
const ED_SELECTOR: &str = "ed";

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dkim")
}

/// `$SPAMGATE_PYTHON`, else the project venv, else `python3`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("SPAMGATE_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    match venv.exists() {
        true => venv,
        false => PathBuf::from("python3"),
    }
}

/// Signs `message` with dkimpy: `keytype` is rsa or ed25519, `canon` e.g. relaxed/simple.
fn sign(keytype: &str, canon: &str, domain: &str, selector: &str, message: &str) -> String {
    sign_with(keytype, canon, domain, selector, &[], message)
}

/// [`sign`] with sign.py's options (`identity=`, `length=1`, `algorithm=`).
fn sign_with(
    keytype: &str,
    canon: &str,
    domain: &str,
    selector: &str,
    options: &[&str],
    message: &str,
) -> String {
    use std::io::Write;
    let mut child = Command::new(python())
        .arg(data_dir().join("sign.py"))
        .args([keytype, canon, domain, selector])
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with dkimpy (see .ci/requirements.txt)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "dkimpy failed to sign");
    String::from_utf8(out.stdout).unwrap()
}

fn public_key(file: &str) -> String {
    std::fs::read_to_string(data_dir().join(file))
        .unwrap()
        .trim()
        .to_string()
}

/// The keys of `domain` as DKIM key records.
fn with_keys(zones: Zones, domain: &str) -> Zones {
    let rsa = format!("v=DKIM1; k=rsa; p={}", public_key("rsa.pub"));
    let ed = format!("v=DKIM1; k=ed25519; p={}", public_key("ed25519.pub"));
    zones
        .txt(&format!("{RSA_SELECTOR}._domainkey.{domain}"), &rsa)
        .txt(&format!("{ED_SELECTOR}._domainkey.{domain}"), &ed)
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: Sender <{from}>\r\nTo: rcpt@example.net\r\nSubject: {subject}\r\n\
         Date: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <{subject}@test>\r\n\r\n\
         Hello,\r\nthis is the body.\r\n"
    )
}

fn config(server: &DnsServer, extra: &str) -> Config {
    let yaml = format!(
        "hostname: mx.receiver.test\n{}{extra}",
        server.yaml("500ms")
    );
    Config::from_yaml(&yaml, Path::new("test.yaml")).unwrap()
}

async fn judge(config: &Config, from: &str, message: &str) -> TestReport {
    let input = TestInput {
        ip: [192, 0, 2, 10].into(),
        helo: "mx.sender.test".into(),
        mail_from: from.into(),
        rcpts: vec!["rcpt@example.net".into()],
        message: message.as_bytes().to_vec(),
    };
    spamgate::offline::run(config, &input).await.unwrap()
}

// ------------------------------------------------------------ resolver

/// A TXT answer is asked once and then kept for its TTL: later look-ups
/// reach neither the server nor hickory (the look-up timer, which runs
/// only around hickory's look-ups, counts one); errors are asked again
/// each time.
#[tokio::test]
async fn txt_answers_are_kept_for_their_ttl() {
    let zones = Zones::new().txt("example.com", "v=spf1 -all");
    let server = DnsServer::start(&zones);
    // With `dns.cache_size: 0` every look-up goes to hickory (and, with
    // its cache off too, to the server): 6 look-ups, not 4.
    for (cache_size, lookups) in [(8192, 4), (0, 6)] {
        let metrics = Metrics::new();
        let mut dns_config = config(&server, "").dns;
        dns_config.cache_size = cache_size;
        let dns = Dns::new(&dns_config, &metrics).unwrap();
        for _ in 0..3 {
            assert_eq!(dns.txt("example.com").await.unwrap(), vec!["v=spf1 -all"]);
            assert!(dns.txt("nowhere.example.com").await.is_err());
        }
        let text = metrics.encode();
        let count = format!("spamgate_dns_lookup_duration_seconds_count{{type=\"txt\"}} {lookups}");
        assert!(text.contains(&count), "{count} in\n{text}");
    }
}

#[tokio::test]
async fn resolver_types_answers_and_failures() {
    let zones = Zones::new()
        .txt("example.com", "v=spf1 -all")
        .txt_strings("multi.example.com", &[b"one ", b"two"])
        .a("mx.example.com", "192.0.2.1")
        .record("1.2.0.192.in-addr.arpa", "PTR", "mx.example.com.")
        .silent("slow.example.org")
        .servfail("broken.example.org");
    let server = DnsServer::start(&zones);
    let dns = Dns::new(&config(&server, "").dns, &Metrics::new()).unwrap();
    assert_eq!(dns.txt("example.com").await.unwrap(), vec!["v=spf1 -all"]);
    assert_eq!(dns.txt("multi.example.com").await.unwrap(), vec!["one two"]);
    let a = dns.ipv4("mx.example.com").await.unwrap();
    assert_eq!(a, vec![Ipv4Addr::new(192, 0, 2, 1)]);
    let ptr = dns.ptr([192, 0, 2, 1].into()).await.unwrap();
    assert_eq!(ptr, vec!["mx.example.com"]);
    let nx = dns.txt("nowhere.invalid").await.unwrap_err();
    assert!(matches!(nx, DnsError::NxDomain(_)), "{nx:?}");
    let nodata = dns.ipv4("example.com").await.unwrap_err();
    assert!(matches!(nodata, DnsError::NoRecords(_)), "{nodata:?}");
    let servfail = dns.txt("x.broken.example.org").await.unwrap_err();
    assert!(servfail.is_temporary(), "{servfail:?}");
    let started = std::time::Instant::now();
    let timeout = dns.txt("x.slow.example.org").await.unwrap_err();
    assert!(matches!(timeout, DnsError::Timeout(_)), "{timeout:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ------------------------------------------------------------ DKIM

/// signer.test publishes its keys (a revoked one, a weak one); the key server of
/// slow.test never answers.
fn dkim_zones() -> Zones {
    with_keys(Zones::new(), "signer.test")
        .txt("revoked._domainkey.signer.test", "v=DKIM1; k=rsa; p=")
        .txt(
            "weak._domainkey.signer.test",
            &format!("v=DKIM1; k=rsa; p={}", public_key("rsa512.pub")),
        )
        .txt(
            "strict._domainkey.signer.test",
            &format!("v=DKIM1; k=rsa; t=s; p={}", public_key("rsa.pub")),
        )
        .silent("_domainkey.slow.test")
        .txt("_dmarc.slow.test", "v=DMARC1; p=reject")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signatures_by_dkimpy() {
    let server = DnsServer::start(&dkim_zones());
    let config = config(&server, "");
    let plain = message("a@signer.test", "dkim");
    let cases = [
        ("rsa", "relaxed/relaxed", RSA_SELECTOR, "pass"),
        ("rsa", "simple/simple", RSA_SELECTOR, "pass"),
        ("rsa", "relaxed/simple", RSA_SELECTOR, "pass"),
        ("ed25519", "relaxed/relaxed", ED_SELECTOR, "pass"),
        ("ed25519", "simple/simple", ED_SELECTOR, "pass"),
        ("rsa", "relaxed/relaxed", "missing", "permerror"),
        ("rsa", "relaxed/relaxed", "revoked", "permerror"),
        // RFC 8301: RSA keys under 1024 bits are not valid.
        ("rsa512", "relaxed/relaxed", "weak", "fail"),
    ];
    for (keytype, canon, selector, want) in cases {
        let signed = sign(keytype, canon, "signer.test", selector, &plain);
        let report = judge(&config, "a@signer.test", &signed).await;
        let case = format!("{keytype} {canon} s={selector}");
        assert_eq!(report.dkim, want, "{case}: {report:?}");
        let header = &report.added_headers[0];
        let expected = format!("dkim={want} header.d=signer.test header.s={selector}");
        assert!(header.contains(&expected), "{case}: {header}");
    }
}

/// The tags that change what a signature covers or who it speaks for:
/// `l=` (text appended after the signed length is not covered), `i=`
/// (within `d=`, and only `d=` itself under a key's `t=s`), rsa-sha1 (no
/// longer valid, RFC 8301) and a key of the wrong type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signature_tags_by_dkimpy() {
    let server = DnsServer::start(&dkim_zones());
    let config = config(&server, "");
    let plain = message("a@signer.test", "tags");
    let sub = "identity=@sub.signer.test";
    let cases: &[(&str, &str, &[&str], &str)] = &[
        ("rsa", RSA_SELECTOR, &["length=1"], "pass"),
        ("rsa", RSA_SELECTOR, &[sub], "pass"),
        ("rsa", "strict", &["identity=@signer.test"], "pass"),
        ("rsa", "strict", &[sub], "fail"),
        ("rsa", RSA_SELECTOR, &["algorithm=rsa-sha1"], "neutral"),
        ("ed25519", RSA_SELECTOR, &[], "permerror"),
    ];
    for (keytype, selector, options, want) in cases {
        let signed = sign_with(
            keytype,
            "relaxed/relaxed",
            "signer.test",
            selector,
            options,
            &plain,
        );
        let signed = match options.contains(&"length=1") {
            true => format!("{signed}Appended after signing.\r\n"),
            false => signed,
        };
        let report = judge(&config, "a@signer.test", &signed).await;
        assert_eq!(
            report.dkim, *want,
            "{keytype} s={selector} {options:?}: {report:?}"
        );
    }
}

/// Two signatures, each verified with its own key and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_two_signatures_are_each_reported() {
    let server = DnsServer::start(&dkim_zones());
    let config = config(&server, "");
    let plain = message("a@signer.test", "two");
    let once = sign(
        "rsa",
        "relaxed/relaxed",
        "signer.test",
        RSA_SELECTOR,
        &plain,
    );
    let twice = sign(
        "ed25519",
        "simple/simple",
        "signer.test",
        ED_SELECTOR,
        &once,
    );
    let broken = twice.replacen("s=ed;", "s=missing;", 1);
    for (message, ed) in [(&twice, "pass"), (&broken, "permerror")] {
        let report = judge(&config, "a@signer.test", message).await;
        assert_eq!(report.dkim, "pass", "{report:?}");
        let header = &report.added_headers[0];
        assert!(
            header.contains("dkim=pass header.d=signer.test header.s=rsa"),
            "{header}"
        );
        let selector = if ed == "pass" { ED_SELECTOR } else { "missing" };
        let second = format!("dkim={ed} header.d=signer.test header.s={selector}");
        assert!(header.contains(&second), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_tampering_fails() {
    let server = DnsServer::start(&dkim_zones());
    let config = config(&server, "");
    let plain = message("a@signer.test", "tamper");
    for (keytype, canon, selector) in [
        ("rsa", "relaxed/relaxed", RSA_SELECTOR),
        ("ed25519", "simple/simple", ED_SELECTOR),
    ] {
        let signed = sign(keytype, canon, "signer.test", selector, &plain);
        let body = signed.replace("this is the body", "this is the BODY");
        let header = signed.replace("Subject: tamper", "Subject: tampered");
        for (what, tampered) in [("body", body), ("header", header)] {
            let report = judge(&config, "a@signer.test", &tampered).await;
            assert_eq!(report.dkim, "fail", "{keytype} {canon} {what}: {report:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_key_timeout_is_a_temporary_failure() {
    let server = DnsServer::start(&dkim_zones());
    let config = config(&server, "");
    let signed = sign(
        "rsa",
        "relaxed/relaxed",
        "slow.test",
        RSA_SELECTOR,
        &message("a@slow.test", "timeout"),
    );
    let started = std::time::Instant::now();
    let report = judge(&config, "bounce@elsewhere.test", &signed).await;
    assert_eq!(report.dkim, "temperror", "{report:?}");
    // slow.test says p=reject, and the only aligned identifier could not
    // be checked: under enforce that is a 451, never a silent pass.
    assert_eq!(report.dmarc, "temperror", "{report:?}");
    assert_eq!(
        (report.verdict, report.code),
        ("tempfail", 451),
        "{report:?}"
    );
    assert!(report.reply.contains("4.7.5"), "{}", report.reply);
    assert!(started.elapsed() < Duration::from_secs(10));
    let lenient = self::config(&server, "auth: {temperror: accept}\n");
    let report = judge(&lenient, "bounce@elsewhere.test", &signed).await;
    assert_eq!(report.verdict, "accept", "{report:?}");
}

// ------------------------------------------------------------ SMTP

/// bank.test says p=reject and signs; ours.test is a protected domain
/// without any DMARC record; slow.test's policy server never answers.
fn smtp_zones() -> Zones {
    with_keys(Zones::new(), "bank.test")
        .txt("bank.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.bank.test", "v=DMARC1; p=reject; adkim=s")
        .txt("evil.test", "v=spf1 +all")
        .silent("_dmarc.slow.test")
}

async fn start(server: &DnsServer, upstream: &Recorder) -> Spamgate {
    let extra = format!(
        "{}auth:\n  protected_domains: [ours.test]\n",
        server.yaml("500ms")
    );
    Spamgate::start(&test_config(upstream.addr, &extra)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_from_of_a_reject_domain_never_reaches_the_upstream() {
    let server = DnsServer::start(&smtp_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = start(&server, &upstream).await;
    let mut client = Client::ready(spamgate.addr).await;
    let forged = message("ceo@bank.test", "forged");
    let reply = client
        .send_mail("attacker@evil.test", &["rcpt@example.net"], &forged)
        .await;
    assert_eq!(
        (reply.code, reply.status()),
        (550, Some("5.7.1")),
        "{reply:?}"
    );
    assert!(reply.text().contains("bank.test"), "{reply:?}");
    // A good message afterwards on the same session still goes through,
    // which also proves the refused one was not merely delayed.
    let good = sign(
        "rsa",
        "relaxed/relaxed",
        "bank.test",
        RSA_SELECTOR,
        &message("ceo@bank.test", "good"),
    );
    let reply = client
        .send_mail("ceo@bank.test", &["rcpt@example.net"], &good)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted.len(), 1);
    let relayed = String::from_utf8_lossy(&accepted[0].message);
    assert!(relayed.contains("Subject: good") && !relayed.contains("Subject: forged"));
    let fails = spamgate
        .metric("spamgate_auth_results_total{method=\"dmarc\",result=\"fail\"}")
        .await;
    assert_eq!(fails, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aligned_signed_message_arrives_with_authentication_results() {
    let server = DnsServer::start(&smtp_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = start(&server, &upstream).await;
    let signed = sign(
        "ed25519",
        "relaxed/relaxed",
        "bank.test",
        ED_SELECTOR,
        &message("news@bank.test", "aligned"),
    );
    // A forger's header in our name, and another receiver's, which stays.
    let sent = format!(
        "Authentication-Results: spamgate.test; dkim=pass header.d=bank.test\r\n\
         Authentication-Results: other.test; spf=pass\r\n{signed}"
    );
    let mut client = Client::ready(spamgate.addr).await;
    let reply = client
        .send_mail("news@bank.test", &["rcpt@example.net"], &sent)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    let relayed = String::from_utf8(accepted[0].message.clone()).unwrap();
    let ours = "Authentication-Results: spamgate.test; spf=pass smtp.mailfrom=news@bank.test; \
                dkim=pass header.d=bank.test header.s=ed; arc=none; \
                dmarc=pass (p=reject) header.from=bank.test\r\n";
    let rest = format!("Authentication-Results: other.test; spf=pass\r\n{signed}");
    assert!(
        relayed.starts_with(ours),
        "our header comes first:\n{relayed}"
    );
    // Between ours and the message only headers spamgate adds (Received).
    let added = &relayed[ours.len()..relayed.len() - rest.len()];
    assert!(
        relayed.ends_with(&rest),
        "the message, forged header removed:\n{relayed}"
    );
    assert!(!added.contains("Authentication-Results"), "{added}");
    assert_eq!(relayed.matches("spamgate.test; ").count(), 1, "{relayed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_header_rules_protected_domains_and_dns_failures() {
    let server = DnsServer::start(&smtp_zones());
    let upstream = Recorder::start(Behaviour::default()).await;
    let spamgate = start(&server, &upstream).await;
    let two_froms = format!("From: a@evil.test\r\n{}", message("b@evil.test", "two"));
    let no_from = message("x@evil.test", "none").replacen("From: Sender <x@evil.test>\r\n", "", 1);
    let cases = [
        (
            message("ceo@ours.test", "protected"),
            550,
            "5.7.1",
            "ours.test",
        ),
        (two_froms, 550, "5.7.1", "Several From headers"),
        (no_from, 550, "5.7.1", "No From header"),
        (message("boss@slow.test", "slow"), 451, "4.7.5", "slow.test"),
    ];
    let mut client = Client::ready(spamgate.addr).await;
    for (message, code, status, text) in cases {
        let reply = client
            .send_mail("someone@evil.test", &["rcpt@example.net"], &message)
            .await;
        assert_eq!(
            (reply.code, reply.status()),
            (code, Some(status)),
            "{text}: {reply:?}"
        );
        assert!(reply.text().contains(text), "{reply:?}");
    }
    assert!(
        upstream.accepted().is_empty(),
        "nothing reached the upstream"
    );
}

// ------------------------------------------------------------ spamgate test

#[test]
fn spamgate_test_prints_the_verdict_as_json() {
    let server = DnsServer::start(&smtp_zones());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spamgate.yaml");
    std::fs::write(
        &config,
        format!("hostname: mx.receiver.test\n{}", server.yaml("500ms")),
    )
    .unwrap();
    let eml = dir.path().join("message.eml");
    // LF line ends, as a saved .eml often has.
    std::fs::write(&eml, message("ceo@bank.test", "cli").replace("\r\n", "\n")).unwrap();
    let report = json(
        spamgate()
            .arg("test")
            .arg("--config")
            .arg(&config)
            .args(["--ip", "192.0.2.99", "--helo", "mx.evil.test"])
            .args([
                "--from",
                "attacker@evil.test",
                "--rcpt",
                "a@example.net",
                "--rcpt",
                "b@example.net",
            ])
            .arg(&eml),
    );
    assert_eq!(report["verdict"], "reject", "{report}");
    assert_eq!(report["code"], 550);
    assert_eq!(report["spf"], "pass", "evil.test allows every host");
    assert_eq!(report["dkim"], "none");
    assert_eq!(report["dmarc"], "fail");
    assert_eq!(report["arc"], "none");
    assert!(report["reply"].as_str().unwrap().contains("bank.test"));
    let reasons = report["reasons"].as_array().unwrap();
    assert!(reasons.iter().any(|r| r["check"] == "dmarc"), "{report}");
}
