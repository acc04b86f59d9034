//! Static allow and deny lists of client networks, judged at connect.

use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;

use super::{Check, CheckContext, CheckError};
use crate::config::IpListsConfig;
use crate::judgement::reply::canned;
use crate::judgement::{Outcome, Stage};

/// An allow list wins over a deny list, so that an operator can carve a
/// trusted host out of a denied network.
pub struct IpLists {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl IpLists {
    pub fn new(config: &IpListsConfig) -> Self {
        IpLists {
            allow: config.allow.clone(),
            deny: config.deny.clone(),
        }
    }
}

/// Matches IPv4-mapped IPv6 clients (`::ffff:192.0.2.1`) against IPv4 lists too.
fn listed(list: &[IpNet], ip: IpAddr) -> Option<&IpNet> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    list.iter().find(|net| net.contains(&ip))
}

#[async_trait]
impl Check for IpLists {
    fn name(&self) -> &'static str {
        "ip_lists"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Connect]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let ip = ctx.client.addr.ip();
        if listed(&self.allow, ip).is_some() {
            ctx.facts.allowlisted = true;
            return Ok(Vec::new());
        }
        Ok(match listed(&self.deny, ip) {
            Some(net) => vec![Outcome::Reject {
                reply: canned::client_denied(),
                reason: format!("client {ip} is in denied network {net}"),
            }],
            None => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::ClientInfo;
    use crate::judgement::Facts;

    fn lists(allow: &[&str], deny: &[&str]) -> IpLists {
        let parse = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect();
        IpLists {
            allow: parse(allow),
            deny: parse(deny),
        }
    }

    async fn judge(lists: &IpLists, ip: &str) -> (bool, bool) {
        let client = ClientInfo {
            addr: std::net::SocketAddr::new(ip.parse().unwrap(), 1234),
            helo: None,
            esmtp: false,
        };
        let mut facts = Facts::default();
        let mut ctx = CheckContext::new(Stage::Connect, &client, &mut facts);
        let outcomes = lists.check(&mut ctx).await.unwrap();
        let rejected = matches!(outcomes.first(), Some(Outcome::Reject { .. }));
        (rejected, facts.allowlisted)
    }

    #[tokio::test]
    async fn table() {
        let l = lists(
            &["192.0.2.7/32", "2001:db8:1::/48"],
            &["192.0.2.0/24", "2001:db8::/32", "198.51.100.9/32"],
        );
        let cases = [
            ("192.0.2.1", (true, false)),
            ("192.0.2.7", (false, true)),
            ("::ffff:192.0.2.1", (true, false)),
            ("198.51.100.9", (true, false)),
            ("198.51.100.10", (false, false)),
            ("2001:db8:2::1", (true, false)),
            ("2001:db8:1::1", (false, true)),
            ("2001:db9::1", (false, false)),
        ];
        for (ip, want) in cases {
            assert_eq!(judge(&l, ip).await, want, "{ip}");
        }
    }
}
