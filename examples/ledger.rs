//! Zero-loss ledger bench: `bench/ledger.sh` runs it against a release
//! build. It starts a flaky upstream, starts spamgate in front of it, sends
//! uniquely numbered messages and prints the comparison of both ledgers.
//!
//! cargo run --release --example ledger -- --spamgate target/release/spamgate \
//!     [--messages 50000] [--sessions 100] [--drop 0.01]

mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use support::flaky::Flaky;
use support::ledger::{send_all, Report};
use support::spawn::{Spamgate, NO_DNS_CHECKS};

struct Args {
    spamgate: PathBuf,
    messages: u64,
    sessions: usize,
    drop: f64,
}

fn args() -> Args {
    let mut args = Args {
        spamgate: PathBuf::from("target/release/spamgate"),
        messages: 50_000,
        sessions: 100,
        drop: 0.01,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--spamgate" => args.spamgate = PathBuf::from(value),
            "--messages" => args.messages = value.parse().expect("--messages N"),
            "--sessions" => args.sessions = value.parse().expect("--sessions N"),
            "--drop" => args.drop = value.parse().expect("--drop P"),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = args();
    let upstream = Flaky::start(args.drop).await;
    let extra = format!(
        "limits: {{max_connections: {n}, max_connections_per_ip: {n}}}\ntimeouts: {{upstream_connect: 10s, upstream_command: 10s, upstream_data: 10s}}\n{NO_DNS_CHECKS}",
        n = args.sessions * 2 + 10
    );
    let mut spamgate = Spamgate::start(&args.spamgate, upstream.addr, &extra);
    println!(
        "ledger: {} messages, {} sessions, upstream drop probability {} per step",
        args.messages, args.sessions, args.drop
    );
    let started = Instant::now();
    let client = send_all(spamgate.addr, args.messages, args.sessions).await;
    let elapsed = started.elapsed();
    let report = Report::new(args.messages, &client, &upstream.log());
    report.print();
    println!(
        "  elapsed {:.1} s, {:.0} messages/s; spamgate alive: {}, peak RSS {} kB",
        elapsed.as_secs_f64(),
        args.messages as f64 / elapsed.as_secs_f64(),
        spamgate.alive(),
        spamgate.status_kb("VmHWM")
    );
    match report.zero_loss() && spamgate.alive() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}
