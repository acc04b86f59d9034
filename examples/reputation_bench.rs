//! Reputation bench: `bench/reputation.sh` runs it in release mode.
//!
//! 1. The DNSBL stage with a warm cache: the connect-stage pipeline (four
//!    zones) judging clients whose answers are all cached; cost per connection.
//! 2. A rate-limit check in memory with 1 million keys: time to insert the
//!    keys, time per check of a known key, resident memory they take.
//! 3. With `--redis URL`: the same check through Redis's Lua GCRA.
//!
//! cargo run --release --example reputation_bench -- [--keys 1000000] [--redis redis://127.0.0.1:6379/]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use spamgate::checks::{reputation, CheckContext, ClientInfo, Pipeline};
use spamgate::config::Config;
use spamgate::dns::Dns;
use spamgate::judgement::{Facts, Stage};
use spamgate::metrics::Metrics;
use spamgate::state::{KeyedLimiter, SharedState};

const ZONES: [&str; 4] = ["zen.bl.test", "b.bl.test", "wl.test", "c.bl.test"];
const CLIENTS: u32 = 1000;

fn config(extra: &str) -> Config {
    let zones: Vec<String> = ZONES
        .iter()
        .map(|z| format!("{{zone: {z}, weight: 1}}"))
        .collect();
    let yaml = format!(
        "dns: {{nameservers: ['127.0.0.1:9']}}\nreputation:\n  dnsbl:\n    zones: [{}]\n{extra}",
        zones.join(", ")
    );
    Config::from_yaml(&yaml, Path::new("bench.yaml")).expect("bench config")
}

fn client_addr(i: u32) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 25))
}

/// Fills the answer cache the way lookups would: half listed, half not.
async fn warm(state: &SharedState) {
    for i in 0..CLIENTS {
        let [a, b, c, d] = match client_addr(i).ip() {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => unreachable!(),
        };
        for zone in ZONES {
            let answer = if i % 2 == 0 { "127.0.0.2" } else { "" };
            let name = format!("{d}.{c}.{b}.{a}.{zone}");
            state
                .cache(&name, answer, std::time::Duration::from_secs(3600))
                .await;
        }
    }
}

async fn dnsbl_stage(iterations: u32) {
    let config = config("");
    let metrics = Metrics::new();
    let state = Arc::new(SharedState::new(&config, &metrics).expect("state"));
    warm(&state).await;
    let dns = Dns::new(&config.dns, &metrics).expect("resolver");
    let pipeline = Pipeline::new(reputation::with_state(&config, &dns, &metrics, state));
    let started = Instant::now();
    for i in 0..iterations {
        let client = ClientInfo {
            addr: client_addr(i % CLIENTS),
            helo: None,
            esmtp: false,
        };
        let mut facts = Facts::default();
        let ctx = CheckContext::new(Stage::Connect, &client, &mut facts);
        std::hint::black_box(pipeline.judge(ctx).await);
    }
    let per = started.elapsed() / iterations;
    println!(
        "dnsbl stage, warm cache, {} zones: {per:?} per connection",
        ZONES.len()
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn limit() -> spamgate::config::reputation::RateLimit {
    let config = config(
        "  rate_limits:\n    limits: [{name: bench, key: ip, count: messages, rate: 100/1h, burst: 100}]\n",
    );
    config.reputation.rate_limits.limits[0].clone()
}

fn memory_limits(keys: u32) {
    let limiter = KeyedLimiter::new(&limit(), keys as usize + 1);
    let names: Vec<String> = (0..keys).map(|i| client_addr(i).ip().to_string()).collect();
    let before = rss_kib();
    let started = Instant::now();
    for name in &names {
        limiter.allow(name);
    }
    let insert = started.elapsed() / keys;
    let after = rss_kib();
    let started = Instant::now();
    for name in &names {
        std::hint::black_box(limiter.allow(name));
    }
    let check = started.elapsed() / keys;
    let bytes = (after.saturating_sub(before) * 1024) as f64 / f64::from(keys);
    println!(
        "rate limit in memory, {keys} keys: insert {insert:?}/key, check {check:?}/key, {} MiB RSS ({bytes:.0} bytes/key), {} keys held",
        (after.saturating_sub(before)) / 1024,
        limiter.len()
    );
}

async fn redis_limits(url: &str, checks: u32) {
    let extra = format!(
        "  rate_limits:\n    limits: [{{name: bench, key: ip, count: messages, rate: 100/1h, burst: 100}}]\nstate: {{backend: redis, redis: {{url: '{url}'}}}}\n"
    );
    let config = config(&extra);
    let state = Arc::new(SharedState::new(&config, &Metrics::new()).expect("state"));
    let limit = &config.reputation.rate_limits.limits[0];
    state
        .allow(0, limit, "warm-up")
        .await
        .expect("redis answers");
    let started = Instant::now();
    for i in 0..checks {
        let key = client_addr(i).ip().to_string();
        state.allow(0, limit, &key).await.expect("redis answers");
    }
    let per = started.elapsed() / checks;
    println!("rate limit in redis (Lua GCRA, one connection, sequential): {per:?} per check");
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let keys: u32 = value("--keys")
        .and_then(|k| k.parse().ok())
        .unwrap_or(1_000_000);
    dnsbl_stage(200_000).await;
    memory_limits(keys);
    if let Some(url) = value("--redis") {
        redis_limits(&url, 20_000).await;
    }
}
