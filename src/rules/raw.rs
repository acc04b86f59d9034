//! Rule files as written. Every value keeps its location so that the
//! compiler can point at the line of a bad regex or CIDR.

use serde::Deserialize;
use serde_saphyr::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFile {
    pub rules: Vec<S<RawRule>>,
}

/// Only used to find where each rule starts when a file does not parse,
/// so that every broken rule can be reported, not just the first.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSkeleton {
    pub rules: Vec<S<serde::de::IgnoredAny>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    pub name: Option<S<String>>,
    pub description: Option<S<String>>,
    pub stage: Option<S<String>>,
    pub mode: Option<S<String>>,
    pub condition: Option<S<RawCondition>>,
    pub action: Option<S<RawAction>>,
}

/// One condition: exactly one of these keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCondition {
    pub all: Option<Vec<S<RawCondition>>>,
    pub any: Option<Vec<S<RawCondition>>>,
    pub not: Option<Box<S<RawCondition>>>,
    pub client_ip: Option<Vec<S<String>>>,
    pub helo: Option<S<String>>,
    pub sender: Option<S<String>>,
    pub recipient: Option<S<String>>,
    pub header: Option<S<RawHeader>>,
    pub any_header: Option<S<String>>,
    pub body: Option<S<String>>,
    pub raw: Option<S<String>>,
    pub attachment_name: Option<S<String>>,
    pub attachment_type: Option<S<String>>,
    pub size: Option<S<RawRange>>,
    pub recipients: Option<S<RawRange>>,
    pub spf: Option<Vec<S<String>>>,
    pub dkim: Option<Vec<S<String>>>,
    pub dmarc: Option<Vec<S<String>>>,
    pub arc: Option<Vec<S<String>>>,
    pub dnsbl: Option<Vec<S<String>>>,
    pub score: Option<S<RawRange>>,
    /// The classifier's spam probability (bayes).
    pub bayes: Option<S<RawProbability>>,
    pub bulk: Option<S<RawBulk>>,
    pub fact: Option<S<RawFact>>,
}

/// `bulk: {}` (the bulk check judged the content bulk) or bounds on what
/// it counted: `bulk: {recipients: {min: 100}, clients: {min: 10}}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBulk {
    pub recipients: Option<S<RawRange>>,
    pub clients: Option<S<RawRange>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHeader {
    pub name: Option<S<String>>,
    /// Absent: the condition is that the header is present.
    pub regex: Option<S<String>>,
}

/// A probability threshold, inclusive: `above: 0.9` holds for 0.9 and up.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProbability {
    pub above: Option<f64>,
    pub below: Option<f64>,
}

/// A content fact and its bounds (inclusive; at least one is needed).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFact {
    pub name: Option<S<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Bounds, both inclusive; at least one is needed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAction {
    pub score: Option<S<f64>>,
    pub reject: Option<S<RawReply>>,
    pub tempfail: Option<S<RawReply>>,
    pub accept: Option<S<bool>>,
    pub add_header: Option<S<RawAddHeader>>,
}

/// An operator-chosen refusal; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawReply {
    pub code: Option<S<u16>>,
    pub status: Option<S<String>>,
    pub text: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAddHeader {
    pub name: Option<S<String>>,
    pub value: Option<S<String>>,
}
