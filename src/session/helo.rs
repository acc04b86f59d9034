//! HELO and EHLO: the client introduces itself; EHLO also resets any
//! transaction (RFC 5321 §4.1.4) and lists our extensions.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State};
use crate::checks::CheckContext;
use crate::judgement::reply::canned;
use crate::judgement::Stage;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn helo(&mut self, domain: String, esmtp: bool) -> Flow {
        self.abort_transaction("new EHLO").await;
        self.client.helo = Some(domain);
        self.client.esmtp = esmtp;
        let ctx = CheckContext::new(Stage::Helo, &self.client, &mut self.conn_facts);
        let judgement = self.shared.pipeline.judge(ctx).await;
        if let Some(refusal) = judgement.refusal {
            self.shared.metrics.rejection("helo", refusal.check);
            tracing::info!(check = refusal.check, reply = %refusal.reply, "HELO refused");
            self.client.helo = None;
            self.state = State::Greeted;
            return self.reply(refusal.reply);
        }
        self.conn_judgement.merge(judgement);
        self.state = State::Ready;
        let config = &self.shared.config;
        let client_name = self.client.helo.as_deref().unwrap_or_default();
        let reply = match esmtp {
            true => canned::ehlo(&config.hostname, self.extensions()),
            false => canned::helo(&config.hostname, client_name),
        };
        self.reply(reply)
    }

    fn extensions(&self) -> Vec<String> {
        let mut extensions = vec![
            "PIPELINING".to_string(),
            format!("SIZE {}", self.shared.config.limits.max_message_size),
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        if self.shared.upstream_caps.smtputf8() {
            extensions.push("SMTPUTF8".to_string());
        }
        if self.shared.tls.is_some() && self.tls.is_none() {
            extensions.push("STARTTLS".to_string());
        }
        if self.mode.submission && self.tls.is_some() {
            extensions.extend(self.auth_extension());
        }
        extensions
    }

    /// The mechanisms we relay (their user names can be logged) that the
    /// upstream offers: advertising one it lacks would only earn the client
    /// a 504. Before the upstream is known, both.
    fn auth_extension(&self) -> Option<String> {
        const RELAYED: [&str; 2] = ["PLAIN", "LOGIN"];
        let offered = self.shared.upstream_caps.auth();
        let usable: Vec<&str> = RELAYED
            .into_iter()
            .filter(|m| offered.as_ref().is_none_or(|o| o.iter().any(|x| x == m)))
            .collect();
        (!usable.is_empty()).then(|| format!("AUTH {}", usable.join(" ")))
    }
}
