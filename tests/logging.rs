//! The log as operators read it from the running binary: every transaction
//! line arrives, also when the server stops right after a burst (the lines
//! go through a writer thread), and no colour codes land in a pipe or file.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};

const SESSIONS: usize = 8;
const PER_SESSION: usize = 25;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "spamgate did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(upstream: std::net::SocketAddr, port: u16) -> (Child, tempfile::NamedTempFile) {
    let extra = format!("listen: ['127.0.0.1:{port}']\nlog: {{format: text, level: info}}");
    let yaml = common::test_config(upstream, &extra);
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spamgate"))
        .args(["run", "--config"])
        .arg(file.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (Child(child), file)
}

/// Sends PER_SESSION messages on each of SESSIONS parallel sessions.
async fn burst(port: u16) {
    let mut tasks = Vec::new();
    for s in 0..SESSIONS {
        tasks.push(tokio::spawn(async move {
            let mut client = Client::ready(([127, 0, 0, 1], port).into()).await;
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
    let port = free_port();
    let (mut child, _config) = start(upstream.addr, port);
    wait_for_port(port);
    burst(port).await;
    // SIGTERM straight after the burst: queued lines must still come out.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut log = String::new();
    let mut stderr = child.0.stderr.take().unwrap();
    stderr.read_to_string(&mut log).unwrap();
    assert!(child.0.wait().unwrap().success());
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
