//! An upstream MTA that drops the connection at a random step, including
//! right after the final dot before it replies, and keeps a ledger of what
//! it took responsibility for. With `drop_probability` 0 it is a plain sink.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The upstream's side of the ledger, by message id.
#[derive(Debug, Clone, Default)]
pub struct UpstreamLog {
    /// Messages answered with 250: the upstream owns them now.
    pub replied: HashMap<u64, u32>,
    /// Messages received whole but dropped before the reply (the sender
    /// cannot know they arrived: they may come twice).
    pub dropped_after_dot: HashMap<u64, u32>,
    /// Messages without an `X-Ledger-Id` header.
    pub unlabelled: usize,
    pub connections: usize,
    pub drops: usize,
}

pub struct Flaky {
    pub addr: SocketAddr,
    log: Arc<Mutex<UpstreamLog>>,
    task: JoinHandle<()>,
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Flaky {
    pub async fn start(drop_probability: f64) -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("local address");
        let log = Arc::new(Mutex::new(UpstreamLog::default()));
        let task = tokio::spawn(accept(listener, drop_probability, log.clone()));
        Flaky { addr, log, task }
    }

    pub fn log(&self) -> UpstreamLog {
        self.log.lock().expect("log lock").clone()
    }
}

async fn accept(listener: TcpListener, p: f64, log: Arc<Mutex<UpstreamLog>>) {
    while let Ok((stream, _)) = listener.accept().await {
        log.lock().expect("log lock").connections += 1;
        let conn = Conn {
            stream: BufReader::new(stream),
            p,
            log: log.clone(),
        };
        tokio::spawn(conn.serve());
    }
}

struct Conn {
    stream: BufReader<TcpStream>,
    p: f64,
    log: Arc<Mutex<UpstreamLog>>,
}

/// `None` ends the connection (dropped, or the peer left).
type Step = Option<()>;

const EHLO: &[u8] = b"250-upstream.flaky\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-XCLIENT NAME ADDR PORT PROTO HELO\r\n250 ENHANCEDSTATUSCODES\r\n";

impl Conn {
    async fn serve(mut self) {
        let _ = self.run().await;
    }

    async fn run(&mut self) -> Step {
        self.answer(b"220 upstream.flaky ESMTP\r\n").await?;
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.stream.read_until(b'\n', &mut line).await.ok()? == 0 {
                return None;
            }
            let verb = line
                .split(|&b| b == b' ' || b == b'\r')
                .next()
                .unwrap_or_default();
            match verb.to_ascii_uppercase().as_slice() {
                b"EHLO" | b"HELO" => self.answer(EHLO).await?,
                b"XCLIENT" => self.answer(b"220 upstream.flaky ESMTP\r\n").await?,
                b"MAIL" | b"RCPT" | b"RSET" => self.answer(b"250 2.0.0 Ok\r\n").await?,
                b"DATA" => self.data().await?,
                b"QUIT" => return self.write(b"221 2.0.0 Bye\r\n").await,
                _ => self.write(b"502 5.5.2 Unknown command\r\n").await?,
            }
        }
    }

    /// Gives `reply`, unless this is the step where the connection drops.
    async fn answer(&mut self, reply: &[u8]) -> Step {
        if fastrand::f64() < self.p {
            self.log.lock().expect("log lock").drops += 1;
            return None;
        }
        self.write(reply).await
    }

    async fn write(&mut self, reply: &[u8]) -> Step {
        self.stream.get_mut().write_all(reply).await.ok()
    }

    async fn data(&mut self) -> Step {
        self.answer(b"354 Go ahead\r\n").await?;
        let message = self.read_message().await?;
        let id = ledger_id(&message);
        let dropped = fastrand::f64() < self.p;
        {
            let mut log = self.log.lock().expect("log lock");
            match (id, dropped) {
                (None, _) => log.unlabelled += 1,
                (Some(id), true) => *log.dropped_after_dot.entry(id).or_default() += 1,
                (Some(id), false) => *log.replied.entry(id).or_default() += 1,
            }
            if dropped {
                log.drops += 1;
            }
        }
        if dropped {
            return None;
        }
        self.write(b"250 2.0.0 Ok: queued\r\n").await
    }

    async fn read_message(&mut self) -> Option<Vec<u8>> {
        let mut message = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.stream.read_until(b'\n', &mut line).await.ok()? == 0 {
                return None;
            }
            if line == b".\r\n" {
                return Some(message);
            }
            message.extend_from_slice(&line);
        }
    }
}

/// The id from the `X-Ledger-Id:` header, if the message has one.
pub fn ledger_id(message: &[u8]) -> Option<u64> {
    const NAME: &[u8] = b"\r\nX-Ledger-Id: ";
    let at = message.windows(NAME.len()).position(|w| w == NAME)? + NAME.len();
    let digits: Vec<u8> = message[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}
