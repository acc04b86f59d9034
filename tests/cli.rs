//! The `spamgate` binary as operators use it: `check` and `run`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::client::{message, Client};
use common::upstream::{Behaviour, Recorder};

fn spamgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spamgate"))
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = spamgate()
        .args(["check", "--config", "spamgate.yaml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A free loopback port (bound then released; good enough for one child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "spamgate did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `run` serves SMTP, logs one JSON line per transaction and exits cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_relays_logs_json_and_stops_on_sigterm() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let port = free_port();
    let config = format!(
        "listen: ['127.0.0.1:{port}']\nupstream: {{address: '{}'}}\nlog: {{format: json}}\n{}\n{}\n",
        upstream.addr,
        common::NO_DNS,
        common::NO_DNS_AUTH
    );
    let file = write_config(&config);
    let mut child = Child(
        spamgate()
            .args(["run", "--config"])
            .arg(file.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    let mut client = Client::ready(([127, 0, 0, 1], port).into()).await;
    let reply = client
        .send_mail("a@example.com", &["b@example.net"], &message("cli"))
        .await;
    assert_eq!(reply.code, 250);
    assert_eq!(client.cmd("QUIT").await.code, 221);
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map_while(Result::ok).collect();
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
