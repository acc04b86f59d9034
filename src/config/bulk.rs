//! The `bulk` section: fuzzy-fingerprint counting of the same content
//! across sessions (see `src/bulk/` and `docs/bulk.md`). Off by default:
//! it keeps per-content state and needs thresholds fitted to the site.

use std::time::Duration;

use serde::Deserialize;

use super::span::S;
use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBulk {
    pub enabled: Option<bool>,
    pub window: Option<S<String>>,
    pub min_recipients: Option<S<u64>>,
    pub min_clients: Option<S<u64>>,
    pub min_words: Option<S<u64>>,
    pub score: Option<S<f64>>,
    pub max_entries: Option<S<u64>>,
}

#[derive(Debug, Clone)]
pub struct BulkConfig {
    pub enabled: bool,
    /// How long a content's counts last from its first sighting.
    pub window: Duration,
    /// Recipients (over all its messages) that make a content bulk...
    pub min_recipients: u64,
    /// ...sent from at least this many distinct client networks.
    pub min_clients: u64,
    /// Texts with fewer words get no fingerprint.
    pub min_words: usize,
    /// Added to the score of a bulk message.
    pub score: f64,
    /// Band keys kept in memory at most (memory backend).
    pub max_entries: usize,
}

impl Default for BulkConfig {
    fn default() -> Self {
        validate(
            &mut Validator::new(std::path::Path::new("")),
            &RawBulk::default(),
        )
    }
}

/// The most distinct client networks counted per content in memory.
pub const MAX_MIN_CLIENTS: u64 = 64;

pub(super) fn validate(v: &mut Validator, raw: &RawBulk) -> BulkConfig {
    let window = v.duration(
        "bulk.window",
        raw.window.as_ref(),
        Duration::from_secs(3600),
    );
    if let Some(w) = raw
        .window
        .as_ref()
        .filter(|_| window < Duration::from_secs(1))
    {
        v.error_at(w.referenced, "bulk.window", "must be at least 1s");
    }
    let mut n = |key: &str, value: &Option<S<u64>>, default: u64, range: (u64, u64)| {
        v.number(&format!("bulk.{key}"), value.as_ref(), default, range)
    };
    let min_recipients = n("min_recipients", &raw.min_recipients, 20, (1, 10_000_000));
    let min_clients = n("min_clients", &raw.min_clients, 3, (1, MAX_MIN_CLIENTS));
    let min_words = n("min_words", &raw.min_words, 20, (4, 100_000)) as usize;
    let max_entries = n("max_entries", &raw.max_entries, 200_000, (1, 100_000_000)) as usize;
    BulkConfig {
        enabled: raw.enabled.unwrap_or(false),
        window,
        min_recipients,
        min_clients,
        min_words,
        score: score(v, raw),
        max_entries,
    }
}

fn score(v: &mut Validator, raw: &RawBulk) -> f64 {
    let Some(s) = &raw.score else { return 3.0 };
    if !s.value.is_finite() || s.value.abs() > 1000.0 {
        v.error_at(
            s.referenced,
            "bulk.score",
            "must be a number from -1000 to 1000",
        );
        return 3.0;
    }
    s.value
}

#[cfg(test)]
mod tests {
    use crate::config::errors_in;
    use crate::Config;

    #[test]
    fn defaults_and_values() {
        let config = Config::default();
        assert!(!config.bulk.enabled);
        assert_eq!(config.bulk.min_recipients, 20);
        let yaml = "bulk: {enabled: true, window: 10m, min_recipients: 5, min_clients: 2, min_words: 8, score: 2.5, max_entries: 1000}";
        let config = Config::from_yaml(yaml, std::path::Path::new("t.yaml")).unwrap();
        let b = &config.bulk;
        assert!(b.enabled);
        assert_eq!(b.window.as_secs(), 600);
        assert_eq!((b.min_recipients, b.min_clients, b.min_words), (5, 2, 8));
        assert_eq!((b.score, b.max_entries), (2.5, 1000));
    }

    #[test]
    fn every_error_is_reported() {
        let yaml = "bulk:\n  window: 500ms\n  min_recipients: 0\n  min_clients: 65\n  min_words: 2\n  score: .nan\n  max_entries: 0\n";
        let keys: Vec<String> = errors_in(yaml).into_iter().map(|(_, k, _)| k).collect();
        let want = [
            "bulk.window",
            "bulk.min_recipients",
            "bulk.min_clients",
            "bulk.min_words",
            "bulk.score",
            "bulk.max_entries",
        ];
        assert_eq!(keys, want);
        let unknown = errors_in("bulk: {enable: true}");
        assert_eq!(unknown.len(), 1, "{unknown:?}");
    }
}
