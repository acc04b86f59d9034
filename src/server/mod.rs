//! Accepting connections: limits, one task per session, graceful shutdown.

mod limiter;
pub mod probe;
mod proxied;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::checks::{Pipeline, SetupError};
use crate::config::{Config, ListenerMode};
use crate::judgement::reply::{canned, Reply};
use crate::metrics::{self, Metrics};
use crate::session::Session;
use crate::shared::Reload;
pub use crate::shared::Shared;
use crate::upstream::RelaySafety;
pub use limiter::{ConnectionLimiter, Permit, Refused};

/// How long sessions still running after the drain get to say 421.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// The sockets the server serves, bound by the caller (tests bind port 0).
pub struct Listeners {
    /// SMTP listeners. One whose local address is in
    /// `proxy_protocol.listeners` reads a PROXY header first (tests that
    /// bind port 0 put the bound address in the configuration).
    pub smtp: Vec<TcpListener>,
    pub metrics: Option<TcpListener>,
}

impl Listeners {
    /// Binds every address the configuration names.
    pub async fn bind(config: &Config) -> std::io::Result<Listeners> {
        let mut smtp = Vec::new();
        for addr in config.listen.iter().chain(&config.tls.implicit_listen) {
            smtp.push(bind(*addr).await?);
        }
        let metrics = match config.metrics.listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners { smtp, metrics })
    }
}

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Runs the proxy until `shutdown` completes, then drains: sessions in the
/// middle of a transaction get `timeouts.shutdown_drain` to finish, all
/// others are told `421 4.3.2` at once.
/// A setup failure is logged and ends the server at once; use [`try_run`]
/// to handle it.
pub async fn run(listeners: Listeners, config: Config, shutdown: impl Future<Output = ()>) {
    if let Err(error) = try_run(listeners, config, shutdown).await {
        tracing::error!(%error, "cannot start");
    }
}

/// Like [`run`], failing when the checks cannot be set up.
pub async fn try_run(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SetupError> {
    try_run_reloadable(listeners, config, shutdown, Reload::default()).await
}

/// Like [`try_run`], reloading the rule files whenever `reload` is triggered.
pub async fn try_run_reloadable(
    listeners: Listeners,
    config: Config,
    shutdown: impl Future<Output = ()>,
    reload: Reload,
) -> Result<(), SetupError> {
    let metrics = Metrics::new();
    let pipeline = Pipeline::from_config(&config, &metrics)?;
    let mut shared = Shared::new(config, pipeline, metrics);
    shared.reload = reload;
    probe::at_start(&shared).await?;
    run_shared(listeners, Arc::new(shared), shutdown).await;
    Ok(())
}

/// Like [`run`], with state built by the caller (tests inject checks).
/// The caller probes the upstream first ([`probe::at_start`]); one not
/// probed yet is probed in the background, and recipients are held with a
/// 4xx until it answers unless `relay_domains` are set.
pub async fn run_shared(
    listeners: Listeners,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()>,
) {
    let c = &shared.config;
    let limiter = Arc::new(ConnectionLimiter::new(
        c.limits.max_connections,
        c.limits.max_connections_per_ip,
    ));
    let sessions = TaskTracker::new();
    if shared.upstream_caps.relay_safety() == RelaySafety::Unknown {
        tokio::spawn(probe::until_probed(shared.clone()));
    }
    if shared.tls.is_some() {
        tokio::spawn(reload_certificates(shared.clone()));
    }
    if shared.relay.file().is_some() {
        tokio::spawn(reload_relay_domains(shared.clone()));
    }
    if let Some(rules) = shared.pipeline.rules() {
        let (trigger, stop) = (shared.reload.subscribe(), shared.shutdown.stop.clone());
        tokio::spawn(crate::rules::reload::watch(rules.clone(), trigger, stop));
    }
    if let Some(bayes) = shared.pipeline.bayes() {
        let stop = shared.shutdown.stop.clone();
        tokio::spawn(bayes.clone().save_periodically(stop));
    }
    if let Some(listener) = listeners.metrics {
        tokio::spawn(metrics::serve(
            listener,
            shared.metrics.clone(),
            shared.shutdown.stop.clone(),
        ));
    }
    for listener in listeners.smtp {
        let accept = accept_loop(listener, shared.clone(), limiter.clone(), sessions.clone());
        sessions.spawn(accept);
    }
    shutdown.await;
    drain(&shared, &sessions).await;
    // What autolearn added since the last periodic save.
    if let Some(bayes) = shared.pipeline.bayes() {
        bayes.save().await;
    }
}

/// Re-reads the TLS certificate at each reload request; a bad file keeps
/// the old certificate (sessions never lose TLS over a typo).
async fn reload_certificates(shared: Arc<Shared>) {
    let mut requests = shared.reload.subscribe();
    loop {
        tokio::select! {
            changed = requests.changed() => if changed.is_err() { return },
            _ = shared.shutdown.stop.cancelled() => return,
        }
        let Some(tls) = shared.tls.as_ref() else {
            return;
        };
        let started = std::time::Instant::now();
        let result = tls.reload();
        let elapsed = started.elapsed().as_secs_f64();
        shared.metrics.config_reload_duration.observe(elapsed);
        match result {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(%error, "TLS certificate reload failed; keeping the old one")
            }
        }
    }
}

/// Re-reads `relay_domains_file` at each reload request; a bad file keeps
/// the domains in force.
async fn reload_relay_domains(shared: Arc<Shared>) {
    let mut requests = shared.reload.subscribe();
    loop {
        tokio::select! {
            changed = requests.changed() => if changed.is_err() { return },
            _ = shared.shutdown.stop.cancelled() => return,
        }
        match shared.relay.reload() {
            Ok(domains) => tracing::info!(domains, "relay domains reloaded"),
            Err(error) => {
                tracing::error!(%error, "relay domains reload failed; keeping the old list")
            }
        }
    }
}

async fn drain(shared: &Shared, sessions: &TaskTracker) {
    tracing::info!("shutting down: draining sessions");
    shared.shutdown.stop.cancel();
    sessions.close();
    let drain = shared.config.timeouts.shutdown_drain;
    if tokio::time::timeout(drain, sessions.wait()).await.is_err() {
        tracing::warn!(
            remaining = sessions.len(),
            "drain time over: closing sessions"
        );
        shared.shutdown.abort.cancel();
        let _ = tokio::time::timeout(ABORT_GRACE, sessions.wait()).await;
    }
    tracing::info!("shutdown complete");
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    limiter: Arc<ConnectionLimiter>,
    sessions: TaskTracker,
) {
    let local = listener.local_addr().ok();
    let proxied = local.is_some_and(|a| shared.config.proxy_protocol.expects_header(a));
    let mode = local
        .map(|a| shared.config.listener_mode(a))
        .unwrap_or_default();
    if let Some(addr) = local {
        tracing::info!(%addr, proxy_protocol = proxied, "smtp listening");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shared.shutdown.stop.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if proxied {
                    let (s, l, t) = (shared.clone(), limiter.clone(), sessions.clone());
                    sessions.spawn(proxied::admit(stream, peer, mode, s, l, t));
                } else {
                    admit(stream, peer, mode, &shared, &limiter, &sessions);
                }
            }
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Starts a session for `peer`: the socket's address, or the client's as a
/// trusted PROXY header named it, which the per-IP limit then counts.
fn admit<S>(
    stream: S,
    peer: SocketAddr,
    mode: ListenerMode,
    shared: &Arc<Shared>,
    limiter: &ConnectionLimiter,
    sessions: &TaskTracker,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    match limiter.acquire(peer.ip()) {
        Ok(permit) => {
            let session = Box::new(Session::new(stream, peer, shared.clone()).with_mode(mode));
            sessions.spawn(async move {
                session.run().await;
                drop(permit);
            });
        }
        Err(refused) => {
            shared.metrics.rejection("connect", refused.reason());
            tracing::info!(client = %peer.ip(), reason = refused.reason(), "connection refused");
            let reply = match refused {
                Refused::Total => canned::too_many_connections(),
                Refused::PerIp => canned::too_many_connections_from_ip(),
            };
            tokio::spawn(refuse(stream, reply));
        }
    }
}

async fn refuse(mut stream: impl AsyncWrite + Unpin, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
