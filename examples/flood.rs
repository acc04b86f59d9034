//! Flood bench: `bench/flood.sh` runs it against a release build. It starts
//! a sink upstream and spamgate, then, phase by phase: thousands of idle
//! sessions, slowloris clients, oversized lines and messages, and NUL /
//! invalid UTF-8 garbage; during each phase another client must still get
//! a message through. Prints RSS figures from /proc.
//!
//! cargo run --release --example flood -- --spamgate target/release/spamgate \
//!     [--idle 10000] [--slowloris 1000] [--interval-ms 3000] [--idle-timeout 30]

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::flaky::Flaky;
use support::smtp::{ledger_message, Conn};
use support::spawn::{Spamgate, NO_DNS_CHECKS};
use tokio::sync::Semaphore;

/// Client sockets come from 127.0.0.1..=SOURCES so no single source
/// address runs out of ephemeral ports.
const SOURCES: u8 = 20;
const MAX_MESSAGE: usize = 10 << 20;

struct Args {
    spamgate: PathBuf,
    idle: usize,
    slowloris: usize,
    interval: Duration,
    idle_timeout: u64,
}

fn args() -> Args {
    let mut args = Args {
        spamgate: PathBuf::from("target/release/spamgate"),
        idle: 10_000,
        slowloris: 1_000,
        interval: Duration::from_millis(3000),
        idle_timeout: 30,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--spamgate" => args.spamgate = PathBuf::from(value),
            "--idle" => args.idle = value.parse().expect("--idle N"),
            "--slowloris" => args.slowloris = value.parse().expect("--slowloris N"),
            "--interval-ms" => args.interval = Duration::from_millis(value.parse().expect("ms")),
            "--idle-timeout" => args.idle_timeout = value.parse().expect("seconds"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % SOURCES as usize) as u8))
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = args();
    let upstream = Flaky::start(0.0).await;
    let extra = format!(
        "limits: {{max_connections: 50000, max_connections_per_ip: 50000, max_message_size: {MAX_MESSAGE}, max_bad_commands: 10}}\ntimeouts: {{idle: {}s, data: 120s}}\n{NO_DNS_CHECKS}",
        args.idle_timeout
    );
    let mut spamgate = Spamgate::start(&args.spamgate, upstream.addr, &extra);
    let mut ok = probe(spamgate.addr, "warm-up").await;
    let baseline = spamgate.status_kb("VmRSS");
    println!(
        "spamgate pid {} on {}; baseline RSS {:.1} MB",
        spamgate.pid,
        spamgate.addr,
        mb(baseline)
    );
    ok &= idle_phase(&spamgate, args.idle, baseline).await;
    ok &= slowloris_phase(&spamgate, &args).await;
    ok &= oversized_phase(&spamgate).await;
    ok &= garbage_phase(&spamgate).await;
    ok &= probe(spamgate.addr, "after the floods").await;
    let alive = spamgate.alive();
    println!(
        "peak RSS (VmHWM) {:.1} MB; process alive: {alive}",
        mb(spamgate.status_kb("VmHWM"))
    );
    match ok && alive {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

/// One whole message from another client; prints how long it took.
async fn probe(addr: SocketAddr, when: &str) -> bool {
    let started = Instant::now();
    let result = async {
        let mut conn = Conn::ready(addr, Some(Ipv4Addr::new(127, 0, 1, 1).into())).await?;
        conn.transaction("probe@example.com", "sink@example.net", &ledger_message(0))
            .await
    }
    .await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match &result {
        Ok(250) => println!("  probe {when}: message accepted in {ms:.1} ms"),
        other => println!("  probe {when}: FAILED after {ms:.1} ms: {other:?}"),
    }
    matches!(result, Ok(250))
}

/// Waits until spamgate has closed the sessions of the previous phase.
async fn settle(spamgate: &Spamgate) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while spamgate.open_fds() > 64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn idle_phase(spamgate: &Spamgate, n: usize, baseline: u64) -> bool {
    println!("idle: opening {n} sessions (banner + EHLO) from {SOURCES} source addresses");
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (addr, gate) = (spamgate.addr, gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                Conn::ready(addr, Some(source(i))).await
            })
        })
        .collect();
    let mut conns = Vec::with_capacity(n);
    for task in tasks {
        if let Ok(Ok(conn)) = task.await {
            conns.push(conn);
        }
    }
    let rss = spamgate.status_kb("VmRSS");
    let per = (rss.saturating_sub(baseline) * 1024) as f64 / conns.len().max(1) as f64;
    println!(
        "  {} of {n} sessions open in {:.1} s; spamgate fds {}; RSS {:.1} MB; {:.0} bytes per idle session",
        conns.len(),
        started.elapsed().as_secs_f64(),
        spamgate.open_fds(),
        mb(rss),
        per
    );
    let verdict = if mb(rss) <= 100.0 { "within" } else { "OVER" };
    println!("  goal: RSS with {n} idle sessions <= 100 MB: {verdict}");
    let ok = probe(spamgate.addr, "with the idle sessions open").await && conns.len() == n;
    drop(conns);
    settle(spamgate).await;
    ok
}

async fn slowloris_phase(spamgate: &Spamgate, args: &Args) -> bool {
    println!(
        "slowloris: {} clients, one byte every ~{} ms, idle timeout {} s",
        args.slowloris,
        args.interval.as_millis(),
        args.idle_timeout
    );
    let give_up = Duration::from_secs(args.idle_timeout * 3);
    let tasks: Vec<_> = (0..args.slowloris)
        .map(|i| tokio::spawn(slowloris(spamgate.addr, source(i), args.interval, give_up)))
        .collect();
    let mut ok = true;
    for i in 0..3 {
        tokio::time::sleep(Duration::from_secs(args.idle_timeout / 3)).await;
        ok &= probe(spamgate.addr, &format!("during slowloris ({})", i + 1)).await;
    }
    let rss = spamgate.status_kb("VmRSS");
    let mut cut: Vec<f64> = Vec::new();
    let mut failures: BTreeMap<&str, u32> = BTreeMap::new();
    for task in tasks {
        match task.await.unwrap_or(Err("task failed")) {
            Ok(after) => cut.push(after.as_secs_f64()),
            Err(why) => *failures.entry(why).or_default() += 1,
        }
    }
    cut.sort_by(f64::total_cmp);
    let at = |q: f64| {
        cut.get(((cut.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "  {} of {} cut by spamgate after {:.1} / {:.1} / {:.1} s (min / median / max); RSS {:.1} MB; others: {failures:?}",
        cut.len(),
        args.slowloris,
        at(0.0),
        at(0.5),
        at(1.0),
        mb(rss)
    );
    settle(spamgate).await;
    ok && !failures.contains_key("never cut")
}

/// Sends `NOOP ...` one byte at a time and returns when spamgate cut it;
/// the error says why the client could not play its part.
async fn slowloris(
    addr: SocketAddr,
    from: IpAddr,
    interval: Duration,
    give_up: Duration,
) -> Result<Duration, &'static str> {
    let started = Instant::now();
    let mut conn = Conn::open(addr, Some(from))
        .await
        .map_err(|_| "connect failed")?;
    conn.expect(220).await.map_err(|_| "no banner")?;
    for byte in b"NOOP slowly, so very slowly".iter().cycle() {
        let pause = interval.mul_f64(0.5 + fastrand::f64());
        if conn.closed_within(pause).await || conn.send(&[*byte]).await.is_err() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > give_up {
            break;
        }
    }
    Err("never cut")
}

async fn oversized_phase(spamgate: &Spamgate) -> bool {
    println!(
        "oversized: 200 clients x 1 MiB command lines, 10 clients x {} MiB messages",
        (2 * MAX_MESSAGE) >> 20
    );
    let mut tasks = Vec::new();
    for i in 0..200 {
        tasks.push(tokio::spawn(long_lines(spamgate.addr, source(i))));
    }
    for i in 0..10 {
        tasks.push(tokio::spawn(big_message(spamgate.addr, source(i))));
    }
    let ok = probe(spamgate.addr, "during oversized input").await;
    let mut codes = BTreeMap::new();
    for task in tasks {
        let code = task.await.ok().flatten().unwrap_or(0);
        *codes.entry(code).or_insert(0u32) += 1;
    }
    println!(
        "  replies {codes:?} (0 = no reply); RSS {:.1} MB, peak {:.1} MB",
        mb(spamgate.status_kb("VmRSS")),
        mb(spamgate.status_kb("VmHWM"))
    );
    settle(spamgate).await;
    ok && codes.keys().all(|&c| c == 500 || c == 552)
}

async fn long_lines(addr: SocketAddr, from: IpAddr) -> Option<u16> {
    let mut conn = Conn::ready(addr, Some(from)).await.ok()?;
    let line = vec![b'A'; 1 << 20];
    conn.send(&line).await.ok()?;
    conn.send(b"\r\n").await.ok()?;
    conn.reply().await.ok()
}

async fn big_message(addr: SocketAddr, from: IpAddr) -> Option<u16> {
    let mut conn = Conn::ready(addr, Some(from)).await.ok()?;
    assert_eq!(conn.cmd("MAIL FROM:<big@example.com>").await.ok()?, 250);
    assert_eq!(conn.cmd("RCPT TO:<sink@example.net>").await.ok()?, 250);
    assert_eq!(conn.cmd("DATA").await.ok()?, 354);
    let chunk = [b"x".repeat(998), b"\r\n".to_vec()].concat().repeat(1024);
    for _ in 0..(2 * MAX_MESSAGE / chunk.len()) {
        conn.send(&chunk).await.ok()?;
    }
    conn.send(b".\r\n").await.ok()?;
    conn.reply().await.ok()
}

async fn garbage_phase(spamgate: &Spamgate) -> bool {
    println!("garbage: 200 clients sending NUL / invalid UTF-8 / bare CR lines for 10 s");
    let until = Instant::now() + Duration::from_secs(10);
    let tasks: Vec<_> = (0..200)
        .map(|i| tokio::spawn(garbage(spamgate.addr, source(i), until)))
        .collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ok = probe(spamgate.addr, "during the garbage flood").await;
    let mut codes: BTreeMap<u16, u64> = BTreeMap::new();
    let mut sessions = 0;
    for task in tasks {
        let (part, n) = task.await.unwrap_or_default();
        sessions += n;
        for (code, count) in part {
            *codes.entry(code).or_default() += count;
        }
    }
    println!(
        "  {sessions} sessions, replies by code {codes:?}; RSS {:.1} MB",
        mb(spamgate.status_kb("VmRSS"))
    );
    settle(spamgate).await;
    ok
}

/// Garbage lines in lockstep until `until`; reconnects when cut off.
async fn garbage(addr: SocketAddr, from: IpAddr, until: Instant) -> (BTreeMap<u16, u64>, u64) {
    let mut codes = BTreeMap::new();
    let mut sessions = 0;
    while Instant::now() < until {
        let Ok(mut conn) = Conn::open(addr, Some(from)).await else {
            continue;
        };
        sessions += 1;
        if conn.expect(220).await.is_err() {
            continue;
        }
        while Instant::now() < until {
            if conn.send(&garbage_line()).await.is_err() {
                break;
            }
            match conn.reply().await {
                Ok(code) => *codes.entry(code).or_default() += 1,
                Err(_) => break,
            }
        }
    }
    (codes, sessions)
}

/// A line of hostile bytes: NULs, invalid UTF-8, bare CRs, sometimes
/// behind a real verb, always CRLF-terminated.
fn garbage_line() -> Vec<u8> {
    const NASTY: &[u8] = &[
        0, 0xff, 0xfe, 0xc0, 0xc3, 0x80, 0xed, 0xa0, b'\r', b'<', b'>', b'@', b' ',
    ];
    const VERBS: &[&[u8]] = &[
        b"EHLO ",
        b"HELO ",
        b"MAIL FROM:<",
        b"RCPT TO:<",
        b"DATA",
        b"QUIT \0",
        b"",
    ];
    let mut line = VERBS[fastrand::usize(..VERBS.len())].to_vec();
    for _ in 0..fastrand::usize(1..120) {
        line.push(match fastrand::u8(..4) {
            0 => NASTY[fastrand::usize(..NASTY.len())],
            _ => fastrand::u8(0x21..0x7f),
        });
    }
    line.extend_from_slice(b"\r\n");
    line
}
