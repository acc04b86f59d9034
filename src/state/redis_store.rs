//! Shared state in Redis: one GCRA per limit key and one hash per greylist
//! triplet, each updated atomically by a Lua script on Redis's clock, and
//! DNS list answers as plain keys with their TTL.
//!
//! The connection is made lazily and re-made by the connection manager;
//! every command is bounded by `command_timeout`, so an unreachable Redis
//! costs a bounded wait and an error, never a hang.

use std::sync::OnceLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Client, Script};

use super::{GreyResult, StateError};
use crate::config::state::RedisConfig;

const GCRA: &str = include_str!("gcra.lua");
const GREYLIST: &str = include_str!("greylist.lua");

pub struct RedisState {
    client: Client,
    config: RedisConfig,
    manager: OnceLock<Result<ConnectionManager, String>>,
    gcra: Script,
    greylist: Script,
}

/// A connection manager with the configured time bounds, connecting on
/// first use (the bayes classifier's Redis store shares this setup).
pub(crate) fn lazy_manager(
    client: &Client,
    config: &RedisConfig,
) -> Result<ConnectionManager, String> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
        .map_err(|e| e.to_string())
}

impl RedisState {
    pub fn new(config: &RedisConfig) -> Result<Self, StateError> {
        let client = Client::open(config.url.as_str())
            .map_err(|e| StateError::Setup(format!("{}: {e}", config.url)))?;
        Ok(RedisState {
            client,
            config: config.clone(),
            manager: OnceLock::new(),
            gcra: Script::new(GCRA),
            greylist: Script::new(GREYLIST),
        })
    }

    /// The manager is built on first use, inside the runtime it needs.
    fn connection(&self) -> Result<ConnectionManager, StateError> {
        let made = self
            .manager
            .get_or_init(|| lazy_manager(&self.client, &self.config));
        made.clone().map_err(StateError::Setup)
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.config.prefix)
    }

    /// Runs one Redis exchange under the configured time bound.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StateError> {
        let limit = self.config.command_timeout + self.config.connect_timeout;
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StateError::Redis(e.to_string())),
            Err(_) => Err(StateError::Timeout(limit)),
        }
    }

    /// Counts one event against `limit`'s `key`; false when over the limit.
    pub async fn allow(
        &self,
        limit: &str,
        key: &str,
        period: Duration,
        burst: u32,
    ) -> Result<bool, StateError> {
        let mut conn = self.connection()?;
        let interval = period.as_micros().max(1) as u64;
        let mut call = self.gcra.key(self.key(&format!("rl:{limit}"), key));
        call.arg(interval).arg(burst);
        let allowed: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(allowed == 1)
    }

    pub async fn greylist(
        &self,
        triplet: &str,
        times: super::memory::GreyTimes,
    ) -> Result<GreyResult, StateError> {
        let mut conn = self.connection()?;
        let mut call = self.greylist.key(self.key("gl", triplet));
        call.arg(times.delay)
            .arg(times.retry_window)
            .arg(times.expiry);
        let code: i64 = self.bounded(call.invoke_async(&mut conn)).await?;
        Ok(match code {
            0 => GreyResult::New,
            1 => GreyResult::Early,
            2 => GreyResult::Passed,
            _ => GreyResult::Known,
        })
    }

    /// Runs one pipeline in one round trip (the bulk counts use it).
    pub async fn pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, StateError> {
        let mut conn = self.connection()?;
        self.bounded(pipe.query_async(&mut conn)).await
    }

    /// A key of `kind` under the configured prefix.
    pub fn prefixed(&self, kind: &str, key: &str) -> String {
        self.key(kind, key)
    }

    pub async fn cache_get(&self, key: &str) -> Result<Option<String>, StateError> {
        let mut conn = self.connection()?;
        let key = self.key("dns", key);
        self.bounded(conn.get(key)).await
    }

    pub async fn cache_put(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StateError> {
        let mut conn = self.connection()?;
        let key = self.key("dns", key);
        let ms = ttl.as_millis().max(1) as u64;
        self.bounded(conn.pset_ex(key, value, ms)).await
    }
}
