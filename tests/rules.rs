//! The rule engine end to end: real SMTP sessions through spamgate to a
//! recording upstream; reloads by trigger, by file write and by SIGHUP to
//! the real binary while sessions are open; the shipped default rules;
//! `spamgate check`, `test` and `replay` on rule files.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cli::{free_port, rule_file_config, spamgate, succeed, write_file, Running};
use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};
use common::{http_get, test_config, Spamgate};
use spamgate::checks::Pipeline;
use spamgate::config::Config;
use spamgate::metrics::Metrics;
use spamgate::server::Shared;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const SESSIONS: usize = 20;

fn default_rules() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rules/default.yaml")
        .display()
        .to_string()
}

/// Rejects messages whose Subject contains `word`.
fn subject_rule(word: &str) -> String {
    format!(
        "rules:\n  - name: SUBJECT_{}\n    description: test\n    stage: data\n    condition: {{header: {{name: Subject, regex: '{word}'}}}}\n    action: {{reject: {{code: 550, status: 5.7.1, text: 'No {word} here'}}}}\n",
        word.to_uppercase()
    )
}

/// Writes `text` to `path` in one rename, as editors and config
/// management do, so the watcher never sees half a file.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// spamgate in-process with access to its shared state (to trigger reloads).
struct Server {
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(yaml: &str) -> Server {
        let config =
            Config::from_yaml(yaml, Path::new("test.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let metrics = Metrics::new();
        let pipeline = Pipeline::from_config(&config, &metrics).unwrap_or_else(|e| panic!("{e}"));
        let shared = Arc::new(Shared::new(config, pipeline, metrics));
        spamgate::server::probe::at_start(&shared).await.unwrap();
        let smtp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, metrics_addr) = (
            smtp.local_addr().unwrap(),
            metrics_listener.local_addr().unwrap(),
        );
        let listeners = spamgate::Listeners {
            smtp: vec![smtp],
            metrics: Some(metrics_listener),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(spamgate::server::run_shared(
            listeners,
            shared.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            metrics_addr,
            shared,
            stop: Some(stop),
            task,
        }
    }

    async fn metric(&self, sample: &str) -> f64 {
        metric(self.metrics_addr, sample).await
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("spamgate stops")
            .unwrap();
    }
}

async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let text = http_get(addr, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Polls a metric until it reaches `want` (reloads happen in the background).
async fn wait_metric(addr: SocketAddr, sample: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = metric(addr, sample).await;
        if got >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} stayed at {got}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn rules_config(upstream: SocketAddr, file: &Path, watch: bool) -> String {
    test_config(
        upstream,
        &format!(
            "rules: {{files: ['{}'], watch: {watch}, watch_interval: 100ms}}\nlimits: {{max_connections_per_ip: 100}}",
            file.display()
        ),
    )
}

/// Opens `SESSIONS` sessions, each inside a transaction (MAIL and RCPT done).
async fn open_transactions(addr: SocketAddr) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..SESSIONS {
        let mut client = Client::ready(addr).await;
        assert_eq!(
            client
                .cmd(&format!("MAIL FROM:<s{i}@example.com>"))
                .await
                .code,
            250
        );
        assert_eq!(client.cmd("RCPT TO:<r@example.net>").await.code, 250);
        clients.push(client);
    }
    clients
}

async fn finish_data(client: &mut Client, subject: &str) -> u16 {
    assert_eq!(client.cmd("DATA").await.code, 354);
    client
        .send(common::client::dot_stuffed(&message(subject)).as_bytes())
        .await;
    client.reply().await.code
}

/// The reload contract, whatever triggered it: transactions open during
/// the reload finish on the old rules, the next transaction in the same
/// session uses the new ones, and no session is dropped.
async fn check_reload_contract(addr: SocketAddr, mut clients: Vec<Client>) {
    for client in &mut clients {
        // Old rules: "alpha" was refused, "beta" was fine.
        assert_eq!(finish_data(client, "beta one").await, 250);
    }
    for client in &mut clients {
        let reply = client
            .send_mail("s@example.com", &["r@example.net"], &message("beta two"))
            .await;
        assert_eq!(
            (reply.code, reply.status()),
            (550, Some("5.7.1")),
            "{reply:?}"
        );
        let reply = client
            .send_mail("s@example.com", &["r@example.net"], &message("alpha"))
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        assert_eq!(client.cmd("QUIT").await.code, 221);
    }
    // A brand-new session sees the new rules too.
    let mut fresh = Client::ready(addr).await;
    let reply = fresh
        .send_mail("s@example.com", &["r@example.net"], &message("beta"))
        .await;
    assert_eq!(reply.code, 550);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_by_trigger_keeps_open_transactions_on_the_old_set() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, subject_rule("alpha")).unwrap();
    let server = Server::start(&rules_config(upstream.addr, &file, false)).await;
    let mut probe = Client::ready(server.addr).await;
    let reply = probe
        .send_mail("s@example.com", &["r@example.net"], &message("alpha"))
        .await;
    assert_eq!(
        (reply.code, reply.lines[0].as_str()),
        (550, "5.7.1 No alpha here")
    );
    assert_eq!(probe.cmd("QUIT").await.code, 221);

    let clients = open_transactions(server.addr).await;
    replace_file(&file, &subject_rule("beta"));
    server.shared.reload.trigger();
    wait_metric(
        server.metrics_addr,
        "spamgate_rules_reload_total{result=\"ok\"}",
        1.0,
    )
    .await;
    check_reload_contract(server.addr, clients).await;
    assert_eq!(server.metric("spamgate_rules_loaded").await, 1.0);
    let reloads = "spamgate_config_reload_duration_seconds_count";
    assert_eq!(server.metric(reloads).await, 1.0, "the reload was timed");
    assert_eq!(
        server
            .metric("spamgate_rule_hits_total{rule=\"SUBJECT_BETA\",mode=\"enforce\"}")
            .await,
        (SESSIONS + 1) as f64
    );
    server.stop().await;
    // 20 "beta one" + 20 "alpha" after the reload.
    assert_eq!(upstream.accepted().len(), 2 * SESSIONS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_when_the_file_changes() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, subject_rule("alpha")).unwrap();
    let server = Server::start(&rules_config(upstream.addr, &file, true)).await;
    let clients = open_transactions(server.addr).await;
    replace_file(&file, &subject_rule("beta"));
    wait_metric(
        server.metrics_addr,
        "spamgate_rules_reload_total{result=\"ok\"}",
        1.0,
    )
    .await;
    check_reload_contract(server.addr, clients).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_old_set() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, subject_rule("alpha")).unwrap();
    let server = Server::start(&rules_config(upstream.addr, &file, true)).await;
    let broken = subject_rule("beta").replace("regex: 'beta'", "regex: '(beta'");
    replace_file(&file, &broken);
    wait_metric(
        server.metrics_addr,
        "spamgate_rules_reload_total{result=\"error\"}",
        1.0,
    )
    .await;
    server.shared.reload.trigger();
    wait_metric(
        server.metrics_addr,
        "spamgate_rules_reload_total{result=\"error\"}",
        2.0,
    )
    .await;
    assert_eq!(
        server
            .metric("spamgate_rules_reload_total{result=\"ok\"}")
            .await,
        0.0
    );
    let mut client = Client::ready(server.addr).await;
    let reply = client
        .send_mail("s@example.com", &["r@example.net"], &message("alpha"))
        .await;
    assert_eq!(reply.code, 550, "the old rule still applies: {reply:?}");
    let reply = client
        .send_mail("s@example.com", &["r@example.net"], &message("beta"))
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    // Fixed: the next reload takes it.
    replace_file(&file, &subject_rule("beta"));
    wait_metric(
        server.metrics_addr,
        "spamgate_rules_reload_total{result=\"ok\"}",
        1.0,
    )
    .await;
    let reply = client
        .send_mail("s@example.com", &["r@example.net"], &message("beta"))
        .await;
    assert_eq!(reply.code, 550, "{reply:?}");
    server.stop().await;
}

/// GTUBE from the shipped rule set is refused after DATA and never
/// reaches the upstream; ordinary mail passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtube_is_rejected_end_to_end_with_the_default_rules() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let yaml = test_config(
        upstream.addr,
        &format!("rules: {{files: ['{}']}}", default_rules()),
    );
    let spamgate = Spamgate::start(&yaml).await;
    let mut client = Client::ready(spamgate.addr).await;
    let gtube = "From: a@example.com\r\nTo: b@example.net\r\nSubject: test\r\nDate: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <g@example.com>\r\n\r\nXJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X\r\n";
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], gtube)
        .await;
    assert_eq!(reply.code, 554, "{reply:?}");
    assert_eq!(
        reply.lines[0],
        "5.7.1 Message rejected: GTUBE test string found"
    );
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("hello"))
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    assert_eq!(accepted.len(), 1);
    assert!(!String::from_utf8_lossy(&accepted[0].message).contains("GTUBE"));
    assert_eq!(
        spamgate
            .metric("spamgate_rule_hits_total{rule=\"GTUBE\",mode=\"enforce\"}")
            .await,
        1.0
    );
    assert_eq!(
        spamgate.metric("spamgate_rules_loaded").await as usize,
        rule_count(&default_rules())
    );
    spamgate.stop().await;
}

fn rule_count(file: &str) -> usize {
    std::fs::read_to_string(file)
        .unwrap()
        .matches("\n  - name: ")
        .count()
}

/// Scores add up to the tag threshold: the upstream gets X-Spam-Status
/// naming the rules, add_header's field, and monitor rules only count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tagging_names_the_rules_and_monitor_rules_do_not_act() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        r#"rules:
  - {name: CHEAP, stage: data, condition: {body: '(?i)cheap'}, action: {score: 3}}
  - {name: WATCHES, stage: data, condition: {body: '(?i)watches'}, action: {score: 2.5, add_header: {name: X-Rule-Note, value: watches}}}
  - {name: TRIAL, stage: data, mode: monitor, condition: {body: '(?i)cheap'}, action: {reject: {}}}
  - {name: CLIENT, stage: connect, condition: {client_ip: ['127.0.0.0/8']}, action: {score: -0.5}}
"#,
    )
    .unwrap();
    let spamgate = Spamgate::start(&rules_config(upstream.addr, &file, false)).await;
    let mut client = Client::ready(spamgate.addr).await;
    let body =
        "From: a@example.com\r\nTo: b@example.net\r\nSubject: offer\r\n\r\nCheap watches!\r\n";
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], body)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let accepted = upstream.wait_accepted(1).await;
    let text = String::from_utf8_lossy(&accepted[0].message).into_owned();
    assert!(text.contains("X-Spam-Score: 5.0\r\n"), "{text}");
    assert!(
        text.contains("X-Spam-Status: Yes, score=5.0 tests=CLIENT,CHEAP,WATCHES\r\n"),
        "{text}"
    );
    assert!(text.contains("X-Rule-Note: watches\r\n"), "{text}");
    assert_eq!(
        spamgate
            .metric("spamgate_rule_hits_total{rule=\"TRIAL\",mode=\"monitor\"}")
            .await,
        1.0
    );
    assert_eq!(spamgate.metric("spamgate_score_count").await, 1.0);
    // The rules run at each of the five stages of the session, each run timed.
    let runs = "spamgate_check_duration_seconds_count{check=\"rules\"}";
    assert_eq!(spamgate.metric(runs).await, 5.0);
    let took = "spamgate_check_duration_seconds_sum{check=\"rules\"}";
    assert!(spamgate.metric(took).await > 0.0);
    spamgate.stop().await;
}

/// The real binary reloads on SIGHUP while 20 sessions sit in transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_binary() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, subject_rule("alpha")).unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let config = dir.path().join("spamgate.yaml");
    let yaml = format!(
        "listen: ['127.0.0.1:{port}']\nupstream: {{address: '{}'}}\nmetrics: {{listen: '127.0.0.1:{metrics_port}'}}\nrelay_domains: [example.net, .example]\nrules: {{files: [rules.yaml], watch: false}}\nlimits: {{max_connections_per_ip: 100}}\n{}\n{}\n",
        upstream.addr,
        common::NO_DNS,
        common::NO_DNS_AUTH
    );
    std::fs::write(&config, yaml).unwrap();
    let running = Running::start(&config, port, Stdio::null());
    let addr = running.addr;
    let metrics_addr: SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    let clients = open_transactions(addr).await;
    replace_file(&rules, &subject_rule("beta"));
    running.signal("HUP");
    wait_metric(
        metrics_addr,
        "spamgate_rules_reload_total{result=\"ok\"}",
        1.0,
    )
    .await;
    check_reload_contract(addr, clients).await;
}

#[test]
fn check_reports_every_rule_error_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let (rules, config) = rule_file_config(
        dir.path(),
        "bad.yaml",
        "rules:\n  - name: ONE\n    stage: data\n    condition: {body: '(x'}\n    action: {score: 1}\n  - name: TWO\n    stage: helo\n    condition: {sender: x}\n    action: {reject: {code: 250}}\n",
    );
    let out = spamgate()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = rules.display().to_string();
    for (line, rule, why) in [
        (4, "ONE", "unclosed group"),
        (8, "TWO", "needs stage mail"),
        (9, "TWO", "not a 5xx code"),
    ] {
        let found = stderr.lines().any(|l| {
            l.starts_with(&format!("{name}:{line}:"))
                && l.contains(&format!("rule {rule}:"))
                && l.contains(why)
        });
        assert!(found, "{name}:{line} {rule} {why} in:\n{stderr}");
    }
}

#[test]
fn check_accepts_the_default_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "c.yaml",
        &format!("rules: {{files: ['{}']}}\n", default_rules()),
    );
    succeed(spamgate().args(["check", "--config"]).arg(&config));
}

/// `replay` reads a Maildir, an mbox and single files and counts per rule;
/// `test` lists the rules that matched.
#[test]
fn replay_and_test_report_rule_hits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_, config) = rule_file_config(
        root,
        "r.yaml",
        "rules:\n  - {name: PRIZE, stage: data, condition: {header: {name: Subject, regex: '(?i)prize'}}, action: {score: 6}}\n  - {name: NODATE, stage: data, condition: {not: {header: {name: Date}}}, action: {score: 0.5}}\n",
    );
    for sub in ["spam/cur", "spam/new", "spam/tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    write_file(
        &root.join("spam/cur"),
        "1:2,S",
        "Subject: Your PRIZE\n\nx\n",
    );
    write_file(
        &root.join("spam/new"),
        "2",
        "Subject: prize inside\nDate: Fri, 27 Nov 2026 05:00:00 +0000\n\nx\n",
    );
    write_file(
        &root.join("spam/tmp"),
        "3",
        "Subject: prize (still being written)\n\nx\n",
    );
    write_file(
        root,
        "ham.mbox",
        "From a@b Sat Jan  3 01:05:34 1996\nSubject: lunch\nDate: Fri, 27 Nov 2026 05:00:00 +0000\n\nx\n\nFrom a@b Sat Jan  3 01:05:34 1996\nSubject: prize draw at the fair\nDate: Fri, 27 Nov 2026 05:00:00 +0000\n\ny\n",
    );
    let out = spamgate()
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--spam")
        .arg(root.join("spam"))
        .arg("--ham")
        .arg(root.join("ham.mbox"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("messages: 4 (spam 2, ham 2, unlabelled 0)"),
        "{stdout}"
    );
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {stdout}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(
        row("PRIZE"),
        ["PRIZE", "3", "75.00%", "2", "100.00%", "1", "50.00%"]
    );
    assert_eq!(
        row("NODATE"),
        ["NODATE", "1", "25.00%", "1", "50.00%", "0", "0.00%"]
    );
    assert_eq!(row("tag"), ["tag", "3", "2", "1"]);
    assert!(
        stdout.contains("spam 2/2 recall 100.00%, ham 1/2 false positives 50.00%"),
        "{stdout}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "no progress bar when piped"
    );

    let message = write_file(root, "m.eml", "From: a@example.com\nSubject: prize\n\nx\n");
    let out = spamgate()
        .args(["test", "--config"])
        .arg(&config)
        .args([
            "--ip",
            "192.0.2.1",
            "--helo",
            "h.example",
            "--from",
            "a@example.com",
            "--rcpt",
            "b@example.net",
        ])
        .arg(&message)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<(&str, f64)> = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["score"].as_f64().unwrap()))
        .collect();
    assert_eq!(names, vec![("PRIZE", 6.0), ("NODATE", 0.5)]);
    assert_eq!(report["verdict"], "tag");
    // Every check that ran says how long it took, at which stage.
    let times = report["times"].as_array().unwrap();
    let data_rules = times
        .iter()
        .find(|t| t["check"] == "rules" && t["stage"] == "data")
        .unwrap_or_else(|| panic!("the rules' time at DATA: {times:?}"));
    let micros = data_rules["micros"].as_f64().unwrap();
    assert!(micros > 0.0 && micros < 60e6, "{micros}");

    // The same message saved from an mbox, `From ` line first: the line is
    // not taken for a header, and the verdict is the same.
    let text =
        "From a@example.com  Tue Aug  6 11:51:02 2002\nFrom: a@example.com\nSubject: prize\n\nx\n";
    let mboxed = write_file(root, "m.mbox", text);
    let test_file = |path: &Path| {
        spamgate()
            .args(["test", "--config"])
            .arg(&config)
            .args(["--ip", "192.0.2.1", "--helo", "h.example"])
            .args(["--from", "a@example.com", "--rcpt", "b@example.net"])
            .arg(path)
            .output()
            .unwrap()
    };
    let out = test_file(&mboxed);
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["rules"], report["rules"], "{again}");
    assert_eq!(again["verdict"], "tag");

    // An mbox of two messages is not one message: a clear error, not a guess.
    let two = write_file(root, "two.mbox", &format!("{text}\n{text}"));
    let out = test_file(&two);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("an mbox of 2 messages"), "{stderr}");
}

/// `replay --scores` writes one line a message, in replay order (spam,
/// then ham): label, the score the verdict came from, verdict, path. The
/// detection benchmark sweeps its threshold over these scores.
#[test]
fn replay_writes_scores() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_, config) = rule_file_config(
        root,
        "r.yaml",
        "rules:\n  - {name: PRIZE, stage: data, condition: {header: {name: Subject, regex: '(?i)prize'}}, action: {score: 6.5}}\n",
    );
    let spam = write_file(root, "spam.eml", "Subject: Your PRIZE\n\nx\n");
    let ham = write_file(root, "ham.eml", "Subject: lunch\n\nx\n");
    let scores = root.join("scores.tsv");
    let out = succeed(
        spamgate()
            .args(["replay", "--config"])
            .arg(&config)
            .arg("--spam")
            .arg(&spam)
            .arg("--ham")
            .arg(&ham)
            .arg("--scores")
            .arg(&scores),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("spam 1/1 recall 100.00%"), "{stdout}");
    let written = std::fs::read_to_string(&scores).unwrap();
    let lines: Vec<Vec<&str>> = written.lines().map(|l| l.split('\t').collect()).collect();
    let spam = spam.display().to_string();
    let ham = ham.display().to_string();
    assert_eq!(
        lines,
        vec![
            vec!["spam", "6.5", "tag", spam.as_str()],
            vec!["ham", "0", "accept", ham.as_str()],
        ],
        "{written}"
    );
}
