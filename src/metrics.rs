//! Prometheus metrics and the `/metrics` endpoint.
//!
//! Label values come from closed sets only (verdicts, stages, check names,
//! error kinds): never addresses or IPs, so cardinality stays bounded.
//! Counters are registered without `_total` (the exposition adds it),
//! durations are histograms in seconds. Every family is declared in the
//! exposition from the start, samples or not. `docs/metrics.md` lists them
//! all; `tests/prometheus.rs` checks that it does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabel {
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    pub stage: &'static str,
    pub reason: &'static str,
}

/// An outcome out of a closed set (`ok`/`error`, or a PROXY header result).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordTypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AuthResultLabels {
    pub method: &'static str,
    pub result: &'static str,
}

/// A DNS list zone: from the configuration, so a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabel {
    pub zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneErrorLabels {
    pub zone: String,
    pub kind: &'static str,
}

/// A rate limit's configured name: a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: String,
}

/// A rule's name (from the operator's rule files: a closed set) and mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleHitLabels {
    pub rule: String,
    pub mode: &'static str,
}

/// A check's name (`Check::name`): a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabel {
    pub check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

/// The outcome of a classification (spam, ham, uncertain, abstain, error)
/// or of a bulk check ([`BulkOutcome`]'s closed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The outcome label of `spamgate_bulk_checks_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOutcome {
    Bulk,
    NotBulk,
    NoFingerprint,
    Error,
}

impl BulkOutcome {
    pub const ALL: [BulkOutcome; 4] = [
        BulkOutcome::Bulk,
        BulkOutcome::NotBulk,
        BulkOutcome::NoFingerprint,
        BulkOutcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BulkOutcome::Bulk => "bulk",
            BulkOutcome::NotBulk => "not_bulk",
            BulkOutcome::NoFingerprint => "no_fingerprint",
            BulkOutcome::Error => "error",
        }
    }
}

/// A learning class: spam or ham.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabel {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: &'static str,
}

/// Registers metrics so that every family is declared (`# HELP`, `# TYPE`)
/// from the start: prometheus-client leaves a label family out of the
/// exposition until its first sample, and then neither operators nor
/// dashboard tests can tell a quiet metric from a missing one.
struct Declaring<'a>(&'a mut Registry);

impl Declaring<'_> {
    fn register(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.0.register(name, help, Declared(metric));
    }
}

#[derive(Debug)]
struct Declared<M>(M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// Every metric spamgate exports. Cheap to clone (all handles are shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub sessions: Counter,
    pub active_sessions: Gauge,
    pub messages: Family<VerdictLabel, Counter>,
    pub transactions: Family<VerdictLabel, Counter>,
    pub rejections: Family<RejectionLabels, Counter>,
    pub upstream_errors: Family<KindLabel, Counter>,
    pub upstream_latency: Family<CommandLabel, Histogram>,
    pub upstream_connections: Family<ResultLabel, Counter>,
    pub message_size: Histogram,
    pub session_duration: Histogram,
    pub config_reload_duration: Histogram,
    pub proxy_headers: Family<ResultLabel, Counter>,
    pub dns_lookup_duration: Family<RecordTypeLabel, Histogram>,
    pub dns_errors: Family<KindLabel, Counter>,
    pub auth_results: Family<AuthResultLabels, Counter>,
    pub dnsbl_hits: Family<ZoneLabel, Counter>,
    pub dnsbl_errors: Family<ZoneErrorLabels, Counter>,
    pub ratelimit_hits: Family<LimitLabel, Counter>,
    pub greylist: Family<ResultLabel, Counter>,
    pub state_errors: Family<OpLabel, Counter>,
    pub rule_hits: Family<RuleHitLabels, Counter>,
    pub rules_loaded: Gauge,
    pub rules_reloads: Family<ResultLabel, Counter>,
    pub score: Histogram,
    pub smtp_auth: Family<ResultLabel, Counter>,
    pub upstream_tls: Family<ResultLabel, Counter>,
    pub data_memory_bytes: Gauge,
    pub bayes_classifications: Family<OutcomeLabel, Counter>,
    pub bayes_learned: Family<ClassLabel, Gauge>,
    pub bayes_tokens: Gauge,
    pub bayes_autolearn: Family<ClassLabel, Counter>,
    pub bulk_checks: Family<OutcomeLabel, Counter>,
    pub bulk_entries: Gauge,
    pub check_duration: Family<CheckLabel, Histogram>,
}

/// Spam scores: negative (allow rules) to well past a typical reject_score.
const SCORE_BUCKETS: [f64; 14] = [
    -5.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// From 5 µs (a rule pass on a small message) to 10 s (a DNS check that
/// waited its whole budget): most checks cost tens of microseconds, so the
/// buckets are sub-millisecond at the bottom, as rspamd's symbol timings.
const CHECK_BUCKETS: [f64; 16] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.1, 0.5, 2.5, 10.0,
];

fn check_histogram() -> Histogram {
    Histogram::new(CHECK_BUCKETS)
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            sessions: Counter::default(),
            active_sessions: Gauge::default(),
            messages: Family::default(),
            transactions: Family::default(),
            rejections: Family::default(),
            upstream_errors: Family::default(),
            upstream_latency: Family::new_with_constructor(latency_histogram),
            upstream_connections: Family::default(),
            message_size: Histogram::new(exponential_buckets(1024.0, 4.0, 10)),
            session_duration: Histogram::new(exponential_buckets(0.01, 4.0, 10)),
            config_reload_duration: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
            proxy_headers: Family::default(),
            dns_lookup_duration: Family::new_with_constructor(latency_histogram),
            dns_errors: Family::default(),
            auth_results: Family::default(),
            dnsbl_hits: Family::default(),
            dnsbl_errors: Family::default(),
            ratelimit_hits: Family::default(),
            greylist: Family::default(),
            state_errors: Family::default(),
            rule_hits: Family::default(),
            rules_loaded: Gauge::default(),
            rules_reloads: Family::default(),
            score: Histogram::new(SCORE_BUCKETS),
            smtp_auth: Family::default(),
            upstream_tls: Family::default(),
            data_memory_bytes: Gauge::default(),
            bayes_classifications: Family::default(),
            bayes_learned: Family::default(),
            bayes_tokens: Gauge::default(),
            bayes_autolearn: Family::default(),
            bulk_checks: Family::default(),
            bulk_entries: Gauge::default(),
            check_duration: Family::new_with_constructor(check_histogram),
        };
        m.register(&mut Declaring(&mut registry));
        m.initialise_closed_sets();
        Metrics {
            registry: Arc::new(registry),
            ..m
        }
    }

    fn register(&self, r: &mut Declaring) {
        self.register_bayes(r);
        r.register(
            "spamgate_check_duration_seconds",
            "Time each check took, per run of the check (DNS waits included), by check",
            self.check_duration.clone(),
        );
        r.register(
            "spamgate_upstream_tls",
            "STARTTLS towards the upstream when upstream.tls is on, by result",
            self.upstream_tls.clone(),
        );
        r.register(
            "spamgate_data_memory_bytes",
            "Bytes reserved by DATA buffers across all sessions (bounded by limits.data_memory_total)",
            self.data_memory_bytes.clone(),
        );
        r.register(
            "spamgate_smtp_auth",
            "AUTH attempts relayed on submission listeners, by result",
            self.smtp_auth.clone(),
        );
        r.register(
            "spamgate_sessions",
            "SMTP sessions accepted",
            self.sessions.clone(),
        );
        r.register(
            "spamgate_active_sessions",
            "SMTP sessions open now",
            self.active_sessions.clone(),
        );
        r.register(
            "spamgate_messages",
            "Messages received, by verdict",
            self.messages.clone(),
        );
        r.register(
            "spamgate_transactions",
            "Transactions ended, by verdict",
            self.transactions.clone(),
        );
        r.register(
            "spamgate_rejections",
            "Refusals, by stage and reason",
            self.rejections.clone(),
        );
        r.register(
            "spamgate_upstream_errors",
            "Upstream failures, by kind",
            self.upstream_errors.clone(),
        );
        r.register(
            "spamgate_upstream_latency_seconds",
            "Upstream reply latency, by command",
            self.upstream_latency.clone(),
        );
        r.register(
            "spamgate_message_size_bytes",
            "Size of received messages",
            self.message_size.clone(),
        );
        r.register(
            "spamgate_session_duration_seconds",
            "Length of SMTP sessions",
            self.session_duration.clone(),
        );
        r.register(
            "spamgate_upstream_connections",
            "Upstream sessions opened (connect, greeting, EHLO, XCLIENT), by result",
            self.upstream_connections.clone(),
        );
        r.register(
            "spamgate_config_reload_duration_seconds",
            "Time taken by configuration reloads (observed by every reload, failed or not)",
            self.config_reload_duration.clone(),
        );
        r.register(
            "spamgate_proxy_headers",
            "PROXY protocol headers on load-balancer listeners, by result",
            self.proxy_headers.clone(),
        );
        r.register(
            "spamgate_dns_lookup_duration_seconds",
            "DNS lookup latency, by record type",
            self.dns_lookup_duration.clone(),
        );
        r.register(
            "spamgate_dns_errors",
            "DNS lookups that gave no records, by kind",
            self.dns_errors.clone(),
        );
        r.register(
            "spamgate_auth_results",
            "Sender authentication results, by method and result",
            self.auth_results.clone(),
        );
        r.register(
            "spamgate_dnsbl_hits",
            "DNS list listings found, by zone",
            self.dnsbl_hits.clone(),
        );
        r.register(
            "spamgate_dnsbl_errors",
            "DNS list lookups that gave an error instead of an answer, by zone and kind",
            self.dnsbl_errors.clone(),
        );
        r.register(
            "spamgate_ratelimit_hits",
            "Events refused by a rate limit, by limit",
            self.ratelimit_hits.clone(),
        );
        r.register(
            "spamgate_greylist",
            "Greylist decisions, by result",
            self.greylist.clone(),
        );
        r.register(
            "spamgate_state_errors",
            "Failures of the shared state backend, by operation",
            self.state_errors.clone(),
        );
        r.register(
            "spamgate_rule_hits",
            "Rule matches, by rule and mode (enforce or monitor)",
            self.rule_hits.clone(),
        );
        r.register(
            "spamgate_rules_loaded",
            "Rules in the rule set in use",
            self.rules_loaded.clone(),
        );
        r.register(
            "spamgate_rules_reload",
            "Rule set reloads, by result (error: the previous set stays in use)",
            self.rules_reloads.clone(),
        );
        r.register(
            "spamgate_score",
            "Spam score of each message at the end of DATA (when rules are configured)",
            self.score.clone(),
        );
        r.register(
            "spamgate_bulk_checks",
            "Bulk checks of messages, by outcome",
            self.bulk_checks.clone(),
        );
        r.register(
            "spamgate_bulk_entries",
            "Content band keys counted in memory by the bulk check",
            self.bulk_entries.clone(),
        );
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        r.register("spamgate_build_info", "Build information", build);
    }

    fn register_bayes(&self, r: &mut Declaring) {
        r.register(
            "spamgate_bayes_classifications",
            "Messages the classifier judged, by outcome (spam >= 0.8, ham <= 0.2, uncertain, abstain, error)",
            self.bayes_classifications.clone(),
        );
        r.register(
            "spamgate_bayes_learned_messages",
            "Messages the classifier has learned, by class",
            self.bayes_learned.clone(),
        );
        r.register(
            "spamgate_bayes_tokens",
            "Distinct tokens in the classifier's database (Redis: token-class entries)",
            self.bayes_tokens.clone(),
        );
        r.register(
            "spamgate_bayes_autolearn",
            "Messages learned automatically from certain verdicts, by class",
            self.bayes_autolearn.clone(),
        );
    }

    /// Creates every series of the closed label sets at zero, so that
    /// dashboards and alerts see `0` rather than "no data" before the first
    /// event (and `rate()` works from the first scrape).
    fn initialise_closed_sets(&self) {
        for verdict in ["accept", "tag", "reject", "tempfail"] {
            let _ = self.messages.get_or_create(&VerdictLabel { verdict });
            let _ = self.transactions.get_or_create(&VerdictLabel { verdict });
        }
        let _ = self.transactions.get_or_create(&VerdictLabel {
            verdict: "abandoned",
        });
        for kind in [
            "connect",
            "timeout",
            "disconnect",
            "protocol",
            "refused",
            "xclient",
            "tls",
        ] {
            let _ = self.upstream_errors.get_or_create(&KindLabel { kind });
        }
        for result in ["ok", "error"] {
            let _ = self
                .upstream_connections
                .get_or_create(&ResultLabel { result });
        }
        for result in ["success", "failure"] {
            let _ = self.smtp_auth.get_or_create(&ResultLabel { result });
        }
        for result in ["established", "not_offered", "failed"] {
            let _ = self.upstream_tls.get_or_create(&ResultLabel { result });
        }
        for result in ["ok", "error"] {
            let _ = self.rules_reloads.get_or_create(&ResultLabel { result });
        }
        for outcome in ["spam", "ham", "uncertain", "abstain", "error"] {
            let _ = self
                .bayes_classifications
                .get_or_create(&OutcomeLabel { outcome });
        }
        for class in ["spam", "ham"] {
            let _ = self.bayes_learned.get_or_create(&ClassLabel { class });
            let _ = self.bayes_autolearn.get_or_create(&ClassLabel { class });
        }
        for outcome in BulkOutcome::ALL {
            let outcome = outcome.label();
            let _ = self.bulk_checks.get_or_create(&OutcomeLabel { outcome });
        }
        for result in crate::proxy_protocol::RESULTS {
            let _ = self.proxy_headers.get_or_create(&ResultLabel { result });
        }
    }

    pub fn auth_attempt(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.smtp_auth.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn message(&self, verdict: &'static str) {
        self.messages.get_or_create(&VerdictLabel { verdict }).inc();
    }

    pub fn transaction(&self, verdict: &'static str) {
        self.transactions
            .get_or_create(&VerdictLabel { verdict })
            .inc();
    }

    pub fn rejection(&self, stage: &'static str, reason: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabels { stage, reason })
            .inc();
    }

    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    pub fn upstream_latency(&self, command: &'static str, elapsed: Duration) {
        let labels = CommandLabel { command };
        self.upstream_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn dns_lookup(&self, record_type: &'static str, elapsed: Duration) {
        let labels = RecordTypeLabel {
            r#type: record_type,
        };
        self.dns_lookup_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn dns_error(&self, kind: &'static str) {
        self.dns_errors.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn dnsbl_hit(&self, zone: &str) {
        let zone = zone.to_string();
        self.dnsbl_hits.get_or_create(&ZoneLabel { zone }).inc();
    }

    pub fn dnsbl_error(&self, zone: &str, kind: &'static str) {
        let zone = zone.to_string();
        self.dnsbl_errors
            .get_or_create(&ZoneErrorLabels { zone, kind })
            .inc();
    }

    pub fn ratelimit_hit(&self, limit: &str) {
        let limit = limit.to_string();
        self.ratelimit_hits
            .get_or_create(&LimitLabel { limit })
            .inc();
    }

    pub fn greylist_result(&self, result: &'static str) {
        self.greylist.get_or_create(&ResultLabel { result }).inc();
    }

    pub fn bayes_classification(&self, outcome: &'static str) {
        self.bayes_classifications
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn bayes_autolearn(&self, class: &'static str) {
        self.bayes_autolearn
            .get_or_create(&ClassLabel { class })
            .inc();
    }

    pub fn bayes_totals(&self, spam: u64, ham: u64, tokens: u64) {
        let gauge = |n: u64| n.min(i64::MAX as u64) as i64;
        for (class, n) in [("spam", spam), ("ham", ham)] {
            self.bayes_learned
                .get_or_create(&ClassLabel { class })
                .set(gauge(n));
        }
        self.bayes_tokens.set(gauge(tokens));
    }

    pub fn state_error(&self, op: &'static str) {
        self.state_errors.get_or_create(&OpLabel { op }).inc();
    }

    pub fn bulk_check(&self, outcome: &'static str, entries: usize) {
        self.bulk_checks
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.bulk_entries.set(entries as i64);
    }

    pub fn rule_hit(&self, rule: &str, mode: &'static str) {
        let labels = RuleHitLabels {
            rule: rule.to_string(),
            mode,
        };
        self.rule_hits.get_or_create(&labels).inc();
    }

    /// `result` is `ok` or `error`.
    pub fn rules_reload(&self, result: &'static str) {
        self.rules_reloads
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    pub fn auth_result(&self, method: &'static str, result: &'static str) {
        self.auth_results
            .get_or_create(&AuthResultLabels { method, result })
            .inc();
    }

    /// Counts one attempt to open an upstream session.
    pub fn upstream_connection(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.upstream_connections
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts one STARTTLS outcome towards the upstream: `established`,
    /// `not_offered` or `failed`.
    pub fn upstream_tls(&self, result: &'static str) {
        self.upstream_tls
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// Counts one PROXY header outcome (a closed set, see `proxy_protocol`).
    pub fn proxy_header(&self, result: &'static str) {
        self.proxy_headers
            .get_or_create(&ResultLabel { result })
            .inc();
    }

    /// The exposition in OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

const MAX_REQUEST: usize = 8192;

/// Serves `GET /metrics` until `shutdown`. Deliberately tiny: one request per
/// connection, bounded read, no keep-alive.
pub async fn serve(listener: TcpListener, metrics: Metrics, shutdown: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listening");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        if let Ok((stream, peer)) = accepted {
            let metrics = metrics.clone();
            tokio::spawn(async move { answer(stream, peer, &metrics).await });
        }
    }
}

async fn answer(mut stream: TcpStream, peer: SocketAddr, metrics: &Metrics) {
    let request = tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream)).await;
    let Ok(Some(request)) = request else {
        tracing::debug!(%peer, "metrics request unreadable");
        return;
    };
    let response =
        match request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
            true => http_response(
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                &metrics.encode(),
            ),
            false => http_response("404 Not Found", "text/plain", "try /metrics\n"),
        };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST || stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn http_response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
