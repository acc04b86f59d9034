//! The cluster backend: token counts in the `state.redis` server, shared by
//! every spamgate instance, so that what one learns all use.
//!
//! Layout (under `state.redis.prefix`): `bayes:s` and `bayes:h`, hashes
//! from the 8-byte token hash to its spam and ham counts; `bayes:n`, the
//! message totals (fields `s` and `h`); `bayes:m`, learned message digest →
//! class. Classifying is ONE pipelined round trip (two HMGETs of the
//! message's tokens and one of the totals); learning and forgetting are one
//! Lua script each, atomic, so two instances learning one message at once
//! count it once.

use std::sync::OnceLock;

use redis::aio::ConnectionManager;
use redis::{Client, Script};

use super::combine::Counts;
use super::db::{Digest, ForgetOutcome, LearnOutcome};
use super::{BayesError, Class};
use crate::config::state::RedisConfig;

/// Moves a message's tokens between classes (or out), keyed by its digest.
/// ARGV: digest, new class (`s`, `h`, or empty to forget), token hashes.
/// Returns 0: nothing to do, 1: learned, 2: moved or forgotten.
const APPLY: &str = r#"
local old = redis.call('HGET', KEYS[4], ARGV[1])
local new = ARGV[2]
if old == new or (not old and new == '') then return 0 end
local function add(class, by)
  local key = KEYS[2]
  if class == 's' then key = KEYS[1] end
  for i = 3, #ARGV do
    if redis.call('HINCRBY', key, ARGV[i], by) <= 0 then redis.call('HDEL', key, ARGV[i]) end
  end
  if redis.call('HINCRBY', KEYS[3], class, by) < 0 then redis.call('HSET', KEYS[3], class, 0) end
end
if old then add(old, -1) end
if new == '' then
  redis.call('HDEL', KEYS[4], ARGV[1])
else
  add(new, 1)
  redis.call('HSET', KEYS[4], ARGV[1], new)
end
if old then return 2 end
return 1
"#;

pub struct RedisStore {
    client: Client,
    config: RedisConfig,
    manager: OnceLock<Result<ConnectionManager, String>>,
    apply: Script,
}

/// Counts of a message's tokens and the totals, as Redis had them.
pub struct Snapshot {
    pub counts: Vec<Counts>,
    pub nspam: u64,
    pub nham: u64,
}

impl RedisStore {
    pub fn new(config: &RedisConfig) -> Result<Self, BayesError> {
        let client = Client::open(config.url.as_str())
            .map_err(|e| BayesError::Redis(format!("{}: {e}", config.url)))?;
        Ok(RedisStore {
            client,
            config: config.clone(),
            manager: OnceLock::new(),
            apply: Script::new(APPLY),
        })
    }

    fn connection(&self) -> Result<ConnectionManager, BayesError> {
        let made = self
            .manager
            .get_or_init(|| crate::state::lazy_manager(&self.client, &self.config));
        made.clone().map_err(BayesError::Redis)
    }

    fn key(&self, name: &str) -> String {
        format!("{}bayes:{name}", self.config.prefix)
    }

    /// One Redis exchange under the configured time bound.
    async fn bounded<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BayesError> {
        let limit = self.config.command_timeout + self.config.connect_timeout;
        match tokio::time::timeout(limit, op).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(BayesError::Redis(e.to_string())),
            Err(_) => Err(BayesError::Redis(format!("no answer within {limit:?}"))),
        }
    }

    /// The counts of `hashes` and the totals, in one round trip.
    pub async fn lookup(&self, hashes: &[u64]) -> Result<Snapshot, BayesError> {
        let mut conn = self.connection()?;
        let fields: Vec<[u8; 8]> = hashes.iter().map(|h| h.to_le_bytes()).collect();
        let mut pipe = redis::pipe();
        if !fields.is_empty() {
            for class in ["s", "h"] {
                let cmd = pipe.cmd("HMGET").arg(self.key(class));
                for field in &fields {
                    cmd.arg(&field[..]);
                }
            }
        }
        pipe.cmd("HMGET").arg(self.key("n")).arg("s").arg("h");
        let mut replies: Vec<Vec<Option<u64>>> = self.bounded(pipe.query_async(&mut conn)).await?;
        let totals = replies.pop().unwrap_or_default();
        let (spam, ham) = match replies.len() {
            2 => (replies.swap_remove(0), replies.swap_remove(0)),
            _ => (Vec::new(), Vec::new()),
        };
        let clamp = |n: Option<u64>| n.unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        let counts = (0..hashes.len())
            .map(|i| Counts {
                spam: clamp(spam.get(i).copied().flatten()),
                ham: clamp(ham.get(i).copied().flatten()),
            })
            .collect();
        let total = |i: usize| totals.get(i).copied().flatten().unwrap_or(0);
        Ok(Snapshot {
            counts,
            nspam: total(0),
            nham: total(1),
        })
    }

    async fn run(&self, digest: Digest, class: &str, hashes: &[u64]) -> Result<i64, BayesError> {
        let mut conn = self.connection()?;
        let mut call = self.apply.prepare_invoke();
        for name in ["s", "h", "n", "m"] {
            call.key(self.key(name));
        }
        call.arg(&digest[..]).arg(class);
        for h in hashes {
            call.arg(&h.to_le_bytes()[..]);
        }
        self.bounded(call.invoke_async(&mut conn)).await
    }

    pub async fn learn(
        &self,
        digest: Digest,
        hashes: &[u64],
        class: Class,
    ) -> Result<LearnOutcome, BayesError> {
        let word = match class {
            Class::Spam => "s",
            Class::Ham => "h",
        };
        Ok(match self.run(digest, word, hashes).await? {
            0 => LearnOutcome::Known,
            1 => LearnOutcome::Learned,
            _ => LearnOutcome::Moved,
        })
    }

    pub async fn forget(
        &self,
        digest: Digest,
        hashes: &[u64],
    ) -> Result<ForgetOutcome, BayesError> {
        Ok(match self.run(digest, "", hashes).await? {
            0 => ForgetOutcome::Unknown,
            _ => ForgetOutcome::Forgotten,
        })
    }

    /// Messages learned per class and distinct tokens (for the gauges).
    pub async fn totals(&self) -> Result<(u64, u64, u64), BayesError> {
        let mut conn = self.connection()?;
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET").arg(self.key("n")).arg("s").arg("h");
        pipe.cmd("HLEN").arg(self.key("s"));
        pipe.cmd("HLEN").arg(self.key("h"));
        let (totals, spam, ham): (Vec<Option<u64>>, u64, u64) =
            self.bounded(pipe.query_async(&mut conn)).await?;
        let total = |i: usize| totals.get(i).copied().flatten().unwrap_or(0);
        // A token seen in both classes is in both hashes: an upper bound.
        Ok((total(0), total(1), spam + ham))
    }
}
