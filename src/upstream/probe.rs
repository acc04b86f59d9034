//! The upstream probe, at start-up and on demand (`spamgate check
//! --probe`): what the upstream offers, whether it lets spamgate pass the
//! client on (XCLIENT), and whether it would relay for an outsider. The
//! last question is asked as an outside client looks to the upstream:
//! through XCLIENT with a TEST-NET address when XCLIENT is used, as
//! spamgate itself otherwise. Nothing is ever sent: `MAIL FROM:<>`, one
//! `RCPT` at a reserved domain, then `RSET`.

use std::net::{IpAddr, Ipv4Addr};

use super::{Capabilities, ClientIdentity, SharedCapabilities, Upstream, UpstreamError};
use crate::config::{Timeouts, UpstreamConfig};
use crate::judgement::reply::Reply;
use crate::smtp::command::MailParams;
use crate::tls::TlsInfo;

/// The outsider the probe pretends to be: TEST-NET-1 (RFC 5737), which no
/// MTA has reason to trust.
pub const PROBE_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const PROBE_HELO: &str = "relay-probe.invalid";
/// A recipient at a reserved domain (RFC 2606): never anyone's.
pub const PROBE_RCPT: &str = "spamgate-relay-probe@relay-probe.invalid";

/// The three ways out of an open relay, named in the error that stops the start.
pub const OPEN_RELAY_FIXES: &str = "fix one of: (1) list the domains you receive mail for in \
spamgate's relay_domains (or relay_domains_file); (2) turn upstream.xclient on and authorise \
spamgate's address for XCLIENT in the MTA (Postfix: smtpd_authorized_xclient_hosts, then \
postfix reload); (3) close relaying in the MTA for spamgate's address (Postfix: take it out of \
mynetworks on the smtpd spamgate talks to, e.g. -o mynetworks= with \
-o smtpd_relay_restrictions=reject_unauth_destination)";

/// What spamgate does about XCLIENT with this upstream.
#[derive(Debug, Clone, PartialEq)]
pub enum XclientFinding {
    /// `upstream.xclient: false`: the upstream sees spamgate's address.
    Disabled,
    /// Offered with ADDR and accepted for an outside client.
    Used,
    /// Not offered to spamgate (or without ADDR): nothing is relayed.
    NotOffered(&'static str),
    /// Offered, but the upstream refused it or failed during it.
    Failed(String),
}

impl XclientFinding {
    /// Whether transactions can go through this upstream at all.
    pub fn relays_mail(&self) -> bool {
        matches!(self, XclientFinding::Disabled | XclientFinding::Used)
    }
}

impl std::fmt::Display for XclientFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XclientFinding::Disabled => f.write_str("not used (upstream.xclient is off)"),
            XclientFinding::Used => f.write_str("used"),
            XclientFinding::NotOffered(why) => write!(f, "UNAVAILABLE ({why} offered to us)"),
            XclientFinding::Failed(why) => write!(f, "FAILED ({why})"),
        }
    }
}

/// What the upstream said to an outsider's recipient at a foreign domain.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayFinding {
    /// Refused (4xx or 5xx): the upstream does not relay for outsiders.
    Refused(Reply),
    /// Accepted: the upstream relays for anyone who looks like that.
    Relays(Reply),
    /// The question could not be asked (MAIL refused, connection lost).
    Unknown(String),
    /// Not asked: transactions cannot go through this upstream anyway.
    NotProbed,
}

impl std::fmt::Display for RelayFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayFinding::Refused(reply) => write!(f, "no (RCPT to an outside domain: {reply})"),
            RelayFinding::Relays(reply) => write!(f, "YES (RCPT to an outside domain: {reply})"),
            RelayFinding::Unknown(why) => write!(f, "unknown ({why})"),
            RelayFinding::NotProbed => f.write_str("not probed (no transaction can pass)"),
        }
    }
}

/// What the probe learned about the upstream.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// The extensions offered to the sessions spamgate relays (after
    /// XCLIENT, when used: AUTH and SIZE may differ from what spamgate
    /// itself is offered).
    pub caps: Capabilities,
    /// The XCLIENT attributes offered to spamgate, if any.
    pub xclient_offered: Option<Vec<String>>,
    /// The first EHLO offered STARTTLS.
    pub starttls: bool,
    /// The session the probe established, when `upstream.tls` is on.
    pub tls: Option<TlsInfo>,
    pub xclient: XclientFinding,
    pub relay: RelayFinding,
}

impl Upstream {
    /// Connects as a session would, then asks the relay question.
    pub async fn probe(
        config: &UpstreamConfig,
        timeouts: &Timeouts,
        shared: &SharedCapabilities,
    ) -> Result<ProbeReport, UpstreamError> {
        let mut upstream = Upstream::open(config, timeouts).await?;
        let starttls = upstream.caps.starttls;
        upstream.secure(&config.tls, &config.helo_name).await?;
        let xclient_offered = upstream.caps.xclient.clone();
        let xclient = upstream.probe_xclient(config).await;
        let relay = match xclient.relays_mail() {
            true => upstream.probe_relay().await,
            false => RelayFinding::NotProbed,
        };
        shared.learn(&upstream.caps);
        let report = ProbeReport {
            caps: upstream.caps.clone(),
            xclient_offered,
            starttls,
            tls: upstream.tls.clone(),
            xclient,
            relay,
        };
        upstream.quit().await;
        Ok(report)
    }

    async fn probe_xclient(&mut self, config: &UpstreamConfig) -> XclientFinding {
        if !config.xclient {
            return XclientFinding::Disabled;
        }
        let offered = match self.xclient_offered() {
            Ok(offered) => offered,
            Err(UpstreamError::XclientUnavailable(why)) => return XclientFinding::NotOffered(why),
            Err(error) => return XclientFinding::Failed(error.to_string()),
        };
        let outsider = ClientIdentity {
            addr: PROBE_CLIENT,
            port: 49152,
            name: None,
            helo: Some(PROBE_HELO.to_string()),
            esmtp: true,
        };
        match self.xclient(&outsider, &offered, &config.helo_name).await {
            Ok(()) => XclientFinding::Used,
            Err(error) => XclientFinding::Failed(error.to_string()),
        }
    }

    /// `MAIL FROM:<>`, `RCPT` to a reserved foreign domain, `RSET`.
    async fn probe_relay(&mut self) -> RelayFinding {
        match self.mail("", &MailParams::default()).await {
            Ok(reply) if reply.is_positive() => {}
            Ok(reply) => return RelayFinding::Unknown(format!("MAIL FROM:<> refused: {reply}")),
            Err(error) => return RelayFinding::Unknown(error.to_string()),
        }
        let finding = match self.rcpt(PROBE_RCPT).await {
            Ok(reply) if reply.is_positive() => RelayFinding::Relays(reply),
            Ok(reply) => RelayFinding::Refused(reply),
            Err(error) => return RelayFinding::Unknown(error.to_string()),
        };
        let _ = self.rset().await;
        finding
    }
}
