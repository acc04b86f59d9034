//! The floor under the DKIM check (issue 16): what the cryptography alone
//! costs on this machine, to set beside `spamgate_check_duration_seconds`
//! for `dkim` in a `bench/compare.sh` run.
//!
//! `dkim_floor [MESSAGE.eml [NAME RECORD]]` prints microseconds per
//! operation for:
//! - one RSA-2048 PKCS#1 SHA-256 verification of a 300-byte header block,
//!   the key parsed once (`ParsedPublicKey`) and parsed from its DER on
//!   every call (`UnparsedPublicKey`, which is what mail-auth 0.15 does);
//! - SHA-256 over 4 KB (the body hash of a 4 KB message);
//! - with MESSAGE.eml, mail-auth's `AuthenticatedMessage::parse` of it
//!   (headers split, body hash inputs found, DKIM-Signature parsed);
//! - with the key record `RECORD` published at `NAME` as well, spamgate's
//!   whole DKIM verification of the message (the DKIM check without its
//!   DNS query), CPU time per message, and its ratio to the RSA floor.
//!
//! `bench/compare.sh` runs it on its 4 KB bench message after the
//! measurements (release build).

use std::time::Instant;

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

/// Runs `f` `n` times; microseconds per run.
fn per_run(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn rsa(n: u32) -> f64 {
    let key = KeyPair::generate(KeySize::Rsa2048).expect("RSA-2048 key");
    let data = vec![b'h'; 300];
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        &data,
        &mut signature,
    )
    .expect("sign");
    let der = key.public_key().as_ref().to_vec();
    let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der).expect("parse key");
    let once = per_run(n, || parsed.verify_sig(&data, &signature).expect("verify"));
    let unparsed = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der);
    let every = per_run(n, || unparsed.verify(&data, &signature).expect("verify"));
    println!("rsa-2048 verify, key parsed once:        {once:8.2} us");
    println!("rsa-2048 verify, key parsed every call:  {every:8.2} us");
    once
}

/// CPU seconds this process has used (user + system): the verification
/// is measured by the CPU it takes, not by wall time on a shared machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn ours(path: &str, name: &str, record: &str, n: u32, floor: f64) {
    use spamgate::checks::auth::{verify_dkim, RecordKeys};
    let raw = std::fs::read(path).expect("message");
    let keys = RecordKeys::default().with(name, record);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now = 2_000_000_000;
    let facts = runtime.block_on(verify_dkim(&keys, &raw, now));
    let results: Vec<&str> = facts.iter().map(|f| f.result.as_str()).collect();
    assert_eq!(
        results,
        ["pass"],
        "the message must carry one signature that verifies"
    );
    let started = cpu_seconds();
    for _ in 0..n {
        std::hint::black_box(runtime.block_on(verify_dkim(&keys, &raw, now)));
    }
    let t = (cpu_seconds() - started) * 1e6 / f64::from(n);
    println!(
        "spamgate DKIM verification, CPU:         {t:8.2} us ({:.2} x the RSA verify)",
        t / floor
    );
}

fn sha(n: u32) {
    let body = vec![b'x'; 4096];
    let t = per_run(n, || {
        std::hint::black_box(digest(&SHA256, std::hint::black_box(&body)));
    });
    println!("sha-256 over 4 KB:                       {t:8.2} us");
}

fn parse(path: &str, n: u32) {
    let raw = std::fs::read(path).expect("message");
    let t = per_run(n, || {
        let parsed = mail_auth::AuthenticatedMessage::parse(&raw).expect("parsable message");
        std::hint::black_box(parsed);
    });
    println!(
        "mail-auth parse of {} bytes:           {t:8.2} us",
        raw.len()
    );
}

fn main() {
    let n = 5_000;
    let floor = rsa(n);
    sha(n * 4);
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args.get(1) {
        parse(path, n);
        if let (Some(name), Some(record)) = (args.get(2), args.get(3)) {
            ours(path, name, record, n * 2, floor);
        }
    }
}
