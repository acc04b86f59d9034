//! The bound on DATA memory across all sessions. Each message alone is
//! bounded by `limits.max_message_size`, but ten thousand sessions each
//! sending a large message at once would not be: the buffers draw on one
//! pool of `limits.data_memory_total` bytes instead.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

use crate::smtp::codec::DataBudget;

/// The pool: bytes reserved by all sessions' DATA buffers together.
#[derive(Debug)]
pub struct DataMemory {
    limit: usize,
    used: AtomicUsize,
    gauge: Gauge,
}

impl DataMemory {
    pub fn new(limit: usize, gauge: Gauge) -> DataMemory {
        DataMemory {
            limit,
            used: AtomicUsize::new(0),
            gauge,
        }
    }

    /// Reserves `bytes` for a message about to be received; `None` when
    /// the pool cannot spare them now.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let held = self.take(bytes, bytes)?;
        Some(Reservation {
            memory: self.clone(),
            held,
            used: 0,
        })
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes as much as is free, up to `most`, if that is at least `least`.
    fn take(&self, least: usize, most: usize) -> Option<usize> {
        let grant = |used: usize| most.min(self.limit.saturating_sub(used));
        let fits = |used: usize| (grant(used) >= least).then(|| used + grant(used));
        let before = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, fits)
            .ok()?;
        let taken = grant(before);
        self.gauge.inc_by(taken as i64);
        Some(taken)
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.dec_by(bytes as i64);
    }
}

/// One session's share of the pool, given back when dropped (the end of
/// the DATA command, whatever its outcome).
#[derive(Debug)]
pub struct Reservation {
    memory: Arc<DataMemory>,
    /// Taken from the pool.
    held: usize,
    /// Granted to the buffer, out of `held`.
    used: usize,
}

impl DataBudget for Reservation {
    fn take(&mut self, least: usize, most: usize) -> Option<usize> {
        let spare = self.held - self.used;
        let (least_missing, most_missing) =
            (least.saturating_sub(spare), most.saturating_sub(spare));
        let taken = match most_missing {
            0 => 0,
            _ => self.memory.take(least_missing, most_missing)?,
        };
        self.held += taken;
        let granted = (spare + taken).min(most);
        self.used += granted;
        Some(granted)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smtp::codec::{DataBody, DataFlaw, DataLimits, SmtpStream, FIRST_GRANT};

    #[test]
    fn reservations_share_the_pool_and_give_it_back() {
        let memory = Arc::new(DataMemory::new(100, Gauge::default()));
        let mut first = memory.reserve(30).unwrap();
        assert_eq!(first.take(20, 20), Some(20), "within the up-front share");
        assert_eq!(memory.in_use(), 30);
        assert_eq!(first.take(40, 40), Some(40), "10 spare + 30 from the pool");
        assert_eq!(memory.in_use(), 60);
        let mut second = memory.reserve(30).unwrap();
        assert!(memory.reserve(11).is_none(), "90 + 11 > 100");
        assert_eq!(second.take(41, 41), None, "11 more would pass 100");
        assert_eq!(second.take(35, 80), Some(40), "as much as is free");
        assert_eq!(memory.in_use(), 100);
        drop(first);
        assert_eq!(memory.in_use(), 40);
        assert_eq!(memory.gauge.get(), 40);
        drop(second);
        assert_eq!((memory.in_use(), memory.gauge.get()), (0, 0));
    }

    async fn receive(memory: &Arc<DataMemory>, message: &[u8]) -> (DataBody, usize) {
        use tokio::io::AsyncWriteExt;
        let (ours, mut theirs) = tokio::io::duplex(1 << 20);
        theirs.write_all(message).await.unwrap();
        theirs.write_all(b".\r\n").await.unwrap();
        let mut stream = SmtpStream::new(ours);
        let mut reservation = memory.reserve(FIRST_GRANT).unwrap();
        let limits = DataLimits {
            max_size: 1 << 20,
            max_line: 1000,
            normalize: false,
        };
        let body = stream.read_data_within(limits, &mut reservation).await;
        (body.unwrap(), memory.in_use())
    }

    #[tokio::test]
    async fn the_buffer_grows_within_the_pool_and_no_further() {
        let memory = Arc::new(DataMemory::new(64 * 1024, Gauge::default()));
        let line = [b'x'; 98];
        let lines = |n: usize| {
            let mut m = Vec::new();
            (0..n).for_each(|_| m.extend_from_slice(&[&line[..], b"\r\n"].concat()));
            m
        };
        // 40,000 bytes: the grant doubles 16 KiB, 32 KiB, 64 KiB.
        let (body, held) = receive(&memory, &lines(400)).await;
        assert_eq!((body.flaw, body.bytes.len()), (None, 40_000));
        assert_eq!(held, 64 * 1024);
        assert!(body.bytes.capacity() <= held, "capacity within the grant");
        assert_eq!(memory.in_use(), 0, "given back when the reservation drops");
        let _other = memory.reserve(40 * 1024).unwrap();
        let (body, _) = receive(&memory, &lines(250)).await;
        assert_eq!(
            body.flaw,
            Some(DataFlaw::NoMemory),
            "25,000 > 64 KiB - 40 KiB"
        );
        let (body, held) = receive(&memory, &lines(200)).await;
        assert_eq!(
            (body.flaw, body.bytes.len()),
            (None, 20_000),
            "what is left fits"
        );
        assert_eq!(held, 64 * 1024, "the last step took what was free");
    }
}
