//! The zero-loss ledger: many sessions push uniquely numbered messages
//! through spamgate to the flaky upstream; afterwards the client's record
//! and the upstream's are compared message by message.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::flaky::UpstreamLog;
use super::smtp::{ledger_message, Conn};

/// What the client was told about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// 4xx: the client keeps it and would retry.
    TempFailed(u16),
    /// 5xx: the client bounces it.
    PermFailed(u16),
    /// The connection ended without a reply: a protocol failure.
    NoReply,
}

#[derive(Debug, Default)]
pub struct ClientLog {
    pub outcomes: HashMap<u64, Outcome>,
    pub connections: usize,
}

/// Sends messages `0..messages` over `sessions` concurrent sessions, each
/// message exactly once (no retries, so the ledger stays exact).
pub async fn send_all(spamgate: SocketAddr, messages: u64, sessions: usize) -> ClientLog {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..sessions)
        .map(|_| tokio::spawn(worker(spamgate, messages, next.clone())))
        .collect();
    let mut log = ClientLog::default();
    for worker in workers {
        let part = worker.await.expect("worker finished");
        log.outcomes.extend(part.outcomes);
        log.connections += part.connections;
    }
    log
}

async fn worker(spamgate: SocketAddr, messages: u64, next: Arc<AtomicU64>) -> ClientLog {
    let mut log = ClientLog::default();
    let mut conn: Option<Conn> = None;
    loop {
        let id = next.fetch_add(1, Ordering::Relaxed);
        if id >= messages {
            break;
        }
        let mut session = match conn.take() {
            Some(session) => session,
            None => connect(spamgate, &mut log).await,
        };
        let (outcome, usable) = attempt(&mut session, id).await;
        log.outcomes.insert(id, outcome);
        if usable {
            conn = Some(session);
        }
    }
    if let Some(mut session) = conn {
        let _ = session.cmd("QUIT").await;
    }
    log
}

/// A ready session; connection failures are retried (no message is spent).
async fn connect(spamgate: SocketAddr, log: &mut ClientLog) -> Conn {
    loop {
        log.connections += 1;
        match Conn::ready(spamgate, None).await {
            Ok(conn) => return conn,
            Err(error) => {
                eprintln!("ledger: connecting to spamgate: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One message; also says whether the session can carry the next one.
async fn attempt(conn: &mut Conn, id: u64) -> (Outcome, bool) {
    let code = match conn
        .transaction(
            "ledger@example.com",
            "sink@example.net",
            &ledger_message(id),
        )
        .await
    {
        Ok(code) => code,
        Err(_) => return (Outcome::NoReply, false),
    };
    let outcome = match code {
        250 => return (Outcome::Accepted, true),
        400..=499 => Outcome::TempFailed(code),
        _ => Outcome::PermFailed(code),
    };
    let usable = matches!(conn.cmd("RSET").await, Ok(250));
    (outcome, usable)
}

/// The comparison of both sides.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub messages: u64,
    pub accepted: u64,
    pub tempfailed: u64,
    pub permfailed: u64,
    pub no_reply: u64,
    /// Accepted by spamgate, absent upstream: mail lost.
    pub lost: u64,
    /// Accepted by spamgate, present upstream more than once.
    pub duplicated: u64,
    /// Refused to the client although the upstream replied 250.
    pub refused_but_delivered: u64,
    /// Refused to the client, received whole upstream without a reply: the
    /// client's retry will deliver it a second time.
    pub duplicate_risk: u64,
    /// Upstream messages the client never sent, or without an id.
    pub unknown_upstream: u64,
    pub client_connections: usize,
    pub upstream_connections: usize,
    pub upstream_drops: usize,
}

impl Report {
    pub fn new(messages: u64, client: &ClientLog, upstream: &UpstreamLog) -> Report {
        let mut r = Report {
            messages,
            client_connections: client.connections,
            upstream_connections: upstream.connections,
            upstream_drops: upstream.drops,
            unknown_upstream: upstream.unlabelled as u64,
            ..Report::default()
        };
        for id in 0..messages {
            let outcome = client
                .outcomes
                .get(&id)
                .copied()
                .unwrap_or(Outcome::NoReply);
            let replied = upstream.replied.get(&id).copied().unwrap_or(0);
            let dropped = upstream.dropped_after_dot.get(&id).copied().unwrap_or(0);
            r.count(outcome, replied, dropped);
        }
        let known = |id: &u64| *id < messages;
        r.unknown_upstream += upstream.replied.keys().filter(|id| !known(id)).count() as u64;
        r.unknown_upstream += upstream
            .dropped_after_dot
            .keys()
            .filter(|id| !known(id))
            .count() as u64;
        r
    }

    fn count(&mut self, outcome: Outcome, replied: u32, dropped: u32) {
        match outcome {
            Outcome::Accepted => {
                self.accepted += 1;
                self.lost += u64::from(replied == 0);
                self.duplicated += u64::from(replied + dropped > 1);
            }
            refused => {
                match refused {
                    Outcome::TempFailed(_) => self.tempfailed += 1,
                    Outcome::PermFailed(_) => self.permfailed += 1,
                    _ => self.no_reply += 1,
                }
                self.refused_but_delivered += u64::from(replied > 0);
                self.duplicate_risk += u64::from(replied == 0 && dropped > 0);
            }
        }
    }

    /// Every accepted message is upstream exactly once, every other one got
    /// a 4xx/5xx, and the upstream holds nothing the client did not send.
    pub fn zero_loss(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.no_reply == 0 && self.unknown_upstream == 0
    }

    pub fn print(&self) {
        let rows: [(&str, u64); 13] = [
            ("messages sent", self.messages),
            ("accepted (250) by spamgate", self.accepted),
            ("tempfailed (4xx)", self.tempfailed),
            ("permfailed (5xx)", self.permfailed),
            ("no reply (must be 0)", self.no_reply),
            ("LOST: accepted, not upstream (must be 0)", self.lost),
            (
                "DUPLICATED: accepted, upstream twice (must be 0)",
                self.duplicated,
            ),
            (
                "refused to client but upstream said 250",
                self.refused_but_delivered,
            ),
            (
                "duplicate risk: dropped after dot, client told 4xx",
                self.duplicate_risk,
            ),
            (
                "unknown messages upstream (must be 0)",
                self.unknown_upstream,
            ),
            ("client connections", self.client_connections as u64),
            ("upstream connections", self.upstream_connections as u64),
            ("upstream drops injected", self.upstream_drops as u64),
        ];
        for (name, value) in rows {
            println!("  {name:<52} {value:>8}");
        }
        println!(
            "  zero loss: {}",
            if self.zero_loss() { "YES" } else { "NO" }
        );
    }
}
