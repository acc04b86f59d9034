//! RCPT TO: each recipient is judged by our relay control and checks, then
//! by the upstream in real time, so unknown users are refused during the
//! dialogue. Every answer goes into the transaction's RCPT log.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State, UpstreamSender};
use crate::checks::CheckContext;
use crate::judgement::reply::{canned, Reply};
use crate::judgement::Stage;
use crate::upstream::RelaySafety;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn rcpt(&mut self, to: String) -> Flow {
        if let Some((reply, by)) = self.rcpt_refusal(&to) {
            return self.refuse_rcpt(&to, reply, by);
        }
        if let Some((reply, by)) = self.judge_rcpt(&to).await {
            return self.refuse_rcpt(&to, reply, by);
        }
        if let State::Transaction(tx) = &mut self.state {
            if let UpstreamSender::Refused(reply) = &tx.sender {
                let reply = reply.clone();
                tx.rcpt_log.record(&to, &reply, "upstream");
                return self.reply(reply);
            }
        }
        let (reply, by) = self.relay_rcpt(&to).await;
        if let State::Transaction(tx) = &mut self.state {
            tx.rcpt_log.record(&to, &reply, by);
            if reply.is_positive() {
                tx.envelope.rcpts.push(to);
            }
        }
        self.reply(reply)
    }

    /// Protocol and relay reasons to refuse, before any check runs.
    fn rcpt_refusal(&self, to: &str) -> Option<(Reply, &'static str)> {
        let State::Transaction(tx) = &self.state else {
            return Some((canned::bad_sequence("need MAIL before RCPT"), "sequence"));
        };
        if tx.envelope.rcpts.len() >= self.shared.config.limits.max_recipients {
            return Some((canned::too_many_recipients(), "max_recipients"));
        }
        let utf8_ok = tx.envelope.params.smtputf8 && self.shared.upstream_caps.smtputf8();
        if !(to.is_ascii() || utf8_ok) {
            return Some((canned::smtputf8_unavailable(), "smtputf8"));
        }
        self.relay_denial(to).map(|reply| (reply, "relay"))
    }

    /// spamgate's own relay control: the upstream may trust our address,
    /// so a recipient outside `relay_domains` never reaches it, unless the
    /// client authenticated (submission). Without relay domains the
    /// upstream decides alone, once the probe found that it refuses
    /// outsiders; until then (or if it would relay) recipients are held.
    fn relay_denial(&self, to: &str) -> Option<Reply> {
        let relay = &self.shared.relay;
        if self.conn_facts.authenticated.is_some() {
            return None;
        }
        if !relay.is_on() {
            let safety = self.shared.upstream_caps.relay_safety();
            return (safety != RelaySafety::Safe).then(canned::relay_held);
        }
        let denial = relay.current().judge(to).err()?;
        tracing::info!(rcpt = %to, why = denial.as_str(), "relay access denied");
        Some(canned::relay_denied(to))
    }

    /// The checks of the RCPT stage; a refusal names its check.
    async fn judge_rcpt(&mut self, to: &str) -> Option<(Reply, &'static str)> {
        let State::Transaction(tx) = &mut self.state else {
            return None;
        };
        let ctx = CheckContext::new(Stage::Rcpt, &self.client, &mut tx.facts)
            .envelope(&tx.envelope)
            .rcpt(to);
        let judgement = self.shared.pipeline.judge(ctx).await;
        if let Some(refusal) = judgement.refusal {
            tracing::info!(tx = %tx.id, rcpt = %to, check = refusal.check, reply = %refusal.reply, "recipient refused");
            return Some((refusal.reply, refusal.check));
        }
        tx.judgement.merge(judgement);
        None
    }

    /// Counts, logs and sends a refusal of ours. Protocol errors count
    /// towards the bad-command limit, as before.
    fn refuse_rcpt(&mut self, to: &str, reply: Reply, by: &'static str) -> Flow {
        if let State::Transaction(tx) = &mut self.state {
            tx.rcpt_log.record(to, &reply, by);
        }
        match by {
            "sequence" | "smtputf8" => self.error(reply),
            _ => {
                self.shared.metrics.rejection("rcpt", by);
                self.reply(reply)
            }
        }
    }
}
