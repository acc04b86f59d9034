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

use std::borrow::Cow;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, Scoring};
use crate::dns::{Dns, DnsError};
use crate::metrics::Metrics;
use crate::smtp::command::MailParams;
use crate::smtp::reply::{canned, Reply};

pub use ip_lists::IpLists;

/// The SMTP stages at which checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
        }
    }
}

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

/// Results that checks leave for later checks (and for the log).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The client is on an allow list: checks that only judge reputation skip it.
    pub allowlisted: bool,
    /// The user name the upstream accepted in a relayed AUTH (submission
    /// listeners). Authenticated senders skip SPF, DMARC and DNSBL refusals
    /// and are rate-limited per user instead.
    pub authenticated: Option<String>,
    /// The client's name, confirmed by forward-confirmed reverse DNS (sent
    /// upstream as XCLIENT NAME).
    pub client_name: Option<String>,
    /// The DNS list that put the client over the threshold, when the
    /// refusal waits for RCPT so that the envelope is logged.
    pub dnsbl_listed: Option<String>,
    /// Every DNS list zone that listed the client, whatever its weight
    /// (rules' `dnsbl` condition reads it), in configuration order.
    pub dnsbl_zones: Vec<String>,
    /// What the DNS lists said about the client; `None` when not asked.
    pub dnsbl: Option<dnsbl::DnsblResult>,
    /// The rate limits counted so far, in order.
    pub rate_limits: Vec<rate_limit::LimitFact>,
    /// SPF, DKIM, ARC and DMARC results (see [`auth::AuthFacts`]).
    pub auth: auth::AuthFacts,
    /// The score so far: what every check that ran before added (rules
    /// with a `score` condition read it).
    pub score: f64,
    /// The rule set this transaction uses and the rules that matched.
    pub rules: crate::rules::RuleFacts,
    /// The statistical classifier's opinion (bayes check); `None` when it
    /// did not run.
    pub bayes: Option<crate::bayes::Classification>,
    /// What the bulk check counted for this message's content; `None`
    /// when it is off or the text was too short to fingerprint.
    pub bulk: Option<bulk::BulkFact>,
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

/// One effect of a check. A check that returns no outcome lets the session continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Reject {
        reply: Reply,
        reason: String,
    },
    Tempfail {
        reply: Reply,
        reason: String,
    },
    AddHeader {
        name: String,
        value: String,
    },
    AddScore {
        score: f64,
        reason: String,
    },
    /// Leave these bytes of the received message (one whole header field,
    /// its CRLF included) out of what is relayed: for headers a forger
    /// could have added in our name.
    RemoveHeader {
        range: Range<usize>,
    },
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

/// Why a verdict came out as it did: one line per contributing finding.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub check: &'static str,
    pub text: String,
    pub score: f64,
}

impl Reason {
    /// The name listed in `X-Spam-Status: ... tests=`: the rule's name for
    /// a rule hit (its reason text), the check's name otherwise.
    pub fn test_name(&self) -> &str {
        match self.check {
            rules::CHECK_NAME | bayes::CHECK_NAME => &self.text,
            check => check,
        }
    }
}

/// A refusal decided by a check: which one, and what the client is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub check: &'static str,
    pub reply: Reply,
}

impl Refusal {
    pub fn is_temporary(&self) -> bool {
        self.reply.is_transient()
    }

    /// The verdict word for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self.is_temporary() {
            true => "tempfail",
            false => "reject",
        }
    }
}

/// The final word on a message at the end of DATA.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Accept,
    /// Accept, with the spam headers added for the upstream to file on.
    Tag,
    Refuse(Refusal),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Tag => "tag",
            Verdict::Refuse(r) => r.label(),
        }
    }
}

/// The running sum of what the checks found for a connection or transaction.
#[derive(Debug, Clone, Default)]
pub struct Judgement {
    pub score: f64,
    pub reasons: Vec<Reason>,
    pub headers: Vec<(String, String)>,
    /// Byte ranges of the received message not to relay, see [`Outcome::RemoveHeader`].
    pub removed: Vec<Range<usize>>,
    pub refusal: Option<Refusal>,
}

impl Judgement {
    fn apply(&mut self, check: &'static str, outcome: Outcome) {
        match outcome {
            Outcome::Reject { reply, reason } | Outcome::Tempfail { reply, reason } => {
                self.refuse(check, reply, reason)
            }
            Outcome::AddHeader { name, value } => self.headers.push((name, value)),
            Outcome::RemoveHeader { range } => self.removed.push(range),
            Outcome::AddScore { score, reason } => {
                self.score += score;
                self.reasons.push(Reason {
                    check,
                    text: reason,
                    score,
                });
            }
        }
    }

    fn refuse(&mut self, check: &'static str, reply: Reply, text: String) {
        self.reasons.push(Reason {
            check,
            text,
            score: 0.0,
        });
        self.refusal.get_or_insert(Refusal { check, reply });
    }

    /// Adds what a later stage found; the first refusal stands.
    pub fn merge(&mut self, later: Judgement) {
        if self.refusal.is_none() {
            self.refusal = later.refusal;
        }
        self.score += later.score;
        self.reasons.extend(later.reasons);
        self.headers.extend(later.headers);
        self.removed.extend(later.removed);
    }

    /// The message as it is to be relayed: `message` without the removed
    /// ranges (borrowed unchanged when nothing is removed).
    pub fn forwarded<'m>(&self, message: &'m [u8]) -> Cow<'m, [u8]> {
        if self.removed.is_empty() {
            return Cow::Borrowed(message);
        }
        let mut ranges = self.removed.clone();
        ranges.sort_by_key(|r| r.start);
        let mut out = Vec::with_capacity(message.len());
        let mut at = 0;
        for range in ranges {
            let start = range.start.clamp(at, message.len());
            out.extend_from_slice(&message[at..start]);
            at = range.end.clamp(start, message.len());
        }
        out.extend_from_slice(&message[at..]);
        Cow::Owned(out)
    }

    /// Applies the score thresholds once all checks of a message have run.
    pub fn verdict(&self, scoring: &Scoring, reference: &str) -> Verdict {
        if let Some(refusal) = &self.refusal {
            return Verdict::Refuse(refusal.clone());
        }
        if self.score >= scoring.reject_score {
            let reply = canned::spam_rejected(reference);
            return Verdict::Refuse(Refusal {
                check: "score",
                reply,
            });
        }
        match self.score >= scoring.tag_score {
            true => Verdict::Tag,
            false => Verdict::Accept,
        }
    }

    /// The reasons as one log-friendly string.
    pub fn reasons_text(&self) -> String {
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|r| format!("{}: {}", r.check, r.text))
            .collect();
        parts.join("; ")
    }
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
