//! What a judgement is made of: the vocabulary that the session, the
//! checks, the rule engine and the offline tools share. It sits at the
//! bottom of the module graph and uses no other module of the crate.
//!
//! - [`Stage`]: the SMTP stages at which checks run.
//! - [`Facts`]: what checks leave for later checks, the rules and the log,
//!   the authentication results ([`AuthFacts`], [`AuthResult`]) among them.
//! - [`Outcome`]: one effect of a check; [`Judgement`]: the running sum of
//!   outcomes; [`Verdict`]: the final word, by the [`Scoring`] thresholds.
//! - [`reply`]: every SMTP reply spamgate sends.

mod auth;
mod facts;
pub mod reply;

use std::borrow::Cow;
use std::ops::Range;

pub use auth::{AuthFacts, AuthResult, DkimFact, DmarcFact, Policy, SpfFact, SpfIdentity};
pub use facts::{
    BulkFact, Classification, DnsblResult, Facts, LimitFact, Listing, RuleFacts, RuleHit, TopToken,
    ZoneError,
};
use reply::{canned, Reply};

/// The rules check's name: its reasons are named by the rule that matched
/// (see [`Reason::test_name`]).
pub const RULES_CHECK: &str = "rules";
/// The classifier check's name: its reasons are named by the probability
/// band the message fell in.
pub const BAYES_CHECK: &str = "bayes";

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
            RULES_CHECK | BAYES_CHECK => &self.text,
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

/// How long one check took at one stage, DNS waits included: the cost of
/// a verdict is explainable too (`spamgate test` prints these).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckTime {
    pub check: &'static str,
    pub stage: Stage,
    pub took: std::time::Duration,
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
    /// Each check that ran, in order, with its time (when the pipeline
    /// keeps them: `spamgate test`).
    pub times: Vec<CheckTime>,
}

impl Judgement {
    /// Adds one outcome of `check`.
    pub(crate) fn apply(&mut self, check: &'static str, outcome: Outcome) {
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

    /// Records a refusal by `check`; the first one stands.
    pub(crate) fn refuse(&mut self, check: &'static str, reply: Reply, text: String) {
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
        self.times.extend(later.times);
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

/// The score thresholds a [`Judgement::verdict`] applies (`scoring` in the
/// configuration).
#[derive(Debug, Clone)]
pub struct Scoring {
    pub tag_score: f64,
    pub reject_score: f64,
}
