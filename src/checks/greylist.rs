//! Greylisting at RCPT: the first attempt of a (client network, sender,
//! recipient) triplet is deferred; a retry after the delay passes and
//! confirms the triplet for `expiry`. Real MTAs retry; most spam software
//! does not.
//!
//! The network rather than the address is used because large senders
//! retry from another host of the same pool.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::config::reputation::GreylistConfig;
use crate::config::state::OnFailure;
use crate::judgement::reply::canned;
use crate::judgement::{AuthResult, Facts, Outcome, SpfIdentity, Stage};
use crate::metrics::Metrics;
use crate::state::network;
use crate::state::SharedState;

pub struct Greylist {
    config: GreylistConfig,
    state: Arc<SharedState>,
    metrics: Metrics,
}

/// The hook for sender authentication: a sender that proved itself is
/// not greylisted. At RCPT only SPF is known (DKIM and the From domain it
/// aligns with come with DATA), so an SPF pass for the MAIL FROM domain
/// is what counts; a client that logged in (submission) counts too.
pub fn sender_authenticated(facts: &Facts) -> bool {
    let spf = facts.auth.spf.as_ref();
    let spf_pass =
        spf.is_some_and(|s| s.result == AuthResult::Pass && s.identity == SpfIdentity::MailFrom);
    spf_pass || facts.authenticated.is_some()
}

impl Greylist {
    pub fn new(config: &GreylistConfig, state: Arc<SharedState>, metrics: &Metrics) -> Self {
        Greylist {
            config: config.clone(),
            state,
            metrics: metrics.clone(),
        }
    }

    fn triplet(&self, ctx: &CheckContext<'_>) -> Option<String> {
        let net = network(
            ctx.client.addr.ip(),
            self.config.ipv4_prefix,
            self.config.ipv6_prefix,
        );
        let sender = ctx.envelope?.mail_from.to_ascii_lowercase();
        let rcpt = ctx.rcpt?.to_ascii_lowercase();
        Some(format!("{net}|{sender}|{rcpt}"))
    }

    fn skip(&self, ctx: &CheckContext<'_>) -> bool {
        ctx.facts.allowlisted || sender_authenticated(ctx.facts)
    }
}

#[async_trait]
impl Check for Greylist {
    fn name(&self) -> &'static str {
        "greylist"
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Rcpt]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        if self.skip(ctx) {
            self.metrics.greylist_result("skipped");
            return Ok(Vec::new());
        }
        let Some(triplet) = self.triplet(ctx) else {
            return Ok(Vec::new());
        };
        let result = match self.state.greylist(&triplet).await {
            Ok(result) => result,
            Err(error) => {
                self.metrics.greylist_result("error");
                return Ok(match self.state.on_failure() {
                    OnFailure::FailOpen => Vec::new(),
                    OnFailure::Tempfail => vec![Outcome::Tempfail {
                        reply: canned::state_unavailable(),
                        reason: format!("greylist not checked: {error}"),
                    }],
                });
            }
        };
        self.metrics.greylist_result(result.label());
        Ok(match result.passes() {
            true => Vec::new(),
            false => vec![Outcome::Tempfail {
                reply: canned::greylisted(),
                reason: format!("greylisted ({})", result.label()),
            }],
        })
    }
}
