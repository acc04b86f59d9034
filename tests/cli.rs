//! The `spamgate` binary as operators use it: `check` and `run`.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::cli::{free_port, spamgate, succeed, Running};
use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn check_accepts_the_shipped_config() {
    succeed(spamgate().args(["check", "--config", "spamgate.yaml"]));
}

#[test]
fn check_reports_every_error_with_file_line_and_key_and_exits_64() {
    let file =
        write_config("listen: ['nowhere']\nlimits:\n  max_recipients: 0\ntimeouts: {idle: soon}\n");
    let out = spamgate()
        .args(["check", "--config"])
        .arg(file.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = file.path().display().to_string();
    for (line, key) in [
        (1, "listen"),
        (3, "limits.max_recipients"),
        (4, "timeouts.idle"),
    ] {
        let prefix = format!("{name}:{line}:");
        let found = stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(key));
        assert!(found, "{prefix} {key} in:\n{stderr}");
    }
}

#[test]
fn check_reports_unreadable_files() {
    let out = spamgate()
        .args(["check", "--config", "/nonexistent/spamgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn version_is_printed() {
    let out = spamgate().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// `run` serves SMTP, logs one JSON line per transaction and exits cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_relays_logs_json_and_stops_on_sigterm() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let port = free_port();
    let config = format!(
        "listen: ['127.0.0.1:{port}']\nupstream: {{address: '{}'}}\nrelay_domains: [example.net]\nlog: {{format: json}}\n{}\n{}\n",
        upstream.addr,
        common::NO_DNS,
        common::NO_DNS_AUTH
    );
    let file = write_config(&config);
    let running = Running::start(file.path(), port, Stdio::piped());
    let mut client = Client::ready(running.addr).await;
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("cli"))
        .await;
    assert_eq!(reply.code, 250);
    assert_eq!(client.cmd("QUIT").await.code, 221);
    let (status, log) = running.terminate();
    assert!(status.success(), "{status:?}");
    let lines: Vec<&str> = log.lines().collect();
    let tx = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "transaction")
        .unwrap_or_else(|| panic!("no JSON transaction line in {lines:#?}"));
    assert_eq!(tx["verdict"], "accept");
    assert_eq!(tx["from"], "a@example.com");
    assert_eq!(tx["rcpts"], "b@example.net");
    assert_eq!(tx["client"], "127.0.0.1");
    assert_eq!(tx["helo"], "client.example");
    assert!(tx["upstream"].as_str().unwrap().starts_with("250"), "{tx}");
    assert!(tx["size"].as_u64().unwrap() > 0);
}
