//! Builds the client-reputation checks the configuration turns on, sharing
//! one state backend (memory or Redis) between rate limits, greylisting
//! and the DNS list cache.

use std::sync::Arc;

use super::dnsbl::Dnsbl;
use super::dnslist::ListLookup;
use super::domain_lists::DomainLists;
use super::fcrdns::Fcrdns;
use super::greylist::Greylist;
use super::helo::HeloChecks;
use super::rate_limit::RateLimits;
use super::Check;
use crate::config::Config;
use crate::dns::Dns;
use crate::metrics::Metrics;
use crate::state::{SharedState, StateError};

/// In pipeline order: limits before lookups, so a flood costs no DNS.
pub fn checks(
    config: &Config,
    dns: &Dns,
    metrics: &Metrics,
) -> Result<Vec<Arc<dyn Check>>, StateError> {
    let state = Arc::new(SharedState::new(config, metrics)?);
    Ok(with_state(config, dns, metrics, state))
}

/// Like [`checks`], on a state the caller made (the benchmark warms its cache).
pub fn with_state(
    config: &Config,
    dns: &Dns,
    metrics: &Metrics,
    state: Arc<SharedState>,
) -> Vec<Arc<dyn Check>> {
    let rep = &config.reputation;
    let mut checks: Vec<Arc<dyn Check>> = Vec::new();
    if !rep.rate_limits.limits.is_empty() {
        checks.push(Arc::new(RateLimits::new(
            &rep.rate_limits,
            state.clone(),
            metrics,
        )));
    }
    let d = &rep.dnsbl;
    let lookup = ListLookup::new(dns.clone(), state.clone(), metrics, d.miss_ttl, d.max_ttl);
    if !d.zones.is_empty() {
        checks.push(Arc::new(Dnsbl::new(d, lookup.clone())));
    }
    if rep.fcrdns.enabled {
        checks.push(Arc::new(Fcrdns::new(&rep.fcrdns, dns.clone())));
    }
    if rep.helo.enabled {
        checks.push(Arc::new(HeloChecks::new(
            &rep.helo,
            &config.hostname,
            &config.listen,
        )));
    }
    if !rep.domain_lists.zones.is_empty() {
        checks.push(Arc::new(DomainLists::new(&rep.domain_lists, lookup)));
    }
    if rep.greylist.enabled {
        checks.push(Arc::new(Greylist::new(&rep.greylist, state, metrics)));
    }
    checks
}
