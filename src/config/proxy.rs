//! `proxy_protocol`: listeners that sit behind a load balancer (HAProxy and
//! friends) and receive the real client address in a PROXY header.
//!
//! The header is believed only from the networks listed in `trusted`:
//! anyone else could claim any address and walk around every IP-based check.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::span::S;
use super::validate::Validator;

/// How long a trusted peer gets to send its header. HAProxy sends it with
/// the connection, so a few seconds are generous (Postfix uses 5 s too).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawProxyProtocol {
    pub listeners: Vec<S<String>>,
    pub trusted: Vec<S<String>>,
    pub timeout: Option<S<String>>,
}

#[derive(Debug, Clone)]
pub struct ProxyProtocolConfig {
    /// `listen` addresses whose clients must start with a PROXY header.
    pub listeners: Vec<SocketAddr>,
    /// Load balancers allowed to connect to those listeners.
    pub trusted: Vec<IpNet>,
    pub timeout: Duration,
}

impl Default for ProxyProtocolConfig {
    fn default() -> Self {
        ProxyProtocolConfig {
            listeners: Vec::new(),
            trusted: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ProxyProtocolConfig {
    /// Whether connections accepted on `local` carry a PROXY header.
    pub fn expects_header(&self, local: SocketAddr) -> bool {
        self.listeners.contains(&local)
    }

    /// Whether `peer` may tell us who the client is. IPv4-mapped IPv6
    /// addresses (dual-stack sockets) count as the IPv4 address they carry.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted.iter().any(|net| net.contains(&peer))
    }
}

/// Checks the section against the `listen` addresses it refers to.
pub fn validate(
    v: &mut Validator,
    raw: &RawProxyProtocol,
    listen: &[SocketAddr],
) -> ProxyProtocolConfig {
    let mut listeners = Vec::new();
    for entry in &raw.listeners {
        let Some(addr) = v.socket_addr("proxy_protocol.listeners", entry) else {
            continue;
        };
        if !listen.contains(&addr) {
            let why = format!("{addr} is not one of the `listen` addresses");
            v.error_at(entry.referenced, "proxy_protocol.listeners", why);
        }
        listeners.push(addr);
    }
    let trusted = v.cidrs("proxy_protocol.trusted", &raw.trusted);
    if let (Some(first), true) = (raw.listeners.first(), raw.trusted.is_empty()) {
        let why = "a PROXY listener needs `trusted`: the load balancers' networks";
        v.error_at(first.referenced, "proxy_protocol.listeners", why);
    }
    ProxyProtocolConfig {
        listeners,
        trusted,
        timeout: timeout(v, raw.timeout.as_ref()),
    }
}

fn timeout(v: &mut Validator, raw: Option<&S<String>>) -> Duration {
    let key = "proxy_protocol.timeout";
    let timeout = v.duration(key, raw, DEFAULT_TIMEOUT);
    match raw {
        Some(value) if timeout.is_zero() || timeout > MAX_TIMEOUT => {
            v.error_at(value.referenced, key, "must be between 1ms and 60s");
            DEFAULT_TIMEOUT
        }
        _ => timeout,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::errors_in as errors;
    use crate::config::Config;

    #[test]
    fn valid_section() {
        let yaml = "listen: ['127.0.0.1:2525', '0.0.0.0:2526']\n\
                    proxy_protocol:\n  listeners: ['0.0.0.0:2526']\n  trusted: ['10.0.0.0/8', '192.0.2.7']\n  timeout: 2s\n";
        let config = Config::from_yaml(yaml, Path::new("t.yaml")).unwrap();
        let p = &config.proxy_protocol;
        assert!(p.expects_header("0.0.0.0:2526".parse().unwrap()));
        assert!(!p.expects_header("127.0.0.1:2525".parse().unwrap()));
        assert!(p.trusts("10.1.2.3".parse().unwrap()));
        assert!(p.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(p.trusts("192.0.2.7".parse().unwrap()));
        assert!(!p.trusts("192.0.2.8".parse().unwrap()));
        assert_eq!(p.timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn defaults_expect_no_header() {
        let config = Config::from_yaml("", Path::new("t.yaml")).unwrap();
        assert!(config.proxy_protocol.listeners.is_empty());
        assert!(!config.proxy_protocol.trusts("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn errors_point_at_lines() {
        let cases: &[(&str, u64, &str)] = &[
            (
                "listen: ['127.0.0.1:2525']\nproxy_protocol:\n  listeners: ['127.0.0.1:2526']\n  trusted: ['10.0.0.0/8']\n",
                3,
                "not one of the `listen` addresses",
            ),
            (
                "listen: ['127.0.0.1:2525']\nproxy_protocol:\n  listeners: ['127.0.0.1:2525']\n",
                3,
                "needs `trusted`",
            ),
            (
                "proxy_protocol:\n  trusted: ['10.0.0.0/33']\n",
                2,
                "not an IP address or CIDR",
            ),
            ("proxy_protocol:\n  timeout: 0s\n", 2, "between 1ms and 60s"),
            ("proxy_protocol:\n  timeout: 2m\n", 2, "between 1ms and 60s"),
            ("proxy_protocol:\n  listeners: ['nope']\n", 2, "not an ip:port"),
        ];
        for (yaml, line, message) in cases {
            let found = errors(yaml);
            assert!(
                found.iter().any(|(l, k, m)| l == line
                    && k.starts_with("proxy_protocol")
                    && m.contains(message)),
                "{yaml:?}: expected line {line} '{message}', got {found:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let found = errors("proxy_protocol:\n  trusted_networks: ['10.0.0.0/8']\n");
        assert!(!found.is_empty());
    }
}
