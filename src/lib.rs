//! spamgate: an anti-spam SMTP filtering proxy that stands in front of an
//! existing MTA, judges each session during the SMTP dialogue, and relays
//! clean mail to the upstream in lockstep.
//!
//! # Layout
//!
//! From the top of the module graph to the bottom: the modules of each line
//! use only modules of the lines below (and, within a line, each other
//! without a cycle). `scripts/check-layers`, run by CI, fails on an import
//! that goes up this list or closes a cycle anywhere.
//!
//! - [`server`]: listeners, connection limits, graceful shutdown; [`run`].
//! - [`session`], [`offline`]: the SMTP session state machine, one file
//!   per stage; the offline tools that judge stored mail without a client
//!   or an upstream (`spamgate test`, `replay`, `learn`).
//! - [`shared`]: what the sessions share, built by the server: the
//!   configuration, the pipeline, metrics, TLS, the DATA memory pool,
//!   shutdown and reload.
//! - [`checks`]: the [`checks::Check`] trait, the [`checks::Pipeline`] that
//!   runs checks per stage, and the checks themselves, one file each.
//! - [`rules`], [`bayes`], [`bulk`]: what the checks consult: the
//!   operators' YAML rules (loading with every error located, one-pass
//!   evaluation per stage, hot reload); the per-site statistical classifier
//!   (tokens, Robinson and Fisher combining, file and Redis backends);
//!   fuzzy fingerprints of message text counted across sessions (bulk
//!   detection).
//! - [`upstream`], [`dns`], [`state`], [`logging`]: the lockstep client to
//!   the upstream MTA, with XCLIENT and STARTTLS towards it; the one shared
//!   DNS resolver, typed answers, DNS metrics; rate-limit counters,
//!   greylist triplets and the DNS list cache, in memory or shared through
//!   Redis; text or JSON logs.
//! - [`config`], [`metrics`]: the YAML configuration, parsed whole, every
//!   error reported; Prometheus metrics and the `/metrics` endpoint.
//! - [`smtp`], [`relay`], [`tls`], [`proxy_protocol`]: the SMTP wire
//!   ([`smtp::codec`]: bounded lines, DATA framing, dot-stuffing;
//!   [`smtp::command`]: the parser); the domains we relay for, and how an
//!   address is judged against them; certificates, STARTTLS and implicit
//!   TLS towards clients, the TLS client towards the upstream; PROXY v1/v2
//!   headers from load balancers, read before the session starts so the
//!   real client IP drives every check.
//! - [`judgement`]: the vocabulary at the bottom, which every layer above
//!   speaks and which uses no other module: [`judgement::Stage`],
//!   [`judgement::Facts`] (the authentication results among them),
//!   [`judgement::Outcome`], [`judgement::Judgement`] and its
//!   [`judgement::Verdict`], and [`judgement::reply`], every reply we send.
//!
//! Data flows one way: connection → session → checks → verdict → upstream.
//! The session drives each step, so it sits above all of them.

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
