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
