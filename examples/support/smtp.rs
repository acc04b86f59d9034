//! A bare SMTP client for the bench drivers and tests: it sends exactly the
//! bytes it is given and reads reply codes under a deadline, so a stuck
//! server shows up as an error instead of a hang.
#![allow(dead_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// How long any single reply may take before we call the server stuck.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    stream: BufReader<TcpStream>,
}

fn lost(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, why.to_string())
}

impl Conn {
    /// Connects from `source` (any port), or from the default address.
    pub async fn open(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Conn> {
        let stream = match source {
            None => TcpStream::connect(addr).await?,
            Some(ip) => {
                let socket = TcpSocket::new_v4()?;
                socket.bind(SocketAddr::new(ip, 0))?;
                socket.connect(addr).await?
            }
        };
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream: BufReader::with_capacity(1024, stream),
        })
    }

    /// Connects, expects the 220 banner and says EHLO.
    pub async fn ready(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<Conn> {
        let mut conn = Conn::open(addr, source).await?;
        conn.expect(220).await?;
        conn.send(b"EHLO bench.example\r\n").await?;
        conn.expect(250).await?;
        Ok(conn)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        tokio::time::timeout(IO_TIMEOUT, self.stream.get_mut().write_all(bytes))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Reads one (possibly multi-line) reply and returns its code.
    pub async fn reply(&mut self) -> io::Result<u16> {
        tokio::time::timeout(IO_TIMEOUT, self.read_reply())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    async fn read_reply(&mut self) -> io::Result<u16> {
        let mut line = Vec::new();
        loop {
            line.clear();
            if self.stream.read_until(b'\n', &mut line).await? == 0 {
                return Err(lost("connection closed"));
            }
            let code = std::str::from_utf8(line.get(..3).ok_or_else(|| lost("short reply"))?)
                .ok()
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| lost("not a reply"))?;
            if line.get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    /// Sends a command line (CRLF added) and returns the reply code.
    pub async fn cmd(&mut self, line: &str) -> io::Result<u16> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    pub async fn expect(&mut self, code: u16) -> io::Result<()> {
        match self.reply().await? {
            got if got == code => Ok(()),
            got => Err(io::Error::other(format!("expected {code}, got {got}"))),
        }
    }

    /// One whole transaction; returns the final reply code (or the first
    /// refusal on the way).
    pub async fn transaction(&mut self, from: &str, to: &str, body: &[u8]) -> io::Result<u16> {
        for line in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")] {
            match self.cmd(&line).await? {
                250 => {}
                refused => return Ok(refused),
            }
        }
        match self.cmd("DATA").await? {
            354 => {}
            refused => return Ok(refused),
        }
        self.send(body).await?;
        self.reply().await
    }

    /// Waits for the server to close the connection, discarding what it sends.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        let mut sink = Vec::new();
        let read = async {
            loop {
                sink.clear();
                match self.stream.read_until(b'\n', &mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(limit, read).await.is_ok()
    }
}

/// A small message carrying `id` in a header, dot-terminated for DATA.
pub fn ledger_message(id: u64) -> Vec<u8> {
    format!(
        "From: ledger@example.com\r\nTo: sink@example.net\r\nSubject: ledger {id}\r\nMessage-ID: <ledger-{id}@example.com>\r\nX-Ledger-Id: {id}\r\n\r\nMessage number {id}.\r\n.\r\n"
    )
    .into_bytes()
}
