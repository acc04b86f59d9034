//! The session's side of the lockstep relay: every upstream exchange goes
//! through here, and every upstream failure becomes a 4xx and a clean state.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, State, Transaction, UpstreamSender};
use crate::checks::Envelope;
use crate::judgement::reply::{canned, Reply};
use crate::upstream::{self, timed, ClientIdentity, Upstream, UpstreamError};

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Opens the upstream session if there is none (so an unreachable
    /// upstream still answers MAIL), then relays MAIL: right away, or with
    /// the first RCPT when the upstream offers PIPELINING, as Postfix's
    /// own smtpd_delay_reject judges the sender at RCPT time.
    pub(super) async fn relay_mail(&mut self, envelope: &Envelope) -> (Reply, UpstreamSender) {
        if self.upstream.is_none() {
            match self.open_upstream().await {
                Ok(upstream) => self.upstream = Some(upstream),
                Err(error) => {
                    let reply = self.upstream_lost(error, canned::upstream_unavailable());
                    return (reply, UpstreamSender::Pending);
                }
            }
        }
        let upstream = self.upstream.as_mut().expect("opened above");
        if upstream.capabilities().pipelining {
            return (canned::sender_ok(), UpstreamSender::Pending);
        }
        let result = timed(upstream.mail(&envelope.mail_from, &envelope.params)).await;
        self.shared.metrics.upstream_latency("mail", result.elapsed);
        let reply = result
            .value
            .unwrap_or_else(|error| self.upstream_lost(error, canned::upstream_failed()));
        (reply, UpstreamSender::Accepted)
    }

    /// Relays RCPT, preceded in the same write by the MAIL still pending.
    /// A refused MAIL answers this and every later RCPT. Says who answered:
    /// the upstream, or spamgate when the upstream failed.
    pub(super) async fn relay_rcpt(&mut self, to: &str) -> (Reply, &'static str) {
        let (State::Transaction(tx), Some(upstream)) = (&self.state, self.upstream.as_mut()) else {
            return (canned::upstream_failed(), "upstream_error");
        };
        let (from, params) = (&tx.envelope.mail_from, &tx.envelope.params);
        let result = match tx.sender {
            UpstreamSender::Pending => timed(upstream.mail_rcpt(from, params, to)).await,
            _ => timed(upstream.rcpt_only(to)).await,
        };
        self.shared.metrics.upstream_latency("rcpt", result.elapsed);
        match result.value {
            Ok(replies) => (self.learn_sender(replies), "upstream"),
            Err(error) => (
                self.upstream_lost(error, canned::upstream_failed()),
                "upstream_error",
            ),
        }
    }

    /// Records the upstream's word on MAIL, when it came with this RCPT,
    /// and picks the reply the client gets.
    fn learn_sender(&mut self, replies: upstream::RcptReplies) -> Reply {
        let State::Transaction(tx) = &mut self.state else {
            return replies.rcpt;
        };
        match replies.mail {
            Some(mail) if !mail.is_positive() => {
                tx.sender = UpstreamSender::Refused(mail.clone());
                tx.upstream_reply = Some(mail.clone());
                mail
            }
            Some(_) => {
                tx.sender = UpstreamSender::Accepted;
                tx.upstream_reply = Some(replies.rcpt.clone());
                replies.rcpt
            }
            None => {
                tx.upstream_reply = Some(replies.rcpt.clone());
                replies.rcpt
            }
        }
    }

    /// Sends the message; the reply is the upstream's own final word, or a
    /// 4xx if we cannot know it (never a 250 we did not receive).
    pub(super) async fn relay_data(&mut self, headers: &[u8], body: &[u8]) -> Reply {
        let Some(upstream) = self.upstream.as_mut() else {
            return canned::upstream_failed();
        };
        let result = timed(upstream.data(headers, body)).await;
        self.shared.metrics.upstream_latency("data", result.elapsed);
        result
            .value
            .unwrap_or_else(|error| self.upstream_lost(error, canned::upstream_failed()))
    }

    pub(super) async fn open_upstream(&self) -> Result<Upstream, UpstreamError> {
        let config = &self.shared.config;
        let identity = ClientIdentity {
            addr: self.client.addr.ip(),
            port: self.client.addr.port(),
            name: self.conn_facts.client_name.clone(),
            helo: self.client.helo.clone(),
            esmtp: self.client.esmtp,
        };
        // Boxed: the connect future holds a whole TLS handshake, and every
        // session's future would otherwise carry that room while idle.
        let result = timed(Box::pin(Upstream::connect(
            &config.upstream,
            &config.timeouts,
            &identity,
            &self.shared.upstream_caps,
        )))
        .await;
        let metrics = &self.shared.metrics;
        metrics.upstream_latency("connect", result.elapsed);
        metrics.upstream_connection(result.value.is_ok());
        if let Some(outcome) = upstream::tls_outcome(config.upstream.tls.mode, &result.value) {
            metrics.upstream_tls(outcome);
        }
        result.value
    }

    /// Forgets the upstream after a failure; the transaction dies with it.
    pub(super) fn upstream_lost(&mut self, error: UpstreamError, reply: Reply) -> Reply {
        self.shared.metrics.upstream_error(error.kind());
        match error.is_setup() {
            true => tracing::error!(%error, reply = %reply, "upstream unusable"),
            false => tracing::warn!(%error, reply = %reply, "upstream failure"),
        }
        self.upstream = None;
        if let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Ready) {
            self.end_transaction(&tx, "tempfail", Some(&reply));
        }
        reply
    }

    /// Ends the open transaction, if any, on both sides.
    pub(super) async fn abort_transaction(&mut self, why: &str) {
        let State::Transaction(tx) = std::mem::replace(&mut self.state, State::Ready) else {
            return;
        };
        tracing::debug!(tx = %tx.id, why, "transaction abandoned");
        self.end_transaction(&tx, "abandoned", None);
        // Only an accepted MAIL left a transaction open upstream.
        if tx.sender == UpstreamSender::Accepted {
            self.reset_upstream().await;
        }
    }

    /// RSET upstream so the next transaction starts clean; on failure the
    /// upstream session is dropped and reopened at the next MAIL.
    pub(super) async fn reset_upstream(&mut self) {
        let Some(upstream) = self.upstream.as_mut() else {
            return;
        };
        if let Err(error) = upstream.rset().await {
            self.shared.metrics.upstream_error(error.kind());
            tracing::warn!(%error, "upstream RSET failed; dropping upstream session");
            self.upstream = None;
        }
    }

    pub(super) fn close_transaction(&mut self) -> Option<Transaction> {
        match std::mem::replace(&mut self.state, State::Ready) {
            State::Transaction(tx) => Some(*tx),
            other => {
                self.state = other;
                None
            }
        }
    }
}
