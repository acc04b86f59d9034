//! AUTH on submission listeners (RFC 4954), relayed to the upstream in
//! lockstep: the upstream holds the accounts and answers every step; we only
//! make sure it happens under TLS and remember who succeeded.

use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State};
use crate::judgement::reply::{canned, Reply};
use crate::smtp::codec::Line;

/// RFC 4954 §4: an AUTH response line may be up to 12288 octets.
const MAX_AUTH_LINE: usize = 12_288;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn auth(&mut self, mechanism: String, initial: Option<String>) -> Flow {
        if let Some(reply) = self.auth_refusal() {
            return self.error(reply);
        }
        if self.upstream.is_none() {
            match self.open_upstream().await {
                Ok(upstream) => self.upstream = Some(upstream),
                Err(error) => {
                    let reply = self.upstream_lost(error, canned::auth_unavailable());
                    return self.reply(reply);
                }
            }
        }
        let offered = self
            .upstream
            .as_ref()
            .is_some_and(|u| u.capabilities().auth.contains(&mechanism));
        if !offered {
            return self.error(canned::auth_mechanism_unsupported());
        }
        let mut user = initial
            .as_deref()
            .and_then(|r| user_name(&mechanism, r, true));
        let mut line = format!(
            "AUTH {mechanism}{}",
            initial.map(|r| format!(" {r}")).unwrap_or_default()
        );
        loop {
            let reply = self.relay_auth_step(&line).await;
            if reply.code != 334 {
                return self.auth_finished(reply, user);
            }
            let Some(response) = self.challenge(reply).await else {
                return Flow::Close;
            };
            user = user.or_else(|| user_name(&mechanism, &response, false));
            line = response;
        }
    }

    fn auth_refusal(&self) -> Option<Reply> {
        if !self.mode.submission {
            return Some(canned::not_implemented());
        }
        if self.tls.is_none() {
            return Some(canned::encryption_required());
        }
        if self.client.helo.is_none() {
            return Some(canned::bad_sequence("send EHLO first"));
        }
        if self.conn_facts.authenticated.is_some() || matches!(self.state, State::Transaction(_)) {
            return Some(canned::bad_sequence("AUTH not allowed now"));
        }
        None
    }

    async fn relay_auth_step(&mut self, line: &str) -> Reply {
        let Some(upstream) = self.upstream.as_mut() else {
            return canned::auth_unavailable();
        };
        match upstream.auth_step(line).await {
            Ok(reply) => reply,
            Err(error) => self.upstream_lost(error, canned::auth_unavailable()),
        }
    }

    /// Passes the upstream's challenge on and reads the client's answer.
    async fn challenge(&mut self, upstream: Reply) -> Option<String> {
        self.stream.queue(&canned::auth_challenge(upstream.lines));
        self.stream.flush().await.ok()?;
        let deadline = tokio::time::Instant::now() + self.shared.config.timeouts.idle;
        let line = tokio::time::timeout_at(deadline, self.stream.read_line(MAX_AUTH_LINE)).await;
        match line {
            Ok(Ok(Line::Text {
                bytes,
                canonical: true,
            })) => String::from_utf8(bytes.to_vec()).ok(),
            _ => None,
        }
    }

    fn auth_finished(&mut self, reply: Reply, user: Option<String>) -> Flow {
        let success = reply.code == 235;
        self.shared.metrics.auth_attempt(success);
        if success {
            let user = user.unwrap_or_else(|| "unknown".to_string());
            tracing::info!(%user, "authenticated");
            self.conn_facts.authenticated = Some(user);
        } else {
            tracing::info!(reply = %reply, "authentication failed");
        }
        self.reply(reply)
    }
}

/// The user name inside a PLAIN initial response (`authzid NUL authcid NUL
/// password`) or the first LOGIN answer; used for the log and per-user limits.
fn user_name(mechanism: &str, response: &str, initial: bool) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(response.trim())
        .ok()?;
    let name = match mechanism {
        "PLAIN" => decoded.split(|&b| b == 0).nth(1)?.to_vec(),
        "LOGIN" if !initial || !decoded.is_empty() => decoded,
        _ => return None,
    };
    String::from_utf8(name)
        .ok()
        .filter(|n| !n.is_empty() && n.len() <= 256)
}

#[cfg(test)]
mod tests {
    use super::user_name;

    #[test]
    fn user_names_table() {
        let cases = [
            ("PLAIN", "AGFsaWNlAHNlY3JldA==", true, Some("alice")),
            ("PLAIN", "YWRtaW4AYWxpY2UAc2VjcmV0", true, Some("alice")),
            ("PLAIN", "bm9udWxs", true, None),
            ("LOGIN", "Ym9i", false, Some("bob")),
            ("LOGIN", "!!!", false, None),
            ("CRAM-MD5", "Ym9i", false, None),
        ];
        for (mechanism, response, initial, want) in cases {
            assert_eq!(
                user_name(mechanism, response, initial).as_deref(),
                want,
                "{mechanism} {response}"
            );
        }
    }
}
