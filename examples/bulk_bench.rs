//! Bulk detection figures (run through `bench/bulk.sh`, release build):
//! 1. robustness on the SpamAssassin corpus: how many spam-2 messages
//!    share a band key with another (campaign clusters) against easy-ham-2
//!    (false clusters, or real ones: list traffic), with an example each;
//! 2. CPU µs per ~4 KB message for fingerprint + count in memory;
//! 3. memory per 100,000 band-key entries.
//!
//! `CORPUS` names the corpus's `data` directory
//! (default /var/tmp/corpus/package/data).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use spamgate::bulk::fingerprint::{message_text, of_message, Fingerprint};
use spamgate::bulk::memory::MemoryCounts;

const HOUR: u64 = 3_600_000;

fn main() {
    let corpus = std::env::var("CORPUS").unwrap_or("/var/tmp/corpus/package/data".into());
    let corpus = Path::new(&corpus);
    for (group, min_words) in [("spam-2", 20), ("easy-ham-2", 20)] {
        clusters(&corpus.join(group), min_words);
    }
    cpu(&corpus.join("spam-2"));
    memory();
}

fn messages(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let raw = std::fs::read(&p).unwrap();
            (p, raw)
        })
        .collect()
}

/// Messages grouped by shared band keys (union-find over the band index).
fn clusters(dir: &Path, min_words: usize) {
    let all = messages(dir);
    let prints: Vec<Option<Fingerprint>> = all
        .iter()
        .map(|(_, raw)| of_message(raw, min_words))
        .collect();
    let mut parent: Vec<usize> = (0..all.len()).collect();
    let mut by_key: HashMap<u64, usize> = HashMap::new();
    for (i, print) in prints.iter().enumerate() {
        for key in print.iter().flat_map(|p| p.bands) {
            match by_key.get(&key) {
                Some(&j) => union(&mut parent, i, j),
                None => drop(by_key.insert(key, i)),
            }
        }
    }
    let mut groups: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..all.len() {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let mut multi: Vec<&Vec<usize>> = groups.values().filter(|g| g.len() > 1).collect();
    multi.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let clustered: usize = multi.iter().map(|g| g.len()).sum();
    let printed = prints.iter().filter(|p| p.is_some()).count();
    println!(
        "{}: {} messages, {printed} fingerprinted, {clustered} ({:.1}%) share a band key with another, in {} clusters (largest {})",
        dir.display(),
        all.len(),
        100.0 * clustered as f64 / all.len().max(1) as f64,
        multi.len(),
        multi.first().map_or(0, |g| g.len())
    );
    for group in multi.iter().take(3) {
        let subjects: Vec<String> = group.iter().take(3).map(|&i| subject(&all[i].1)).collect();
        println!("  e.g. {} messages: {}", group.len(), subjects.join(" | "));
    }
}

fn subject(raw: &[u8]) -> String {
    let text = message_text(raw);
    text.lines().next().unwrap_or("").chars().take(50).collect()
}

fn find(parent: &mut [usize], i: usize) -> usize {
    let mut root = i;
    while parent[root] != root {
        root = parent[root];
    }
    parent[i] = root;
    root
}

fn union(parent: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    parent[ra] = rb;
}

/// Fingerprint + count of real spam of 3–5 KB, on one thread.
fn cpu(dir: &Path) {
    let sample: Vec<Vec<u8>> = messages(dir)
        .into_iter()
        .map(|(_, raw)| raw)
        .filter(|raw| (3000..5000).contains(&raw.len()))
        .collect();
    let counts = MemoryCounts::new(HOUR, 1_000_000);
    let rounds = 20;
    let before = thread_cpu_ns();
    let mut printed = 0usize;
    for round in 0..rounds {
        for (i, raw) in sample.iter().enumerate() {
            if let Some(print) = of_message(raw, 20) {
                counts.observe(&print.bands, 1, (round * 7 + i) as u32, 0);
                printed += 1;
            }
        }
    }
    let n = (rounds * sample.len()) as f64;
    let us = (thread_cpu_ns() - before) as f64 / 1000.0 / n;
    let bytes: usize = sample.iter().map(Vec::len).sum::<usize>() / sample.len().max(1);
    println!(
        "cpu: {us:.1} µs per message (fingerprint + count in memory), {} spam-2 messages of 3-5 KB (mean {bytes} bytes) x {rounds}, {printed} fingerprinted",
        sample.len()
    );
}

/// RSS growth for 100,000 new band keys, each seen from one and from eight networks.
fn memory() {
    for clients in [1u32, 8] {
        let counts = MemoryCounts::new(HOUR, 1_000_000);
        let before = rss_kib();
        for key in 0..100_000u64 {
            let key = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for client in 0..clients {
                counts.observe(&[key], 1, client + 1, 0);
            }
        }
        let grown = rss_kib().saturating_sub(before);
        println!(
            "memory: {} entries with {clients} client network(s) each: +{:.1} MiB RSS ({} bytes per entry)",
            counts.len(),
            grown as f64 / 1024.0,
            grown * 1024 / counts.len() as u64
        );
        drop(counts);
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .unwrap_or(0)
}
