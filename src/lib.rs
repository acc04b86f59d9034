//! spamgate: an anti-spam SMTP filtering proxy that stands in front of an
//! existing MTA, judges each session during the SMTP dialogue, and relays
//! clean mail to the upstream in lockstep.
//!
//! # Layout
//!
//! - [`config`]: the YAML configuration, parsed whole, every error reported.
//! - [`server`]: listeners, connection limits, the shared DATA memory pool,
//!   graceful shutdown; [`run`].
//! - [`smtp`]: the wire: [`smtp::codec`] (bounded lines, DATA framing,
//!   dot-stuffing), [`smtp::command`] (parser), [`smtp::reply`] (every reply
//!   we send), [`smtp::session`] (the state machine, one file per stage).
//! - [`checks`]: the [`checks::Check`] trait, the [`checks::Pipeline`] that
//!   runs checks per stage, and the checks themselves, one file each.
//! - [`bayes`]: the per-site statistical classifier: tokens, Robinson and
//!   Fisher combining, the file and Redis backends, `spamgate learn`.
//! - [`bulk`]: fuzzy fingerprints of message text counted across sessions
//!   (recipients, client networks) in memory or Redis: bulk detection.
//! - [`rules`]: the operators' YAML rules: loading with every error
//!   located, one-pass evaluation per stage, hot reload, offline replay.
//! - [`dns`]: the one shared DNS resolver, typed answers, DNS metrics.
//! - [`state`]: rate-limit counters, greylist triplets and the DNS list
//!   cache, in memory or shared through Redis.
//! - [`relay`]: the domains we relay for, and how an address is judged
//!   against them (routing tricks, IDNA, trailing dots).
//! - [`upstream`]: the lockstep client to the upstream MTA, with XCLIENT and
//!   STARTTLS towards it.
//! - [`offline`]: `spamgate test`, the pipeline run on one message file.
//! - [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
//! - [`tls`]: certificates, STARTTLS and implicit TLS towards clients.
//! - [`proxy_protocol`]: PROXY v1/v2 headers from load balancers, read
//!   before the session starts so the real client IP drives every check.
//! - [`logging`]: text or JSON logs.
//!
//! Data flows one way: connection → session → checks → verdict → upstream.

pub mod bayes;
pub mod bulk;
pub mod checks;
pub mod config;
pub mod dns;
pub mod judgement;
pub mod logging;
pub mod metrics;
pub mod offline;
pub mod proxy_protocol;
pub mod relay;
pub mod rules;
pub mod server;
pub mod session;
pub mod shared;
pub mod smtp;
pub mod state;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::{run, Listeners};
