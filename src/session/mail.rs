//! MAIL FROM: open a transaction once our checks and the upstream agree.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State, Transaction, UpstreamSender};
use crate::checks::{CheckContext, Envelope};
use crate::judgement::reply::{canned, Reply};
use crate::judgement::Stage;
use crate::smtp::command::MailParams;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn mail(&mut self, from: String, params: MailParams) -> Flow {
        if let Some(reply) = self.mail_refusal(&from, &params) {
            return self.error(reply);
        }
        let mut tx = self.new_transaction(from, params);
        let ctx =
            CheckContext::new(Stage::Mail, &self.client, &mut tx.facts).envelope(&tx.envelope);
        let judgement = self.shared.pipeline.judge(ctx).await;
        tx.judgement.merge(judgement);
        if let Some(refusal) = tx.judgement.refusal.clone() {
            self.shared.metrics.rejection("mail", refusal.check);
            self.end_transaction(&tx, refusal.label(), Some(&refusal.reply));
            return self.reply(refusal.reply);
        }
        let (reply, sender) = self.relay_mail(&tx.envelope).await;
        if reply.is_positive() {
            if sender == UpstreamSender::Accepted {
                tx.upstream_reply = Some(reply.clone());
            }
            tx.sender = sender;
            self.state = State::Transaction(Box::new(tx));
        }
        self.reply(reply)
    }

    /// Protocol-level reasons to refuse MAIL before anything else runs.
    fn mail_refusal(&self, from: &str, params: &MailParams) -> Option<Reply> {
        let max = self.shared.config.limits.max_message_size;
        match &self.state {
            State::Greeted => return Some(canned::bad_sequence("send HELO or EHLO first")),
            State::Transaction(_) => return Some(canned::bad_sequence("nested MAIL command")),
            State::Ready => {}
        }
        if (self.mode.tls_required || self.mode.submission) && self.tls.is_none() {
            return Some(canned::tls_required());
        }
        if self.mode.submission && self.conn_facts.authenticated.is_none() {
            return Some(canned::auth_required());
        }
        if params.size.is_some_and(|size| size > max as u64) {
            return Some(canned::message_too_big(max));
        }
        if !(from.is_ascii() || params.smtputf8 && self.shared.upstream_caps.smtputf8()) {
            return Some(canned::smtputf8_unavailable());
        }
        if (params.smtputf8 || params.body_8bit) && !self.client.esmtp {
            return Some(canned::bad_sequence("ESMTP parameters need EHLO"));
        }
        None
    }

    fn new_transaction(&mut self, mail_from: String, params: MailParams) -> Transaction {
        self.transactions += 1;
        Transaction {
            id: format!("{}-{}.{}", self.shared.instance, self.id, self.transactions),
            envelope: Envelope {
                mail_from,
                params,
                rcpts: Vec::new(),
            },
            facts: self.conn_facts.clone(),
            judgement: self.conn_judgement.clone(),
            sender: UpstreamSender::Pending,
            upstream_reply: None,
            rcpt_log: Default::default(),
            size: 0,
        }
    }
}
