//! The `state` section: where rate-limit counters, greylist triplets and
//! the DNS list cache live. In memory they are per process; in Redis every
//! spamgate instance behind one load balancer shares them.

use std::time::Duration;

use serde::Deserialize;

use super::span::S;
use super::validate::Validator;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawState {
    pub backend: Option<S<String>>,
    pub redis: RawRedis,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRedis {
    pub url: Option<S<String>>,
    pub prefix: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    pub command_timeout: Option<S<String>>,
    pub on_failure: Option<S<String>>,
}

/// What to do when the shared state cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Let the client through unlimited: mail keeps flowing.
    FailOpen,
    /// Answer 4xx: nothing passes unjudged, senders retry later.
    Tempfail,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis.
    pub prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, Default)]
pub enum StateConfig {
    #[default]
    Memory,
    Redis(RedisConfig),
}

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

pub(super) fn validate(v: &mut Validator, raw: &RawState) -> StateConfig {
    let choices = [("memory", Backend::Memory), ("redis", Backend::Redis)];
    let backend = v.choice(
        "state.backend",
        raw.backend.as_ref(),
        &choices,
        Backend::Memory,
    );
    let redis = redis(v, &raw.redis);
    match backend {
        Backend::Memory => StateConfig::Memory,
        Backend::Redis => StateConfig::Redis(redis),
    }
}

fn redis(v: &mut Validator, raw: &RawRedis) -> RedisConfig {
    let url = raw
        .url
        .as_ref()
        .map_or("redis://127.0.0.1:6379/".to_string(), |u| {
            u.value.trim().to_string()
        });
    if let Some(u) = raw.url.as_ref().filter(|_| !valid_url(&url)) {
        let message = format!("'{url}' is not a redis:// or rediss:// URL");
        v.error_at(u.referenced, "state.redis.url", message);
    }
    let choices = [
        ("fail_open", OnFailure::FailOpen),
        ("tempfail", OnFailure::Tempfail),
    ];
    let d = |v: &mut Validator, key: &str, raw: &Option<S<String>>, ms: u64| {
        v.duration(key, raw.as_ref(), Duration::from_millis(ms))
    };
    RedisConfig {
        url,
        prefix: raw
            .prefix
            .as_ref()
            .map_or("spamgate:".to_string(), |p| p.value.clone()),
        connect_timeout: d(v, "state.redis.connect_timeout", &raw.connect_timeout, 1000),
        command_timeout: d(v, "state.redis.command_timeout", &raw.command_timeout, 500),
        on_failure: v.choice(
            "state.redis.on_failure",
            raw.on_failure.as_ref(),
            &choices,
            OnFailure::FailOpen,
        ),
    }
}

fn valid_url(url: &str) -> bool {
    ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|scheme| url.starts_with(scheme) && url.len() > scheme.len())
}
