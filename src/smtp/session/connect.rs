//! The connect stage: connection checks, then the banner or a refusal
//! (after which the connection is closed, as postscreen does).

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::checks::{CheckContext, Stage};
use crate::smtp::reply::canned;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn connect(&mut self) -> Flow {
        let ctx = CheckContext::new(Stage::Connect, &self.client, &mut self.conn_facts);
        let judgement = self.shared.pipeline.judge(ctx).await;
        if let Some(refusal) = &judgement.refusal {
            self.shared.metrics.rejection("connect", refusal.check);
            let reasons = judgement.reasons_text();
            tracing::info!(check = refusal.check, reply = %refusal.reply, %reasons, "connection refused");
            self.reply(refusal.reply.clone());
            return Flow::Close;
        }
        self.conn_judgement = judgement;
        self.reply(canned::greeting(&self.shared.config.smtp.banner))
    }
}
