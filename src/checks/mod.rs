//! The checks seam: every anti-spam check implements [`Check`] and is run by
//! the [`Pipeline`] at the SMTP stages it asks for. The session never knows
//! which checks exist; it hands over what it learned and gets a
//! [`Judgement`] back.

pub mod auth;
pub mod bayes;
pub mod bulk;
pub mod dnsbl;
pub mod dnslist;
pub mod domain_lists;
pub mod fcrdns;
pub mod greylist;
pub mod helo;
mod ip_lists;
pub mod rate_limit;
pub mod reputation;
pub mod rules;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Config;
use crate::dns::{Dns, DnsError};
use crate::judgement::reply::canned;
use crate::judgement::{Judgement, Outcome};
use crate::metrics::Metrics;
use crate::smtp::command::MailParams;

/// Re-exported from [`crate::judgement`] for the fuzz targets, which name
/// them here.
pub use crate::judgement::{Facts, Stage};
pub use ip_lists::IpLists;

/// What the session knows about the client.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    pub helo: Option<String>,
    pub esmtp: bool,
}

/// The envelope of the transaction under way.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    pub mail_from: String,
    pub params: MailParams,
    pub rcpts: Vec<String>,
}

/// Everything a check may look at. Fields not yet known at a stage are `None`.
pub struct CheckContext<'a> {
    pub stage: Stage,
    pub client: &'a ClientInfo,
    pub envelope: Option<&'a Envelope>,
    /// The recipient being judged, at the RCPT stage.
    pub rcpt: Option<&'a str>,
    /// The message as received (canonical CRLF, unstuffed), at the DATA stage.
    pub message: Option<&'a [u8]>,
    pub facts: &'a mut Facts,
}

impl<'a> CheckContext<'a> {
    pub fn new(stage: Stage, client: &'a ClientInfo, facts: &'a mut Facts) -> Self {
        CheckContext {
            stage,
            client,
            envelope: None,
            rcpt: None,
            message: None,
            facts,
        }
    }

    pub fn envelope(mut self, envelope: &'a Envelope) -> Self {
        self.envelope = Some(envelope);
        self
    }

    pub fn rcpt(mut self, rcpt: &'a str) -> Self {
        self.rcpt = Some(rcpt);
        self
    }

    pub fn message(mut self, message: &'a [u8]) -> Self {
        self.message = Some(message);
        self
    }
}

/// Why the checks could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error("rule files:\n{0}")]
    Rules(#[from] crate::rules::RuleErrors),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("upstream: {0}")]
    Upstream(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Bayes(#[from] crate::bayes::BayesError),
}

#[derive(Debug, thiserror::Error)]
#[error("{check}: {message}")]
pub struct CheckError {
    pub check: &'static str,
    pub message: String,
}

#[async_trait]
pub trait Check: Send + Sync {
    /// A short stable name, used in logs, metrics and `spamgate test`.
    fn name(&self) -> &'static str;
    fn stages(&self) -> &'static [Stage];
    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError>;
}

/// The classifier check when `bayes.enabled`; its database is loaded here.
pub fn bayes_check(
    config: &Config,
    metrics: &Metrics,
) -> Result<Option<Arc<bayes::BayesCheck>>, SetupError> {
    if !config.bayes.enabled {
        return Ok(None);
    }
    Ok(Some(Arc::new(bayes::BayesCheck::new(config, metrics)?)))
}

/// The ordered list of checks. Order matters: authentication runs before
/// the rules that read its results.
#[derive(Clone, Default)]
pub struct Pipeline {
    checks: Vec<Arc<dyn Check>>,
    /// The live rule set, for the reloader.
    rules: Option<crate::rules::RulesHandle>,
    /// The classifier, for autolearn and periodic saves.
    bayes: Option<Arc<bayes::BayesCheck>>,
}

impl Pipeline {
    pub fn new(checks: Vec<Arc<dyn Check>>) -> Self {
        Pipeline {
            checks,
            rules: None,
            bayes: None,
        }
    }

    /// The checks the configuration turns on, sharing one DNS resolver
    /// that reports into `metrics`.
    pub fn from_config(config: &Config, metrics: &Metrics) -> Result<Self, SetupError> {
        let dns = Dns::new(&config.dns, metrics)?;
        let mut checks: Vec<Arc<dyn Check>> = Vec::new();
        let lists = &config.checks.ip_lists;
        if !lists.allow.is_empty() || !lists.deny.is_empty() {
            checks.push(Arc::new(IpLists::new(lists)));
        }
        checks.extend(reputation::checks(config, &dns, metrics)?);
        checks.extend(auth::checks(&config.auth, &config.hostname, &dns));
        let bayes = bayes_check(config, metrics)?;
        checks.extend(bayes.iter().map(|b| b.clone() as Arc<dyn Check>));
        if config.bulk.enabled {
            let counts = crate::bulk::BulkCounts::new(&config.bulk, &config.state)?;
            checks.push(Arc::new(bulk::BulkCheck::new(
                &config.bulk,
                counts,
                metrics,
            )));
        }
        // Last: rules read what every other check found.
        let rules = match config.rules.is_on() {
            true => Some(crate::rules::RulesHandle::load(&config.rules, metrics)?),
            false => None,
        };
        if let Some(handle) = &rules {
            checks.push(Arc::new(rules::RulesCheck::new(handle.clone())));
        }
        Ok(Pipeline {
            checks,
            rules,
            bayes,
        })
    }

    /// The live rule set, when rule files are configured.
    pub fn rules(&self) -> Option<&crate::rules::RulesHandle> {
        self.rules.as_ref()
    }

    /// Adds the classifier check (offline replay builds its own pipeline).
    pub fn with_bayes(mut self, check: Arc<bayes::BayesCheck>) -> Self {
        self.checks.insert(0, check.clone());
        self.bayes = Some(check);
        self
    }

    /// The classifier, when `bayes.enabled`.
    pub fn bayes(&self) -> Option<&Arc<bayes::BayesCheck>> {
        self.bayes.as_ref()
    }

    /// Lets the classifier learn from a message's final judgement (see
    /// [`bayes::BayesCheck::autolearn`]).
    pub fn autolearn(&self, message: &[u8], facts: &Facts, judgement: &Judgement) {
        if let Some(check) = &self.bayes {
            check.autolearn(message, facts, judgement);
        }
    }

    /// Runs every check of `ctx.stage` in order, stopping at the first refusal.
    pub async fn judge(&self, mut ctx: CheckContext<'_>) -> Judgement {
        let mut judgement = Judgement::default();
        self.run(&mut ctx, &mut judgement).await;
        judgement
    }

    async fn run(&self, ctx: &mut CheckContext<'_>, judgement: &mut Judgement) {
        let stage = ctx.stage;
        for check in self.checks.iter().filter(|c| c.stages().contains(&stage)) {
            match check.check(ctx).await {
                Ok(outcomes) => outcomes.into_iter().for_each(|o| {
                    if let Outcome::AddScore { score, .. } = &o {
                        ctx.facts.score += score;
                    }
                    judgement.apply(check.name(), o)
                }),
                Err(error) => {
                    tracing::warn!(check = check.name(), %error, "check failed; tempfailing");
                    judgement.refuse(
                        check.name(),
                        canned::check_failed(check.name()),
                        error.message,
                    );
                }
            }
            if judgement.refusal.is_some() {
                return;
            }
        }
    }
}
