//! Sender authentication end to end: the shared resolver against a real
//! DNS server (knotd), DKIM signatures made by dkimpy, the RFC 7208 SPF
//! suite, the ARC validation suite, and SMTP sessions through spamgate.

mod common;

use std::time::Duration;

use common::dns::{DnsServer, Zones};
use spamgate::config::Config;
use spamgate::dns::{Dns, DnsError};
use spamgate::metrics::Metrics;

fn resolver(server: &DnsServer, timeout: &str) -> Dns {
    let yaml = server.yaml(timeout);
    let config = Config::from_yaml(&yaml, std::path::Path::new("test.yaml")).unwrap();
    Dns::new(&config.dns, &Metrics::new()).unwrap()
}

#[tokio::test]
async fn resolver_types_answers_and_failures() {
    let zones = Zones::new()
        .txt("example.com", "v=spf1 -all")
        .txt_strings("multi.example.com", &[b"one ", b"two"])
        .a("mx.example.com", "192.0.2.1")
        .record("1.2.0.192.in-addr.arpa", "PTR", "mx.example.com.")
        .silent("slow.example.org")
        .servfail("broken.example.org");
    let server = DnsServer::start(&zones);
    let dns = resolver(&server, "500ms");
    assert_eq!(dns.txt("example.com").await.unwrap(), vec!["v=spf1 -all"]);
    assert_eq!(dns.txt("multi.example.com").await.unwrap(), vec!["one two"]);
    assert_eq!(dns.ipv4("mx.example.com").await.unwrap(), vec![std::net::Ipv4Addr::new(192, 0, 2, 1)]);
    let ptr = dns.ptr([192, 0, 2, 1].into()).await.unwrap();
    assert_eq!(ptr, vec!["mx.example.com"]);
    let nx = dns.txt("nowhere.invalid").await.unwrap_err();
    assert!(matches!(nx, DnsError::NxDomain(_)), "{nx:?}");
    let nodata = dns.ipv4("example.com").await.unwrap_err();
    assert!(matches!(nodata, DnsError::NoRecords(_)), "{nodata:?}");
    let servfail = dns.txt("x.broken.example.org").await.unwrap_err();
    assert!(servfail.is_temporary(), "{servfail:?}");
    let started = std::time::Instant::now();
    let timeout = dns.txt("x.slow.example.org").await.unwrap_err();
    assert!(matches!(timeout, DnsError::Timeout(_)), "{timeout:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
