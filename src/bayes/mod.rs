//! The per-site statistical classifier: it learns what this site's spam
//! and ham look like and gives each message a spam probability.
//!
//! - [`tokenize`]: message → distinct token hashes (words, sparse bigrams,
//!   header fields, link hosts), bounded.
//! - [`combine`]: Robinson's f(w) and Fisher's chi-square combining.
//! - [`db`]: the in-memory database of the file backend, with pruning.
//! - [`file`]: its on-disk format and atomic save.
//! - [`redis`]: the shared backend of a cluster.
//! - [`digest`]: the identity of a message, so learning twice counts once.
//!
//! `spamgate learn` over files, Maildirs and mbox files is an offline tool:
//! [`crate::offline::learn`].
//!
//! The classifier abstains (no probability) until it has learned
//! `min_spam` spam and `min_ham` ham: with less, its opinion is noise.
//! See `docs/classifier.md`.

pub mod combine;
pub mod db;
mod digest;
pub mod file;
mod redis;
pub mod tokenize;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::bayes::{BayesBackend, BayesConfig};
use crate::config::state::RedisConfig;
use crate::judgement::{Classification, TopToken};
use combine::Counts;
pub use db::{ForgetOutcome, LearnOutcome};
pub use digest::digest;
use tokenize::Tokens;

/// How many of the most telling tokens a classification keeps, readable.
pub const TOP_TOKENS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum BayesError {
    #[error("{0}: not a spamgate bayes database (wrong magic bytes); move it away or fix bayes.data_dir")]
    Foreign(PathBuf),
    #[error("{path}: bayes database format version {found}, this spamgate reads version 1")]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path}: corrupt bayes database: {why}; restore a backup or move it away to start empty"
    )]
    Corrupt { path: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bayes redis: {0}")]
    Redis(String),
    #[error(
        "bayes.backend is redis but state.backend is not: set state.backend: redis and state.redis"
    )]
    NoRedis,
}

/// What a message is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// Messages learned per class and distinct tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub spam: u64,
    pub ham: u64,
    pub tokens: u64,
}

struct FileStore {
    path: PathBuf,
    db: RwLock<db::Db>,
    max_tokens: usize,
    dirty: AtomicBool,
}

enum Store {
    File(FileStore),
    Redis(redis::RedisStore),
}

pub struct Bayes {
    store: Store,
    min_spam: u64,
    min_ham: u64,
}

impl Bayes {
    /// Opens the configured backend; the file backend loads its file now,
    /// so a damaged database stops the start with its path named.
    pub fn open(config: &BayesConfig, redis: Option<&RedisConfig>) -> Result<Bayes, BayesError> {
        let store = match config.backend {
            BayesBackend::File => {
                let path = config.file();
                Store::File(FileStore {
                    db: RwLock::new(file::load(&path)?),
                    path,
                    max_tokens: config.max_tokens,
                    dirty: AtomicBool::new(false),
                })
            }
            BayesBackend::Redis => {
                Store::Redis(redis::RedisStore::new(redis.ok_or(BayesError::NoRedis)?)?)
            }
        };
        Ok(Bayes {
            store,
            min_spam: config.min_spam,
            min_ham: config.min_ham,
        })
    }

    /// Whether what is learned lives in this process (and must be saved).
    pub fn is_file(&self) -> bool {
        matches!(self.store, Store::File(_))
    }

    pub async fn classify(&self, raw: &[u8]) -> Result<Classification, BayesError> {
        self.classify_tokens(tokenize::tokenize(raw)).await
    }

    /// [`Bayes::classify`] of the tokens of a message (see
    /// [`tokenize::tokenize_message`] for a message already parsed).
    pub async fn classify_tokens(&self, tokens: Tokens) -> Result<Classification, BayesError> {
        let hashes: Vec<u64> = tokens.hashes().collect();
        let (counts, nspam, nham) = match &self.store {
            Store::File(f) => {
                let db = f.db.read().unwrap_or_else(|e| e.into_inner());
                (db.lookup(hashes.iter().copied()), db.nspam, db.nham)
            }
            Store::Redis(r) => {
                let s = r.lookup(&hashes).await?;
                (s.counts, s.nspam, s.nham)
            }
        };
        Ok(self.combine(&tokens, &counts, nspam, nham))
    }

    fn combine(&self, tokens: &Tokens, counts: &[Counts], nspam: u64, nham: u64) -> Classification {
        let total = tokens.len();
        let known = counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.spam + c.ham > 0)
            .map(|(i, c)| (i, combine::token_probability(*c, nspam, nham)));
        let telling = combine::significant(known);
        let abstain = nspam < self.min_spam || nham < self.min_ham;
        let probs: Vec<f64> = telling.iter().map(|(_, f)| *f).collect();
        Classification {
            probability: (!abstain).then(|| combine::fisher(&probs)),
            counted: telling.len(),
            total,
            tokens: telling
                .iter()
                .take(TOP_TOKENS)
                .map(|(i, f)| TopToken {
                    token: tokens.readable(*i),
                    probability: (f * 1000.0).round() / 1000.0,
                })
                .collect(),
        }
    }

    pub async fn learn(&self, raw: &[u8], class: Class) -> Result<LearnOutcome, BayesError> {
        let digest = digest(raw);
        if let Store::File(f) = &self.store {
            // Re-learning a known corpus costs a digest, not a tokenization.
            let db = f.db.read().unwrap_or_else(|e| e.into_inner());
            if db.messages.get(&digest).is_some_and(|(c, _)| *c == class) {
                return Ok(LearnOutcome::Known);
            }
        }
        let hashes: Vec<u64> = tokenize::tokenize(raw).hashes().collect();
        match &self.store {
            Store::File(f) => {
                let mut db = f.db.write().unwrap_or_else(|e| e.into_inner());
                let outcome = db.learn(digest, &hashes, class, today());
                if outcome != LearnOutcome::Known {
                    f.dirty.store(true, Ordering::Relaxed);
                    bound(&mut db, f.max_tokens);
                }
                Ok(outcome)
            }
            Store::Redis(r) => r.learn(digest, &hashes, class).await,
        }
    }

    pub async fn forget(&self, raw: &[u8]) -> Result<ForgetOutcome, BayesError> {
        let digest = digest(raw);
        let hashes: Vec<u64> = tokenize::tokenize(raw).hashes().collect();
        match &self.store {
            Store::File(f) => {
                let mut db = f.db.write().unwrap_or_else(|e| e.into_inner());
                let outcome = db.forget(digest, &hashes);
                if outcome == ForgetOutcome::Forgotten {
                    f.dirty.store(true, Ordering::Relaxed);
                }
                Ok(outcome)
            }
            Store::Redis(r) => r.forget(digest, &hashes).await,
        }
    }

    /// Writes the file backend's database if it changed since the last
    /// save; true if it wrote. Encoding holds the read lock (classifying
    /// goes on); writing and fsync happen outside it. Redis: nothing to do.
    pub fn save(&self) -> Result<bool, BayesError> {
        let Store::File(f) = &self.store else {
            return Ok(false);
        };
        if !f.dirty.swap(false, Ordering::Relaxed) {
            return Ok(false);
        }
        let bytes = file::encode(&f.db.read().unwrap_or_else(|e| e.into_inner()));
        file::save(&f.path, &bytes).inspect_err(|_| f.dirty.store(true, Ordering::Relaxed))?;
        Ok(true)
    }

    pub async fn totals(&self) -> Result<Totals, BayesError> {
        match &self.store {
            Store::File(f) => {
                let db = f.db.read().unwrap_or_else(|e| e.into_inner());
                Ok(Totals {
                    spam: db.nspam,
                    ham: db.nham,
                    tokens: db.tokens.len() as u64,
                })
            }
            Store::Redis(r) => {
                let (spam, ham, tokens) = r.totals().await?;
                Ok(Totals { spam, ham, tokens })
            }
        }
    }
}

/// Keeps memory bounded: over `max_tokens`, prune to 90% of it (so that
/// pruning, a pass over every token, happens once per 10% of growth); the
/// digest table is held to the same count.
fn bound(db: &mut db::Db, max_tokens: usize) {
    if db.tokens.len() > max_tokens {
        let pruned = db.prune(max_tokens / 10 * 9);
        tracing::info!(
            pruned,
            left = db.tokens.len(),
            "bayes: pruned old rare tokens"
        );
    }
    if db.messages.len() > max_tokens {
        db.prune_messages(max_tokens / 10 * 9);
    }
}

/// Days since the Unix epoch: the coarse last-seen stamp of tokens.
fn today() -> u16 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs / 86_400).min(u64::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, min: u64) -> BayesConfig {
        BayesConfig {
            enabled: true,
            data_dir: dir.to_path_buf(),
            min_spam: min,
            min_ham: min,
            ..BayesConfig::default()
        }
    }

    fn spam(i: usize) -> Vec<u8> {
        format!("Subject: cheap pills {i}\r\nFrom: a@pharma.example\r\n\r\nBuy cheap viagra pills now, best prices online, order {i} today\r\n").into_bytes()
    }

    fn ham(i: usize) -> Vec<u8> {
        format!("Subject: meeting notes {i}\r\nFrom: bob@work.example\r\n\r\nHere are the notes from the project meeting, see the agenda for item {i} tomorrow\r\n").into_bytes()
    }

    #[tokio::test]
    async fn learns_abstains_then_classifies() {
        let dir = tempfile::tempdir().unwrap();
        let bayes = Bayes::open(&config(dir.path(), 5), None).unwrap();
        for i in 0..4 {
            bayes.learn(&spam(i), Class::Spam).await.unwrap();
            bayes.learn(&ham(i), Class::Ham).await.unwrap();
        }
        let early = bayes.classify(&spam(99)).await.unwrap();
        assert_eq!(early.probability, None, "abstains below min_spam/min_ham");
        assert!(early.counted > 0);
        for i in 4..10 {
            bayes.learn(&spam(i), Class::Spam).await.unwrap();
            bayes.learn(&ham(i), Class::Ham).await.unwrap();
        }
        let s = bayes.classify(&spam(99)).await.unwrap();
        let h = bayes.classify(&ham(99)).await.unwrap();
        assert!(s.probability.unwrap() > 0.99, "{s:?}");
        assert!(h.probability.unwrap() < 0.01, "{h:?}");
        assert!(s.tokens.iter().any(|t| t.token.contains("viagra")), "{s:?}");
        assert!(s.tokens.len() <= TOP_TOKENS);
    }

    #[tokio::test]
    async fn bounded_by_max_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let c = BayesConfig {
            max_tokens: 1000,
            ..config(dir.path(), 1)
        };
        let bayes = Bayes::open(&c, None).unwrap();
        for i in 0..200 {
            let words: String = (0..30).map(|j| format!("w{i}x{j} ")).collect();
            let m = format!("Subject: {i}\r\n\r\n{words}\r\n");
            bayes.learn(m.as_bytes(), Class::Spam).await.unwrap();
        }
        assert!(bayes.totals().await.unwrap().tokens <= 1000);
        assert_eq!(bayes.totals().await.unwrap().spam, 200);
    }
}
