//! The facts checks leave for later checks (the rules read them), for the
//! log and for `spamgate test`: one field of [`Facts`] per kind.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use super::auth::AuthFacts;
use super::Stage;

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
    pub dnsbl: Option<DnsblResult>,
    /// The rate limits counted so far, in order.
    pub rate_limits: Vec<LimitFact>,
    /// SPF, DKIM, ARC and DMARC results (see [`AuthFacts`]).
    pub auth: AuthFacts,
    /// The score so far: what every check that ran before added (rules
    /// with a `score` condition read it).
    pub score: f64,
    /// The rule set this transaction uses and the rules that matched.
    pub rules: RuleFacts,
    /// The statistical classifier's opinion (bayes check); `None` when it
    /// did not run.
    pub bayes: Option<Classification>,
    /// What the bulk check counted for this message's content; `None`
    /// when it is off or the text was too short to fingerprint.
    pub bulk: Option<BulkFact>,
}

/// The zones that listed the client and the weights they add up to (kept
/// in [`Facts::dnsbl`] for the log and `spamgate test`).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct DnsblResult {
    pub score: f64,
    /// In configuration order.
    pub listed: Vec<Listing>,
    pub errors: Vec<ZoneError>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listing {
    pub zone: String,
    pub weight: f64,
    /// The answers that counted, e.g. `127.0.0.2+127.0.0.4`.
    pub answers: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneError {
    pub zone: String,
    /// `error_answer`, `outside_loopback`, `timeout`, `servfail`, `other`.
    pub kind: &'static str,
}

/// One limit counted for this session (kept in [`Facts::rate_limits`]
/// for the log and `spamgate test`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitFact {
    pub name: String,
    pub key: String,
    /// `allowed`, `limited`, or `error` (the state backend failed).
    pub result: &'static str,
}

/// What the rules did in a transaction, kept in [`Facts`]: the set the
/// transaction started with, and every hit (for logs and `spamgate test`).
#[derive(Clone, Default)]
pub struct RuleFacts {
    /// The `rules::RuleSet` the transaction started with. Held opaque, so
    /// that the vocabulary does not depend on the rule engine: the rules
    /// check pins it and downcasts it back.
    pub set: Option<Arc<dyn Any + Send + Sync>>,
    /// The `accept` rule that ended rule evaluation, if any.
    pub accepted: Option<String>,
    pub hits: Vec<RuleHit>,
}

impl fmt::Debug for RuleFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleFacts")
            .field("accepted", &self.accepted)
            .field("hits", &self.hits)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleHit {
    pub name: String,
    pub stage: Stage,
    /// The rule's score (counted only when enforced).
    pub score: f64,
    /// Evaluated in monitor mode: counted, not acted on.
    pub monitor: bool,
}

/// One of the tokens that weighed most, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopToken {
    pub token: String,
    /// Its f(w): near 1 spammy, near 0 hammy.
    pub probability: f64,
}

/// The classifier's opinion of one message.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Classification {
    /// `None`: the classifier abstains (too little learned yet).
    pub probability: Option<f64>,
    /// Tokens combined (the telling ones, at most 150).
    pub counted: usize,
    /// Distinct tokens in the message.
    pub total: usize,
    /// The most telling tokens, strongest first.
    pub tokens: Vec<TopToken>,
}

/// What the bulk check found (in [`Facts::bulk`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BulkFact {
    /// Recipients of this content within the window, this message's included.
    pub recipients: u64,
    /// Distinct client networks (/24, /64) that sent it.
    pub clients: u64,
    /// Both over the configured thresholds.
    pub bulk: bool,
}
