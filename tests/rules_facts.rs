//! Content facts end to end: every `fact` condition through the real
//! `spamgate test` on real message files, one fact condition refusing a
//! message in a real SMTP session, and the shipped default rules (they
//! load, and each says what it is for).

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::cli::{json, spamgate, succeed, write_file};
use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};
use spamgate::config::Config;
use spamgate::rules::content::Fact;
use spamgate::rules::RuleSet;

/// One rule per fact, named after it, with the bounds the messages below
/// are built around.
const FACT_RULES: [(&str, &str); 27] = [
    ("date_skew_hours", "min: 24"),
    ("date_invalid", "min: 1"),
    ("message_id_malformed", "min: 1"),
    ("from_name_other_address", "min: 1"),
    ("subject_upper_ratio", "min: 0.9"),
    ("header_raw_8bit", "min: 1"),
    ("received_count", "min: 1"),
    ("text_length", "min: 200"),
    ("text_parts", "min: 1"),
    ("html_parts", "min: 1"),
    ("html_only", "min: 1"),
    ("html_text_ratio", "max: 0.8"),
    ("html_hidden_text", "min: 20"),
    ("html_tiny_text", "min: 10"),
    ("html_forms", "min: 1"),
    ("html_scripts", "min: 1"),
    ("image_count", "min: 1"),
    ("link_count", "min: 2"),
    ("link_host_mismatch", "min: 1"),
    ("ip_links", "min: 1"),
    ("shortener_links", "min: 1"),
    ("obfuscated_words", "min: 1"),
    ("text_upper_ratio", "min: 0.8"),
    ("exclamations", "min: 10"),
    ("money_amounts", "min: 5"),
    ("base64_text_parts", "min: 1"),
    ("charset_mismatch", "min: 1"),
];

fn fact_rules() -> String {
    let mut yaml = String::from("rules:\n");
    for (name, bounds) in FACT_RULES {
        yaml.push_str(&format!(
            "  - {{name: {name}, description: {name}, stage: data, condition: {{fact: {{name: {name}, {bounds}}}}}, action: {{score: 0.1}}}}\n"
        ));
    }
    yaml
}

const RECEIVED: &str =
    "Received: from a.example by mx.example.net; Thu, 22 Aug 2002 13:00:00 +0000\n";

/// HTML-only spam built to show every fact but `date_invalid` and `text_parts`.
fn spam_message() -> Vec<u8> {
    let shout = "FREE OFFER ".repeat(30);
    let html = format!(
        "<html><body><p>{shout} BUY V1AGRA NOW!!!!!!!!!!!! $5 $10 $15 $20 $25 \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}</p>\
<img src=\"cid:x\"><a href=\"http://192.0.2.1/login\">www.bank.example</a> <a href=\"http://bit.ly/x\">GO</a>\
<div style=\"display: none\">hidden hidden hidden text</div><span style=\"font-size:1px\">tinytinytinytiny</span>\
<form action=\"http://192.0.2.1/\"><input name=a></form><script>var a = 1;</script></body></html>"
    );
    let mut raw = format!(
        "{RECEIVED}Date: Sat, 24 Aug 2002 13:00:00 +0000\nMessage-ID: 1234.spam\n\
From: \"service@bank.example\" <x@evil.example>\nTo: undisclosed-recipients:;\n\
Subject: FREE MONEY FOR YOU NOW\nMIME-Version: 1.0\n\
Content-Type: text/html; charset=us-ascii\nContent-Transfer-Encoding: base64\n"
    )
    .into_bytes();
    raw.extend_from_slice(b"X-Note: caf\xc3\xa9\n\n");
    raw.extend_from_slice(base64(html.as_bytes()).as_bytes());
    raw
}

const HAM: &str = "Received: from a.example by mx.example.net; Thu, 22 Aug 2002 13:00:00 +0000\n\
Date: Thu, 22 Aug 2002 12:59:00 +0000\nMessage-ID: <abc.1@example.org>\n\
From: Jane Doe <jane@example.org>\nTo: bob@example.net\nSubject: Lunch on Thursday\n\
Content-Type: text/plain; charset=utf-8\n\nHello Bob, lunch at noon? Jane\n";

const BAD_DATE: &str = "Date: the day after tomorrow\nFrom: a@example.org\nSubject: hi\n\nhello\n";

/// Base64 in 76-column lines (the test writes its own message files).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (i, chunk) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            out.push('\n');
        }
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\n');
    out
}

/// `spamgate test` on one message file, as from a client on the network.
fn test(config: &Path, message: &Path) -> serde_json::Value {
    json(
        spamgate()
            .args(["test", "--config"])
            .arg(config)
            .args([
                "--ip",
                "192.0.2.1",
                "--helo",
                "h.example",
                "--from",
                "a@example.org",
            ])
            .args(["--rcpt", "b@example.net"])
            .arg(message),
    )
}

/// The rules `spamgate test` reports for one message file.
fn hits(config: &Path, message: &Path) -> BTreeSet<String> {
    let report = test(config, message);
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_fact_condition_matches_through_spamgate_test() {
    let names: BTreeSet<&str> = FACT_RULES.iter().map(|(n, _)| *n).collect();
    let all: BTreeSet<&str> = Fact::NAMES.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, all, "every fact has a rule here");

    let dir = tempfile::tempdir().unwrap();
    let rules = write_file(dir.path(), "facts.yaml", &fact_rules());
    let config = write_file(
        dir.path(),
        "c.yaml",
        &format!("rules: {{files: ['{}']}}\n", rules.display()),
    );
    let spam = dir.path().join("spam.eml");
    std::fs::write(&spam, spam_message()).unwrap();
    let ham = write_file(dir.path(), "ham.eml", HAM);
    let bad_date = write_file(dir.path(), "date.eml", BAD_DATE);

    let want_spam: BTreeSet<String> = names
        .iter()
        .filter(|n| !["date_invalid", "text_parts"].contains(n))
        .map(|n| n.to_string())
        .collect();
    assert_eq!(hits(&config, &spam), want_spam);
    let want_ham: BTreeSet<String> = ["received_count", "text_parts"].map(String::from).into();
    assert_eq!(hits(&config, &ham), want_ham);
    let want_date: BTreeSet<String> = ["date_invalid", "text_parts"].map(String::from).into();
    assert_eq!(hits(&config, &bad_date), want_date);
}

#[test]
fn fact_errors_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_file(
        dir.path(),
        "bad.yaml",
        "rules:\n  - {name: A, stage: data, condition: {fact: {name: no_such, min: 1}}, action: {score: 1}}\n  - {name: B, stage: data, condition: {fact: {name: ip_links}}, action: {score: 1}}\n  - {name: C, stage: rcpt, condition: {fact: {name: ip_links, min: 1}}, action: {score: 1}}\n",
    );
    let config = write_file(
        dir.path(),
        "c.yaml",
        &format!("rules: {{files: ['{}']}}\n", rules.display()),
    );
    let out = spamgate()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:2:")
            && stderr.contains("rule A: 'no_such' is not one of: date_skew_hours"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule B: give 'min', 'max' or both"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule C: 'fact' is not known at stage rcpt"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_fact_condition_refuses_in_a_real_session() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_file(
        dir.path(),
        "r.yaml",
        "rules:\n  - {name: IP_LINK, description: link to an IP, stage: data, condition: {fact: {name: ip_links, min: 1}}, action: {reject: {code: 550, status: 5.7.1, text: 'No links to addresses'}}}\n",
    );
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = test_config(
        upstream.addr,
        &format!("rules: {{files: ['{}']}}", rules.display()),
    );
    let spamgate = Spamgate::start(&yaml).await;
    let mut client = Client::ready(spamgate.addr).await;
    let linked = "From: a@example.com\r\nTo: b@example.net\r\nSubject: look\r\n\r\nsee http://192.0.2.7/page today\r\n";
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], linked)
        .await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert_eq!(reply.lines[0], "5.7.1 No links to addresses");
    let reply = client
        .send_mail(
            "a@example.com",
            &["b@example.net"],
            &message("see http://example.com/"),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted.len(), 1);
    spamgate.stop().await;
}

fn default_rules() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default.yaml")
}

/// A configuration in `dir` with the shipped rules and nothing else.
fn default_rules_config(dir: &Path) -> std::path::PathBuf {
    let yaml = format!("rules: {{files: ['{}']}}\n", default_rules().display());
    write_file(dir, "c.yaml", &yaml)
}

#[test]
fn every_default_rule_loads_and_has_a_description() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("rules: {{files: ['{}']}}\n", default_rules().display());
    let config = write_file(dir.path(), "c.yaml", &yaml);
    succeed(spamgate().args(["check", "--config"]).arg(&config));
    let config = Config::from_yaml(&yaml, &config).unwrap_or_else(|e| panic!("{e}"));
    let set = RuleSet::load(&config.rules).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.len() >= 60, "{} rules", set.len());
    let undescribed: Vec<&str> = set
        .rules()
        .iter()
        .filter(|r| r.description.trim().is_empty())
        .map(|r| r.name.as_str())
        .collect();
    assert!(undescribed.is_empty(), "no description: {undescribed:?}");
}

/// The default rules on two messages like those of the fact test: the
/// spam is tagged by the fact rules, the plain note is left alone.
#[test]
fn the_default_rules_tag_fact_spam_and_pass_a_plain_note() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_rules_config(dir.path());
    let spam = dir.path().join("spam.eml");
    std::fs::write(&spam, spam_message()).unwrap();
    let report = test(&config, &spam);
    assert_ne!(report["verdict"], "accept", "{report}");
    let names = hits(&config, &spam);
    for rule in [
        "LINK_TO_IP",
        "OBFUSCATED_WORD",
        "HTML_HIDDEN_TEXT",
        "DATE_IN_FUTURE_1D",
        "BASE64_TEXT",
    ] {
        assert!(names.contains(rule), "{rule} in {names:?}");
    }
    let ham = write_file(dir.path(), "ham.eml", HAM);
    let report = test(&config, &ham);
    assert_eq!(report["verdict"], "accept", "{report}");
    assert_eq!(hits(&config, &ham), BTreeSet::new());
}

/// The header-forgery rules on short messages: a claimed mailer or
/// free-mail sender that the Message-ID or the Received path contradicts
/// hits; the genuine forms (and Hotmail's web relay) do not.
#[test]
fn default_forgery_rules_tell_forged_headers_from_genuine_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = default_rules_config(dir.path());
    const OE: &str = "X-Mailer: Microsoft Outlook Express 6.00.2600.0000\n";
    const YAHOO_HOP: &str =
        "Received: from web1.mail.yahoo.com by mx.example.net; Thu, 22 Aug 2002 13:00:00 +0000\n";
    let cases = [
        (
            "FORGED_OUTLOOK_EXPRESS_ID",
            "ratware.example",
            OE,
            "<20020822.ab12@ratware.example>",
            true,
        ),
        (
            "FORGED_OUTLOOK_EXPRESS_ID",
            "client.example",
            OE,
            "<001a01c2357e$9b5e3e20$0200a8c0@pc>",
            false,
        ),
        (
            "FORGED_OUTLOOK_EXPRESS_ID",
            "hotmail.com",
            OE,
            "<OE55LzhVOJwnzsLq0000415c@hotmail.com>",
            false,
        ),
        (
            "FREEMAIL_FROM_NOT_RELAYED",
            "yahoo.com",
            RECEIVED,
            "<1@x.example>",
            true,
        ),
        (
            "FREEMAIL_FROM_NOT_RELAYED",
            "yahoo.com",
            YAHOO_HOP,
            "<1@x.example>",
            false,
        ),
        (
            "FREEMAIL_FROM_NOT_RELAYED",
            "example.org",
            RECEIVED,
            "<1@x.example>",
            false,
        ),
    ];
    for (i, (rule, from_domain, extra, id, want)) in cases.into_iter().enumerate() {
        let raw = format!(
            "{extra}Date: Thu, 22 Aug 2002 12:00:00 +0000\nMessage-ID: {id}\n\
From: Someone <someone@{from_domain}>\nTo: b@example.net\nSubject: hello\n\n\
A few words of text.\n"
        );
        let file = write_file(dir.path(), &format!("m{i}.eml"), &raw);
        let names = hits(&config, &file);
        assert_eq!(names.contains(rule), want, "case {i}: {rule} in {names:?}");
    }
}
