//! RCPT TO: each recipient is judged by our checks, then by the upstream in
//! real time, so unknown users are refused during the dialogue.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State, UpstreamSender};
use crate::checks::{CheckContext, Stage};
use crate::smtp::reply::canned;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn rcpt(&mut self, to: String) -> Flow {
        let max = self.shared.config.limits.max_recipients;
        let utf8_ok = self.shared.upstream_caps.smtputf8();
        let State::Transaction(tx) = &mut self.state else {
            return self.error(canned::bad_sequence("need MAIL before RCPT"));
        };
        if tx.envelope.rcpts.len() >= max {
            self.shared.metrics.rejection("rcpt", "max_recipients");
            return self.reply(canned::too_many_recipients());
        }
        if !(to.is_ascii() || tx.envelope.params.smtputf8 && utf8_ok) {
            return self.error(canned::smtputf8_unavailable());
        }
        let ctx = CheckContext::new(Stage::Rcpt, &self.client, &mut tx.facts)
            .envelope(&tx.envelope)
            .rcpt(&to);
        let judgement = self.shared.pipeline.judge(ctx).await;
        if let Some(refusal) = judgement.refusal {
            self.shared.metrics.rejection("rcpt", refusal.check);
            tracing::info!(tx = %tx.id, rcpt = %to, check = refusal.check, reply = %refusal.reply, "recipient refused");
            return self.reply(refusal.reply);
        }
        tx.judgement.merge(judgement);
        if let UpstreamSender::Refused(reply) = &tx.sender {
            let reply = reply.clone();
            return self.reply(reply);
        }
        let reply = self.relay_rcpt(&to).await;
        if let (true, State::Transaction(tx)) = (reply.is_positive(), &mut self.state) {
            tx.envelope.rcpts.push(to);
            tx.upstream_reply = Some(reply.clone());
        }
        self.reply(reply)
    }
}
