//! The statistical classifier with its real parts: the `spamgate` binary
//! learning real mail (a sample of the SpamAssassin public corpus in
//! tests/data/corpus) into a real file, a real `redis-server` shared by two
//! instances, SMTP sessions through the proxy, and SIGKILL during saves.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::cli::{json, spamgate, succeed, write_file};
use common::client::Client;
use common::redis::RedisServer;
use common::upstream::{Behaviour, Recorder};
use common::{test_config, Spamgate};
use spamgate::bayes::{Bayes, Class};
use spamgate::config::Config;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus");
/// Messages of each class held out of training, to classify.
const HELD_OUT: usize = 5;

/// The sample's messages of one class, sorted: (training, held out).
fn sample(class: &str) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(CORPUS).join(class))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let held = files.split_off(files.len() - HELD_OUT);
    (files, held)
}

/// A corpus message without the mbox `From ` line the corpus files start
/// with: the message as it came over SMTP.
fn raw(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    match bytes.starts_with(b"From ") {
        true => bytes[bytes.iter().position(|&b| b == b'\n').unwrap() + 1..].to_vec(),
        false => bytes,
    }
}

/// Copies messages into a fresh directory (as `raw` gives them).
fn dir_of(root: &Path, name: &str, files: &[PathBuf]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        std::fs::write(dir.join(f.file_name().unwrap()), raw(f)).unwrap();
    }
    dir
}

/// The files of a directory made by [`dir_of`], sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A configuration with the file backend in `dir/db` and low minimums.
fn file_config(dir: &Path, extra: &str) -> PathBuf {
    let yaml = format!(
        "{}\n{}\nbayes:\n  enabled: true\n  data_dir: '{}'\n  min_spam: 10\n  min_ham: 10\n{extra}",
        common::NO_DNS,
        common::NO_DNS_AUTH,
        dir.join("db").display()
    );
    write_file(dir, "spamgate.yaml", &yaml)
}

fn learn(config: &Path, args: &[&str]) -> String {
    let out = succeed(
        spamgate()
            .arg("learn")
            .arg("--config")
            .arg(config)
            .args(args),
    );
    String::from_utf8(out.stdout).unwrap()
}

fn probability(config: &Path, message: &Path) -> f64 {
    let report = json(
        spamgate()
            .args([
                "test",
                "--ip",
                "192.0.2.1",
                "--helo",
                "x.example",
                "--from",
                "a@x.example",
            ])
            .args(["--rcpt", "b@y.example", "--config"])
            .arg(config)
            .arg(message),
    );
    let bayes = &report["bayes"];
    assert!(
        bayes["tokens"].as_array().is_some_and(|t| !t.is_empty()),
        "{report}"
    );
    bayes["probability"]
        .as_f64()
        .unwrap_or_else(|| panic!("abstained: {report}"))
}

async fn totals(config: &Path) -> spamgate::bayes::Totals {
    let config = Config::load(config).unwrap();
    let bayes = Bayes::open(&config.bayes, None).unwrap();
    bayes.totals().await.unwrap()
}

#[tokio::test]
async fn learn_classify_forget_relearn_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), "");
    let ((spam, spam_test), (ham, ham_test)) = (sample("spam"), sample("ham"));
    let spam_dir = dir_of(dir.path(), "spam", &spam);
    let ham_dir = dir_of(dir.path(), "ham", &ham);
    let (s, h) = (spam_dir.to_str().unwrap(), ham_dir.to_str().unwrap());
    let spam_test = files_in(&dir_of(dir.path(), "spam-test", &spam_test));
    let ham_test = files_in(&dir_of(dir.path(), "ham-test", &ham_test));
    let spam = files_in(&spam_dir);

    let first = learn(&config, &["--spam", s, "--ham", h]);
    assert!(first.contains("learned 40, already known 0"), "{first}");
    let again = learn(&config, &["--spam", s, "--ham", h]);
    assert!(
        again.contains("learned 0, already known 40"),
        "twice counts once: {again}"
    );
    let t = totals(&config).await;
    assert_eq!((t.spam, t.ham), (20, 20));
    assert!(t.tokens > 1000, "{t:?}");

    // Each `spamgate test` is a new process: what was learned was saved.
    // 20 messages a class is little: spam lands in the "spam" outcome
    // (>= 0.8), no ham does, most ham is on the ham side, and every spam
    // is above every ham.
    let spam_p: Vec<f64> = spam_test.iter().map(|m| probability(&config, m)).collect();
    let ham_p: Vec<f64> = ham_test.iter().map(|m| probability(&config, m)).collect();
    assert!(
        spam_p.iter().all(|p| *p >= 0.8),
        "held-out spam: {spam_p:?}"
    );
    assert!(ham_p.iter().all(|p| *p < 0.8), "held-out ham: {ham_p:?}");
    let ham_side = ham_p.iter().filter(|p| **p < 0.5).count();
    assert!(ham_side >= ham_p.len() - 1, "held-out ham: {ham_p:?}");
    let lowest_spam = spam_p.iter().copied().fold(1.0, f64::min);
    assert!(
        ham_p.iter().all(|p| *p < lowest_spam),
        "{spam_p:?} {ham_p:?}"
    );

    // `spamgate replay` (no rules, no --network) runs the classifier: the
    // detection benchmark's learn-then-replay interface.
    let (st, ht) = (
        spam_test[0].parent().unwrap(),
        ham_test[0].parent().unwrap(),
    );
    let out = succeed(
        spamgate()
            .args(["replay", "--config"])
            .arg(&config)
            .arg("--spam")
            .arg(st)
            .arg("--ham")
            .arg(ht),
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("messages: 10 (spam 5, ham 5"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_string)
    };
    let top = row("BAYES_99").unwrap_or_default();
    assert!(
        top.split_whitespace()
            .nth(1)
            .is_some_and(|hits| hits != "0"),
        "{table}"
    );
    assert!(row("BAYES_01").or(row("BAYES_05")).is_some(), "{table}");

    let one = spam[0].to_str().unwrap();
    let forgot = learn(&config, &["--forget", "--spam", one]);
    assert!(forgot.contains("forgotten 1"), "{forgot}");
    let twice = learn(&config, &["--forget", "--spam", one]);
    assert!(
        twice.contains("forgotten 0, not learned before 1"),
        "{twice}"
    );
    assert_eq!(totals(&config).await.spam, 19);

    let moved = learn(&config, &["--ham", spam[1].to_str().unwrap()]);
    assert!(moved.contains("moved 1"), "{moved}");
    let t = totals(&config).await;
    assert_eq!((t.spam, t.ham), (18, 21));
}

#[test]
fn learns_maildirs_and_mbox_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), "");
    let (spam, _) = sample("spam");
    let maildir = dir.path().join("Maildir");
    for (sub, files) in [
        ("cur", &spam[..2]),
        ("new", &spam[2..3]),
        ("tmp", &spam[3..4]),
    ] {
        let d = maildir.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::write(d.join(f.file_name().unwrap()), raw(f)).unwrap();
        }
    }
    let mut mbox = Vec::new();
    for f in &spam[4..7] {
        mbox.extend_from_slice(b"From sender@example.com Thu Aug 22 12:00:00 2002\n");
        mbox.extend_from_slice(&raw(f));
        mbox.extend_from_slice(b"\n");
    }
    let mbox_path = dir.path().join("spam.mbox");
    std::fs::write(&mbox_path, mbox).unwrap();
    let missing = dir.path().join("missing");
    let out = learn(
        &config,
        &[
            "--spam",
            maildir.to_str().unwrap(),
            mbox_path.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    // tmp/ is not delivered mail; the missing path is reported and skipped.
    assert!(
        out.contains("learned 6,") && out.contains("skipped unreadable 1"),
        "{out}"
    );
}

#[test]
fn damaged_database_stops_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), "");
    let (spam, _) = sample("spam");
    learn(&config, &["--spam", spam[0].to_str().unwrap()]);
    let db = dir.path().join("db").join("bayes.db");
    let good = std::fs::read(&db).unwrap();
    let cases = [
        (good[..good.len() - 7].to_vec(), "corrupt bayes database"),
        (b"not ours at all".to_vec(), "not a spamgate bayes database"),
    ];
    for (bytes, want) in cases {
        std::fs::write(&db, &bytes).unwrap();
        let out = spamgate()
            .arg("learn")
            .arg("--config")
            .arg(&config)
            .args(["--spam", spam[1].to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(want) && stderr.contains(db.to_str().unwrap()),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read(&db).unwrap(),
            bytes,
            "never replaced silently"
        );
        let port = common::cli::free_port();
        let run_config = write_file(
            dir.path(),
            "run.yaml",
            &format!(
                "listen: ['127.0.0.1:{port}']\n{}",
                std::fs::read_to_string(&config).unwrap()
            ),
        );
        let run = spamgate()
            .args(["run", "--config"])
            .arg(&run_config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            !run.status.success() && stderr.contains(db.to_str().unwrap()),
            "{stderr}"
        );
    }
}

/// Many distinct synthetic messages in one mbox: saves (every 2000) grow
/// large enough to be hit by a SIGKILL.
fn big_mbox(path: &Path, n: usize) {
    let mut out = String::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..n {
        out.push_str(&format!("From x@example.com Thu Aug 22 12:00:00 2002\nSubject: m{i}\nMessage-ID: <{i}@example.com>\n\n"));
        for _ in 0..120 {
            out.push_str(&format!("w{:x} ", rng.u64(..1 << 36)));
        }
        out.push_str("\n\n");
    }
    std::fs::write(path, out).unwrap();
}

/// When to SIGKILL a `spamgate learn`.
#[derive(Debug, Clone, Copy)]
enum Kill {
    After(Duration),
    /// In the middle of the nth save of the run: as soon as its temporary
    /// file appears.
    DuringSave(usize),
}

/// Starts `spamgate learn` on `mbox` and kills it; true if the kill hit a
/// save (false: the run ended first).
fn learn_and_kill(config: &Path, mbox: &Path, db: &Path, kill: Kill) -> bool {
    let mut child = spamgate()
        .arg("learn")
        .arg("--config")
        .arg(config)
        .arg("--spam")
        .arg(mbox)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // This child's temporary file (an earlier kill may have left another).
    let temp = format!(".tmp-{}", child.id());
    let saving = || {
        std::fs::read_dir(db).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(&temp))
        })
    };
    let hit = match kill {
        Kill::After(delay) => {
            std::thread::sleep(delay);
            false
        }
        Kill::DuringSave(n) => {
            let (mut saves, mut was_saving) = (0, false);
            loop {
                let now = saving();
                saves += usize::from(now && !was_saving);
                was_saving = now;
                if saves == n || child.try_wait().unwrap().is_some() {
                    break saves == n;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    hit
}

#[tokio::test]
async fn sigkill_during_saves_leaves_a_loadable_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), "  max_tokens: 5000000\n");
    let (mbox, db) = (dir.path().join("big.mbox"), dir.path().join("db"));
    // Saves at 2000 and 4000 messages, and at the end.
    big_mbox(&mbox, 4200);
    let loaded = Config::load(&config).unwrap();
    let kills = [
        Kill::After(Duration::from_millis(300)),
        Kill::DuringSave(1),
        Kill::DuringSave(2),
    ];
    let (mut seen, mut during_save) = (Vec::new(), 0);
    for kill in kills {
        during_save += usize::from(learn_and_kill(&config, &mbox, &db, kill));
        // Whatever moment the kill hit: the old database or the new one.
        let bayes = Bayes::open(&loaded.bayes, None)
            .unwrap_or_else(|e| panic!("after a kill {kill:?}: {e}"));
        seen.push(bayes.totals().await.unwrap().spam);
    }
    eprintln!("spam in the database after each kill: {seen:?}; {during_save} kills during a save");
    assert_eq!(during_save, 2, "both save kills hit a save: {seen:?}");
    assert!(
        seen.iter().all(|n| n % 2000 == 0),
        "an old or a new database, nothing between: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "learning only grows: {seen:?}"
    );
    let done = learn(&config, &["--spam", mbox.to_str().unwrap()]);
    assert!(done.contains("skipped unreadable 0"), "{done}");
    assert_eq!(totals(&config).await.spam, 4200, "{seen:?}");
}

#[tokio::test]
async fn hostile_messages_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = spamgate::config::bayes::BayesConfig {
        enabled: true,
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let bayes = Bayes::open(&config, None).unwrap();
    let mut huge = b"Subject: huge\r\n\r\n".to_vec();
    while huge.len() < 20 << 20 {
        huge.extend_from_slice(format!("word{} ", huge.len()).as_bytes());
    }
    let binary: Vec<u8> = (0..1 << 20).map(|_| fastrand::u8(..)).collect();
    let mut nested = String::from("Subject: deep\r\n");
    for i in 0..2000 {
        nested.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\ninnermost text here\r\n");
    let long_line = format!(
        "Subject: {}\r\n\r\n{}\r\n",
        "x".repeat(1 << 20),
        "y".repeat(4 << 20)
    );
    let limit = spamgate::bayes::tokenize::MAX_WORDS * 5;
    for message in [huge, binary, nested.into_bytes(), long_line.into_bytes()] {
        let c = bayes.classify(&message).await.unwrap();
        assert!(c.total <= limit, "{} tokens", c.total);
        bayes.learn(&message, Class::Spam).await.unwrap();
    }
    assert!(bayes.totals().await.unwrap().tokens <= limit as u64 * 4);
}

fn redis_yaml(redis: &RedisServer, on_failure: &str) -> String {
    format!(
        "state:\n  backend: redis\n  redis: {{url: '{}', on_failure: {on_failure}, command_timeout: 300ms, connect_timeout: 300ms}}\nbayes: {{enabled: true, backend: redis, min_spam: 10, min_ham: 10}}\nscoring: {{tag_score: 1, reject_score: 50}}\n",
        redis.url()
    )
}

/// A stored message as a client sends it: CRLF line ends.
fn text(path: &Path) -> String {
    let crlf = spamgate::offline::canonical(&raw(path));
    String::from_utf8_lossy(&crlf).into_owned()
}

#[tokio::test]
async fn instances_share_learning_through_redis_and_follow_its_outage_policy() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let upstream = Recorder::start(Behaviour::default()).await;
    let ((spam, spam_test), (ham, _)) = (sample("spam"), sample("ham"));
    // One process learns...
    let config = write_file(
        dir.path(),
        "learn.yaml",
        &format!("{}\n{}", common::NO_DNS, redis_yaml(&redis, "tempfail")),
    );
    let s = dir_of(dir.path(), "spam", &spam);
    let h = dir_of(dir.path(), "ham", &ham);
    let out = learn(
        &config,
        &["--spam", s.to_str().unwrap(), "--ham", h.to_str().unwrap()],
    );
    assert!(out.contains("learned 40"), "{out}");
    let again = learn(&config, &["--spam", s.to_str().unwrap()]);
    assert!(again.contains("already known 20"), "{again}");
    // ...and two running proxies use it.
    let tempfail =
        Spamgate::start(&test_config(upstream.addr, &redis_yaml(&redis, "tempfail"))).await;
    let open = Spamgate::start(&test_config(
        upstream.addr,
        &redis_yaml(&redis, "fail_open"),
    ))
    .await;
    for (i, proxy) in [&tempfail, &open].into_iter().enumerate() {
        let mut client = Client::ready(proxy.addr).await;
        let reply = client
            .send_mail("a@x.example", &["b@y.example"], &text(&spam_test[i]))
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        let got = upstream.wait_accepted(i + 1).await;
        let relayed = String::from_utf8_lossy(&got[i].message);
        assert!(
            relayed.contains("X-Spam-Status: Yes") && relayed.contains("BAYES_9"),
            "{relayed}"
        );
        assert_eq!(
            proxy
                .metric("spamgate_bayes_classifications_total{outcome=\"spam\"}")
                .await,
            1.0
        );
    }
    redis.kill();
    let mut client = Client::ready(tempfail.addr).await;
    let reply = client
        .send_mail("a@x.example", &["b@y.example"], &text(&spam_test[2]))
        .await;
    assert_eq!(
        (reply.code, reply.status()),
        (451, Some("4.3.0")),
        "{reply:?}"
    );
    let mut client = Client::ready(open.addr).await;
    let reply = client
        .send_mail("a@x.example", &["b@y.example"], &text(&spam_test[3]))
        .await;
    assert_eq!(reply.code, 250, "fail_open delivers: {reply:?}");
    assert_eq!(upstream.wait_accepted(3).await.len(), 3);
    assert!(
        open.metric("spamgate_bayes_classifications_total{outcome=\"error\"}")
            .await
            >= 1.0
    );
    tempfail.stop().await;
    open.stop().await;
}

#[tokio::test]
async fn autolearn_learns_certain_spam_and_saves_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let rules = write_file(
        dir.path(),
        "rules.yaml",
        "rules:\n  - {name: certain, stage: data, condition: {header: {name: Subject, regex: 'certain spam'}}, action: {score: 30}}\n",
    );
    let data = dir.path().join("db");
    let extra = format!(
        "rules: {{files: ['{}']}}\nscoring: {{tag_score: 5, reject_score: 20}}\nbayes: {{enabled: true, data_dir: '{}', autolearn: {{enabled: true, spam_score: 25}}}}\n",
        rules.display(),
        data.display()
    );
    let upstream = Recorder::start(Behaviour::default()).await;
    let proxy = Spamgate::start(&test_config(upstream.addr, &extra)).await;
    let mut client = Client::ready(proxy.addr).await;
    let certain = "From: a@x.example\r\nSubject: certain spam\r\n\r\nbuy now\r\n";
    let reply = client
        .send_mail("a@x.example", &["b@y.example"], certain)
        .await;
    assert_eq!(reply.code, 550, "{reply:?}");
    let reply = client
        .send_mail(
            "a@x.example",
            &["b@y.example"],
            "From: a@x.example\r\nSubject: hello\r\n\r\nnot certain\r\n",
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while proxy
        .metric("spamgate_bayes_autolearn_total{class=\"spam\"}")
        .await
        < 1.0
    {
        assert!(std::time::Instant::now() < deadline, "never autolearned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.stop().await;
    let config = spamgate::config::bayes::BayesConfig {
        data_dir: data,
        ..Default::default()
    };
    let t = Bayes::open(&config, None).unwrap().totals().await.unwrap();
    assert_eq!(
        (t.spam, t.ham),
        (1, 0),
        "only the certain spam, saved at shutdown"
    );
}
