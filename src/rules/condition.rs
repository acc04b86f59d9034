//! Compiled conditions and their evaluation. Regex conditions are "atoms":
//! all atoms of a stage are decided in one scan of the message (see
//! [`super::matcher`]) before any condition tree is walked, so walking a
//! tree is a few table look-ups.

use std::net::IpAddr;

use ipnet::IpNet;

use super::content::{Fact, FactSource};
use crate::judgement::{AuthResult, Facts, Stage};

/// What a regex condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Helo,
    Sender,
    Recipient,
    /// A named header, lowercased; each occurrence, RFC 2047 decoded.
    Header(String),
    /// Every header as `Name: decoded value`.
    AnyHeader,
    /// Each text part, decoded, HTML stripped to text.
    Body,
    /// The whole message as received.
    Raw,
    AttachmentName,
    AttachmentType,
}

impl Field {
    /// The earliest stage at which the field is known.
    pub fn first_stage(&self) -> Stage {
        match self {
            Field::Helo => Stage::Helo,
            Field::Sender => Stage::Mail,
            Field::Recipient => Stage::Rcpt,
            _ => Stage::Data,
        }
    }
}

/// Which authentication result a condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Spf,
    Dkim,
    Dmarc,
    Arc,
}

impl AuthMethod {
    pub fn first_stage(self) -> Stage {
        match self {
            AuthMethod::Spf => Stage::Mail,
            _ => Stage::Data,
        }
    }

    fn result(self, facts: &Facts) -> AuthResult {
        match self {
            AuthMethod::Spf => facts.auth.spf_result(),
            AuthMethod::Dkim => facts.auth.dkim_result(),
            AuthMethod::Dmarc => facts.auth.dmarc_result(),
            AuthMethod::Arc => facts.auth.arc_result(),
        }
    }
}

/// The words a result condition may list.
pub const AUTH_WORDS: [AuthResult; 7] = [
    AuthResult::None,
    AuthResult::Pass,
    AuthResult::Fail,
    AuthResult::SoftFail,
    AuthResult::Neutral,
    AuthResult::TempError,
    AuthResult::PermError,
];

/// Inclusive bounds; a missing bound is open.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bounds {
    pub fn contains(&self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }
}

#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// A regex over a field, decided by the scan: index into the stage's atoms.
    Atom(usize),
    ClientIp(Vec<IpNet>),
    Size(Bounds),
    Recipients(Bounds),
    Auth(AuthMethod, Vec<AuthResult>),
    /// Any of these DNS list zones listed the client; empty means any zone.
    Dnsbl(Vec<String>),
    Score(Bounds),
    /// The classifier's probability lies within; false when it abstained.
    Bayes(Bounds),
    /// What the bulk check counted: both bounds absent means "judged bulk".
    Bulk {
        recipients: Option<Bounds>,
        clients: Option<Bounds>,
    },
    /// A content fact of the message within bounds (see [`super::content`]).
    Fact(Fact, Bounds),
}

/// Decides, on first use, the atoms the scan left undecided (regexes
/// without a literal to find them by): a rule whose other conditions
/// already failed never pays for them.
pub trait LazyAtoms {
    /// `None` for an atom the scan decided (read `Env::atoms`).
    fn atom(&self, id: usize) -> Option<bool>;
}

/// What a condition tree is evaluated against.
pub struct Env<'a> {
    pub atoms: &'a [bool],
    /// The atoms decided on demand; `None`: `atoms` holds them all.
    pub lazy: Option<&'a dyn LazyAtoms>,
    pub client_ip: IpAddr,
    pub size: usize,
    pub recipients: usize,
    pub score: f64,
    pub facts: &'a Facts,
    /// The message's content facts, computed on first use; `None` before DATA.
    pub content: Option<&'a dyn FactSource>,
}

impl Env<'_> {
    pub fn atom(&self, id: usize) -> bool {
        let lazy = self.lazy.and_then(|lazy| lazy.atom(id));
        lazy.unwrap_or_else(|| self.atoms[id])
    }
}

impl Condition {
    pub fn eval(&self, env: &Env<'_>) -> bool {
        match self {
            Condition::All(list) => list.iter().all(|c| c.eval(env)),
            Condition::Any(list) => list.iter().any(|c| c.eval(env)),
            Condition::Not(inner) => !inner.eval(env),
            Condition::Atom(id) => env.atom(*id),
            Condition::ClientIp(nets) => nets.iter().any(|n| n.contains(&env.client_ip)),
            Condition::Size(b) => b.contains(env.size as f64),
            Condition::Recipients(b) => b.contains(env.recipients as f64),
            Condition::Auth(method, words) => words.contains(&method.result(env.facts)),
            Condition::Dnsbl(zones) => dnsbl_hit(env.facts, zones),
            Condition::Score(b) => b.contains(env.score),
            Condition::Bayes(b) => bayes_probability(env.facts).is_some_and(|p| b.contains(p)),
            Condition::Bulk {
                recipients,
                clients,
            } => bulk_hit(env.facts, recipients, clients),
            Condition::Fact(fact, b) => env
                .content
                .and_then(|c| c.fact(*fact))
                .is_some_and(|v| b.contains(v)),
        }
    }

    /// An atom that must have matched for the condition to hold, if there
    /// is one: with 10,000 rules, most are skipped on that one look-up.
    pub fn trigger(&self) -> Option<usize> {
        self.trigger_where(|_| true)
    }

    /// [`Self::trigger`], preferring an atom for which `scanned` holds
    /// (one the scan decides, which costs nothing to look up).
    pub fn trigger_where(&self, scanned: impl Fn(usize) -> bool) -> Option<usize> {
        let mut candidates = Vec::new();
        self.required_atoms(&mut candidates);
        let first = candidates.first().copied();
        candidates.into_iter().find(|&id| scanned(id)).or(first)
    }

    /// The atoms that must all have matched for the condition to hold.
    fn required_atoms(&self, out: &mut Vec<usize>) {
        match self {
            Condition::Atom(id) => out.push(*id),
            Condition::All(list) => list.iter().for_each(|c| c.required_atoms(out)),
            _ => {}
        }
    }

    /// True if the tree reads the score, which then depends on rule order.
    pub fn reads_score(&self) -> bool {
        match self {
            Condition::All(list) | Condition::Any(list) => list.iter().any(Condition::reads_score),
            Condition::Not(inner) => inner.reads_score(),
            Condition::Score(_) => true,
            _ => false,
        }
    }
}

fn bayes_probability(facts: &Facts) -> Option<f64> {
    facts.bayes.as_ref().and_then(|c| c.probability)
}

/// The DNS list zones that listed the client, as the reputation checks
/// recorded them: every listing zone, not only one that refuses, so a
/// rule can act on a list that only scores.
fn dnsbl_hit(facts: &Facts, zones: &[String]) -> bool {
    facts
        .dnsbl_zones
        .iter()
        .any(|hit| zones.is_empty() || zones.iter().any(|z| z.eq_ignore_ascii_case(hit)))
}

/// No fingerprint (or the check off) never matches; bounds given are all
/// checked, and without bounds the check's own judgement decides.
fn bulk_hit(facts: &Facts, recipients: &Option<Bounds>, clients: &Option<Bounds>) -> bool {
    let Some(fact) = facts.bulk else {
        return false;
    };
    if recipients.is_none() && clients.is_none() {
        return fact.bulk;
    }
    let within = |b: &Option<Bounds>, v: u64| b.is_none_or(|b| b.contains(v as f64));
    within(recipients, fact.recipients) && within(clients, fact.clients)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_table() {
        let cases = [
            (
                Bounds {
                    min: Some(1.0),
                    max: None,
                },
                1.0,
                true,
            ),
            (
                Bounds {
                    min: Some(1.0),
                    max: None,
                },
                0.5,
                false,
            ),
            (
                Bounds {
                    min: None,
                    max: Some(3.0),
                },
                3.0,
                true,
            ),
            (
                Bounds {
                    min: None,
                    max: Some(3.0),
                },
                3.5,
                false,
            ),
            (
                Bounds {
                    min: Some(-2.0),
                    max: Some(2.0),
                },
                -2.0,
                true,
            ),
            (
                Bounds {
                    min: Some(-2.0),
                    max: Some(2.0),
                },
                2.1,
                false,
            ),
        ];
        for (b, v, want) in cases {
            assert_eq!(b.contains(v), want, "{b:?} {v}");
        }
    }

    #[test]
    fn trigger_table() {
        let score = || Condition::Score(Bounds::default());
        let cases = [
            (Condition::Atom(3), Some(3)),
            (Condition::All(vec![score(), Condition::Atom(2)]), Some(2)),
            (
                Condition::All(vec![
                    Condition::Any(vec![Condition::Atom(1)]),
                    Condition::Atom(4),
                ]),
                Some(4),
            ),
            (
                Condition::Any(vec![Condition::Atom(1), Condition::Atom(2)]),
                None,
            ),
            (Condition::Not(Box::new(Condition::Atom(1))), None),
            (score(), None),
        ];
        for (condition, want) in cases {
            assert_eq!(condition.trigger(), want, "{condition:?}");
        }
        // A scanned atom is preferred, wherever it stands in the list.
        let both = Condition::All(vec![Condition::Atom(1), Condition::Atom(4)]);
        assert_eq!(both.trigger_where(|id| id == 4), Some(4));
        assert_eq!(both.trigger_where(|_| false), Some(1));
    }

    #[test]
    fn tree_table() {
        let facts = Facts::default();
        let atoms = [true, false];
        let env = Env {
            atoms: &atoms,
            lazy: None,
            client_ip: "192.0.2.7".parse().unwrap(),
            size: 100,
            recipients: 2,
            score: 4.0,
            facts: &facts,
            content: None,
        };
        let net = |s: &str| Condition::ClientIp(vec![s.parse().unwrap()]);
        let cases = [
            (Condition::Atom(0), true),
            (Condition::Atom(1), false),
            (Condition::Not(Box::new(Condition::Atom(1))), true),
            (
                Condition::All(vec![Condition::Atom(0), Condition::Atom(1)]),
                false,
            ),
            (
                Condition::Any(vec![Condition::Atom(0), Condition::Atom(1)]),
                true,
            ),
            (Condition::All(vec![]), true),
            (Condition::Any(vec![]), false),
            (net("192.0.2.0/24"), true),
            (net("198.51.100.0/24"), false),
            (
                Condition::Auth(AuthMethod::Spf, vec![AuthResult::None]),
                true,
            ),
            (
                Condition::Auth(AuthMethod::Dmarc, vec![AuthResult::Fail]),
                false,
            ),
            (Condition::Dnsbl(vec![]), false),
            (
                Condition::Score(Bounds {
                    min: Some(4.0),
                    max: None,
                }),
                true,
            ),
            (
                Condition::Recipients(Bounds {
                    min: Some(3.0),
                    max: None,
                }),
                false,
            ),
            (
                Condition::Size(Bounds {
                    min: None,
                    max: Some(100.0),
                }),
                true,
            ),
        ];
        for (condition, want) in cases {
            assert_eq!(condition.eval(&env), want, "{condition:?}");
        }
    }
}
