//! The log as operators read it from the running binary: every transaction
//! line arrives, also when the server stops right after a burst (the lines
//! go through a writer thread), and no colour codes land in a pipe or file.

mod common;

use std::process::Stdio;

use common::cli::{free_port, Running};
use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};

const SESSIONS: usize = 8;
const PER_SESSION: usize = 25;

fn start(upstream: std::net::SocketAddr) -> (Running, tempfile::NamedTempFile) {
    let port = free_port();
    let extra = format!("listen: ['127.0.0.1:{port}']\nlog: {{format: text, level: info}}");
    let yaml = common::test_config(upstream, &extra);
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    (Running::start(file.path(), port, Stdio::piped()), file)
}

/// Sends PER_SESSION messages on each of SESSIONS parallel sessions.
async fn burst(addr: std::net::SocketAddr) {
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::ready(addr).await;
            for m in 0..PER_SESSION {
                let from = format!("s{s}m{m}@example.com");
                let reply = client
                    .send_mail(&from, &["b@example.net"], &message("log"))
                    .await;
                assert_eq!(reply.code, 250, "{reply:?}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transaction_line_is_written_by_shutdown_without_colour() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let (running, _config) = start(upstream.addr);
    burst(running.addr).await;
    // SIGTERM straight after the burst: queued lines must still come out.
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!log.contains('\x1b'), "colour codes in a pipe:\n{log}");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" transaction "))
        .collect();
    assert_eq!(lines.len(), SESSIONS * PER_SESSION, "{log}");
    for s in 0..SESSIONS {
        for m in 0..PER_SESSION {
            let from = format!("from=s{s}m{m}@example.com ");
            let found = lines.iter().filter(|l| l.contains(&from)).count();
            assert_eq!(found, 1, "one whole line for {from}");
        }
    }
    assert!(log.contains("shutdown complete"), "{log}");
    assert_eq!(upstream.accepted().len(), SESSIONS * PER_SESSION);
}

/// A dictionary attack and a relay attempt in one transaction: the log
/// line names every recipient with the reply it got and who gave it, so
/// that an operator sees the attack even though no message was sent.
#[tokio::test]
async fn the_transaction_line_names_each_refused_recipient_and_its_code() {
    let upstream = Recorder::start(Behaviour {
        unknown_rcpts: vec!["alice@example.net".into(), "bob@example.net".into()],
        ..Behaviour::default()
    })
    .await;
    let (running, _config) = start(upstream.addr);
    let mut client = Client::ready(running.addr).await;
    assert_eq!(client.cmd("MAIL FROM:<probe@example.com>").await.code, 250);
    let tries = [
        ("alice@example.net", 550),
        ("bob@example.net", 550),
        ("victim@elsewhere.example.org", 554),
        ("carol@example.net", 250),
    ];
    for (to, code) in tries {
        let reply = client.cmd(&format!("RCPT TO:<{to}>")).await;
        assert_eq!(reply.code, code, "{to}: {reply:?}");
    }
    assert_eq!(client.cmd("QUIT").await.code, 221);
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}");
    let line = log
        .lines()
        .find(|l| l.contains(" transaction ") && l.contains("probe@example.com"))
        .unwrap_or_else(|| panic!("no transaction line:\n{log}"));
    for expected in [
        "alice@example.net 550 5.1.1 upstream",
        "bob@example.net 550 5.1.1 upstream",
        "victim@elsewhere.example.org 554 5.7.1 spamgate:relay",
        "carol@example.net 250",
    ] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    assert!(
        !upstream.commands().iter().any(|c| c.contains("elsewhere")),
        "the relay attempt never reached the upstream"
    );
}
