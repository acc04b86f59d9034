//! The classifier as a check at DATA: its probability goes into
//! [`Facts::bayes`](super::Facts) (for rules and `spamgate test`), and the
//! configured band it falls in adds its score, named after the band
//! (`BAYES_99`).
//!
//! It also learns by itself when `bayes.autolearn` is on, from messages
//! whose verdict other evidence makes certain: a score without bayes's own
//! share at `spam_score` or more, or at `ham_score` or less with DKIM or
//! DMARC passing. Counting without its own share keeps it from feeding on
//! its own opinion.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::bayes::{Bayes, BayesError, Class};
use crate::config::bayes::BayesConfig;
use crate::config::state::{OnFailure, StateConfig};
use crate::config::Config;
use crate::judgement::reply::canned;
use crate::judgement::{Classification, Facts, Judgement, Outcome, Stage};
use crate::metrics::Metrics;

pub const CHECK_NAME: &str = crate::judgement::BAYES_CHECK;

pub struct BayesCheck {
    bayes: Arc<Bayes>,
    config: BayesConfig,
    on_failure: OnFailure,
    metrics: Metrics,
}

impl BayesCheck {
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Self, BayesError> {
        let redis = match &config.state {
            StateConfig::Redis(r) => Some(r),
            StateConfig::Memory => None,
        };
        let bayes = Bayes::open(&config.bayes, redis)?;
        Ok(BayesCheck {
            bayes: Arc::new(bayes),
            config: config.bayes.clone(),
            on_failure: redis.map_or(OnFailure::FailOpen, |r| r.on_failure),
            metrics: metrics.clone(),
        })
    }

    pub fn bayes(&self) -> &Arc<Bayes> {
        &self.bayes
    }

    fn outcome(&self, c: &Classification) -> &'static str {
        match c.probability {
            None => "abstain",
            Some(p) if p >= 0.8 => "spam",
            Some(p) if p <= 0.2 => "ham",
            Some(_) => "uncertain",
        }
    }

    fn failed(&self, error: BayesError, facts: &mut Facts) -> Result<Vec<Outcome>, CheckError> {
        self.metrics.bayes_classification("error");
        match self.on_failure {
            OnFailure::FailOpen => {
                tracing::warn!(%error, "bayes: classifier unavailable; abstaining");
                facts.bayes = Some(Classification::default());
                Ok(Vec::new())
            }
            OnFailure::Tempfail => Ok(vec![Outcome::Tempfail {
                reply: canned::state_unavailable(),
                reason: error.to_string(),
            }]),
        }
    }

    /// Learns `message` if the verdict is certain without bayes's share.
    /// Runs in the background: the client's reply never waits for it.
    pub fn autolearn(&self, message: &[u8], facts: &Facts, judgement: &Judgement) {
        let Some(class) = autolearn_class(&self.config, facts, judgement) else {
            return;
        };
        let (bayes, metrics, message) =
            (self.bayes.clone(), self.metrics.clone(), message.to_vec());
        tokio::spawn(async move {
            match bayes.learn(&message, class).await {
                Ok(_) => metrics.bayes_autolearn(class.as_str()),
                Err(error) => tracing::warn!(%error, "bayes: autolearn failed"),
            }
        });
    }

    /// Sets the gauges from the backend's totals.
    pub async fn observe_totals(&self) {
        match self.bayes.totals().await {
            Ok(t) => self.metrics.bayes_totals(t.spam, t.ham, t.tokens),
            Err(error) => tracing::debug!(%error, "bayes: totals unavailable"),
        }
    }

    /// Saves the file backend when it changed; logs a failure (the data
    /// stays in memory and the next save tries again).
    pub async fn save(&self) {
        let bayes = self.bayes.clone();
        match tokio::task::spawn_blocking(move || bayes.save()).await {
            Ok(Ok(true)) => tracing::debug!("bayes: database saved"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::error!(%error, "bayes: saving the database failed"),
            Err(error) => tracing::error!(%error, "bayes: save task failed"),
        }
        self.observe_totals().await;
    }

    /// Saves every `save_interval` until `stop`, then once more.
    pub async fn save_periodically(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        self.observe_totals().await;
        let every = self.config.save_interval.max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => self.save().await,
                _ = stop.cancelled() => break,
            }
        }
    }
}

/// The class to learn, or `None` when the evidence is not certain.
fn autolearn_class(config: &BayesConfig, facts: &Facts, judgement: &Judgement) -> Option<Class> {
    let a = &config.autolearn;
    if !a.enabled
        || facts
            .bayes
            .as_ref()
            .is_none_or(|c| c.probability.is_none() && c.total == 0)
    {
        return None;
    }
    let own: f64 = judgement
        .reasons
        .iter()
        .filter(|r| r.check == CHECK_NAME)
        .map(|r| r.score)
        .sum();
    let score = judgement.score - own;
    let refused_by_check = judgement
        .refusal
        .as_ref()
        .is_some_and(|r| r.check != "score");
    if refused_by_check {
        return None;
    }
    let authenticated =
        facts.auth.dkim_result().as_str() == "pass" || facts.auth.dmarc_result().as_str() == "pass";
    match () {
        _ if score >= a.spam_score => Some(Class::Spam),
        _ if score <= a.ham_score && authenticated => Some(Class::Ham),
        _ => None,
    }
}

#[async_trait]
impl Check for BayesCheck {
    fn name(&self) -> &'static str {
        CHECK_NAME
    }

    fn stages(&self) -> &'static [Stage] {
        &[Stage::Data]
    }

    async fn check(&self, ctx: &mut CheckContext<'_>) -> Result<Vec<Outcome>, CheckError> {
        let Some(view) = ctx.view else {
            return Ok(Vec::new());
        };
        let tokens = view
            .parsed()
            .map(crate::bayes::tokenize::tokenize_message)
            .unwrap_or_default();
        let classification = match self.bayes.classify_tokens(tokens).await {
            Ok(c) => c,
            Err(error) => return self.failed(error, ctx.facts),
        };
        self.metrics
            .bayes_classification(self.outcome(&classification));
        let band = classification.probability.and_then(|p| self.config.band(p));
        let outcomes = band
            .map(|b| Outcome::AddScore {
                score: b.score,
                reason: b.name.clone(),
            })
            .into_iter()
            .collect();
        ctx.facts.bayes = Some(classification);
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judgement::Reason;

    #[test]
    fn autolearn_table() {
        let mut config = BayesConfig::default();
        config.autolearn.enabled = true;
        config.autolearn.spam_score = 10.0;
        config.autolearn.ham_score = -2.0;
        let classified = Facts {
            bayes: Some(Classification {
                probability: Some(0.5),
                total: 10,
                ..Classification::default()
            }),
            ..Facts::default()
        };
        let judged = |reasons: Vec<(&'static str, f64)>| Judgement {
            score: reasons.iter().map(|r| r.1).sum(),
            reasons: reasons
                .into_iter()
                .map(|(check, score)| Reason {
                    check,
                    text: String::new(),
                    score,
                })
                .collect(),
            ..Judgement::default()
        };
        let cases = [
            (vec![("rules", 12.0)], Some(Class::Spam)),
            // Pushed over by bayes itself: not learned.
            (vec![("rules", 7.0), (CHECK_NAME, 3.5)], None),
            (vec![("rules", 9.9)], None),
            // Ham needs DKIM or DMARC to pass, which these facts lack.
            (vec![("rules", -5.0)], None),
        ];
        for (reasons, want) in cases {
            let j = judged(reasons.clone());
            assert_eq!(
                autolearn_class(&config, &classified, &j),
                want,
                "{reasons:?}"
            );
        }
        let mut signed = classified.clone();
        signed.auth.dkim.push(crate::judgement::DkimFact {
            result: crate::judgement::AuthResult::Pass,
            domain: "example.com".into(),
            selector: "s".into(),
        });
        assert_eq!(
            autolearn_class(&config, &signed, &judged(vec![("rules", -3.0)])),
            Some(Class::Ham)
        );
        assert_eq!(
            autolearn_class(&config, &signed, &judged(vec![("rules", -1.0)])),
            None
        );
        config.autolearn.enabled = false;
        assert_eq!(
            autolearn_class(&config, &classified, &judged(vec![("rules", 50.0)])),
            None
        );
    }
}
