//! Fixtures shared by the end-to-end tests: spamgate started in-process on
//! port 0, a recording upstream, and a plain SMTP client.
#![allow(dead_code)]

pub mod cli;
pub mod client;
pub mod conformance;
pub mod dns;
pub mod postfix;
pub mod prometheus;
pub mod redis;
pub mod tls;
pub mod upstream;

use std::net::SocketAddr;
use std::path::Path;

use spamgate::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running spamgate; stopped (gracefully) by [`Spamgate::stop`] or
/// aborted on drop.
pub struct Spamgate {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for Spamgate {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// DNS for tests that run no DNS server: a loopback port where nothing
/// listens, so lookups fail at once and nothing ever leaves the machine
/// (the system resolver here is not on loopback).
pub const NO_DNS: &str = "dns: {nameservers: ['127.0.0.1:9'], timeout: 300ms, attempts: 1}";

/// Sender authentication without DNS-based checks (they would only see
/// temporary errors without a DNS server); the From header check stays.
pub const NO_DNS_AUTH: &str =
    "auth: {spf: {mode: off}, dkim: {mode: off}, arc: {mode: off}, dmarc: {mode: off}}";

/// A configuration for tests: `upstream` as the relay target, short
/// timeouts, loopback-only DNS (and then no DNS-based sender checks unless
/// `extra` has `auth:`), plus whatever YAML `extra` adds (top-level
/// keys; an `extra` with its own `timeouts:` or `dns:` replaces ours).
pub fn test_config(upstream: SocketAddr, extra: &str) -> String {
    let timeouts = "timeouts: {upstream_connect: 5s, upstream_command: 5s, upstream_data: 5s, shutdown_drain: 5s}";
    let timeouts = if extra.contains("timeouts:") {
        ""
    } else {
        timeouts
    };
    let dns = if extra.contains("dns:") { "" } else { NO_DNS };
    // A test that runs its own DNS server keeps the default sender checks.
    let auth = if extra.contains("auth:") || extra.contains("dns:") {
        ""
    } else {
        NO_DNS_AUTH
    };
    format!("hostname: spamgate.test\nupstream:\n  address: '{upstream}'\n  xclient: true\n{timeouts}\n{dns}\n{auth}\n{extra}")
}

impl Spamgate {
    /// Starts spamgate with a YAML configuration (listen addresses are
    /// replaced by port-0 listeners on 127.0.0.1).
    pub async fn start(yaml: &str) -> Spamgate {
        let config = Config::from_yaml(yaml, Path::new("test.yaml"))
            .unwrap_or_else(|e| panic!("test config: {e}"));
        Spamgate::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Spamgate {
        let smtp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Spamgate::start_on(vec![smtp], config).await
    }

    /// Starts on listeners the test bound itself (so that the configuration
    /// can name their addresses); `addr` is the first one.
    pub async fn start_on(smtp: Vec<TcpListener>, config: Config) -> Spamgate {
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = smtp[0].local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let listeners = spamgate::Listeners {
            smtp,
            metrics: Some(metrics),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(spamgate::run(listeners, config, async move {
            let _ = stopped.await;
        }));
        Spamgate {
            addr,
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks for a graceful shutdown and waits until the server has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("spamgate stops in time")
                .unwrap();
        }
    }

    /// Starts the shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits for a shutdown begun with [`Spamgate::begin_stop`].
    pub async fn stopped(mut self) {
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(30), task)
                .await
                .expect("spamgate stops in time")
                .unwrap();
        }
    }

    /// The `/metrics` exposition.
    pub async fn metrics(&self) -> String {
        http_get(self.metrics_addr, "/metrics").await
    }

    /// The value of one sample line, e.g. `spamgate_messages_total{verdict="accept"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|line| {
                line.strip_prefix(sample)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or(0.0)
    }
}

/// A minimal HTTP GET, enough for `/metrics`.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}
