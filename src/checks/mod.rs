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
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::config::Config;
use crate::dns::{Dns, DnsError};
use crate::judgement::reply::canned;
use crate::judgement::{CheckTime, Judgement, Outcome};
use crate::metrics::{CheckLabel, Metrics};
use crate::smtp::command::MailParams;
use auth::HeaderField;

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

/// The message at DATA, parsed (MIME structure, header fields, decoded
/// parts) the first time a check asks, then shared: the rules, the
/// classifier and the bulk fingerprints read one parse, not three.
pub struct MessageView<'a> {
    raw: &'a [u8],
    parsed: OnceLock<Option<mail_parser::Message<'a>>>,
    fields: OnceLock<Vec<HeaderField<'a>>>,
}

impl<'a> MessageView<'a> {
    /// `raw`: canonical CRLF, unstuffed, as received.
    pub fn new(raw: &'a [u8]) -> Self {
        MessageView {
            raw,
            parsed: OnceLock::new(),
            fields: OnceLock::new(),
        }
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The parse, made on first use; `None` when it does not parse.
    pub fn parsed(&self) -> Option<&mail_parser::Message<'a>> {
        let parse = || mail_parser::MessageParser::new().parse(self.raw);
        self.parsed.get_or_init(parse).as_ref()
    }

    /// The header section as byte ranges, split on first use: the From,
    /// DKIM, ARC and Authentication-Results checks read one split.
    pub fn header_fields(&self) -> &[HeaderField<'a>] {
        self.fields.get_or_init(|| auth::header_fields(self.raw))
    }
}

/// Everything a check may look at. Fields not yet known at a stage are `None`.
pub struct CheckContext<'a> {
    pub stage: Stage,
    pub client: &'a ClientInfo,
    pub envelope: Option<&'a Envelope>,
    /// The recipient being judged, at the RCPT stage.
    pub rcpt: Option<&'a str>,
    /// The message at the DATA stage, with its shared parse.
    pub view: Option<&'a MessageView<'a>>,
    pub facts: &'a mut Facts,
}

impl<'a> CheckContext<'a> {
    pub fn new(stage: Stage, client: &'a ClientInfo, facts: &'a mut Facts) -> Self {
        CheckContext {
            stage,
            client,
            envelope: None,
            rcpt: None,
            view: None,
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

    pub fn message(mut self, view: &'a MessageView<'a>) -> Self {
        self.view = Some(view);
        self
    }

    /// The message as received (canonical CRLF, unstuffed), at DATA.
    pub fn raw_message(&self) -> Option<&'a [u8]> {
        self.view.map(MessageView::raw)
    }

    /// The message's header fields at DATA; none before.
    pub fn header_fields(&self) -> &'a [HeaderField<'a>] {
        self.view.map_or(&[], MessageView::header_fields)
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
    /// `spamgate_check_duration_seconds` of each check, in the order of
    /// `checks` (looked up once, not per message); empty without metrics.
    timers: Vec<Histogram>,
    /// The metric family `timers` come from, to time checks added later.
    durations: Option<Family<CheckLabel, Histogram>>,
    /// Keep each check's time in the judgement (`spamgate test`); the
    /// proxy's sessions only feed the histograms.
    keep_times: bool,
}

impl Pipeline {
    pub fn new(checks: Vec<Arc<dyn Check>>) -> Self {
        Pipeline {
            checks,
            rules: None,
            bayes: None,
            timers: Vec::new(),
            durations: None,
            keep_times: false,
        }
    }

    /// Keeps each check's time in the judgements, for `spamgate test`.
    pub fn keeping_times(mut self) -> Self {
        self.keep_times = true;
        self
    }

    /// Times every check into `metrics`.
    pub fn timed(mut self, metrics: &Metrics) -> Self {
        self.durations = Some(metrics.check_duration.clone());
        self.retime();
        self
    }

    /// One histogram handle per check, in the order of `checks`.
    fn retime(&mut self) {
        let Some(family) = &self.durations else {
            return;
        };
        let timer = |c: &Arc<dyn Check>| {
            let label = CheckLabel { check: c.name() };
            family.get_or_create(&label).clone()
        };
        self.timers = self.checks.iter().map(timer).collect();
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
        let pipeline = Pipeline {
            checks,
            rules,
            bayes,
            timers: Vec::new(),
            durations: None,
            keep_times: false,
        };
        Ok(pipeline.timed(metrics))
    }

    /// The live rule set, when rule files are configured.
    pub fn rules(&self) -> Option<&crate::rules::RulesHandle> {
        self.rules.as_ref()
    }

    /// Adds the classifier check (offline replay builds its own pipeline).
    pub fn with_bayes(mut self, check: Arc<bayes::BayesCheck>) -> Self {
        self.checks.insert(0, check.clone());
        self.retime();
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
        for (i, check) in self.checks.iter().enumerate() {
            if !check.stages().contains(&stage) {
                continue;
            }
            let started = Instant::now();
            let result = check.check(ctx).await;
            self.record(i, stage, started, judgement);
            match result {
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

    fn record(&self, i: usize, stage: Stage, started: Instant, judgement: &mut Judgement) {
        let took = started.elapsed();
        if let Some(timer) = self.timers.get(i) {
            timer.observe(took.as_secs_f64());
        }
        if self.keep_times {
            let check = self.checks[i].name();
            judgement.times.push(CheckTime { check, stage, took });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judgement::reply::Reply;

    /// A check that sleeps, then scores or refuses.
    struct Slow(&'static str, std::time::Duration, bool);

    #[async_trait]
    impl Check for Slow {
        fn name(&self) -> &'static str {
            self.0
        }
        fn stages(&self) -> &'static [Stage] {
            &[Stage::Mail]
        }
        async fn check(&self, _: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
            tokio::time::sleep(self.1).await;
            Ok(vec![match self.2 {
                true => Outcome::Reject {
                    reply: Reply::new(550, crate::judgement::reply::Status(5, 7, 1), "no"),
                    reason: "refused".into(),
                },
                false => Outcome::AddScore {
                    score: 1.0,
                    reason: "slow".into(),
                },
            }])
        }
    }

    fn client() -> ClientInfo {
        ClientInfo {
            addr: "192.0.2.1:25".parse().unwrap(),
            helo: None,
            esmtp: true,
        }
    }

    #[tokio::test]
    async fn every_check_run_is_timed_into_the_judgement_and_the_histogram() {
        let ms = std::time::Duration::from_millis;
        let checks: Vec<Arc<dyn Check>> = vec![
            Arc::new(Slow("first", ms(3), false)),
            Arc::new(Slow("second", ms(40), true)),
            Arc::new(Slow("never", ms(1), false)),
        ];
        let metrics = Metrics::new();
        let pipeline = Pipeline::new(checks).timed(&metrics).keeping_times();
        let (client, mut facts) = (client(), Facts::default());
        let judgement = pipeline
            .judge(CheckContext::new(Stage::Mail, &client, &mut facts))
            .await;
        let times: Vec<_> = judgement.times.iter().map(|t| t.check).collect();
        // The refusal of "second" ends the stage: "never" does not run.
        assert_eq!(times, ["first", "second"]);
        assert!(judgement.times[0].took >= ms(3));
        assert!(judgement.times[1].took >= ms(40));
        let text = metrics.encode();
        for line in [
            "spamgate_check_duration_seconds_count{check=\"first\"} 1",
            "spamgate_check_duration_seconds_count{check=\"second\"} 1",
            "spamgate_check_duration_seconds_bucket{le=\"0.001\",check=\"first\"} 0",
            "spamgate_check_duration_seconds_bucket{le=\"0.025\",check=\"second\"} 0",
            "spamgate_check_duration_seconds_bucket{le=\"10.0\",check=\"second\"} 1",
            "spamgate_check_duration_seconds_count{check=\"never\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
