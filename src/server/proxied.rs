//! Connections on listeners behind a load balancer: the PROXY header is
//! read (from trusted peers only) before anything else happens, and the
//! session is then admitted under the client address it names.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use super::ConnectionLimiter;
use crate::config::ListenerMode;
use crate::proxy_protocol::{self, Rewound};
use crate::shared::Shared;

/// Reads the header and admits the session, or drops the connection.
///
/// Nothing is ever written before a header arrives: the peer is a load
/// balancer, not an SMTP client, so a refusal is a plain close (as
/// Postfix's postscreen does) and an untrusted peer learns nothing.
pub(super) async fn admit(
    mut stream: TcpStream,
    peer: SocketAddr,
    mode: ListenerMode,
    shared: Arc<Shared>,
    limiter: Arc<ConnectionLimiter>,
    sessions: TaskTracker,
) {
    let policy = &shared.config.proxy_protocol;
    if !policy.trusts(peer.ip()) {
        shared.metrics.proxy_header("untrusted");
        tracing::info!(peer = %peer.ip(), "PROXY listener: peer not trusted; closed");
        return;
    }
    let read = tokio::select! {
        read = proxy_protocol::read_header(&mut stream, policy.timeout) => read,
        _ = shared.shutdown.stop.cancelled() => return,
    };
    match read {
        Ok((header, early)) => {
            shared.metrics.proxy_header(header.label());
            let client = header.source().unwrap_or(peer);
            tracing::debug!(peer = %peer.ip(), client = %client.ip(), kind = header.label(), "PROXY header");
            super::admit(
                Rewound::new(early, stream),
                client,
                mode,
                &shared,
                &limiter,
                &sessions,
            );
        }
        Err(error) => {
            shared.metrics.proxy_header(error.label());
            tracing::info!(peer = %peer.ip(), %error, "PROXY header refused; closed");
        }
    }
}
