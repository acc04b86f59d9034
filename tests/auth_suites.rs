//! Conformance suites run through spamgate's own checks against a real DNS
//! server (knotd on loopback): the RFC 7208 SPF suite (pyspf 2.0.14's
//! `rfc7208-tests.yml`, committed under `tests/data/spf/`) and the ARC
//! validation suite in `../shared/conformance/arc/`.
//!
//! Each prints its pass count and every disagreeing case.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use spamgate::checks::auth::{validate_arc_chain, ArcCheck, Keys, SpfCheck};
use spamgate::config::Config;
use spamgate::dns::Dns;
use spamgate::metrics::Metrics;

use common::dns::{txt_rdata, DnsServer, Zones};

/// Our resolver's patience in the suites: knot answers in microseconds on
/// loopback, and the suites' TIMEOUT names never answer at all.
const RESOLVER_TIMEOUT: &str = "400ms";

fn config_for(server: &DnsServer) -> Config {
    let yaml = format!(
        "hostname: receiver.example.net\n{}",
        server.yaml(RESOLVER_TIMEOUT)
    );
    Config::from_yaml(&yaml, Path::new("suite.yaml")).unwrap()
}

fn load_yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The ARC suite repeats a test name; the last one wins, as in PyYAML.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
    };
    serde_saphyr::from_str_multiple_with_options::<Value, Vec<Value>>(&text, options)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------- SPF

/// One zonedata name of the SPF suite as knot records. The suite's rules
/// (pyspf's testspf.py): `SPF` records are also served as TXT unless the
/// name has TXT records (`TXT: NONE` means none); `TIMEOUT` makes every
/// query type not listed before it time out.
fn add_spf_name(zones: &mut Zones, name: &str, entries: &[Value]) {
    if name.split('.').any(|label| label.len() > 63) {
        return; // not a name DNS can hold; the suite expects it never asked
    }
    let has_txt = entries.iter().any(|e| e.get("TXT").is_some());
    // Only TXT, A, AAAA, MX and PTR are ever asked; a name whose TXT
    // records are not listed before TIMEOUT has its TXT query time out,
    // so the whole name is made silent.
    if let Some(at) = entries.iter().position(|e| e.as_str() == Some("TIMEOUT")) {
        let txt_first = entries[..at]
            .iter()
            .any(|e| e.get("TXT").is_some_and(|v| v.as_str() != Some("NONE")));
        if !txt_first {
            zones.push_silent(name);
        }
    }
    for entry in entries.iter().filter_map(|e| e.as_object()) {
        for (rtype, value) in entry {
            add_spf_record(zones, name, rtype, value, has_txt);
        }
    }
}

fn add_spf_record(zones: &mut Zones, name: &str, rtype: &str, value: &Value, has_txt: bool) {
    match rtype {
        "SPF" | "TXT" => {
            let strings: Vec<String> = match value {
                Value::Array(items) => items.iter().map(text).collect(),
                other => vec![text(other)],
            };
            if strings == ["NONE"] {
                return;
            }
            let bytes: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
            let rdata = match bytes.is_empty() {
                true => "\"\"".to_string(),
                false => txt_rdata(&bytes),
            };
            if rtype == "TXT" || !has_txt {
                zones.push(name, "TXT", &rdata);
            }
        }
        "MX" => {
            let items = value.as_array().expect("MX is [preference, name]");
            let exchange = absolute(&text(&items[1]));
            zones.push(name, "MX", &format!("{} {exchange}", text(&items[0])));
        }
        "PTR" | "CNAME" => zones.push(name, rtype, &absolute(&text(value))),
        "A" | "AAAA" => zones.push(name, rtype, &text(value)),
        other => panic!("unknown record type {other} at {name}"),
    }
}

fn absolute(name: &str) -> String {
    common::dns::zone_name(name)
}

fn spf_expected(case: &Value) -> Vec<String> {
    match &case["result"] {
        Value::Array(items) => items.iter().map(text).collect(),
        other => vec![text(other)],
    }
}

/// Runs one scenario; returns (passed, failures).
async fn spf_scenario(scenario: &Value) -> (usize, Vec<String>) {
    let mut zones = Zones::new();
    let zonedata = scenario["zonedata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, entries) in &zonedata {
        add_spf_name(&mut zones, name, entries.as_array().map_or(&[], |v| v));
    }
    let server = DnsServer::start(&zones);
    let config = config_for(&server);
    let dns = Dns::new(&config.dns, &Metrics::new()).unwrap();
    let check = SpfCheck::new(Arc::new(config.auth.clone()), &config.hostname, dns);
    let tests = scenario["tests"].as_object().cloned().unwrap_or_default();
    let (mut passed, mut failures) = (0, Vec::new());
    for (id, case) in &tests {
        let ip: IpAddr = text(&case["host"]).parse().expect("host is an IP");
        let helo = text(&case["helo"]);
        let mail_from = text(&case["mailfrom"]);
        let sender = (!mail_from.is_empty()).then_some(mail_from.as_str());
        let got = check.evaluate(ip, &helo, sender).await.result.as_str();
        let want = spf_expected(case);
        match want.iter().any(|w| w.eq_ignore_ascii_case(got)) {
            true => passed += 1,
            false => failures.push(format!("{id}: got {got}, want {want:?}")),
        }
    }
    (passed, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_spf_suite() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/spf/rfc7208-tests.yml");
    let scenarios = load_yaml_documents(&path);
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for scenario in &scenarios {
        let (ok, failed) = spf_scenario(scenario).await;
        total += ok + failed.len();
        passed += ok;
        let description = text(&scenario["description"]);
        failures.extend(failed.into_iter().map(|f| format!("[{description}] {f}")));
    }
    println!("RFC 7208 SPF suite: {passed} of {total} passed");
    for failure in &failures {
        println!("  {failure}");
    }
    assert_eq!(total, 203, "the suite has 203 tests");
    assert!(passed >= 198, "{passed} of {total} passed; goal 198");
}

// ---------------------------------------------------------------- ARC

fn arc_suite_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/arc/arc-draft-validation-tests.yml")
}

/// LF as in the YAML file, CRLF as on the wire.
fn crlf(message: &str) -> Vec<u8> {
    spamgate::offline::canonical(message.as_bytes())
}

/// The suite writes `None`, `Pass`, `Fail`; an empty `cv` is used for
/// chains whose last seal already says `cv=fail`, a failed chain.
fn arc_expected(cv: &Value) -> String {
    match text(cv).trim().to_ascii_lowercase().as_str() {
        "" => "fail".to_string(),
        word => word.to_string(),
    }
}

/// Which ARC validation a suite run goes through.
#[derive(Clone, Copy)]
enum ArcPath {
    /// The ARC check as it runs in spamgate (`mail-auth`, or our own
    /// validation for the signatures `mail-auth` reads differently).
    Check,
    /// Our own chain validation alone, for every case.
    Own,
}

async fn arc_scenario(scenario: &Value, path: ArcPath) -> (usize, Vec<String>) {
    let mut zones = Zones::new();
    let records = scenario["txt-records"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (name, value) in &records {
        zones = zones.txt(name, &text(value));
    }
    let server = DnsServer::start(&zones);
    let config = config_for(&server);
    let dns = Dns::new(&config.dns, &Metrics::new()).unwrap();
    let keys = Arc::new(Keys::default());
    let check = ArcCheck::new(Arc::new(config.auth.clone()), dns.clone(), keys.clone());
    let tests = scenario["tests"].as_object().cloned().unwrap_or_default();
    let (mut passed, mut failures) = (0, Vec::new());
    for (id, case) in &tests {
        let message = crlf(&text(&case["message"]));
        let got = match path {
            ArcPath::Check => check.evaluate(&message).await,
            ArcPath::Own => validate_arc_chain(&dns, &keys, &message).await,
        };
        let want = arc_expected(&case["cv"]);
        match got.as_str() == want {
            true => passed += 1,
            false => failures.push(format!("{id}: got {}, want {want}", got.as_str())),
        }
    }
    (passed, failures)
}

/// Runs the whole ARC suite; every one of its 171 cases must agree.
async fn arc_suite(path: ArcPath, label: &str) {
    let scenarios = load_yaml_documents(&arc_suite_path());
    let (mut passed, mut total, mut failures) = (0, 0, Vec::new());
    for scenario in &scenarios {
        let (ok, failed) = arc_scenario(scenario, path).await;
        total += ok + failed.len();
        passed += ok;
        let description = text(&scenario["description"]);
        failures.extend(
            failed
                .into_iter()
                .map(|f| format!("[{}] {f}", description.trim())),
        );
    }
    println!("ARC validation suite ({label}): {passed} of {total} agree");
    for failure in &failures {
        println!("  {failure}");
    }
    assert_eq!(total, 171, "the suite has 171 cases");
    assert!(failures.is_empty(), "disagreements: {failures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_validation_suite() {
    arc_suite(ArcPath::Check, "the ARC check").await;
}

/// Our own validation runs in production only for two signature forms;
/// the whole suite through it shows it is a complete validator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arc_validation_suite_own_validator() {
    arc_suite(ArcPath::Own, "own validator").await;
}

#[test]
fn zone_rdata_helpers() {
    let cases: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::from([
        ("\"v=spf1 -all\"", vec![&b"v=spf1 -all"[..]]),
        ("\"a\\\"b\\\\c\\128\"", vec![&b"a\"b\\c\x80"[..]]),
        ("\"one\" \"two\"", vec![&b"one"[..], &b"two"[..]]),
    ]);
    for (want, strings) in cases {
        assert_eq!(txt_rdata(&strings), want);
    }
    assert_eq!(
        absolute("Foo:bar/baz.Example.com"),
        "foo\\058bar\\047baz.example.com."
    );
    assert_eq!(absolute("."), ".");
}
