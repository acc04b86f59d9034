//! One log line per transaction: who, what, and why it ended as it did.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, Transaction};
use crate::smtp::reply::Reply;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Logs and counts the end of a transaction. `verdict` is a closed set:
    /// accept, tag, reject, tempfail, abandoned.
    pub(super) fn end_transaction(
        &self,
        tx: &Transaction,
        verdict: &'static str,
        reply: Option<&Reply>,
    ) {
        self.shared.metrics.transaction(verdict);
        self.log_transaction(tx, verdict, reply);
    }

    pub(super) fn log_transaction(
        &self,
        tx: &Transaction,
        verdict: &'static str,
        reply: Option<&Reply>,
    ) {
        let envelope = &tx.envelope;
        let upstream_tls = self.upstream.as_ref().and_then(|u| u.tls());
        tracing::info!(
            target: "spamgate::transaction",
            tx = %tx.id,
            client = %self.client.addr.ip(),
            helo = self.client.helo.as_deref().unwrap_or(""),
            from = %envelope.mail_from,
            rcpts = %envelope.rcpts.join(","),
            size = tx.size,
            verdict,
            score = tx.judgement.score,
            reason = %tx.judgement.reasons_text(),
            reply = %reply.map(ToString::to_string).unwrap_or_default(),
            upstream = %tx.upstream_reply.as_ref().map(ToString::to_string).unwrap_or_default(),
            upstream_tls = %upstream_tls.map(|t| format!("{} {}", t.version, t.cipher)).unwrap_or_default(),
            "transaction"
        );
    }
}
