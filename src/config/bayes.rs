//! The `bayes` section: the per-site statistical classifier (see
//! `docs/classifier.md`): where it keeps what it learned, when it starts
//! giving an opinion, what each band of probability scores, and whether
//! it learns by itself from verdicts that other evidence makes certain.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::span::S;
use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBayes {
    pub enabled: Option<bool>,
    pub backend: Option<S<String>>,
    pub data_dir: Option<S<String>>,
    pub min_spam: Option<S<u64>>,
    pub min_ham: Option<S<u64>>,
    pub max_tokens: Option<S<u64>>,
    pub save_interval: Option<S<String>>,
    pub scores: Option<S<Vec<S<RawBand>>>>,
    pub autolearn: RawAutolearn,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBand {
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub score: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawAutolearn {
    pub enabled: Option<bool>,
    pub spam_score: Option<S<f64>>,
    pub ham_score: Option<S<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BayesBackend {
    /// One file under `data_dir`, in memory while running.
    File,
    /// The `state.redis` server, shared by every instance.
    Redis,
}

/// Which side of a threshold a band covers (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Side {
    Above(f64),
    Below(f64),
}

/// A probability band and the score it adds; its name (`BAYES_99`,
/// `BAYES_05`) is the Reason and the test name in `X-Spam-Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub side: Side,
    pub score: f64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Autolearn {
    pub enabled: bool,
    /// Learn as spam at this score or more, counted without bayes.
    pub spam_score: f64,
    /// Learn as ham at this score or less (without bayes), when DKIM or
    /// DMARC passed too.
    pub ham_score: f64,
}

/// The database's file name inside `bayes.data_dir`.
pub const FILE_NAME: &str = "bayes.db";

#[derive(Debug, Clone)]
pub struct BayesConfig {
    pub enabled: bool,
    pub backend: BayesBackend,
    pub data_dir: PathBuf,
    pub min_spam: u64,
    pub min_ham: u64,
    pub max_tokens: usize,
    pub save_interval: Duration,
    /// Most extreme first on each side: the first band that holds applies.
    pub scores: Vec<Band>,
    pub autolearn: Autolearn,
}

impl Default for BayesConfig {
    fn default() -> Self {
        BayesConfig {
            enabled: false,
            backend: BayesBackend::File,
            data_dir: PathBuf::from("/var/lib/spamgate"),
            min_spam: 200,
            min_ham: 200,
            max_tokens: 1_000_000,
            save_interval: Duration::from_secs(300),
            scores: default_bands(),
            autolearn: Autolearn {
                enabled: false,
                spam_score: 10.0,
                ham_score: -2.0,
            },
        }
    }
}

/// The defaults, from the probability distribution measured on the
/// SpamAssassin corpus (docs/classifier.md): ham almost never reaches 0.99,
/// spam almost never goes below 0.05. The top band stays under the default
/// `tag_score` (5): the classifier tags only with other evidence. The
/// small BAYES_80 and BAYES_50 scores help the rules with spam the
/// classifier leans to but cannot be sure of: on the validation split
/// (docs/classifier.md) they tagged 3 more of 381 spam and no more ham.
fn default_bands() -> Vec<Band> {
    [
        (Side::Above(0.99), 4.5),
        (Side::Above(0.95), 3.0),
        (Side::Above(0.80), 2.0),
        (Side::Above(0.50), 1.0),
        (Side::Below(0.01), -2.0),
        (Side::Below(0.05), -1.0),
    ]
    .into_iter()
    .map(|(side, score)| band(side, score))
    .collect()
}

fn band(side: Side, score: f64) -> Band {
    let threshold = match side {
        Side::Above(t) | Side::Below(t) => t,
    };
    let percent = (threshold * 100.0).round() as u32;
    Band {
        side,
        score,
        name: format!("BAYES_{percent:02}"),
    }
}

impl BayesConfig {
    /// The band that `probability` falls in: the most extreme one that holds.
    pub fn band(&self, probability: f64) -> Option<&Band> {
        self.scores.iter().find(|b| match b.side {
            Side::Above(t) => probability >= t,
            Side::Below(t) => probability <= t,
        })
    }

    /// The database file of the file backend.
    pub fn file(&self) -> PathBuf {
        self.data_dir.join(FILE_NAME)
    }
}

pub fn validate(
    v: &mut Validator,
    raw: &RawBayes,
    config_file: &Path,
    reject_score: f64,
) -> BayesConfig {
    let d = BayesConfig::default();
    let choices = [("file", BayesBackend::File), ("redis", BayesBackend::Redis)];
    let base = config_file.parent().unwrap_or(Path::new(""));
    let data_dir = raw.data_dir.as_ref().map_or(d.data_dir.clone(), |p| {
        if p.value.trim().is_empty() {
            v.error_at(p.referenced, "bayes.data_dir", "is empty");
        }
        base.join(p.value.trim())
    });
    let interval = v.duration(
        "bayes.save_interval",
        raw.save_interval.as_ref(),
        d.save_interval,
    );
    if let Some(s) = raw
        .save_interval
        .as_ref()
        .filter(|_| interval < Duration::from_secs(1))
    {
        v.error_at(s.referenced, "bayes.save_interval", "must be at least 1s");
    }
    let million = 1_000_000;
    BayesConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        backend: v.choice("bayes.backend", raw.backend.as_ref(), &choices, d.backend),
        data_dir,
        min_spam: v.number(
            "bayes.min_spam",
            raw.min_spam.as_ref(),
            d.min_spam,
            (1, million),
        ),
        min_ham: v.number(
            "bayes.min_ham",
            raw.min_ham.as_ref(),
            d.min_ham,
            (1, million),
        ),
        max_tokens: v.number(
            "bayes.max_tokens",
            raw.max_tokens.as_ref(),
            1_000_000,
            (1000, 100 * million),
        ) as usize,
        save_interval: interval,
        scores: bands(v, raw.scores.as_ref()),
        autolearn: autolearn(v, &raw.autolearn, reject_score),
    }
}

fn bands(v: &mut Validator, raw: Option<&S<Vec<S<RawBand>>>>) -> Vec<Band> {
    let Some(list) = raw else {
        return default_bands();
    };
    let mut out: Vec<Band> = list.value.iter().filter_map(|b| one_band(v, b)).collect();
    // Most extreme first: high thresholds of `above`, low ones of `below`.
    let key = |b: &Band| match b.side {
        Side::Above(t) => (0, -t),
        Side::Below(t) => (1, t),
    };
    out.sort_by(|a, b| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

fn one_band(v: &mut Validator, raw: &S<RawBand>) -> Option<Band> {
    let b = &raw.value;
    let at = raw.referenced;
    let side = match (b.above, b.below) {
        (Some(t), None) => Side::Above(t),
        (None, Some(t)) => Side::Below(t),
        _ => {
            v.error_at(at, "bayes.scores", "give exactly one of 'above' or 'below'");
            return None;
        }
    };
    let threshold = match side {
        Side::Above(t) | Side::Below(t) => t,
    };
    if !(0.0..=1.0).contains(&threshold) {
        v.error_at(
            at,
            "bayes.scores",
            format!("threshold {threshold} is not between 0 and 1"),
        );
        return None;
    }
    match b.score {
        Some(score) if score.is_finite() => Some(band(side, score)),
        _ => {
            v.error_at(at, "bayes.scores", "'score' (a finite number) is missing");
            None
        }
    }
}

fn autolearn(v: &mut Validator, raw: &RawAutolearn, reject_score: f64) -> Autolearn {
    let spam_score = raw.spam_score.as_ref().map_or(reject_score, |s| s.value);
    if let Some(s) = raw
        .spam_score
        .as_ref()
        .filter(|s| s.value < reject_score || !s.value.is_finite())
    {
        let message = format!(
            "{} is below scoring.reject_score ({reject_score}): only certain spam may be learned",
            s.value
        );
        v.error_at(s.referenced, "bayes.autolearn.spam_score", message);
    }
    let ham_score = raw.ham_score.as_ref().map_or(-2.0, |s| s.value);
    if let Some(s) = raw
        .ham_score
        .as_ref()
        .filter(|s| s.value > 0.0 || !s.value.is_finite())
    {
        let message = format!("{} is above 0: only certain ham may be learned", s.value);
        v.error_at(s.referenced, "bayes.autolearn.ham_score", message);
    }
    Autolearn {
        enabled: raw.enabled.unwrap_or(false),
        spam_score,
        ham_score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<BayesConfig, Vec<String>> {
        let raw: RawBayes = serde_saphyr::from_str(yaml).unwrap();
        let mut v = Validator::new(Path::new("/etc/spamgate/spamgate.yaml"));
        let config = validate(&mut v, &raw, Path::new("/etc/spamgate/spamgate.yaml"), 10.0);
        match v.errors.is_empty() {
            true => Ok(config),
            false => Err(v.errors.iter().map(ToString::to_string).collect()),
        }
    }

    #[test]
    fn defaults_and_bands() {
        let c = parse("enabled: true\ndata_dir: db\n").unwrap();
        assert!(c.enabled);
        assert_eq!(c.data_dir, PathBuf::from("/etc/spamgate/db"));
        assert_eq!(c.file(), PathBuf::from("/etc/spamgate/db/bayes.db"));
        let cases = [
            (0.995, Some("BAYES_99")),
            (0.97, Some("BAYES_95")),
            (0.85, Some("BAYES_80")),
            (0.5, Some("BAYES_50")),
            (0.3, None),
            (0.03, Some("BAYES_05")),
            (0.001, Some("BAYES_01")),
        ];
        for (p, want) in cases {
            assert_eq!(c.band(p).map(|b| b.name.as_str()), want, "{p}");
        }
        let c = parse(
            "scores: [{below: 0.2, score: -1}, {above: 0.5, score: 1}, {above: 0.9, score: 2}]",
        )
        .unwrap();
        assert_eq!(c.band(0.95).map(|b| b.score), Some(2.0));
        assert_eq!(c.band(0.6).map(|b| b.score), Some(1.0));
        assert_eq!(c.autolearn.spam_score, 10.0);
    }

    #[test]
    fn errors_table() {
        let cases = [
            ("backend: sqlite", "not one of"),
            ("min_spam: 0", "out of range"),
            ("max_tokens: 10", "out of range"),
            ("save_interval: 10ms", "at least 1s"),
            (
                "scores: [{above: 0.9, below: 0.1, score: 1}]",
                "exactly one",
            ),
            ("scores: [{above: 1.5, score: 1}]", "between 0 and 1"),
            ("scores: [{above: 0.5}]", "'score'"),
            ("autolearn: {spam_score: 5}", "below scoring.reject_score"),
            ("autolearn: {ham_score: 1}", "above 0"),
        ];
        for (yaml, want) in cases {
            let errors = parse(yaml).unwrap_err();
            assert!(errors[0].contains(want), "{yaml}: {errors:?}");
        }
        let all = parse("backend: x\nmin_ham: 0\nautolearn: {ham_score: 3}").unwrap_err();
        assert_eq!(all.len(), 3, "{all:?}");
    }
}
