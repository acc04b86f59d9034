//! A plain SMTP client for tests: it sends exactly the bytes a test gives
//! and reads replies with a deadline, so a hang fails the test instead of
//! blocking it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// A reply as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The enhanced status code of the first line, if any (`"5.7.1"`).
    pub fn status(&self) -> Option<&str> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        (parts.len() == 3 && parts.iter().all(|p| p.parse::<u16>().is_ok())).then_some(first)
    }
}

/// Any byte stream the client can talk over: plain TCP or TLS.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    stream: BufReader<Box<dyn Io>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to spamgate");
        stream.set_nodelay(true).unwrap();
        Client::over(Box::new(stream))
    }

    /// Connects from a chosen loopback source address (Linux routes all of
    /// 127.0.0.0/8 on `lo`), so the proxy sees distinct clients.
    pub async fn connect_from(addr: SocketAddr, source: std::net::IpAddr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::new(source, 0))
            .expect("bind the source address");
        let stream = socket.connect(addr).await.expect("connect to spamgate");
        stream.set_nodelay(true).unwrap();
        Client::over(Box::new(stream))
    }

    pub fn over(stream: Box<dyn Io>) -> Client {
        Client {
            stream: BufReader::new(stream),
        }
    }

    /// The underlying stream (for a TLS upgrade); nothing may be buffered.
    pub fn into_inner(self) -> Box<dyn Io> {
        assert!(self.stream.buffer().is_empty(), "bytes after the reply");
        self.stream.into_inner()
    }

    /// Connects and reads the banner, which must be a 220.
    pub async fn greeted(addr: SocketAddr) -> Client {
        let mut client = Client::connect(addr).await;
        let banner = client.reply().await;
        assert_eq!(banner.code, 220, "banner: {banner:?}");
        client
    }

    /// Connects, reads the banner and says EHLO.
    pub async fn ready(addr: SocketAddr) -> Client {
        let mut client = Client::greeted(addr).await;
        let ehlo = client.cmd("EHLO client.example").await;
        assert_eq!(ehlo.code, 250, "EHLO: {ehlo:?}");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream
            .get_mut()
            .write_all(bytes)
            .await
            .expect("write to spamgate");
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one (possibly multi-line) reply; panics if none comes in time.
    pub async fn reply(&mut self) -> Reply {
        self.try_reply().await.expect("a reply from spamgate")
    }

    /// Reads one reply, or `None` if the connection closed first.
    pub async fn try_reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(REPLY_TIMEOUT, self.read_reply())
            .await
            .expect("timed out waiting for a reply")
    }

    async fn read_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code: u16 = line.get(..3)?.parse().ok()?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(Reply { code, lines });
            }
        }
    }

    /// MAIL, RCPT..., DATA and the message; returns the final reply, or the
    /// refusal that stopped the transaction on the way.
    pub async fn send_mail(&mut self, from: &str, rcpts: &[&str], message: &str) -> Reply {
        let mail = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if mail.code != 250 {
            return mail;
        }
        let mut accepted = 0;
        let mut refused = None;
        for rcpt in rcpts {
            let reply = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            match reply.code {
                250 => accepted += 1,
                _ => refused = Some(reply),
            }
        }
        if let (0, Some(refused)) = (accepted, refused) {
            return refused;
        }
        let data = self.cmd("DATA").await;
        if data.code != 354 {
            return data;
        }
        self.send(dot_stuffed(message).as_bytes()).await;
        self.reply().await
    }

    /// True if the server closes the connection (EOF) within the timeout.
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(REPLY_TIMEOUT, self.stream.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => true,
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }
}

/// Turns a message with `\n` or `\r\n` line ends into a DATA payload.
pub fn dot_stuffed(message: &str) -> String {
    let mut out = String::new();
    for line in message.replace("\r\n", "\n").lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// A small valid message.
pub fn message(subject: &str) -> String {
    format!(
        "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 05:00:00 +0000\r\nMessage-ID: <{subject}@example.com>\r\n\r\nHello.\r\n"
    )
}
