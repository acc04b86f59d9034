//! The dashboard and the alerts, proven against a real Prometheus: three
//! spamgate instances (healthy, upstream answering 451, upstream down) are
//! scraped while SMTP traffic flows, then every PromQL expression of
//! `dashboards/spamgate.json` is run through Prometheus's HTTP API and must
//! return data; the alert rules are loaded and must evaluate cleanly and
//! fire where they should.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::client::Client;
use common::dns::{DnsServer, Zones};
use common::prometheus::{sample_value, Prometheus};
use common::upstream::{closed_port, Behaviour, Fault, Recorder, Step};
use common::{http_get, test_config};
use serde_json::Value;
use spamgate::config::Config;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Metrics the dashboard shows that cannot have samples in this test, and why.
/// Their queries must still be valid PromQL that Prometheus accepts.
const NO_SAMPLES_HERE: &[(&str, &str)] = &[
    (
        "spamgate_config_reload_duration_seconds",
        "observed by configuration reloads; the in-process servers only reload rules",
    ),
    (
        "spamgate_smtp_auth_total",
        "no submission listener here; covered by the submission tests",
    ),
];

/// Series Prometheus makes itself for every target (not in `/metrics`).
const SCRAPE_SERIES: &[&str] = &["up"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One in-process spamgate: a direct SMTP listener, optionally a PROXY
/// listener, and `/metrics`. Aborted on drop.
struct Instance {
    smtp: SocketAddr,
    proxied: Option<SocketAddr>,
    metrics: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Instance {
    async fn start(upstream: SocketAddr, extra: &str, with_proxy: bool) -> Instance {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (smtp, metrics) = (bind().await.unwrap(), bind().await.unwrap());
        let proxy = match with_proxy {
            true => Some(bind().await.unwrap()),
            false => None,
        };
        let addr = smtp.local_addr().unwrap();
        let proxied = proxy.as_ref().map(|l| l.local_addr().unwrap());
        let metrics_addr = metrics.local_addr().unwrap();
        let yaml = test_config(upstream, &instance_yaml(addr, proxied, extra));
        let config = Config::from_yaml(&yaml, Path::new("prometheus-test.yaml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let listeners = spamgate::Listeners {
            smtp: std::iter::once(smtp).chain(proxy).collect(),
            metrics: Some(metrics),
        };
        Instance {
            smtp: addr,
            proxied,
            metrics: metrics_addr,
            task: tokio::spawn(spamgate::run(listeners, config, std::future::pending())),
        }
    }

    async fn exposition(&self) -> String {
        http_get(self.metrics, "/metrics").await
    }

    /// The Prometheus `instance` label of this target.
    fn instance(&self) -> String {
        self.metrics.to_string()
    }
}

/// Listeners and (for the PROXY one) the trusted balancer network.
fn instance_yaml(smtp: SocketAddr, proxied: Option<SocketAddr>, extra: &str) -> String {
    match proxied {
        Some(p) => format!(
            "listen: ['{smtp}', '{p}']\nproxy_protocol:\n  listeners: ['{p}']\n  trusted: ['127.0.0.0/8']\n{extra}"
        ),
        None => format!("listen: ['{smtp}']\n{extra}"),
    }
}

/// The instances: `healthy` refuses some mail itself and runs content
/// rules (reloaded during the test), `tempfailing` has an upstream that
/// answers 451 to every message and a state backend that is down, `orphaned` has no upstream at all, and
/// `reputation` runs DNS list, authentication, rate-limit and greylisting
/// checks against a real DNS server.
struct Fleet {
    healthy: Instance,
    tempfailing: Instance,
    orphaned: Instance,
    reputation: Instance,
    rules: tempfile::TempDir,
    _dns: DnsServer,
    _upstreams: (Recorder, Recorder),
}

/// The rule set of `healthy`: one enforced rule, one in monitor mode.
const RULES_V1: &str = "rules:\n  - {name: hello_subject, stage: data, condition: {header: {name: Subject, regex: hello}}, action: {score: 1}}\n  - {name: watched_body, stage: data, mode: monitor, condition: {body: hello}, action: {reject: {}}}\n";
/// A valid change (one more rule), then a broken one (the reload fails).
const RULES_V2: &str = "rules:\n  - {name: hello_subject, stage: data, condition: {header: {name: Subject, regex: hello}}, action: {score: 1}}\n  - {name: watched_body, stage: data, mode: monitor, condition: {body: hello}, action: {reject: {}}}\n  - {name: from_example, stage: data, condition: {header: {name: From, regex: example}}, action: {score: 0.5}}\n";
const RULES_BROKEN: &str = "rules:\n  - {name: broken, stage: nowhere}\n";

/// Greylisting with a Redis that is not there: every state operation fails
/// (and fails open, so mail still reaches the upstream).
async fn dead_redis() -> String {
    format!(
        "reputation: {{greylist: {{enabled: true}}}}\n\
         state:\n  backend: redis\n  redis: {{url: 'redis://{}/', connect_timeout: 200ms}}\n",
        closed_port().await
    )
}

impl Fleet {
    /// Every instance resolves through the test's own DNS server, so that no
    /// lookup (SPF, DMARC of the senders' domains) leaves the machine.
    async fn start() -> Fleet {
        let good = Recorder::start(Behaviour::default()).await;
        let busy = Recorder::start(Behaviour {
            fault: Some((Step::Dot, Fault::Reply(451))),
            ..Behaviour::default()
        })
        .await;
        let zones = Zones::new()
            .a("7.100.51.198.bl.test", "127.0.0.2")
            .servfail("broken.test");
        let dns = DnsServer::start(&zones);
        let resolver = dns.yaml("1s");
        let rules = tempfile::tempdir().unwrap();
        let rule_file = rules.path().join("rules.yaml");
        std::fs::write(&rule_file, RULES_V1).unwrap();
        let healthy = format!(
            "{resolver}limits: {{max_message_size: 1024, max_recipients: 2}}\n\
             checks:\n  ip_lists:\n    deny: ['203.0.113.0/24']\n\
             rules: {{files: ['{}'], watch: true, watch_interval: 100ms}}\n",
            rule_file.display()
        );
        let reputation = format!(
            "{resolver}reputation:\n  dnsbl:\n    zones: [{{zone: bl.test, weight: 1}}, {{zone: broken.test, weight: 1}}]\n\
             \x20 rate_limits:\n    limits: [{{name: sender_burst, key: ip, count: messages, rate: 2/h, burst: 2}}]\n\
             \x20 greylist: {{enabled: true}}\n"
        );
        let orphaned = Instance::start(closed_port().await, &resolver, false).await;
        Fleet {
            healthy: Instance::start(good.addr, &healthy, true).await,
            tempfailing: Instance::start(
                busy.addr,
                &(resolver.clone() + &dead_redis().await),
                false,
            )
            .await,
            orphaned,
            reputation: Instance::start(good.addr, &reputation, true).await,
            rules,
            _dns: dns,
            _upstreams: (good, busy),
        }
    }

    /// Rewrites the healthy instance's rule file and waits until the
    /// watcher has reloaded it with `result`.
    async fn change_rules(&self, text: &str, result: &str) {
        let sample = format!("spamgate_rules_reload_total{{result=\"{result}\"}}");
        let before = exposition_sum(&self.healthy.exposition().await, &sample);
        std::fs::write(self.rules.path().join("rules.yaml"), text).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while exposition_sum(&self.healthy.exposition().await, &sample) <= before {
            assert!(
                Instant::now() < deadline,
                "no rule reload with result {result}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn all(&self) -> [&Instance; 4] {
        [
            &self.healthy,
            &self.tempfailing,
            &self.orphaned,
            &self.reputation,
        ]
    }

    /// Accepted, rejected (connect, rcpt, data) and tempfailed mail.
    async fn traffic(&self) {
        self.healthy_traffic().await;
        let mut busy = Client::ready(self.tempfailing.smtp).await;
        expect(
            busy.send_mail("a@example.org", &["b@example.net"], SMALL)
                .await,
            451,
        );
        assert_eq!(busy.cmd("QUIT").await.code, 221);
        let mut orphan = Client::ready(self.orphaned.smtp).await;
        let mail = orphan
            .send_mail("a@example.org", &["b@example.net"], SMALL)
            .await;
        assert_eq!(mail.code / 100, 4, "{mail:?}");
        assert_eq!(orphan.cmd("QUIT").await.code, 221);
        self.reputation_traffic().await;
    }

    /// A listed client (by its PROXY address) that sends too fast and meets
    /// the greylist: DNS list hit, SPF/DMARC lookups, a rate-limit hit and
    /// greylist deferrals.
    async fn reputation_traffic(&self) {
        let proxied = self
            .reputation
            .proxied
            .expect("reputation has a PROXY listener");
        let mut client = Client::connect(proxied).await;
        client
            .send(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 25\r\n")
            .await;
        assert_eq!(client.reply().await.code, 220);
        assert_eq!(client.cmd("EHLO client.example").await.code, 250);
        for _ in 0..3 {
            let reply = client
                .send_mail("a@example.org", &["b@example.net"], SMALL)
                .await;
            assert_eq!(reply.code / 100, 4, "greylisted or rate limited: {reply:?}");
            let _ = client.cmd("RSET").await;
        }
        assert_eq!(client.cmd("QUIT").await.code, 221);
    }

    async fn healthy_traffic(&self) {
        let mut client = Client::ready(self.healthy.smtp).await;
        for _ in 0..2 {
            expect(
                client
                    .send_mail("a@example.org", &["b@example.net"], SMALL)
                    .await,
                250,
            );
        }
        let lines = format!("{}\r\n", "x".repeat(70)).repeat(30);
        let big = format!("From: <a@example.org>\r\nSubject: big\r\n\r\n{lines}");
        expect(
            client
                .send_mail("a@example.org", &["b@example.net"], &big)
                .await,
            552,
        );
        let three = ["b@example.net", "c@example.net", "d@example.net"];
        expect(client.send_mail("a@example.org", &three, SMALL).await, 250);
        assert_eq!(client.cmd("QUIT").await.code, 221);
        let proxied = self.healthy.proxied.expect("healthy has a PROXY listener");
        let mut relayed = Client::connect(proxied).await;
        relayed
            .send(b"PROXY TCP4 198.51.100.1 127.0.0.1 40000 25\r\n")
            .await;
        assert_eq!(relayed.reply().await.code, 220);
        assert_eq!(relayed.cmd("EHLO client.example").await.code, 250);
        expect(
            relayed
                .send_mail("a@example.org", &["b@example.net"], SMALL)
                .await,
            250,
        );
        assert_eq!(relayed.cmd("QUIT").await.code, 221);
        let mut denied = Client::connect(proxied).await;
        denied
            .send(b"PROXY TCP4 203.0.113.9 127.0.0.1 40001 25\r\n")
            .await;
        assert_eq!(denied.reply().await.code, 554);
    }

    /// Waits until Prometheus has scraped everything the instances counted so far.
    async fn wait_scraped(&self, prometheus: &Prometheus) {
        for instance in self.all() {
            let text = instance.exposition().await;
            for family in [
                "spamgate_sessions_total",
                "spamgate_transactions_total",
                "spamgate_messages_total",
            ] {
                let direct = exposition_sum(&text, family);
                let promql = format!(
                    "sum({family}{{instance=\"{}\"}}) >= {direct}",
                    instance.instance()
                );
                wait_until_some(prometheus, &promql).await;
            }
        }
    }
}

/// Asserts a reply's code, showing the whole reply when it differs.
fn expect(reply: common::client::Reply, code: u16) {
    assert_eq!(reply.code, code, "{reply:?}");
}

const SMALL: &str =
    "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: hello\r\n\r\nhello\r\n";

/// Sum of the samples of one metric name in an exposition.
fn exposition_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls until `promql` returns at least one sample.
async fn wait_until_some(prometheus: &Prometheus, promql: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while prometheus.query(promql).await.is_empty() {
        assert!(Instant::now() < deadline, "never true: {promql}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(repo("dashboards/spamgate.json")).unwrap();
    serde_json::from_str(&text).expect("dashboard is JSON")
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        out.push(panel.clone());
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    panels(dashboard)
        .iter()
        .filter_map(|p| p["targets"].as_array().cloned())
        .flatten()
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// Grafana's variables, as Grafana would expand them for these instances.
fn expand(expr: &str, instances: &[String]) -> String {
    let expanded = expr
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
        .replace("$instance", &instances.join("|"));
    assert!(!expanded.contains('$'), "unexpanded variable in {expr}");
    expanded
}

/// `spamgate_*` (and scrape) series names an expression or file refers to.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("spamgate_") {
        let start = i + at;
        let word_start =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if word_start {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

fn no_samples_reason(expr: &str) -> Option<&'static str> {
    let names = metric_names(expr);
    NO_SAMPLES_HERE.iter().find_map(|(metric, why)| {
        names
            .iter()
            .any(|n| {
                n == metric
                    || n.strip_prefix(metric)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
            })
            .then_some(*why)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let fleet = Fleet::start().await;
    let targets: Vec<SocketAddr> = fleet.all().iter().map(|i| i.metrics).collect();
    let prometheus = Prometheus::start(&targets, &[repo("dashboards/alerts.yaml")]).await;
    let instances: Vec<String> = fleet.all().iter().map(|i| i.instance()).collect();
    for instance in &instances {
        wait_until_some(
            &prometheus,
            &format!("spamgate_build_info{{instance=\"{instance}\"}}"),
        )
        .await;
    }
    // Two rounds, each scraped, so every counter touched has risen inside
    // the rate window; the rules change in between, then break.
    fleet.traffic().await;
    fleet.wait_scraped(&prometheus).await;
    fleet.change_rules(RULES_V2, "ok").await;
    fleet.traffic().await;
    fleet.change_rules(RULES_BROKEN, "error").await;
    fleet.wait_scraped(&prometheus).await;
    assert_targets_healthy(&prometheus, targets.len()).await;
    let dashboard = dashboard();
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 30, "only {} queries found", queries.len());
    let mut failures = Vec::new();
    for expr in &queries {
        let result = prometheus.query(&expand(expr, &instances)).await;
        let finite = result.iter().filter_map(sample_value).any(f64::is_finite);
        match no_samples_reason(expr) {
            Some(_) => {}
            None if finite => {}
            None => failures.push(format!("{expr}\n    -> {result:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "queries without data:\n{}",
        failures.join("\n")
    );
    assert_variable_query(&prometheus, &dashboard, &instances).await;
    assert_alerts(&prometheus, &fleet).await;
}

/// Prometheus scraped every instance's OpenMetrics exposition without error.
async fn assert_targets_healthy(prometheus: &Prometheus, expected: usize) {
    let targets = prometheus.api("/api/v1/targets?state=active").await;
    let active = targets["activeTargets"].as_array().expect("activeTargets");
    assert_eq!(active.len(), expected);
    for target in active {
        assert_eq!(target["health"], "up", "{target}");
        assert_eq!(target["lastError"], "", "{target}");
    }
}

/// The `instance` variable lists exactly the scraped instances.
async fn assert_variable_query(prometheus: &Prometheus, dashboard: &Value, instances: &[String]) {
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("instance variable");
    let definition = instance["definition"].as_str().unwrap();
    let metric = definition
        .strip_prefix("label_values(")
        .and_then(|rest| rest.split(',').next())
        .expect("label_values(metric, instance)");
    let data = prometheus
        .api(&format!(
            "/api/v1/label/instance/values?match[]={}",
            common::prometheus::encode(metric)
        ))
        .await;
    let mut found: Vec<String> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut expected = instances.to_vec();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
}

/// The alert rules, loaded into the same Prometheus, evaluate without error;
/// the upstream alerts go pending for the instance without an upstream, the
/// reload alert fires for the instance whose rules broke, the state alert
/// for the one without Redis, and nothing else.
async fn assert_alerts(prometheus: &Prometheus, fleet: &Fleet) {
    let orphan = fleet.orphaned.instance();
    let expected: BTreeSet<(String, String)> = [
        ("SpamgateUpstreamDown", orphan.clone()),
        ("SpamgateUpstreamErrors", orphan),
        ("SpamgateRulesReloadFailed", fleet.healthy.instance()),
        ("SpamgateStateBackendErrors", fleet.tempfailing.instance()),
    ]
    .into_iter()
    .map(|(alert, instance)| (alert.to_string(), instance))
    .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let alerts = prometheus.api("/api/v1/alerts").await;
        let active: BTreeSet<(String, String)> = alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap().to_string(),
                    a["labels"]["instance"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if active == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "alerts {active:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rules = prometheus.api("/api/v1/rules").await;
    let groups = rules["groups"].as_array().unwrap();
    let all: Vec<&Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(all.len() >= 6, "{} rules loaded", all.len());
    for rule in all {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}

#[tokio::test]
async fn every_metric_in_dashboard_and_alerts_is_exported() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let instance = Instance::start(upstream.addr, "", false).await;
    let exposition = instance.exposition().await;
    let alerts = std::fs::read_to_string(repo("dashboards/alerts.yaml")).unwrap();
    let mut used = metric_names(&alerts);
    for expr in dashboard_queries(&dashboard()) {
        used.extend(metric_names(&expr));
    }
    assert!(used.len() >= 15, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exported(&exposition, name))
        .collect();
    assert!(
        missing.is_empty(),
        "not in /metrics: {missing:?}\n{exposition}"
    );
    assert!(
        alerts.contains("up{job=\"spamgate\"}"),
        "InstanceDown uses the scrape's own `up`"
    );
    assert!(SCRAPE_SERIES.iter().all(|s| !s.starts_with("spamgate_")));
}

/// Whether `/metrics` declares the family of a series name (families with
/// no samples yet still print `# TYPE`).
fn exported(exposition: &str, name: &str) -> bool {
    let types: Vec<(&str, &str)> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    types.iter().any(|(family, kind)| match *kind {
        "counter" => name == format!("{family}_total"),
        "histogram" => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name == format!("{family}{s}")),
        _ => name == *family,
    })
}

#[tokio::test]
async fn exposition_follows_prometheus_conventions() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let instance = Instance::start(upstream.addr, "", false).await;
    let exposition = instance.exposition().await;
    assert!(
        exposition.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let mut families = 0;
    for line in exposition.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (family, kind) = line.split_once(' ').unwrap();
        families += 1;
        assert!(family.starts_with("spamgate_"), "{family}");
        assert!(
            !family.ends_with("_total"),
            "{family}: the _total suffix belongs to samples"
        );
        let timing = family.contains("duration") || family.contains("latency");
        if timing {
            assert_eq!(kind, "histogram", "{family}: durations are histograms");
            assert!(
                family.ends_with("_seconds"),
                "{family}: durations are in seconds"
            );
        }
        if kind == "counter" {
            let samples = exposition
                .lines()
                .filter(|l| l.starts_with(family) && !l.starts_with('#'));
            for sample in samples {
                assert!(sample.starts_with(&format!("{family}_total")), "{sample}");
            }
        }
    }
    assert!(families >= 15, "{families} families");
    for sample in exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        assert!(
            !sample.contains("127.0.0.1") && !sample.contains('@'),
            "unbounded label value: {sample}"
        );
    }
    let build = format!(
        "spamgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(exposition.contains(&build), "{build}");
}

#[test]
fn promtool_checks_and_tests_the_alert_rules() {
    let dir = repo("dashboards");
    for args in [
        ["check", "rules", "alerts.yaml"],
        ["test", "rules", "alerts_test.yaml"],
    ] {
        let output = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian package prometheus)");
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn dashboard_is_import_ready() {
    let dashboard = dashboard();
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let ds = variables
        .iter()
        .find(|v| v["name"] == "DS_PROMETHEUS")
        .expect("datasource variable");
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let instance = variables
        .iter()
        .find(|v| v["name"] == "instance")
        .expect("instance variable");
    assert_eq!(instance["multi"], true);
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels(&dashboard) {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate id: {panel}"
        );
        assert!(
            occupy(&mut cells, &panel["gridPos"]),
            "overlapping panel: {}",
            panel["title"]
        );
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap();
        assert!(
            panel["description"].as_str().is_some_and(|d| d.len() > 20),
            "{title}: no description"
        );
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{title}: no unit"
        );
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("instance=~\"$instance\""),
                "{title}: {expr} ignores $instance"
            );
            assert!(
                !expr.contains("[1m]") && !expr.contains("[5m]"),
                "{title}: fixed rate window in {expr}"
            );
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        }
    }
}

/// Marks the grid cells a panel covers; false if one was taken.
fn occupy(cells: &mut BTreeSet<(u64, u64)>, pos: &Value) -> bool {
    let get = |k: &str| pos[k].as_u64().unwrap();
    let (x, y, w, h) = (get("x"), get("y"), get("w"), get("h"));
    assert!(x + w <= 24, "panel wider than the grid: {pos}");
    (y..y + h).all(|row| (x..x + w).all(|col| cells.insert((row, col))))
}

#[tokio::test]
async fn every_exported_metric_is_documented() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let instance = Instance::start(upstream.addr, "", false).await;
    let exposition = instance.exposition().await;
    let docs = std::fs::read_to_string(repo("docs/metrics.md")).unwrap();
    let undocumented: Vec<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(family, kind)| match kind {
            "counter" => format!("{family}_total"),
            _ => family.to_string(),
        })
        .filter(|name| !docs.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "missing from docs/metrics.md: {undocumented:?}"
    );
}
