//! What the upstream probe means for this configuration: the findings that
//! the start-up log and `spamgate check --probe` print, and the one that
//! stops the start (the upstream relays for outsiders and spamgate has no
//! `relay_domains` of its own).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::checks::SetupError;
use crate::config::Config;
use crate::shared::Shared;
pub use crate::upstream::probe::OPEN_RELAY_FIXES;
use crate::upstream::probe::PROBE_RCPT;
use crate::upstream::{ProbeReport, RelayFinding, RelaySafety, Upstream, UpstreamError};

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Error,
}

/// One line of what the probe found, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        };
        write!(f, "{tag}: {}", self.text)
    }
}

fn finding(level: Level, text: impl Into<String>) -> Finding {
    Finding {
        level,
        text: text.into(),
    }
}

/// Judges a probe report against the configuration.
pub fn findings(config: &Config, report: &ProbeReport) -> Vec<Finding> {
    let mut out = vec![
        xclient_finding(config, report),
        relay_finding(config, report),
    ];
    out.extend(size_finding(config, report));
    out.extend(auth_finding(config, report));
    out
}

fn xclient_finding(config: &Config, report: &ProbeReport) -> Finding {
    let offered = report
        .xclient_offered
        .as_ref()
        .map_or("not offered".to_string(), |a| {
            format!("offered ({})", a.join(" "))
        });
    let text = format!("XCLIENT {offered}; spamgate: {}", report.xclient);
    match report.xclient.relays_mail() {
        true if config.upstream.xclient => finding(Level::Ok, text),
        true => finding(Level::Warning, format!("{text}: the upstream sees every client as spamgate's address")),
        false => finding(Level::Error, format!("{text}: every transaction gets 451 until the MTA authorises spamgate's address for XCLIENT (Postfix: smtpd_authorized_xclient_hosts, then postfix reload)")),
    }
}

fn relay_finding(config: &Config, report: &ProbeReport) -> Finding {
    let ours = match config.relay.is_on() {
        true => "spamgate's relay_domains refuse other recipients",
        false => "spamgate has no relay_domains",
    };
    let text = format!(
        "relays for outsiders <{PROBE_RCPT}>: {}; {ours}",
        report.relay
    );
    match (&report.relay, config.relay.is_on()) {
        (RelayFinding::Relays(_), false) => finding(
            Level::Error,
            format!("{text}: this system would be an OPEN RELAY; {OPEN_RELAY_FIXES}"),
        ),
        (RelayFinding::Relays(_), true) => finding(Level::Warning, text),
        (RelayFinding::Unknown(_), false) => finding(Level::Warning, text),
        _ => finding(Level::Ok, text),
    }
}

/// Postfix counts its queue file, a little more than the message: a limit
/// at or above Postfix's refuses messages only after the whole transfer.
fn size_finding(config: &Config, report: &ProbeReport) -> Option<Finding> {
    let ours = config.limits.max_message_size as u64;
    let text = |theirs: u64| format!("SIZE: upstream {theirs}, spamgate max_message_size {ours}");
    match report.caps.size {
        Some(theirs) if theirs > 0 && ours > theirs / 100 * 99 => Some(finding(
            Level::Warning,
            format!(
                "{}: keep max_message_size about 1% below the upstream's ({})",
                text(theirs),
                theirs / 100 * 99
            ),
        )),
        Some(theirs) => Some(finding(Level::Ok, text(theirs))),
        None => None,
    }
}

fn auth_finding(config: &Config, report: &ProbeReport) -> Option<Finding> {
    if config.submission.listen.is_empty() {
        return None;
    }
    let auth = &report.caps.auth;
    let usable = auth.iter().any(|m| m == "PLAIN" || m == "LOGIN");
    let text = format!(
        "AUTH offered by the upstream: {}",
        if auth.is_empty() {
            "none".to_string()
        } else {
            auth.join(" ")
        }
    );
    Some(match usable {
        true => finding(Level::Ok, format!("{text}; submission listeners relay PLAIN/LOGIN")),
        false => finding(Level::Warning, format!("{text}: submission listeners advertise no AUTH, so no user can send (enable SASL in the MTA)")),
    })
}

/// Probes at start. An upstream that relays for outsiders while spamgate
/// has no relay domains stops the start; so does TLS that cannot work
/// (see `upstream.tls`). An unreachable or stalled upstream does not: it
/// is probed again in the background, and until then recipients are held
/// with a 4xx unless `relay_domains` are set.
pub async fn at_start(shared: &Shared) -> Result<(), SetupError> {
    let c = &shared.config;
    let probe = Upstream::probe(&c.upstream, &c.timeouts, &shared.upstream_caps);
    match tokio::time::timeout(c.timeouts.upstream_connect, probe).await {
        Ok(Ok(report)) => apply(shared, &report),
        Ok(Err(error)) if error.is_tls() => {
            shared.metrics.upstream_error(error.kind());
            Err(error.unusable(&c.upstream.address).into())
        }
        Ok(Err(error)) => {
            shared.metrics.upstream_error(error.kind());
            tracing::warn!(upstream = %c.upstream.address, %error, "upstream not reachable at startup; clients will get 451 until it is");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(upstream = %c.upstream.address, "upstream stalled at startup; probing again in the background");
            Ok(())
        }
    }
}

/// Logs the report and records the relay verdict for the sessions.
fn apply(shared: &Shared, report: &ProbeReport) -> Result<(), SetupError> {
    let c = &shared.config;
    log_report(c, report);
    let open = matches!(report.relay, RelayFinding::Relays(_)) && !c.relay.is_on();
    match open {
        true => {
            shared.upstream_caps.set_relay_safety(RelaySafety::Unsafe);
            let error = UpstreamError::OpenRelay {
                address: c.upstream.address.clone(),
                finding: report.relay.to_string(),
            };
            Err(error.into())
        }
        false => {
            shared.upstream_caps.set_relay_safety(RelaySafety::Safe);
            Ok(())
        }
    }
}

/// The start line says what spamgate will do, beside what the upstream offers.
fn log_report(config: &Config, report: &ProbeReport) {
    let caps = &report.caps;
    let tls = report
        .tls
        .as_ref()
        .map(|t| format!("{} {}", t.version, t.cipher));
    tracing::info!(
        upstream = %config.upstream.address,
        xclient = %report.xclient,
        xclient_offered = report.xclient_offered.is_some(),
        relays_for_outsiders = %report.relay,
        relay_domains = config.relay.domains.len(),
        relay_domains_file = config.relay.file.is_some(),
        smtputf8 = caps.smtputf8,
        starttls = report.starttls,
        tls = tls.as_deref().unwrap_or("none"),
        size = caps.size.unwrap_or(0),
        auth = %caps.auth.join(" "),
        "upstream probed"
    );
    for finding in findings(config, report) {
        match finding.level {
            Level::Ok => {}
            Level::Warning => {
                tracing::warn!(upstream = %config.upstream.address, "{}", finding.text)
            }
            Level::Error => {
                tracing::error!(upstream = %config.upstream.address, "{}", finding.text)
            }
        }
    }
}

/// Probes until the upstream answers once, backing off to a minute.
pub async fn until_probed(shared: Arc<Shared>) {
    let mut wait = Duration::ZERO;
    while shared.upstream_caps.relay_safety() == RelaySafety::Unknown {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.shutdown.stop.cancelled() => return,
        }
        let c = &shared.config;
        let probe = Upstream::probe(&c.upstream, &c.timeouts, &shared.upstream_caps);
        if let Ok(Ok(report)) = tokio::time::timeout(c.timeouts.upstream_connect, probe).await {
            if let Err(error) = apply(&shared, &report) {
                tracing::error!(%error, "recipients are held with 451 until this is fixed and spamgate restarted");
            }
        }
        wait = (wait * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    }
}
