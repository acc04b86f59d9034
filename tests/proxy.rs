//! PROXY protocol end to end: spamgate with one listener behind a "load
//! balancer" (this test, speaking v1 and v2 headers over real TCP) and one
//! direct listener, relaying to the recording upstream.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::client::Client;
use common::upstream::{Behaviour, Recorder};
use common::{http_get, test_config};
use spamgate::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Authentication needs DNS, which these tests do not exercise: with it off
/// no lookup leaves the machine.
const NO_DNS: &str =
    "auth: {spf: {mode: off}, dkim: {mode: off}, arc: {mode: off}, dmarc: {mode: off}}\n";

/// spamgate with a PROXY listener and a direct one; aborted on drop.
struct Gate {
    proxied: SocketAddr,
    direct: SocketAddr,
    metrics: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Gate {
    /// `trusted` is the YAML list of load-balancer networks; `extra` more top-level keys.
    async fn start(upstream: SocketAddr, trusted: &str, extra: &str) -> Gate {
        let bind = || TcpListener::bind("127.0.0.1:0");
        let (proxied, direct, metrics) = (
            bind().await.unwrap(),
            bind().await.unwrap(),
            bind().await.unwrap(),
        );
        let (p, d) = (proxied.local_addr().unwrap(), direct.local_addr().unwrap());
        let section = format!(
            "listen: ['{p}', '{d}']\nproxy_protocol:\n  listeners: ['{p}']\n  trusted: {trusted}\n  timeout: 500ms\n{NO_DNS}{extra}"
        );
        let yaml = test_config(upstream, &section);
        let config =
            Config::from_yaml(&yaml, Path::new("proxy.yaml")).unwrap_or_else(|e| panic!("{e}"));
        Gate {
            proxied: p,
            direct: d,
            metrics: metrics.local_addr().unwrap(),
            task: tokio::spawn(spamgate::run(
                spamgate::Listeners {
                    smtp: vec![proxied, direct],
                    metrics: Some(metrics),
                },
                config,
                std::future::pending(),
            )),
        }
    }

    /// Connects to the PROXY listener and sends `header` (plus anything after it).
    async fn behind_balancer(&self, header: &[u8]) -> Client {
        let mut client = Client::connect(self.proxied).await;
        client.send(header).await;
        client
    }

    async fn proxy_headers(&self, result: &str) -> f64 {
        let text = http_get(self.metrics, "/metrics").await;
        let sample = format!("spamgate_proxy_headers_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&sample).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

fn v1(source: &str, port: u16) -> Vec<u8> {
    let family = if source.contains(':') { "TCP6" } else { "TCP4" };
    let dst = if source.contains(':') {
        "::1"
    } else {
        "127.0.0.1"
    };
    format!("PROXY {family} {source} {dst} {port} 25\r\n").into_bytes()
}

/// A v2 PROXY header for an IPv6 client, as HAProxy's `send-proxy-v2` writes it.
fn v2_inet6(source: &str, port: u16) -> Vec<u8> {
    let src: std::net::Ipv6Addr = source.parse().unwrap();
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x21, 0x00, 36]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&25u16.to_be_bytes());
    out
}

/// v2 LOCAL: the balancer's own health check.
fn v2_local() -> Vec<u8> {
    [
        b"\r\n\r\n\0\r\nQUIT\n".as_slice(),
        &[0x20, 0x00, 0x00, 0x00],
    ]
    .concat()
}

const MESSAGE: &str =
    "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: proxied\r\n\r\nhello\r\n";

/// Whether the server closes without sending a single byte. Closing with
/// our header unread makes the kernel answer with a reset: that counts too.
async fn closed_silently(mut stream: TcpStream) -> bool {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    read.is_ok() && got.is_empty()
}

#[tokio::test]
async fn v1_client_address_reaches_the_upstream() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", "").await;
    let mut client = gate.behind_balancer(&v1("203.0.113.7", 40000)).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.cmd("EHLO client.example").await.code, 250);
    let reply = client
        .send_mail("a@example.org", &["b@example.net"], MESSAGE)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let received = upstream.wait_accepted(1).await;
    let xclient = received[0].xclient.join("\n");
    assert!(xclient.contains("ADDR=203.0.113.7 PORT=40000"), "{xclient}");
    assert_eq!(gate.proxy_headers("proxied").await, 1.0);
}

#[tokio::test]
async fn v2_ipv6_header_with_pipelined_ehlo() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['127.0.0.1']", "").await;
    // The EHLO arrives in the same segment as the header: it must not be lost.
    let first = [
        v2_inet6("2001:db8::7", 1234),
        b"EHLO client.example\r\n".to_vec(),
    ]
    .concat();
    let mut client = gate.behind_balancer(&first).await;
    assert_eq!(client.reply().await.code, 220);
    assert_eq!(client.reply().await.code, 250);
    let reply = client
        .send_mail("a@example.org", &["b@example.net"], MESSAGE)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let xclient = upstream.wait_accepted(1).await[0].xclient.join("\n");
    assert!(
        xclient.contains("ADDR=IPV6:2001:db8::7 PORT=1234"),
        "{xclient}"
    );
}

#[tokio::test]
async fn header_address_drives_the_checks() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let deny = "checks:\n  ip_lists:\n    deny: ['203.0.113.0/24']\n";
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", deny).await;
    let mut denied = gate.behind_balancer(&v1("203.0.113.9", 1)).await;
    let refusal = denied.reply().await;
    assert_eq!(refusal.code, 554, "{refusal:?}");
    let mut allowed = gate.behind_balancer(&v1("198.51.100.1", 1)).await;
    assert_eq!(allowed.reply().await.code, 220);
    // The socket address (127.0.0.1) is not what is judged.
    let mut direct = Client::greeted(gate.direct).await;
    assert_eq!(direct.cmd("QUIT").await.code, 221);
}

#[tokio::test]
async fn per_ip_limit_counts_the_real_client() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let limits = "limits: {max_connections_per_ip: 1}\n";
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", limits).await;
    let mut first = gate.behind_balancer(&v1("198.51.100.1", 1)).await;
    assert_eq!(first.reply().await.code, 220);
    let mut same = gate.behind_balancer(&v1("198.51.100.1", 2)).await;
    let refused = same.reply().await;
    assert_eq!(
        (refused.code, refused.status()),
        (421, Some("4.7.0")),
        "{refused:?}"
    );
    // Every connection comes from 127.0.0.1, yet another client gets in.
    let mut other = gate.behind_balancer(&v1("198.51.100.2", 3)).await;
    assert_eq!(other.reply().await.code, 220);
    assert_eq!(first.cmd("QUIT").await.code, 221);
}

#[tokio::test]
async fn untrusted_peer_is_closed_without_a_word() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['10.0.0.0/8']", "").await;
    let mut stream = TcpStream::connect(gate.proxied).await.unwrap();
    stream.write_all(&v1("198.51.100.1", 1)).await.unwrap();
    assert!(closed_silently(stream).await);
    assert_eq!(gate.proxy_headers("untrusted").await, 1.0);
    assert_eq!(gate.proxy_headers("proxied").await, 0.0);
    // The direct listener is unaffected.
    Client::greeted(gate.direct).await;
}

#[tokio::test]
async fn bad_or_missing_headers_are_closed() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", "").await;
    // (bytes sent, result label, that label's count afterwards)
    let cases: &[(&[u8], &str, f64)] = &[
        (b"EHLO client.example\r\n", "invalid", 1.0),
        (
            b"PROXY TCP4 203.0.113.7 127.0.0.1 99999 25\r\n",
            "invalid",
            2.0,
        ),
        (b"", "timeout", 1.0),
    ];
    for (bytes, label, count) in cases {
        let mut stream = TcpStream::connect(gate.proxied).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        assert!(closed_silently(stream).await, "{label}: {bytes:?}");
        assert_eq!(
            gate.proxy_headers(label).await,
            *count,
            "{label}: {bytes:?}"
        );
    }
    let commands = upstream.commands();
    assert!(
        !commands.iter().any(|c| c.starts_with("XCLIENT")),
        "{commands:?}"
    );
}

#[tokio::test]
async fn local_and_unknown_headers_use_the_socket_address() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", "").await;
    let mut check = gate.behind_balancer(&v2_local()).await;
    assert_eq!(check.reply().await.code, 220);
    assert_eq!(check.cmd("QUIT").await.code, 221);
    let mut unknown = gate.behind_balancer(b"PROXY UNKNOWN\r\n").await;
    assert_eq!(unknown.reply().await.code, 220);
    assert_eq!(unknown.cmd("EHLO client.example").await.code, 250);
    let reply = unknown
        .send_mail("a@example.org", &["b@example.net"], MESSAGE)
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let xclient = upstream.wait_accepted(1).await[0].xclient.join("\n");
    assert!(xclient.contains("ADDR=127.0.0.1 "), "{xclient}");
    assert_eq!(gate.proxy_headers("local").await, 1.0);
    assert_eq!(gate.proxy_headers("unknown").await, 1.0);
}

#[tokio::test]
async fn direct_listener_ignores_proxy_headers() {
    let upstream = Recorder::start(Behaviour::default()).await;
    let gate = Gate::start(upstream.addr, "['127.0.0.0/8']", "").await;
    let mut client = Client::greeted(gate.direct).await;
    // A client cannot claim another address on a listener not behind a balancer.
    let reply = client.cmd("PROXY TCP4 203.0.113.7 127.0.0.1 1 25").await;
    assert_eq!(reply.code, 500, "{reply:?}");
    assert_eq!(gate.proxy_headers("proxied").await, 0.0);
}
