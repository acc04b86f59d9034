//! Rule engine cost: load time, memory and messages per second on one
//! core for rule sets of 10, 1,000 and 10,000 rules on 100 KB messages.
//! Run through `bench/rules.sh` (release build). The rules are generated
//! to look like real ones (see [`rule`]): mostly case-insensitive word
//! patterns over the body and the Subject, some over any header or the
//! raw message, a few with no literal at all (which the prefilter cannot
//! skip).
//!
//! `BENCH_RULES_FILE=rules.yaml` measures a rule file of your own instead
//! (the count printed is then only a label), and `BENCH_MESSAGE_FILE=msg`
//! a message of your own: the cost of your rules on your mail.

use std::io::Write;
use std::time::{Duration, Instant};

use spamgate::config::rules::RulesConfig;
use spamgate::judgement::{Facts, Stage};
use spamgate::rules::{Input, RuleSet};

const MESSAGE_SIZE: usize = 100 * 1024;

/// A deterministic pseudo-random word list.
fn word(n: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "pre", "dal", "gor", "fin", "bel", "tus",
        "cor", "mar",
    ];
    let mut x = n.wrapping_mul(2_654_435_761) ^ 0x5bd1e995;
    let mut out = String::new();
    for _ in 0..3 + n % 3 {
        out.push_str(SYLLABLES[x % 16]);
        x /= 16;
    }
    out
}

/// Rule `i`: the shapes of SpamAssassin-style rules. Word pairs with any
/// space between them, alternatives, bounded gaps, Subject and header
/// patterns, raw-message patterns, and 1% (20 distinct regexes) with no
/// literal at all, which run on every message. `BENCH_MIX=pairs` gives
/// the simpler set of session 1 (word pairs instead of alternatives and
/// gaps, one shared literal-less regex), for comparison.
fn rule(i: usize, pairs_only: bool) -> String {
    let (a, b, c) = (word(i), word(i + 7919), word(i + 15_838));
    let condition = match i % 10 {
        4 | 5 if pairs_only => format!(r"{{body: '(?i)\b{a}\s+{b}\b'}}"),
        9 if pairs_only && i % 100 == 9 => r"{raw: '[0-9]{12,}'}".to_string(),
        0..=3 => format!(r"{{body: '(?i)\b{a}\s+{b}\b'}}"),
        4 => format!(r"{{body: '(?i)\b(?:{a}|{b}|{c})\b'}}"),
        5 => format!(r"{{body: '(?i){a}.{{0,30}}{b}'}}"),
        6 | 7 => format!(r"{{header: {{name: Subject, regex: '(?i){a}.*{b}'}}}}"),
        8 => format!(r"{{any_header: '^X-{a}: '}}"),
        _ if i % 100 == 9 => format!(r"{{raw: '[0-9]{{{},}}'}}", 12 + i / 100 % 20),
        _ => format!(r"{{raw: '{a}[0-9]+{b}'}}"),
    };
    format!("  - {{name: r{i}, stage: data, condition: {condition}, action: {{score: 0.5}}}}\n")
}

/// Ordinary words for the filler text: real mail is mostly words no rule
/// is about.
const FILLER: [&str; 40] = [
    "the", "meeting", "report", "please", "find", "attached", "regards", "thanks", "project",
    "schedule", "we", "will", "review", "next", "week", "budget", "team", "update", "and", "for",
    "with", "this", "that", "customer", "order", "delivery", "invoice", "tomorrow", "question",
    "about", "Grüße", "you", "can", "call", "me", "at", "office", "from", "our", "new",
];

/// 100 KB of filler with a rule's phrase every 500 words, so the
/// prefilter finds candidates and some rules match.
fn message() -> Vec<u8> {
    let mut body = String::new();
    let mut n: usize = 0;
    while body.len() < MESSAGE_SIZE {
        if n % 500 == 499 {
            let i = (n * 37) % 10_000 / 10 * 10;
            body.push_str(&format!("{} {} ", word(i), word(i + 7919)));
        }
        body.push_str(FILLER[(n * 7 + n / 40) % FILLER.len()]);
        body.push(if n % 12 == 11 { '\n' } else { ' ' });
        n += 1;
    }
    let body = body.replace('\n', "\r\n");
    format!(
        "From: Sender <s@example.com>\r\nTo: r@example.net\r\nSubject: {} offer {}\r\nDate: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        word(6), word(6 + 7919)
    )
    .into_bytes()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A file of `count` generated rules in `dir`.
fn generated(dir: &std::path::Path, count: usize) -> std::path::PathBuf {
    let path = dir.join("rules.yaml");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"rules:\n").unwrap();
    let pairs_only = std::env::var("BENCH_MIX").is_ok_and(|m| m == "pairs");
    for i in 0..count {
        file.write_all(rule(i, pairs_only).as_bytes()).unwrap();
    }
    path
}

fn bench(count: usize, message: &[u8], run: Run) {
    let dir = std::env::temp_dir().join(format!(
        "spamgate-rules-bench-{}-{count}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = match std::env::var_os("BENCH_RULES_FILE") {
        Some(file) => file.into(),
        None => generated(&dir, count),
    };
    let config = RulesConfig {
        files: vec![path],
        ..RulesConfig::default()
    };
    let before = rss_kib();
    let started = Instant::now();
    let set = RuleSet::load(&config).unwrap_or_else(|e| panic!("{e}"));
    let load = started.elapsed();
    let memory = rss_kib().saturating_sub(before);
    let facts = Facts::default();
    let ip = "192.0.2.1".parse().unwrap();
    let (mut messages, mut hits) = (0u64, 0usize);
    let cpu_before = thread_cpu_ns();
    let started = Instant::now();
    while !run.done(messages, started.elapsed()) {
        let input = Input::new(ip).with_message(message);
        hits = set.evaluate(Stage::Data, &input, &facts, 0.0).len();
        messages += 1;
    }
    let rate = messages as f64 / started.elapsed().as_secs_f64();
    let cpu_us = (thread_cpu_ns() - cpu_before) as f64 / 1000.0 / messages as f64;
    let used = rss_kib().saturating_sub(before);
    println!(
        "{count:>6} rules: load {:>7.1} ms, memory +{:>6.1} MiB loaded, +{:>6.1} MiB in use, {rate:>7.0} msgs/s wall, {cpu_us:>6.0} µs CPU per message = {:>5.0} msgs/s per core ({hits} hits per message)",
        load.as_secs_f64() * 1000.0,
        memory as f64 / 1024.0,
        used as f64 / 1024.0,
        1e6 / cpu_us,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CPU time this thread has used: on a machine shared with other
/// work, CPU time per message is steadier than wall-clock throughput.
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .unwrap_or(0)
}

/// How long each measurement runs: a time, or a fixed number of messages
/// (for instruction counts with `perf stat`).
#[derive(Clone, Copy)]
enum Run {
    Seconds(f64),
    Messages(u64),
}

impl Run {
    fn from_env() -> Run {
        let var = |name| std::env::var(name).ok().and_then(|s| s.parse::<f64>().ok());
        match (var("BENCH_MESSAGES"), var("BENCH_SECONDS")) {
            (Some(n), _) => Run::Messages(n as u64),
            (None, seconds) => Run::Seconds(seconds.unwrap_or(3.0)),
        }
    }

    fn done(self, messages: u64, elapsed: Duration) -> bool {
        match self {
            Run::Seconds(s) => elapsed >= Duration::from_secs_f64(s),
            Run::Messages(n) => messages >= n,
        }
    }
}

fn main() {
    let run = Run::from_env();
    let message = match std::env::var_os("BENCH_MESSAGE_FILE") {
        Some(path) => std::fs::read(path).expect("BENCH_MESSAGE_FILE"),
        None => message(),
    };
    println!("message: {} bytes", message.len());
    // BENCH_RULES=10000 measures one size only (for profiling).
    let counts: Vec<usize> = match std::env::var("BENCH_RULES") {
        Ok(list) => list
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect(),
        Err(_) => vec![10, 1_000, 10_000],
    };
    for count in counts {
        bench(count, &message, run);
    }
}
