//! Sender authentication: who a message is really from.
//!
//! SPF runs at MAIL FROM (and optionally HELO); at the end of DATA the From
//! header is checked, every DKIM signature and the ARC chain are verified,
//! DMARC (RFC 7489) is evaluated from those results, and an
//! Authentication-Results header (RFC 8601) is added. Results go into
//! [`AuthFacts`](crate::judgement::AuthFacts) so that later checks (the rules)
//! can test them.
//!
//! SPF, DKIM and DMARC are verified by code of our own, on the process's
//! shared resolver: SPF for the RFC 7208 suite's edge cases, DKIM for its
//! cost (one header split, streamed body hashes, keys parsed once:
//! [`dkim_verify`]), DMARC because `mail-auth` 0.15 implements the DMARCbis
//! tree walk and drops `pct`, while RFC 7489 wants the public suffix list
//! and `pct`. ARC chains are `mail-auth`'s, or ours ([`arc_verify`]) where
//! it reads a signature differently from the ARC test suite.

mod arc_rules;
mod arc_verify;
mod canon;
mod dkim_verify;
mod dmarc;
mod headers;
mod keys;
mod message;
mod results;
mod spf;
mod tags;

use std::sync::Arc;

use super::Check;
use crate::config::auth::AuthConfig;
use crate::dns::Dns;
use crate::judgement::AuthResult;
use crate::metrics::Metrics;

pub use arc_verify::validate as validate_arc_chain;
pub use dmarc::{org_domain, DmarcCheck, DmarcRecord};
pub use headers::{header_fields, HeaderField};
pub use keys::{KeySource, Keys, RecordKeys};

/// Every DKIM signature of `message` with keys from `keys`, at `now`
/// (seconds since the epoch): the DKIM check's verification without its
/// resolver, for benchmarks.
pub async fn verify_dkim(
    keys: &impl KeySource,
    message: &[u8],
    now: u64,
) -> Vec<crate::judgement::DkimFact> {
    dkim_verify::verify_all(keys, message, &header_fields(message), now).await
}
pub use message::{ArcCheck, DkimCheck, FromHeaderCheck};
pub use results::AuthResultsCheck;
pub use spf::SpfCheck;

/// The authentication checks the configuration turns on, in the order
/// their results are needed: SPF, From, DKIM, ARC, DMARC, then the header.
pub fn checks(config: &AuthConfig, hostname: &str, dns: &Dns) -> Vec<Arc<dyn Check>> {
    let config = Arc::new(config.clone());
    let keys = Arc::new(Keys::default());
    let mut out: Vec<Arc<dyn Check>> = Vec::new();
    if config.spf.mode.is_on() {
        out.push(Arc::new(SpfCheck::new(
            config.clone(),
            hostname,
            dns.clone(),
        )));
    }
    if config.from_header.is_on() || config.dmarc.mode.is_on() {
        out.push(Arc::new(FromHeaderCheck::new(
            config.clone(),
            dns.metrics(),
        )));
    }
    if config.dkim.mode.is_on() {
        out.push(Arc::new(DkimCheck::new(
            config.clone(),
            dns.clone(),
            keys.clone(),
        )));
    }
    if config.arc.mode.is_on() {
        out.push(Arc::new(ArcCheck::new(config.clone(), dns.clone(), keys)));
    }
    if config.dmarc.mode.is_on() {
        out.push(Arc::new(DmarcCheck::new(config.clone(), dns.clone())));
    }
    out.push(Arc::new(AuthResultsCheck::new(config)));
    out
}

/// Counts one result in `spamgate_auth_results_total`.
fn count(metrics: &Metrics, method: &'static str, result: AuthResult) {
    metrics.auth_result(method, result.as_str());
}
