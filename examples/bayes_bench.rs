//! Figures for docs/classifier.md (run by bench/bayes.sh, release build):
//!
//! - `bayes_bench corpus DATA_DIR`: trains on spam-1 + easy-ham-1 of the
//!   SpamAssassin public corpus, tests on spam-2 + easy-ham-2 + hard-ham-1
//!   (the classifier alone at the default bands), then times classify on
//!   4 KB messages and learning 10,000 messages.
//! - `bayes_bench million DIR`: builds a database of at least 1,000,000
//!   tokens and saves it to DIR/bayes.db (file size per million tokens).
//! - `bayes_bench load DIR`: loads DIR/bayes.db in a fresh process and
//!   prints the resident memory it added.

use std::path::{Path, PathBuf};
use std::time::Instant;

use spamgate::bayes::{Bayes, Class};
use spamgate::config::bayes::BayesConfig;
use spamgate::offline::replay::{message_files, read_messages};

fn config(dir: &Path, max_tokens: usize) -> BayesConfig {
    BayesConfig {
        enabled: true,
        data_dir: dir.to_path_buf(),
        max_tokens,
        ..BayesConfig::default()
    }
}

/// The raw messages (`*.txt`) of one corpus group.
fn group(data: &Path, name: &str) -> Vec<Vec<u8>> {
    let files = message_files(&data.join(name)).expect("corpus group");
    files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "txt"))
        .flat_map(|f| read_messages(f).expect("message"))
        .map(|m| spamgate::offline::canonical(&m))
        .collect()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn corpus(data: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let bayes = Bayes::open(&config(dir.path(), 1_000_000), None).unwrap();
    let (spam, ham) = (group(data, "spam-1"), group(data, "easy-ham-1"));
    let started = Instant::now();
    for m in &spam {
        bayes.learn(m, Class::Spam).await.unwrap();
    }
    for m in &ham {
        bayes.learn(m, Class::Ham).await.unwrap();
    }
    let trained = started.elapsed();
    let t = bayes.totals().await.unwrap();
    println!(
        "trained: {} spam, {} ham, {} tokens in {:.2}s",
        t.spam,
        t.ham,
        t.tokens,
        trained.as_secs_f64()
    );
    for (name, class) in [
        ("spam-2", Class::Spam),
        ("easy-ham-2", Class::Ham),
        ("hard-ham-1", Class::Ham),
    ] {
        distribution(&bayes, name, class, &group(data, name)).await;
    }
    classify_speed(&bayes, &group(data, "easy-ham-2")).await;
    learn_speed(dir.path(), &[spam, ham].concat()).await;
}

/// How many messages of one test group land in each band.
async fn distribution(bayes: &Bayes, name: &str, class: Class, messages: &[Vec<u8>]) {
    let thresholds = [0.99, 0.95, 0.80];
    let mut above = [0usize; 3];
    let (mut below05, mut below01, mut abstain) = (0, 0, 0);
    for m in messages {
        let Some(p) = bayes.classify(m).await.unwrap().probability else {
            abstain += 1;
            continue;
        };
        for (i, t) in thresholds.iter().enumerate() {
            above[i] += usize::from(p >= *t);
        }
        below05 += usize::from(p <= 0.05);
        below01 += usize::from(p <= 0.01);
    }
    let n = messages.len().max(1) as f64;
    let pct = |k: usize| format!("{:.2}%", 100.0 * k as f64 / n);
    println!(
        "{name} ({}, {} messages): >=0.99 {}  >=0.95 {}  >=0.80 {}  <=0.05 {}  <=0.01 {}  abstain {abstain}",
        class.as_str(),
        messages.len(),
        pct(above[0]),
        pct(above[1]),
        pct(above[2]),
        pct(below05),
        pct(below01),
    );
}

/// Messages cut to 4 KB (at a line end), classified in memory.
async fn classify_speed(bayes: &Bayes, messages: &[Vec<u8>]) {
    let cut: Vec<Vec<u8>> = messages
        .iter()
        .filter(|m| m.len() >= 4096)
        .take(500)
        .map(|m| {
            let end = m[..4096].iter().rposition(|&b| b == b'\n').unwrap_or(4095) + 1;
            m[..end].to_vec()
        })
        .collect();
    let rounds = 10;
    let started = Instant::now();
    for _ in 0..rounds {
        for m in &cut {
            std::hint::black_box(bayes.classify(m).await.unwrap());
        }
    }
    let classify = started.elapsed().as_secs_f64() * 1e6 / (rounds * cut.len()) as f64;
    println!(
        "classify: {classify:.1} µs per 4 KB message ({} messages × {rounds})",
        cut.len()
    );
    let started = Instant::now();
    let mut tokens = 0;
    for _ in 0..rounds {
        for m in &cut {
            tokens += std::hint::black_box(spamgate::bayes::tokenize::tokenize(m)).len();
        }
    }
    let n = (rounds * cut.len()) as f64;
    let per = started.elapsed().as_secs_f64() * 1e6 / n;
    println!(
        "  of which parsing and tokenizing: {per:.1} µs ({:.0} distinct tokens per message)",
        tokens as f64 / n
    );
    let started = Instant::now();
    for _ in 0..rounds {
        for m in &cut {
            std::hint::black_box(mail_parser::MessageParser::new().parse(m));
        }
    }
    let parse = started.elapsed().as_secs_f64() * 1e6 / n;
    println!(
        "  of which the MIME parse: {parse:.1} µs; in the proxy the rules, the classifier and \
         the bulk check share it, so the classifier's own cost there is {:.1} µs",
        classify - parse
    );
}

/// 10,000 distinct messages: the training set repeated, each copy made
/// distinct by a line at the end of its body.
async fn learn_speed(dir: &Path, messages: &[Vec<u8>]) {
    let db = dir.join("speed");
    let bayes = Bayes::open(&config(&db, 1_000_000), None).unwrap();
    let started = Instant::now();
    for i in 0..10_000 {
        let mut m = messages[i % messages.len()].clone();
        m.extend_from_slice(format!("\r\ncopy {i}\r\n").as_bytes());
        let class = if i.is_multiple_of(2) {
            Class::Spam
        } else {
            Class::Ham
        };
        bayes.learn(&m, class).await.unwrap();
    }
    let learned = started.elapsed();
    bayes.save().unwrap();
    println!(
        "learn: 10000 messages in {:.2}s ({:.0} µs each), saved in {:.2}s total",
        learned.as_secs_f64(),
        learned.as_secs_f64() * 1e6 / 10_000.0,
        started.elapsed().as_secs_f64()
    );
}

/// Random words until the database holds a million tokens.
async fn million(dir: &Path) {
    let bayes = Bayes::open(&config(dir, 2_000_000), None).unwrap();
    let mut i = 0u64;
    while bayes.totals().await.unwrap().tokens < 1_000_000 {
        let words: String = (0..200)
            .map(|_| format!("w{:x} ", fastrand::u64(..1 << 40)))
            .collect();
        let m = format!("Subject: m{i}\r\n\r\n{words}\r\n");
        let class = if i.is_multiple_of(2) {
            Class::Spam
        } else {
            Class::Ham
        };
        bayes.learn(m.as_bytes(), class).await.unwrap();
        i += 1;
    }
    let started = Instant::now();
    bayes.save().unwrap();
    let tokens = bayes.totals().await.unwrap().tokens;
    let size = std::fs::metadata(dir.join(spamgate::config::bayes::FILE_NAME))
        .unwrap()
        .len();
    println!(
        "million: {tokens} tokens, {i} messages, file {:.1} MB ({:.1} MB per million tokens), saved in {:.2}s",
        size as f64 / 1e6,
        size as f64 / 1e6 / (tokens as f64 / 1e6),
        started.elapsed().as_secs_f64()
    );
}

async fn load(dir: &Path) {
    let before = rss_kib();
    let started = Instant::now();
    let bayes = Bayes::open(&config(dir, 2_000_000), None).unwrap();
    let took = started.elapsed();
    let after = rss_kib();
    let tokens = bayes.totals().await.unwrap().tokens;
    let mib = (after - before) as f64 / 1024.0;
    println!(
        "load: {tokens} tokens in {:.2}s, RSS +{mib:.1} MiB ({:.1} MiB per million tokens)",
        took.as_secs_f64(),
        mib / (tokens as f64 / 1e6)
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = PathBuf::from(
        args.get(2)
            .map_or("/var/tmp/corpus/package/data", String::as_str),
    );
    match args.get(1).map(String::as_str) {
        Some("million") => million(&path).await,
        Some("load") => load(&path).await,
        _ => corpus(&path).await,
    }
}
