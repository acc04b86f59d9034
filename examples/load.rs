//! A load driver for `bench/compare.sh`: sends one message file over S
//! parallel SMTP sessions, each session reused for message after message
//! (as `smtp-source -d` does), until N messages went or T seconds passed.
//! Every target of the comparison (smtp-sink direct, spamgate, Haraka) is
//! driven by this same program so that the ratios compare servers, not
//! clients.
//!
//! Prints one line of `key=value` pairs: messages accepted and refused,
//! seconds, msgs/s, and the per-message time (MAIL FROM to the reply after
//! the final dot) at p50 and p99 in microseconds.
//!
//! ```text
//! load --addr 127.0.0.1:2525 --eml msg.eml --sessions 10 --messages 5000 \
//!      [--seconds 10] [--from a@b] [--rcpt c@d] [--helo name] [--proxy 198.18.0.25]
//! ```
//! `--proxy IP` sends a PROXY v1 header first, so that a server trusting
//! the driver sees IP as the client (loopback clients are skipped by some
//! of Haraka's checks).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Any single reply slower than this means the server is stuck.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Options {
    addr: SocketAddr,
    data: Arc<Vec<u8>>,
    sessions: u64,
    messages: u64,
    seconds: f64,
    from: String,
    rcpt: String,
    helo: String,
    proxy: Option<String>,
}

fn usage(why: &str) -> ! {
    eprintln!("load: {why}\nusage: load --addr IP:PORT --eml FILE [--sessions S] [--messages N] [--seconds T] [--from A] [--rcpt A] [--helo NAME] [--proxy IP]");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut eml) = (None, None);
    let mut o = Options {
        addr: "127.0.0.1:25".parse().unwrap(),
        data: Arc::new(Vec::new()),
        sessions: 1,
        messages: 1000,
        seconds: 3600.0,
        from: "bench@sender.bench.test".into(),
        rcpt: "user@sink.bench.test".into(),
        helo: "client.bench.test".into(),
        proxy: None,
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let bad = |_| usage(&format!("bad value for {flag}: {value}"));
        match flag.as_str() {
            "--addr" => addr = Some(value.parse().unwrap_or_else(|_| usage("bad --addr"))),
            "--eml" => eml = Some(value),
            "--sessions" => o.sessions = value.parse().unwrap_or_else(bad),
            "--messages" => o.messages = value.parse().unwrap_or_else(bad),
            "--seconds" => o.seconds = value.parse().unwrap_or_else(|_| usage("bad --seconds")),
            "--from" => o.from = value,
            "--rcpt" => o.rcpt = value,
            "--helo" => o.helo = value,
            "--proxy" => o.proxy = Some(value),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    o.addr = addr.unwrap_or_else(|| usage("--addr is required"));
    let raw = std::fs::read(eml.unwrap_or_else(|| usage("--eml is required")))
        .unwrap_or_else(|e| usage(&format!("cannot read the message: {e}")));
    o.data = Arc::new(data_payload(&raw));
    o
}

/// The DATA payload: CRLF line ends, dot-stuffed, ended by `.` on its own line.
fn data_payload(raw: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let mut out = Vec::with_capacity(raw.len() + 64);
    for line in text.strip_suffix('\n').unwrap_or(&text).split('\n') {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

struct Conn {
    stream: BufReader<TcpStream>,
    line: String,
}

impl Conn {
    async fn open(o: &Options) -> io::Result<Conn> {
        let stream = TcpStream::connect(o.addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream: BufReader::with_capacity(4096, stream),
            line: String::new(),
        };
        if let Some(ip) = &o.proxy {
            let local = conn.stream.get_ref().local_addr()?;
            let header = format!(
                "PROXY TCP4 {ip} {} {} {}\r\n",
                o.addr.ip(),
                local.port(),
                o.addr.port()
            );
            conn.send(header.as_bytes()).await?;
        }
        conn.expect(220).await?;
        conn.send(format!("EHLO {}\r\n", o.helo).as_bytes()).await?;
        conn.expect(250).await?;
        Ok(conn)
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        timed(self.stream.get_mut().write_all(bytes)).await
    }

    /// Reads one reply, possibly multi-line, and returns its code.
    async fn reply(&mut self) -> io::Result<u16> {
        loop {
            self.line.clear();
            if timed(self.stream.read_line(&mut self.line)).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let code = self.line.get(..3).and_then(|c| c.parse().ok());
            let code =
                code.ok_or_else(|| io::Error::other(format!("bad reply {:?}", self.line)))?;
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return Ok(code);
            }
        }
    }

    async fn expect(&mut self, want: u16) -> io::Result<()> {
        match self.reply().await? {
            code if code == want => Ok(()),
            _ => Err(io::Error::other(format!(
                "expected {want}, got {}",
                self.line.trim_end()
            ))),
        }
    }

    /// One transaction; Ok(true) when the message was accepted.
    async fn transaction(&mut self, o: &Options) -> io::Result<bool> {
        self.send(format!("MAIL FROM:<{}>\r\n", o.from).as_bytes())
            .await?;
        if self.reply().await? != 250 {
            return self.refused("MAIL").await;
        }
        self.send(format!("RCPT TO:<{}>\r\n", o.rcpt).as_bytes())
            .await?;
        if self.reply().await? != 250 {
            return self.refused("RCPT").await;
        }
        self.send(b"DATA\r\n").await?;
        if self.reply().await? != 354 {
            return self.refused("DATA").await;
        }
        self.send(&o.data).await?;
        if self.reply().await? / 100 != 2 {
            eprintln!("load: message refused: {}", self.line.trim_end());
            return Ok(false);
        }
        Ok(true)
    }

    async fn refused(&mut self, step: &str) -> io::Result<bool> {
        eprintln!("load: {step} refused: {}", self.line.trim_end());
        self.send(b"RSET\r\n").await?;
        self.reply().await?;
        Ok(false)
    }
}

async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, f)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
}

struct Shared {
    /// Transactions started (claimed) so far, across sessions.
    claimed: AtomicU64,
    refused: AtomicU64,
    deadline: Instant,
}

/// One session: claims messages until none are left or time is up.
async fn session(o: Options, shared: Arc<Shared>) -> io::Result<Vec<u32>> {
    let mut conn = Conn::open(&o).await?;
    let mut latencies = Vec::new();
    while Instant::now() < shared.deadline
        && shared.claimed.fetch_add(1, Ordering::Relaxed) < o.messages
    {
        let started = Instant::now();
        if conn.transaction(&o).await? {
            latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        } else {
            shared.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
    conn.send(b"QUIT\r\n").await?;
    let _ = conn.reply().await;
    Ok(latencies)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let o = parse_args();
    let shared = Arc::new(Shared {
        claimed: AtomicU64::new(0),
        refused: AtomicU64::new(0),
        deadline: Instant::now() + Duration::from_secs_f64(o.seconds),
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..o.sessions)
        .map(|_| tokio::spawn(session(o.clone(), shared.clone())))
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for task in tasks {
        match task.await.expect("session task panicked") {
            Ok(latencies) => all.extend(latencies),
            Err(e) => {
                errors += 1;
                eprintln!("load: session failed: {e}");
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let refused = shared.refused.load(Ordering::Relaxed);
    println!(
        "ok={} refused={refused} session_errors={errors} seconds={seconds:.3} rate={:.1} p50_us={} p99_us={}",
        all.len(),
        all.len() as f64 / seconds,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    );
    if refused > 0 || errors > 0 {
        std::process::exit(1);
    }
}
