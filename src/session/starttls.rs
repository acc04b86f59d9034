//! STARTTLS (RFC 3207) and implicit TLS. After the handshake everything the
//! session learned from the client is forgotten, as the RFC requires: a
//! man in the middle could have written it.

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Flow, Session, State};
use crate::judgement::reply::canned;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn starttls(&mut self) -> Flow {
        if self.shared.tls.is_none() {
            return self.error(canned::not_implemented());
        }
        if self.tls.is_some() {
            return self.error(canned::bad_sequence("TLS already active"));
        }
        self.reply(canned::ready_for_tls());
        if self.stream.flush().await.is_err() || !self.handshake().await {
            return Flow::Close;
        }
        self.forget_client().await;
        Flow::Continue
    }

    /// Implicit TLS: the handshake comes before the banner.
    pub(super) async fn implicit_tls(&mut self) -> Flow {
        match self.handshake().await {
            true => Flow::Continue,
            false => Flow::Close,
        }
    }

    /// Runs the server handshake within the idle timeout. A failed
    /// handshake leaves nothing to talk to: the caller closes.
    async fn handshake(&mut self) -> bool {
        let Some(tls) = self.shared.tls.as_ref() else {
            return false;
        };
        let acceptor = tls.acceptor();
        let limit = self.shared.config.timeouts.idle;
        let result = tokio::time::timeout(limit, self.stream.get_mut().start_tls(acceptor)).await;
        match result {
            Ok(Ok(info)) => {
                tracing::debug!(version = %info.version, cipher = %info.cipher, "TLS established");
                self.tls = Some(info);
                true
            }
            Ok(Err(error)) => {
                self.shared.metrics.rejection("connect", "tls_handshake");
                tracing::info!(%error, "TLS handshake failed");
                false
            }
            Err(_) => {
                self.shared.metrics.rejection("connect", "tls_timeout");
                tracing::info!("TLS handshake timed out");
                false
            }
        }
    }

    async fn forget_client(&mut self) {
        self.abort_transaction("STARTTLS").await;
        if let Some(upstream) = self.upstream.take() {
            upstream.quit().await;
        }
        self.client.helo = None;
        self.client.esmtp = false;
        self.state = State::Greeted;
    }
}
