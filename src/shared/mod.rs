//! What sessions share: the process-wide state that the server builds and
//! every session reads (configuration, pipeline, metrics, TLS, the DATA
//! memory pool, shutdown and reload signals).

mod memory;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use memory::{DataMemory, Reservation};

use crate::checks::Pipeline;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::relay::RelayControl;
use crate::tls::Tls;
use crate::upstream::SharedCapabilities;

/// The two moments of a graceful shutdown.
#[derive(Clone, Default)]
pub struct Shutdown {
    /// Stop accepting; idle sessions say 421 and close.
    pub stop: CancellationToken,
    /// The drain time is over: every session says 421 and closes now.
    pub abort: CancellationToken,
}

/// Asks the running server to reload what can change at run time (the
/// rule files): SIGHUP in `main`, or a test. Every part that reloads
/// subscribes and sees each request. Cheap to clone.
#[derive(Clone)]
pub struct Reload(Arc<watch::Sender<u64>>);

impl Default for Reload {
    fn default() -> Self {
        Reload(Arc::new(watch::Sender::new(0)))
    }
}

impl Reload {
    pub fn trigger(&self) {
        self.0
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

pub struct Shared {
    pub config: Config,
    pub pipeline: Pipeline,
    pub metrics: Metrics,
    pub upstream_caps: SharedCapabilities,
    /// The domains we relay for (reloaded with the rule files).
    pub relay: RelayControl,
    /// The certificate for STARTTLS and implicit TLS, when configured.
    pub tls: Option<Tls>,
    /// The pool every session's DATA buffer draws on.
    pub data_memory: Arc<DataMemory>,
    pub shutdown: Shutdown,
    pub reload: Reload,
    /// Tells this process's transaction ids apart from another's (or an
    /// earlier run's) in shared logs: the start time in seconds, base 36.
    pub instance: String,
    next_session: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, pipeline: Pipeline, metrics: Metrics) -> Self {
        let data_memory = DataMemory::new(
            config.limits.data_memory_total,
            metrics.data_memory_bytes.clone(),
        );
        let relay = RelayControl::new(config.relay.domains.clone(), config.relay.file.clone());
        Shared {
            tls: load_tls(&config),
            data_memory: Arc::new(data_memory),
            config,
            pipeline,
            metrics,
            upstream_caps: SharedCapabilities::default(),
            relay,
            shutdown: Shutdown::default(),
            reload: Reload::default(),
            instance: base36(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            ),
            next_session: AtomicU64::new(1),
        }
    }

    pub fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

/// The files were loaded once by config validation; failing now means they
/// changed in between, and running without TLS is logged loudly.
fn load_tls(config: &Config) -> Option<Tls> {
    let (cert, key) = config.tls.files.as_ref()?;
    Tls::load(cert, key)
        .inspect_err(|error| tracing::error!(%error, "TLS disabled: certificate failed to load"))
        .ok()
}
