//! The offline tools, which judge stored mail without a client or an
//! upstream:
//!
//! - here, `spamgate test`: the whole check pipeline on one message and
//!   envelope, so that an operator can see why a message gets the verdict
//!   it gets. The stages run in the order a session runs them (connect,
//!   HELO, MAIL, each RCPT, DATA) with the same facts passed along; the
//!   first refusal ends the run, as it would end the transaction.
//! - [`replay`]: `spamgate replay`, every stored message through the
//!   checks, with verdicts and rule hits (recall and false positives with
//!   labelled mail).
//! - [`learn`]: `spamgate learn`, the classifier trained on stored mail.

pub mod learn;
pub mod replay;

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::checks::{CheckContext, ClientInfo, Envelope, MessageView, Pipeline, SetupError};
use crate::config::Config;
use crate::judgement::reply::Reply;
use crate::judgement::{Facts, Judgement, Refusal, Stage, Verdict};
use crate::metrics::Metrics;

/// The envelope and message to judge.
#[derive(Debug, Clone)]
pub struct TestInput {
    pub ip: IpAddr,
    pub helo: String,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The message as read from the file; bare LF line ends become CRLF,
    /// as they would on the wire.
    pub message: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonReport {
    pub check: &'static str,
    pub text: String,
    pub score: f64,
}

/// What `spamgate test` prints. Checks that leave facts add a field here
/// and fill it in [`TestReport::add_facts`].
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// `accept`, `tag`, `reject` or `tempfail`.
    pub verdict: &'static str,
    /// The SMTP reply code the client would get at the deciding stage.
    pub code: u16,
    pub reply: String,
    /// The stage that decided: `data` unless a check refused earlier.
    pub stage: &'static str,
    pub score: f64,
    pub spf: &'static str,
    pub dkim: &'static str,
    pub dmarc: &'static str,
    pub arc: &'static str,
    pub reasons: Vec<ReasonReport>,
    /// The header fields that would be prepended to the relayed message.
    pub added_headers: Vec<String>,
    /// Every rule that matched, in the order the rules ran.
    pub rules: Vec<RuleReport>,
    /// The DNS lists' answers about the client; `null` when none was asked.
    pub dnsbl: Option<crate::judgement::DnsblResult>,
    /// Every rate limit counted, with its key and result.
    pub rate_limits: Vec<crate::judgement::LimitFact>,
    /// The classifier's probability (`null`: abstained) and its most
    /// telling tokens; `null` when `bayes` is off.
    pub bayes: Option<crate::judgement::Classification>,
    /// What the bulk check counted (this message alone, offline); `null`
    /// when it is off or the text has no fingerprint.
    pub bulk: Option<crate::judgement::BulkFact>,
    /// Each check that ran, by stage, with its time in microseconds (DNS
    /// waits included; the first run of a check also pays its warm-up).
    pub times: Vec<TimeReport>,
}

/// One check's run at one stage in `spamgate test`.
#[derive(Debug, Clone, Serialize)]
pub struct TimeReport {
    pub check: &'static str,
    pub stage: &'static str,
    pub micros: f64,
}

impl From<&crate::judgement::CheckTime> for TimeReport {
    fn from(t: &crate::judgement::CheckTime) -> Self {
        TimeReport {
            check: t.check,
            stage: t.stage.as_str(),
            micros: (t.took.as_secs_f64() * 1e7).round() / 10.0,
        }
    }
}

/// One rule hit in `spamgate test`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleReport {
    pub name: String,
    pub stage: &'static str,
    pub score: f64,
    /// `enforce`, or `monitor` (counted, not acted on).
    pub mode: &'static str,
}

impl TestReport {
    fn new(stage: Stage, judgement: &Judgement, verdict: &Verdict, facts: &Facts) -> Self {
        let reply = match verdict {
            Verdict::Refuse(Refusal { reply, .. }) => reply.clone(),
            _ => Reply::new(250, crate::judgement::reply::Status(2, 0, 0), "Accepted"),
        };
        let mut report = TestReport {
            verdict: verdict.label(),
            code: reply.code,
            reply: reply.to_string(),
            stage: stage.as_str(),
            score: judgement.score,
            spf: "none",
            dkim: "none",
            dmarc: "none",
            arc: "none",
            reasons: judgement.reasons.iter().map(reason).collect(),
            added_headers: judgement
                .headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}"))
                .collect(),
            rules: Vec::new(),
            dnsbl: None,
            rate_limits: Vec::new(),
            bayes: None,
            bulk: None,
            times: judgement.times.iter().map(TimeReport::from).collect(),
        };
        report.add_facts(facts);
        report
    }

    /// Copies what the checks found into the report.
    fn add_facts(&mut self, facts: &Facts) {
        let auth = &facts.auth;
        self.spf = auth.spf_result().as_str();
        self.dkim = auth.dkim_result().as_str();
        self.dmarc = auth.dmarc_result().as_str();
        self.arc = auth.arc_result().as_str();
        self.rules = facts.rules.hits.iter().map(rule_report).collect();
        self.dnsbl = facts.dnsbl.clone();
        self.rate_limits = facts.rate_limits.clone();
        self.bayes = facts.bayes.clone();
        self.bulk = facts.bulk;
    }
}

fn rule_report(hit: &crate::judgement::RuleHit) -> RuleReport {
    RuleReport {
        name: hit.name.clone(),
        stage: hit.stage.as_str(),
        score: hit.score,
        mode: if hit.monitor { "monitor" } else { "enforce" },
    }
}

fn reason(r: &crate::judgement::Reason) -> ReasonReport {
    ReasonReport {
        check: r.check,
        text: r.text.clone(),
        score: r.score,
    }
}

/// Builds the configured pipeline and judges `input` with it.
pub async fn run(config: &Config, input: &TestInput) -> Result<TestReport, SetupError> {
    let pipeline = Pipeline::from_config(config, &Metrics::new())?.keeping_times();
    Ok(judge(&pipeline, config, input).await)
}

/// Runs every stage; stops at the first refusal.
pub async fn judge(pipeline: &Pipeline, config: &Config, input: &TestInput) -> TestReport {
    let mut run = Run::new(input);
    for stage in [Stage::Connect, Stage::Helo, Stage::Mail] {
        if run.stage(pipeline, stage, None).await.is_some() {
            return run.report(stage, config);
        }
    }
    let mut accepted = 0;
    for rcpt in &input.rcpts {
        let refused = run.stage(pipeline, Stage::Rcpt, Some(rcpt)).await;
        accepted += usize::from(refused.is_none());
    }
    if accepted == 0 {
        return run.report(Stage::Rcpt, config);
    }
    run.judgement.refusal = None;
    let message = canonical(&input.message);
    run.data(pipeline, &message).await;
    run.report(Stage::Data, config)
}

/// The state one session would carry.
struct Run {
    helo: String,
    client: ClientInfo,
    envelope: Envelope,
    facts: Facts,
    judgement: Judgement,
}

impl Run {
    fn new(input: &TestInput) -> Self {
        Run {
            helo: input.helo.clone(),
            client: ClientInfo {
                addr: SocketAddr::new(input.ip, 0),
                helo: None,
                esmtp: true,
            },
            envelope: Envelope {
                mail_from: input.mail_from.clone(),
                rcpts: input.rcpts.clone(),
                ..Envelope::default()
            },
            facts: Facts::default(),
            judgement: Judgement::default(),
        }
    }

    /// Runs one stage before DATA; returns the refusal, if any.
    async fn stage(
        &mut self,
        pipeline: &Pipeline,
        stage: Stage,
        rcpt: Option<&str>,
    ) -> Option<Refusal> {
        if stage == Stage::Helo {
            self.client.helo = Some(self.helo.clone());
        }
        let mut ctx = CheckContext::new(stage, &self.client, &mut self.facts);
        if matches!(stage, Stage::Mail | Stage::Rcpt) {
            ctx = ctx.envelope(&self.envelope);
        }
        if let Some(rcpt) = rcpt {
            ctx = ctx.rcpt(rcpt);
        }
        let judgement = pipeline.judge(ctx).await;
        let refusal = judgement.refusal.clone();
        match (stage, &refusal) {
            // A refused recipient is dropped; the others go on.
            (Stage::Rcpt, Some(_)) => {
                self.judgement.reasons.extend(judgement.reasons);
                self.judgement.times.extend(judgement.times);
            }
            _ => self.judgement.merge(judgement),
        }
        if stage == Stage::Rcpt && refusal.is_some() && self.judgement.refusal.is_none() {
            self.judgement.refusal = refusal.clone();
        }
        refusal
    }

    async fn data(&mut self, pipeline: &Pipeline, message: &[u8]) {
        let view = MessageView::new(message);
        let ctx = CheckContext::new(Stage::Data, &self.client, &mut self.facts)
            .envelope(&self.envelope)
            .message(&view);
        let judgement = pipeline.judge(ctx).await;
        self.judgement.merge(judgement);
    }

    fn report(&self, stage: Stage, config: &Config) -> TestReport {
        let verdict = self.judgement.verdict(&config.scoring, "offline");
        TestReport::new(stage, &self.judgement, &verdict, &self.facts)
    }
}

/// Every line end as CRLF, as the DATA reader hands messages to checks.
pub fn canonical(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bulk_counts_are_reported() {
        let yaml = "dns: {nameservers: ['127.0.0.1:9'], timeout: 300ms, attempts: 1}\n\
auth: {spf: {mode: off}, dkim: {mode: off}, arc: {mode: off}, dmarc: {mode: off}}\n\
bulk: {enabled: true, min_recipients: 2, min_clients: 1, min_words: 8}\n";
        let config = Config::from_yaml(yaml, std::path::Path::new("t.yaml")).unwrap();
        let input = TestInput {
            ip: "192.0.2.1".parse().unwrap(),
            helo: "client.example".into(),
            mail_from: "a@example.org".into(),
            rcpts: vec!["b@example.net".into(), "c@example.net".into()],
            message: b"From: a@example.org\nSubject: offer\n\nCheap watches and bags shipped worldwide at wholesale prices today.\n".to_vec(),
        };
        let report = run(&config, &input).await.unwrap();
        let bulk = report.bulk.expect("a bulk fact");
        assert_eq!((bulk.recipients, bulk.clients, bulk.bulk), (2, 1, true));
        assert!(
            report.reasons.iter().any(|r| r.check == "bulk"),
            "{:?}",
            report.reasons
        );
    }

    #[test]
    fn canonical_line_ends() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"\n", b"\r\n"),
            (b"a\r\n\nb", b"a\r\n\r\nb"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical(input), *want);
        }
    }
}
