//! The configuration file as written: every value that needs checking keeps
//! its location so that validation can point at the line.

use serde::Deserialize;

use super::span::S;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub hostname: Option<S<String>>,
    pub listen: Option<S<Vec<S<String>>>>,
    pub upstream: RawUpstream,
    pub metrics: RawMetrics,
    pub dns: RawDns,
    pub limits: RawLimits,
    pub timeouts: RawTimeouts,
    pub smtp: RawSmtp,
    pub log: RawLog,
    pub scoring: RawScoring,
    pub checks: RawChecks,
    pub tls: super::tls::RawTls,
    pub submission: super::submission::RawSubmission,
    pub proxy_protocol: super::proxy::RawProxyProtocol,
    pub reputation: super::reputation::RawReputation,
    pub auth: super::auth::RawAuth,
    pub state: super::state::RawState,
    pub rules: super::rules::RawRules,
    pub relay_domains: Vec<S<String>>,
    pub relay_domains_file: Option<S<String>>,
    pub bayes: super::bayes::RawBayes,
    pub bulk: super::bulk::RawBulk,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUpstream {
    pub address: Option<S<String>>,
    pub xclient: Option<bool>,
    pub chunking: Option<bool>,
    pub helo_name: Option<S<String>>,
    pub tls: super::upstream_tls::RawUpstreamTls,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawMetrics {
    pub listen: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDns {
    pub nameservers: Vec<S<String>>,
    pub timeout: Option<S<String>>,
    pub attempts: Option<S<u64>>,
    pub cache_size: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLimits {
    pub max_message_size: Option<S<u64>>,
    pub max_recipients: Option<S<u64>>,
    pub max_connections: Option<S<u64>>,
    pub max_connections_per_ip: Option<S<u64>>,
    pub max_command_line: Option<S<u64>>,
    pub max_text_line: Option<S<u64>>,
    pub max_bad_commands: Option<S<u64>>,
    pub data_memory_total: Option<S<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTimeouts {
    pub idle: Option<S<String>>,
    pub data: Option<S<String>>,
    pub session: Option<S<String>>,
    pub upstream_connect: Option<S<String>>,
    pub upstream_command: Option<S<String>>,
    pub upstream_data: Option<S<String>>,
    pub shutdown_drain: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSmtp {
    pub bare_newline: Option<S<String>>,
    pub banner: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLog {
    pub format: Option<S<String>>,
    pub level: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawScoring {
    pub tag_score: Option<S<f64>>,
    pub reject_score: Option<S<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawChecks {
    pub ip_lists: RawIpLists,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIpLists {
    pub allow: Vec<S<String>>,
    pub deny: Vec<S<String>>,
}
