//! The bulk check (DATA): fingerprints the message, counts it with its
//! recipients and client network (it counts itself before it is judged),
//! records [`BulkFact`] for rules and the log, and scores content that
//! enough recipients got from enough networks within the window.
//!
//! Allow-listed and authenticated senders are counted (their content is
//! part of what others send) but never scored. Mailing lists are not
//! exempt: a `List-Id` with a DKIM pass costs a spammer one domain; a real
//! list sends from one or a few networks and stays under `min_clients`.
//! See `docs/bulk.md`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::{Check, CheckContext, CheckError};
use crate::bulk::{client_network, fingerprint, BulkCounts, Seen};
use crate::config::bulk::BulkConfig;
use crate::config::state::OnFailure;
use crate::judgement::reply::canned;
use crate::judgement::{BulkFact, Outcome, Stage};
use crate::metrics::{BulkOutcome, Metrics};

pub const CHECK_NAME: &str = "bulk";

/// Milliseconds since the epoch; the check takes its clock as a function
/// so tests can move time.
pub type Clock = fn() -> u64;

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct BulkCheck {
    config: BulkConfig,
    counts: Arc<BulkCounts>,
    metrics: Metrics,
    clock: Clock,
}

impl BulkCheck {
    pub fn new(config: &BulkConfig, counts: Arc<BulkCounts>, metrics: &Metrics) -> Self {
        BulkCheck {
            config: config.clone(),
            counts,
            metrics: metrics.clone(),
            clock: system_ms,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn is_bulk(&self, seen: Seen) -> bool {
        seen.recipients >= self.config.min_recipients && seen.clients >= self.config.min_clients
    }

    fn record(&self, outcome: BulkOutcome) {
        self.metrics
            .bulk_check(outcome.label(), self.counts.entries());
    }

    fn failed(&self, error: crate::bulk::BulkError) -> Vec<Outcome> {
        self.record(BulkOutcome::Error);
        match self.counts.on_failure() {
            OnFailure::FailOpen => {
                tracing::debug!(%error, "bulk counts unavailable; not judged");
                Vec::new()
            }
            OnFailure::Tempfail => vec![Outcome::Tempfail {
                reply: canned::state_unavailable(),
                reason: format!("bulk counts unavailable: {error}"),
            }],
        }
    }
}

#[async_trait]
impl Check for BulkCheck {
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
        let text = view.parsed().map(fingerprint::text_of).unwrap_or_default();
        let Some(print) = fingerprint::of_text(&text, self.config.min_words) else {
            self.record(BulkOutcome::NoFingerprint);
            return Ok(Vec::new());
        };
        let recipients = ctx.envelope.map_or(1, |e| e.rcpts.len().max(1)) as u64;
        let client = client_network(ctx.client.addr.ip());
        let now = (self.clock)();
        let seen = match self.counts.observe(&print, recipients, client, now).await {
            Ok(seen) => seen,
            Err(error) => return Ok(self.failed(error)),
        };
        let bulk = self.is_bulk(seen);
        ctx.facts.bulk = Some(BulkFact {
            recipients: seen.recipients,
            clients: seen.clients,
            bulk,
        });
        self.record(if bulk {
            BulkOutcome::Bulk
        } else {
            BulkOutcome::NotBulk
        });
        let trusted = ctx.facts.allowlisted || ctx.facts.authenticated.is_some();
        if !bulk || trusted || self.config.score == 0.0 {
            return Ok(Vec::new());
        }
        Ok(vec![Outcome::AddScore {
            score: self.config.score,
            reason: format!(
                "same content to {} recipients from {} client networks",
                seen.recipients, seen.clients
            ),
        }])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::checks::{ClientInfo, Envelope, MessageView};
    use crate::config::state::StateConfig;
    use crate::judgement::Facts;

    static NOW: AtomicU64 = AtomicU64::new(0);

    fn now() -> u64 {
        NOW.load(Ordering::Relaxed)
    }

    const TEXT: &str =
        "Subject: limited offer\r\n\r\nYour account has been selected for our limited \
offer of cheap watches and replica bags shipped worldwide at wholesale prices, order today \
and receive a second item free of charge with every purchase over the minimum amount.\r\n";

    fn check() -> BulkCheck {
        let config = BulkConfig {
            enabled: true,
            min_recipients: 3,
            min_clients: 2,
            ..BulkConfig::default()
        };
        let counts = BulkCounts::new(&config, &StateConfig::Memory).unwrap();
        BulkCheck::new(&config, counts, &Metrics::new()).with_clock(now)
    }

    async fn judge(check: &BulkCheck, ip: &str, facts: &mut Facts) -> Vec<Outcome> {
        let client = ClientInfo {
            addr: format!("{ip}:25").parse().unwrap(),
            helo: None,
            esmtp: true,
        };
        let envelope = Envelope {
            rcpts: vec!["a@x.example".into(), "b@x.example".into()],
            ..Envelope::default()
        };
        let view = MessageView::new(TEXT.as_bytes());
        let mut ctx = CheckContext::new(Stage::Data, &client, facts)
            .envelope(&envelope)
            .message(&view);
        check.check(&mut ctx).await.unwrap()
    }

    #[tokio::test]
    async fn window_expiry_and_trusted_senders_through_the_check() {
        let check = check();
        NOW.store(1_000, Ordering::Relaxed);
        let mut facts = Facts::default();
        assert!(judge(&check, "192.0.2.1", &mut facts).await.is_empty());
        assert_eq!(facts.bulk.map(|b| b.bulk), Some(false));
        // Second network, 4 recipients: bulk, but an authenticated sender is not scored.
        facts.authenticated = Some("user".into());
        assert!(judge(&check, "198.51.100.1", &mut facts).await.is_empty());
        assert_eq!(
            facts.bulk.map(|b| (b.recipients, b.clients, b.bulk)),
            Some((4, 2, true))
        );
        let mut facts = Facts::default();
        let scored = judge(&check, "203.0.113.1", &mut facts).await;
        assert!(matches!(scored.as_slice(), [Outcome::AddScore { score, .. }] if *score == 3.0));
        // One window later the counts start again.
        NOW.store(1_000 + 3_600_000, Ordering::Relaxed);
        let mut facts = Facts::default();
        assert!(judge(&check, "203.0.113.1", &mut facts).await.is_empty());
        assert_eq!(facts.bulk.map(|b| (b.recipients, b.clients)), Some((2, 1)));
    }
}
