//! The rule language end to end inside the library: YAML text in, hits
//! out. Table-driven: one case per condition kind and action.

use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::config::rules::RulesConfig;
use crate::judgement::{AuthResult, DmarcFact, SpfFact, SpfIdentity};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn load_text(text: &str) -> Result<RuleSet, RuleErrors> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "rules.yaml", text);
    RuleSet::load(&RulesConfig {
        files: vec![path],
        ..RulesConfig::default()
    })
}

/// One rule with `condition` at `stage`, scoring 1.
fn one_rule(stage: &str, condition: &str) -> RuleSet {
    let text = format!(
        "rules:\n  - name: r\n    stage: {stage}\n    condition: {condition}\n    action: {{score: 1}}\n"
    );
    load_text(&text).unwrap_or_else(|e| panic!("{condition}: {e}"))
}

const MESSAGE: &[u8] = b"From: \"PayPal Service\" <alert@paypa1-secure.example>\r\n\
To: a@example.net\r\n\
Subject: =?UTF-8?B?WW91IHdvbiBhIHByaXpl?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
<p>Claim your <b>fr=65e</b> money</p>\r\n\
--b\r\n\
Content-Type: application/zip; name=\"prize.zip\"\r\n\
Content-Disposition: attachment; filename=\"prize.zip\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
UEsDBA==\r\n\
--b--\r\n";

fn facts() -> Facts {
    let mut facts = Facts::default();
    facts.auth.spf = Some(SpfFact {
        result: AuthResult::SoftFail,
        identity: SpfIdentity::MailFrom,
        domain: "example.org".into(),
        subject: "x@example.org".into(),
    });
    facts.auth.dmarc = Some(DmarcFact {
        result: AuthResult::Fail,
        domain: "example.org".into(),
        policy: None,
        applied: None,
    });
    // Two lists: one that would refuse, one that only scores.
    facts.dnsbl_zones = vec!["zen.example".into(), "score.example".into()];
    facts.bulk = Some(crate::judgement::BulkFact {
        recipients: 40,
        clients: 5,
        bulk: true,
    });
    facts
}

fn data_input() -> Input<'static> {
    let mut input = Input::new("192.0.2.10".parse().unwrap()).with_message(MESSAGE);
    input.helo = Some("mail.example.org");
    input.sender = Some("x@example.org");
    input.recipients = vec!["a@example.net", "b@example.net"];
    input.recipient_count = 2;
    input
}

#[test]
fn every_condition() {
    let cases: &[(&str, &str, bool)] = &[
        ("connect", "{client_ip: ['192.0.2.0/24']}", true),
        (
            "connect",
            "{client_ip: ['192.0.2.11', '2001:db8::/32']}",
            false,
        ),
        ("helo", r"{helo: '^mail\.example\.org$'}", true),
        ("helo", "{helo: '^localhost$'}", false),
        ("mail", "{sender: '@example\\.org$'}", true),
        ("rcpt", "{recipient: '^b@'}", true),
        ("rcpt", "{recipient: '^c@'}", false),
        (
            "data",
            "{header: {name: subject, regex: 'won a prize'}}",
            true,
        ),
        (
            "data",
            "{header: {name: From, regex: '(?i)\"paypal'}}",
            true,
        ),
        ("data", "{header: {name: Date}}", false),
        ("data", "{header: {name: MIME-Version}}", true),
        ("data", "{any_header: '^To: a@'}", true),
        ("data", "{body: 'free money'}", true),
        ("data", "{body: '<b>'}", false),
        ("data", "{raw: 'fr=65e'}", true),
        ("data", "{attachment_name: '\\.zip$'}", true),
        ("data", "{attachment_name: '\\.exe$'}", false),
        ("data", "{attachment_type: '^application/zip$'}", true),
        ("data", "{size: {min: 100}}", true),
        ("data", "{size: {max: 100}}", false),
        ("data", "{recipients: {min: 2, max: 2}}", true),
        ("data", "{recipients: {min: 3}}", false),
        ("mail", "{spf: [softfail, fail]}", true),
        ("data", "{dkim: [pass]}", false),
        ("data", "{dkim: [none]}", true),
        ("data", "{dmarc: [fail]}", true),
        ("data", "{arc: [fail]}", false),
        ("connect", "{dnsbl: [ZEN.example]}", true),
        ("connect", "{dnsbl: []}", true),
        ("connect", "{dnsbl: [other.example]}", false),
        ("connect", "{dnsbl: [score.example]}", true),
        ("connect", "{dnsbl: [other.example, Score.Example]}", true),
        ("data", "{score: {min: 3}}", true),
        ("data", "{score: {max: 2.5}}", false),
        ("data", "{bulk: {}}", true),
        (
            "data",
            "{bulk: {recipients: {min: 40}, clients: {min: 5}}}",
            true,
        ),
        ("data", "{bulk: {recipients: {min: 41}}}", false),
        ("data", "{bulk: {clients: {max: 4}}}", false),
        (
            "data",
            "{all: [{body: money}, {not: {header: {name: Date}}}]}",
            true,
        ),
        (
            "data",
            "{all: [{body: money}, {header: {name: Date}}]}",
            false,
        ),
        ("data", "{any: [{body: nothing}, {raw: Subject}]}", true),
        ("data", "{not: {body: money}}", false),
    ];
    let facts = facts();
    let input = data_input();
    for (stage, condition, want) in cases {
        let set = one_rule(stage, condition);
        let stage = set.rules()[0].stage;
        let mut input = data_input();
        if stage == Stage::Rcpt {
            input.recipients = vec!["b@example.net"];
        }
        let hits = set.evaluate(stage, &input, &facts, 3.0);
        assert_eq!(!hits.is_empty(), *want, "{stage:?} {condition}");
    }
    drop(input);
}

#[test]
fn actions_and_modes() {
    let text = r#"
rules:
  - name: header-only
    stage: data
    condition: {body: money}
    action: {add_header: {name: X-Flag, value: "money talk"}}
  - name: scored
    stage: data
    condition: {body: money}
    action: {score: -1.5}
  - name: watched
    stage: data
    mode: monitor
    condition: {body: money}
    action: {reject: {}}
  - name: meta
    stage: data
    condition: {score: {max: -1}}
    action: {tempfail: {code: 450, status: 4.7.1, text: "Slow down"}}
  - name: never-reached
    stage: data
    condition: {body: money}
    action: {score: 100}
"#;
    let set = load_text(text).unwrap();
    let hits = set.evaluate(Stage::Data, &data_input(), &Facts::default(), 0.0);
    let got: Vec<(&str, bool)> = hits
        .iter()
        .map(|h| (h.rule.name.as_str(), h.enforced))
        .collect();
    assert_eq!(
        got,
        vec![
            ("header-only", true),
            ("scored", true),
            ("watched", false),
            ("meta", true)
        ]
    );
    let meta = &set.rules()[3].action.effect;
    let Effect::Tempfail(reply) = meta else {
        panic!("{meta:?}")
    };
    assert_eq!(reply.to_string(), "450 4.7.1 Slow down");
    assert_eq!(
        set.rules()[2].action.effect,
        Effect::Reject(crate::judgement::reply::canned::rule_rejected())
    );
    assert_eq!(
        set.rules()[0].action.header,
        Some(("X-Flag".into(), "money talk".into()))
    );
}

#[test]
fn accept_stops_the_rules_after_it() {
    let text = "rules:\n  - {name: allow, stage: data, condition: {header: {name: To, regex: 'a@example'}}, action: {accept: true}}\n  - {name: later, stage: data, condition: {body: money}, action: {score: 5}}\n";
    let set = load_text(text).unwrap();
    let hits = set.evaluate(Stage::Data, &data_input(), &Facts::default(), 0.0);
    let names: Vec<&str> = hits.iter().map(|h| h.rule.name.as_str()).collect();
    assert_eq!(names, vec!["allow"]);
}

#[test]
fn global_monitor_mode_acts_on_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "r.yaml",
        "rules:\n  - {name: r, stage: data, condition: {body: money}, action: {reject: {}}}\n",
    );
    let config = RulesConfig {
        files: vec![path],
        mode: RuleMode::Monitor,
        ..RulesConfig::default()
    };
    let set = RuleSet::load(&config).unwrap();
    let hits = set.evaluate(Stage::Data, &data_input(), &Facts::default(), 0.0);
    assert_eq!(hits.len(), 1);
    assert!(!hits[0].enforced);
}

#[test]
fn bulk_conditions_without_a_fingerprint_or_below_the_thresholds() {
    let judged = one_rule("data", "{bulk: {}}");
    let counted = one_rule("data", "{bulk: {recipients: {min: 1}}}");
    let mut facts = Facts::default();
    for set in [&judged, &counted] {
        assert!(set
            .evaluate(Stage::Data, &data_input(), &facts, 0.0)
            .is_empty());
    }
    facts.bulk = Some(crate::judgement::BulkFact {
        recipients: 3,
        clients: 1,
        bulk: false,
    });
    assert!(judged
        .evaluate(Stage::Data, &data_input(), &facts, 0.0)
        .is_empty());
    assert_eq!(
        counted
            .evaluate(Stage::Data, &data_input(), &facts, 0.0)
            .len(),
        1
    );
    let early = "rules:\n  - {name: r, stage: rcpt, condition: {bulk: {}}, action: {score: 1}}\n";
    let bad = "rules:\n  - {name: r, stage: data, condition: {bulk: {clients: {}}}, action: {score: 1}}\n";
    assert!(load_text(early)
        .unwrap_err()
        .to_string()
        .contains("needs stage data"));
    assert!(load_text(bad)
        .unwrap_err()
        .to_string()
        .contains("give 'min', 'max'"));
}

/// Every problem of every file, each with file, line, column and rule.
#[test]
fn all_errors_at_once_with_locations() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        &dir,
        "a.yaml",
        r#"rules:
  - name: bad-regex
    stage: data
    condition: {body: '(unclosed'}
    action: {score: 1}
  - name: bad-stage
    stage: later
    condition: {helo: x}
    action: {score: 1}
  - name: too-early
    stage: connect
    condition: {body: x}
    action: {score: 1}
  - name: bad-reply
    stage: data
    condition: {client_ip: ['300.1.1.1']}
    action: {reject: {code: 450}}
"#,
    );
    let b = write(
        &dir,
        "b.yaml",
        r#"rules:
  - name: bad-regex
    stage: data
    condition: {body: x}
    action: {score: 1}
  - name: unknown-key
    stage: data
    condition: {bodyy: x}
    action: {score: 1}
  - name: fine
    stage: data
    condition: {dmarc: [failed]}
    action: {score: 1, accept: true, reject: {}}
"#,
    );
    let config = RulesConfig {
        files: vec![dir.path().join("*.yaml")],
        ..RulesConfig::default()
    };
    let errors = RuleSet::load(&config).unwrap_err().0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let expect = [
        (&a, 4, "bad-regex", "unclosed group"),
        (&a, 7, "bad-stage", "'later' is not one of"),
        (&a, 12, "too-early", "needs stage data"),
        (&a, 16, "bad-reply", "300.1.1.1"),
        (&a, 17, "bad-reply", "code 450 is not a 5xx code"),
        (&b, 2, "bad-regex", "duplicate name"),
        (&b, 8, "unknown-key", "bodyy"),
        (&b, 12, "fine", "'failed' is not one of"),
        (&b, 13, "fine", "only one of reject, tempfail and accept"),
    ];
    for (file, line, rule, text) in expect {
        let prefix = format!("{}:{line}:", file.display());
        let found = shown.iter().any(|s| {
            s.starts_with(&prefix) && s.contains(&format!("rule {rule}:")) && s.contains(text)
        });
        assert!(found, "{prefix} {rule} {text} in:\n{}", shown.join("\n"));
    }
    assert!(errors.iter().all(|e| e.column > 0), "{shown:?}");
}

#[test]
fn missing_files_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(&dir, "empty.yaml", "# nothing yet\n");
    let config = RulesConfig {
        files: vec![empty, dir.path().join("missing.yaml")],
        ..RulesConfig::default()
    };
    let errors = RuleSet::load(&config).unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("missing.yaml:0:0: cannot read"),
        "{errors:?}"
    );
}

/// Many rules sharing literals, regexes without literals, and the same
/// regex in several rules: the one-pass engine agrees with evaluating
/// each rule's regex on its own.
#[test]
fn one_pass_agrees_with_rule_by_rule() {
    let patterns = [
        "(?i)free money",
        "money",
        r"\bclaim\b",
        "[0-9]{6}",
        "(?i)PRIZE",
        "won a (prize|car)",
        "^You",
        "zzz-absent",
        r"(?s)Claim.*money",
        "(?i)(cheap|discount) meds",
    ];
    let mut text = String::from("rules:\n");
    for (i, p) in patterns.iter().enumerate() {
        let field = if i % 2 == 0 {
            "body"
        } else {
            "header: {name: Subject, regex"
        };
        let close = if i % 2 == 0 { "" } else { "}" };
        text.push_str(&format!(
            "  - {{name: r{i}, stage: data, condition: {{{field}: '{p}'{close}}}, action: {{score: 0}}}}\n"
        ));
    }
    let set = load_text(&text).unwrap();
    let input = data_input();
    let hits = set.evaluate(Stage::Data, &input, &Facts::default(), 0.0);
    for (i, p) in patterns.iter().enumerate() {
        let field = if i % 2 == 0 {
            Field::Body
        } else {
            Field::Header("subject".into())
        };
        let regex = regex::Regex::new(p).unwrap();
        let want = input.texts(&field).iter().any(|t| regex.is_match(t));
        let got = hits.iter().any(|h| h.rule.name == format!("r{i}"));
        assert_eq!(got, want, "{p}");
    }
}

/// `(?i)` matches the Kelvin sign for k and the long s for s: the
/// prefilter searches those variants too, so such text is never missed,
/// and plain ASCII in any case still matches.
#[test]
fn unicode_case_variants_are_not_missed() {
    let cases: &[(&str, &str, bool)] = &[
        ("(?i)discount", "DI\u{17F}COUNT today", true),
        ("(?i)kiss", "\u{212A}I\u{17F}\u{17F}", true),
        ("(?i)kiss", "KISS", true),
        ("(?i)kiss", "kis", false),
        (
            "(?i)buy (cheap|discount) meds",
            "buy di\u{17F}count MEDS",
            true,
        ),
        ("(?i)buy (cheap|discount) meds", "buy discount pills", false),
    ];
    for (pattern, body, want) in cases {
        let set = one_rule("data", &format!("{{body: '{pattern}'}}"));
        let message =
            format!("Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n");
        let input = Input::new("192.0.2.10".parse().unwrap()).with_message(message.as_bytes());
        let hits = set.evaluate(Stage::Data, &input, &Facts::default(), 0.0);
        assert_eq!(!hits.is_empty(), *want, "{pattern} on {body}");
    }
}

/// `bayes: {above, below}` reads the classifier's probability; a
/// classifier that abstained matches neither side.
#[test]
fn bayes_condition() {
    let judged = |probability: Option<f64>| Facts {
        bayes: Some(crate::judgement::Classification {
            probability,
            ..Default::default()
        }),
        ..Facts::default()
    };
    let cases = [
        ("{bayes: {above: 0.95}}", Some(0.97), true),
        ("{bayes: {above: 0.97}}", Some(0.97), true),
        ("{bayes: {above: 0.99}}", Some(0.97), false),
        ("{bayes: {below: 0.05}}", Some(0.01), true),
        ("{bayes: {below: 0.05}}", Some(0.5), false),
        ("{bayes: {above: 0.4, below: 0.6}}", Some(0.5), true),
        ("{bayes: {below: 0.99}}", None, false),
        ("{not: {bayes: {above: 0.9}}}", None, true),
    ];
    for (condition, probability, want) in cases {
        let set = one_rule("data", condition);
        let hits = set.evaluate(Stage::Data, &data_input(), &judged(probability), 0.0);
        assert_eq!(!hits.is_empty(), want, "{condition} {probability:?}");
    }
    let errors = [
        ("data", "{bayes: {}}", "give 'above', 'below'"),
        ("data", "{bayes: {above: 2}}", "not a probability"),
        (
            "data",
            "{bayes: {above: 0.9, below: 0.1}}",
            "more than below",
        ),
        ("rcpt", "{bayes: {above: 0.9}}", "needs stage data"),
    ];
    for (stage, condition, want) in errors {
        let text = format!("rules:\n  - name: r\n    stage: {stage}\n    condition: {condition}\n    action: {{score: 1}}\n");
        let error = load_text(&text).unwrap_err().to_string();
        assert!(error.contains(want), "{condition}: {error}");
    }
}

/// Regexes without literals are decided only when a rule still in play
/// reads them, with the same result as deciding them all up front.
#[test]
fn literal_less_regexes_are_decided_on_demand() {
    let rules = "rules:
  - {name: gated, stage: data, condition: {all: [{body: '[0-9]{3}'}, {body: '(?i)lottery'}]}, action: {score: 1}}
  - {name: alone, stage: data, condition: {body: '(?i)m.n.y'}, action: {score: 1}}
  - {name: either, stage: data, condition: {any: [{raw: '^From'}, {body: '(?i)prize'}]}, action: {score: 1}}
  - {name: negated, stage: data, condition: {not: {body: '[0-9]{5}'}}, action: {score: 1}}
";
    let set = load_text(rules).unwrap();
    let plan = &set.stages[stage_index(Stage::Data)];
    let input = Input::new("192.0.2.1".parse().unwrap()).with_message(MESSAGE);
    let deferred = Deferred::new(plan, &input);
    let hits = set.evaluate_with(&deferred, &Facts::default(), 0.0);
    let names: Vec<&str> = hits.iter().map(|h| h.rule.name.as_str()).collect();
    assert_eq!(names, ["alone", "either", "negated"]);
    // "lottery" (found by the literal scan) is not in the message, so
    // "gated" is skipped and its `[0-9]{3}`, written first, never runs;
    // the literal-less regexes of "alone" and "negated" were decided.
    let deferred_ids: Vec<usize> = (0..plan.atoms)
        .filter(|&id| plan.deferred[id].is_some())
        .collect();
    assert_eq!(deferred_ids.len(), 3, "[0-9]{{3}}, m.n.y, [0-9]{{5}}");
    let decided: Vec<usize> = deferred
        .decided
        .borrow()
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let gated = plan.triggers[0].expect("gated has a trigger");
    assert!(
        plan.deferred[gated].is_none(),
        "the trigger is the scanned atom"
    );
    assert_eq!(decided.len(), 2, "{decided:?}");
    assert!(!decided.contains(&deferred_ids[0]), "{decided:?}");
    // The same hits as the public entry point gives.
    let again = set.evaluate(Stage::Data, &input, &Facts::default(), 0.0);
    assert_eq!(again.len(), hits.len());
}
