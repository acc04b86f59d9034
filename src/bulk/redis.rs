//! Band-key counts in Redis, shared by every instance: per band key a
//! counter of recipients and a HyperLogLog of client networks, both
//! expiring one window after their first sighting (`PEXPIRE ... NX`,
//! Redis 7). One pipeline, one round trip per message.

use super::{BulkError, Seen};
use crate::state::RedisState;

// Per key: INCRBY and PFCOUNT answer; the PEXPIREs and PFADD are ignored.

pub async fn observe(
    redis: &RedisState,
    keys: &[u64],
    recipients: u64,
    client: u32,
    window_ms: u64,
) -> Result<Vec<Seen>, BulkError> {
    let mut pipe = ::redis::pipe();
    for key in keys {
        let (count, clients) = names(redis, *key);
        pipe.cmd("INCRBY").arg(&count).arg(recipients);
        pipe.cmd("PEXPIRE")
            .arg(&count)
            .arg(window_ms)
            .arg("NX")
            .ignore();
        pipe.cmd("PFADD").arg(&clients).arg(client).ignore();
        pipe.cmd("PEXPIRE")
            .arg(&clients)
            .arg(window_ms)
            .arg("NX")
            .ignore();
        pipe.cmd("PFCOUNT").arg(&clients);
    }
    let values: Vec<u64> = redis.pipeline(&pipe).await?;
    if values.len() != keys.len() * 2 {
        return Err(BulkError::Answer(values.len(), keys.len()));
    }
    Ok(values
        .chunks(2)
        .map(|pair| Seen {
            recipients: pair[0],
            clients: pair[1],
        })
        .collect())
}

fn names(redis: &RedisState, key: u64) -> (String, String) {
    let hex = format!("{key:016x}");
    (
        redis.prefixed("bulk:r", &hex),
        redis.prefixed("bulk:c", &hex),
    )
}
