//! The connect stage: connection checks, then the banner or a refusal
//! (after which the connection is closed, as postscreen does).
//!
//! With `reputation.greet_delay` set, the banner waits that long while the
//! connection checks run, and a client that talks in the meantime is
//! refused: real MTAs wait for the greeting, spambots often do not.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session};
use crate::checks::CheckContext;
use crate::judgement::reply::canned;
use crate::judgement::Stage;
use crate::smtp::codec::SmtpStream;

/// What the client did while we held the banner back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreGreet {
    Quiet,
    Talked,
    HungUp,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn connect(&mut self) -> Flow {
        let delay = self.shared.config.reputation.greet_delay;
        let max = self.shared.config.limits.max_command_line;
        let ctx = CheckContext::new(Stage::Connect, &self.client, &mut self.conn_facts);
        let (judgement, pregreet) = tokio::join!(
            self.shared.pipeline.judge(ctx),
            watch_pregreet(&mut self.stream, delay, max)
        );
        match pregreet {
            PreGreet::HungUp => return Flow::Close,
            PreGreet::Talked => return self.early_talker(),
            PreGreet::Quiet => {}
        }
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

    fn early_talker(&mut self) -> Flow {
        self.shared.metrics.rejection("connect", "early_talker");
        tracing::info!("client talked before the greeting; refused");
        self.stream.discard_input();
        self.reply(canned::early_talker());
        Flow::Close
    }
}

/// Waits `delay` (none when zero), noticing any byte the client sends.
async fn watch_pregreet<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut SmtpStream<S>,
    delay: Duration,
    max: usize,
) -> PreGreet {
    if delay.is_zero() {
        return PreGreet::Quiet;
    }
    match tokio::time::timeout(delay, stream.read_line(max)).await {
        Ok(Ok(_)) => PreGreet::Talked,
        Ok(Err(_)) => PreGreet::HungUp,
        // A partial line without its CRLF is talking too.
        Err(_) if stream.has_buffered_input() => PreGreet::Talked,
        Err(_) => PreGreet::Quiet,
    }
}
