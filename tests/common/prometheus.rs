//! A real Prometheus for tests: the Debian `prometheus` binary on a free
//! loopback port, with a configuration written to a temporary directory
//! (1 s scrapes of the given targets, optional rule files), queried through
//! its HTTP API. The process is killed when the [`Prometheus`] is dropped.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const START_DEADLINE: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 3;

pub struct Prometheus {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary: `$SPAMGATE_PROMETHEUS`, else Debian's, else `prometheus` on PATH.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SPAMGATE_PROMETHEUS") {
        return PathBuf::from(path);
    }
    let debian = Path::new("/usr/bin/prometheus");
    match debian.exists() {
        true => debian.to_path_buf(),
        false => PathBuf::from("prometheus"),
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job `spamgate`) every second and
    /// evaluating `rule_files` every second; returns once it is ready.
    pub async fn start(targets: &[SocketAddr], rule_files: &[PathBuf]) -> Prometheus {
        let mut last_log = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().expect("temp dir");
            std::fs::write(
                dir.path().join("prometheus.yml"),
                config(targets, rule_files),
            )
            .unwrap();
            // The port is free now; should another process take it before
            // Prometheus binds it, we try again on a new one.
            let port = free_port();
            let mut prometheus = Prometheus {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                child: spawn(dir.path(), port),
                dir,
            };
            if prometheus.wait_ready().await {
                return prometheus;
            }
            last_log = prometheus.log();
        }
        panic!("prometheus did not start; last log:\n{last_log}");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some((200, _)) = get(self.addr, "/-/ready").await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// What Prometheus logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// GETs an API path and returns its `data`; panics unless the status is success.
    pub async fn api(&self, path_and_query: &str) -> Value {
        let (status, body) = get(self.addr, path_and_query)
            .await
            .unwrap_or_else(|| panic!("no answer from prometheus for {path_and_query}"));
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path_and_query}: HTTP {status}, not JSON ({e}): {body}"));
        assert_eq!(
            json["status"], "success",
            "{path_and_query}: HTTP {status}: {body}"
        );
        json["data"].clone()
    }

    /// Runs an instant query; returns the result vector (or scalar as one element).
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                data["result"].as_array().cloned().unwrap_or_default()
            }
            _ => vec![data["result"].clone()],
        }
    }

    /// The value of a query that yields one sample, if it yields exactly one.
    pub async fn scalar(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await;
        match result.as_slice() {
            [one] => sample_value(one),
            _ => None,
        }
    }

    /// Polls `promql` until its single value is `expected` (or panics at the deadline).
    pub async fn wait_for_value(&self, promql: &str, expected: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.scalar(promql).await;
            if got == Some(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{promql}: {got:?}, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The numeric value of one vector element (`{"metric":..,"value":[t,"v"]}`)
/// or of a scalar result (`[t,"v"]`).
pub fn sample_value(element: &Value) -> Option<f64> {
    let pair = element.get("value").unwrap_or(element);
    pair.get(1)?.as_str()?.parse().ok()
}

fn config(targets: &[SocketAddr], rule_files: &[PathBuf]) -> String {
    let mut yaml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n",
    );
    if !rule_files.is_empty() {
        yaml.push_str("rule_files:\n");
        for file in rule_files {
            let _ = writeln!(yaml, "  - '{}'", file.display());
        }
    }
    yaml.push_str(
        "scrape_configs:\n  - job_name: spamgate\n    static_configs:\n      - targets:\n",
    );
    for target in targets {
        let _ = writeln!(yaml, "          - '{target}'");
    }
    yaml
}

fn spawn(dir: &Path, port: u16) -> Child {
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    Command::new(binary())
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=1h")
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (Debian package `prometheus`)",
                binary().display()
            )
        })
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Percent-encodes a query-string value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// A plain HTTP/1.0 GET (no chunking, the server closes): status and body.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), io)
        .await
        .ok()??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}
