//! The live rule set. Sessions take an `Arc` of it when a transaction
//! starts (at MAIL) and keep it to the end, so a reload never changes the
//! rules under a message in flight. A reload parses and validates every
//! file first and swaps only a complete, valid set; a broken file keeps
//! the old set running and every error is logged.

use std::sync::{Arc, RwLock};
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::files::{fingerprint, Fingerprint};
use super::{RuleErrors, RuleSet};
use crate::config::rules::RulesConfig;
use crate::metrics::Metrics;

/// Shared access to the current rule set. Cheap to clone.
#[derive(Clone)]
pub struct RulesHandle {
    current: Arc<RwLock<Arc<RuleSet>>>,
    config: Arc<RulesConfig>,
    metrics: Metrics,
}

impl RulesHandle {
    pub fn load(config: &RulesConfig, metrics: &Metrics) -> Result<RulesHandle, RuleErrors> {
        let set = RuleSet::load(config)?;
        metrics.rules_loaded.set(set.len() as i64);
        Ok(RulesHandle {
            current: Arc::new(RwLock::new(Arc::new(set))),
            config: Arc::new(config.clone()),
            metrics: metrics.clone(),
        })
    }

    pub fn current(&self) -> Arc<RuleSet> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard.clone()
    }

    pub fn config(&self) -> &RulesConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Loads the files again; swaps the new set in only if it is valid.
    /// Blocks (regexes compile on threads): call from a blocking context.
    pub fn reload(&self) -> Result<usize, RuleErrors> {
        let started = Instant::now();
        let result = RuleSet::load(&self.config);
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.config_reload_duration.observe(elapsed);
        match result {
            Ok(set) => {
                let count = set.len();
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                self.metrics.rules_loaded.set(count as i64);
                self.metrics.rules_reload("ok");
                tracing::info!(rules = count, seconds = elapsed, "rules reloaded");
                Ok(count)
            }
            Err(errors) => {
                self.metrics.rules_reload("error");
                for e in &errors.0 {
                    tracing::error!(
                        file = %e.file.display(), line = e.line, column = e.column,
                        rule = e.rule.as_deref().unwrap_or(""), error = %e.message,
                        "rule reload failed: {e}"
                    );
                }
                tracing::error!(
                    errors = errors.0.len(),
                    "rules not reloaded; the previous set stays in use"
                );
                Err(errors)
            }
        }
    }

    async fn reload_async(&self) {
        let handle = self.clone();
        let _ = tokio::task::spawn_blocking(move || handle.reload()).await;
    }
}

/// Reloads on every `trigger` change (SIGHUP) and, when `rules.watch` is
/// on, when the files change: the fingerprint (names, sizes, times) is
/// compared every `watch_interval`, and a change is acted on once it has
/// stayed the same for one interval, so a save in several writes (or a
/// batch of edited files) reloads once, complete.
pub async fn watch(
    handle: RulesHandle,
    mut trigger: watch::Receiver<u64>,
    stop: CancellationToken,
) {
    let config = handle.config.clone();
    let mut tick = tokio::time::interval(config.watch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut seen = handle.current().fingerprint().clone();
    let mut pending: Option<Fingerprint> = None;
    let mut signals = true;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = trigger.changed(), if signals => {
                signals = changed.is_ok();
                if signals {
                    seen = fingerprint(&config.files);
                    pending = None;
                    handle.reload_async().await;
                }
            }
            _ = tick.tick(), if config.watch => {
                let now = fingerprint(&config.files);
                if now == seen {
                    pending = None;
                } else if pending.as_ref() == Some(&now) {
                    seen = now;
                    pending = None;
                    handle.reload_async().await;
                } else {
                    pending = Some(now);
                }
            }
        }
    }
}
