//! A recording upstream MTA for tests: a real SMTP server on a loopback
//! port that stores exactly what it receives and can be told to fail at
//! any step, so tests can prove what did (and did not) reach the upstream.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::client::Io;

/// A step of the upstream dialogue where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Greeting,
    Ehlo,
    /// The reply to STARTTLS (`Reply(454)`: TLS not available).
    Starttls,
    Mail,
    Rcpt,
    Data,
    /// After the message's final dot, before the reply.
    Dot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection without a reply.
    Close,
    /// Never answer (spamgate's timeout must fire).
    Stall,
    /// Answer with this code (e.g. 451, 554).
    Reply(u16),
}

#[derive(Debug, Clone)]
pub struct Behaviour {
    pub xclient: bool,
    /// PIPELINING offered in the EHLO reply.
    pub pipelining: bool,
    /// CHUNKING offered: messages may come as BDAT (RFC 3030).
    pub chunking: bool,
    pub smtputf8: bool,
    /// Recipients refused with `550 5.1.1`.
    pub unknown_rcpts: Vec<String>,
    pub fault: Option<(Step, Fault)>,
    /// The one account AUTH PLAIN/LOGIN accepts, when AUTH is offered.
    pub account: Option<(String, String)>,
    /// STARTTLS offered with this certificate (see `TestCert::server_config`).
    pub starttls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            xclient: true,
            pipelining: true,
            chunking: false,
            smtputf8: true,
            unknown_rcpts: Vec::new(),
            fault: None,
            account: None,
            starttls: None,
        }
    }
}

/// One message the upstream accepted with 250.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The DATA phase exactly as it came over the wire, final dot included.
    pub wire: Vec<u8>,
    /// The message after removing dot-stuffing and the final dot.
    pub message: Vec<u8>,
    /// The XCLIENT lines sent in this upstream session, in order.
    pub xclient: Vec<String>,
    /// Which upstream connection carried it (1 for the first accepted).
    pub connection: usize,
    /// The user the upstream session authenticated, if any.
    pub user: Option<String>,
    /// The TLS version of the upstream session (`"TLSv1_3"`), if any.
    pub tls: Option<String>,
    /// The cipher suite of the upstream session as rustls names it
    /// (`"TLS13_AES_256_GCM_SHA384"`), if any.
    pub cipher: Option<String>,
}

#[derive(Default)]
struct Log {
    accepted: Vec<Received>,
    /// Each command line with the connection it came on.
    commands: Vec<(usize, String)>,
    connections: usize,
    /// The connections of spamgate's relay probe (its RCPT names them):
    /// left out of what tests read, unless they ask for them.
    probes: std::collections::BTreeSet<usize>,
}

/// The relay probe's recipient (see `spamgate::upstream::probe`).
pub const PROBE_RCPT: &str = "RCPT TO:<spamgate-relay-probe@relay-probe.invalid>";

impl Log {
    /// A connection's number among those that are not probes.
    fn rank(&self, connection: usize) -> usize {
        connection - self.probes.range(..connection).count()
    }

    fn is_probe(&self, connection: usize) -> bool {
        self.probes.contains(&connection)
    }
}

pub struct Recorder {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    behaviour: Arc<Mutex<Behaviour>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    pub async fn start(behaviour: Behaviour) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let task = tokio::spawn(accept_loop(listener, behaviour.clone(), log.clone()));
        Recorder {
            addr,
            log,
            behaviour,
            task,
        }
    }

    /// Changes how connections opened from now on behave (the upstream
    /// reconfigured or restarted behind spamgate's back).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    /// Messages accepted so far.
    pub fn accepted(&self) -> Vec<Received> {
        let log = self.log.lock().unwrap();
        let renumber = |r: &Received| Received {
            connection: log.rank(r.connection),
            ..r.clone()
        };
        log.accepted.iter().map(renumber).collect()
    }

    /// Every command line received, across connections, the relay
    /// probe's left out.
    pub fn commands(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let clients = log.commands.iter().filter(|(id, _)| !log.is_probe(*id));
        clients.map(|(_, c)| c.clone()).collect()
    }

    /// The command lines of spamgate's relay probes.
    pub fn probe_commands(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let probes = log.commands.iter().filter(|(id, _)| log.is_probe(*id));
        probes.map(|(_, c)| c.clone()).collect()
    }

    /// The command lines of one connection (see [`Received::connection`]),
    /// numbered without the probes.
    pub fn commands_of(&self, connection: usize) -> Vec<String> {
        let log = self.log.lock().unwrap();
        let of = log
            .commands
            .iter()
            .filter(|(id, _)| !log.is_probe(*id) && log.rank(*id) == connection);
        of.map(|(_, c)| c.clone()).collect()
    }

    /// Connections made, the relay probe's left out.
    pub fn connections(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.connections - log.probes.len()
    }

    /// Waits until `n` messages were accepted (or fails after 10 s).
    pub async fn wait_accepted(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let accepted = self.accepted();
            if accepted.len() >= n {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "upstream accepted {} messages, expected {n}",
            self.accepted().len()
        );
    }
}

/// An address where nothing listens: connecting is refused.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

async fn accept_loop(
    listener: TcpListener,
    behaviour: Arc<Mutex<Behaviour>>,
    log: Arc<Mutex<Log>>,
) {
    while let Ok((stream, _)) = listener.accept().await {
        let id = {
            let mut log = log.lock().unwrap();
            log.connections += 1;
            log.connections
        };
        let behaviour = behaviour.lock().unwrap().clone();
        tokio::spawn(Conn::new(Box::new(stream), id, behaviour, log.clone()).serve());
    }
}

struct Conn {
    id: usize,
    stream: BufReader<Box<dyn Io>>,
    tls: Option<String>,
    cipher: Option<String>,
    behaviour: Behaviour,
    log: Arc<Mutex<Log>>,
    tx: Received,
    xclient: Vec<String>,
    user: Option<String>,
}

enum Next {
    Continue,
    Stop,
}

impl Conn {
    fn new(stream: Box<dyn Io>, id: usize, behaviour: Behaviour, log: Arc<Mutex<Log>>) -> Conn {
        Conn {
            id,
            stream: BufReader::new(stream),
            tls: None,
            cipher: None,
            behaviour,
            log,
            tx: Received::default(),
            xclient: Vec::new(),
            user: None,
        }
    }

    async fn serve(mut self) {
        if let Next::Stop = self
            .answer(Step::Greeting, "220 upstream.test ESMTP recorder")
            .await
        {
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            match self.stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let command = line.trim_end_matches(['\r', '\n']).to_string();
            let entry = (self.id, command.clone());
            self.record(entry);
            if let Next::Stop = self.command(&command).await {
                return;
            }
        }
    }

    /// Logs a command line, marking the relay probe's connection.
    fn record(&self, entry: (usize, String)) {
        let mut log = self.log.lock().unwrap();
        let probe_xclient = entry.1.starts_with("XCLIENT ") && entry.1.contains(" ADDR=192.0.2.1 ");
        if probe_xclient || entry.1.eq_ignore_ascii_case(PROBE_RCPT) {
            log.probes.insert(entry.0);
        }
        log.commands.push(entry);
    }

    async fn command(&mut self, command: &str) -> Next {
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => self.answer(Step::Ehlo, &self.ehlo_reply()).await,
            "HELO" => self.answer(Step::Ehlo, "250 upstream.test").await,
            "XCLIENT" => {
                self.xclient.push(command.to_string());
                self.answer(Step::Greeting, "220 upstream.test ESMTP recorder")
                    .await
            }
            "MAIL" => {
                self.tx = Received {
                    mail_from: between_brackets(command),
                    ..Received::default()
                };
                self.answer(Step::Mail, "250 2.1.0 Ok").await
            }
            "RCPT" => self.rcpt(command).await,
            "DATA" => self.data().await,
            "BDAT" if self.behaviour.chunking => self.bdat(command).await,
            "RSET" => {
                self.tx = Received::default();
                self.write("250 2.0.0 Ok").await
            }
            "AUTH" => self.auth(command).await,
            "STARTTLS" => self.starttls().await,
            "QUIT" => {
                self.write("221 2.0.0 Bye").await;
                Next::Stop
            }
            _ => self.write("502 5.5.2 Error: command not recognized").await,
        }
    }

    /// RFC 3207: 220, the handshake, and a fresh session; commands sent
    /// ahead of the handshake are an injection and end the connection.
    async fn starttls(&mut self) -> Next {
        let Some(config) = self
            .behaviour
            .starttls
            .clone()
            .filter(|_| self.tls.is_none())
        else {
            return self.write("502 5.5.1 STARTTLS not offered").await;
        };
        if let Next::Stop = self
            .answer(Step::Starttls, "220 2.0.0 Ready to start TLS")
            .await
        {
            return Next::Stop;
        }
        if self
            .behaviour
            .fault
            .is_some_and(|(s, _)| s == Step::Starttls)
        {
            return Next::Continue; // refused (say 454): the session stays plain
        }
        if !self.stream.buffer().is_empty() {
            return Next::Stop;
        }
        let placeholder: Box<dyn Io> = Box::new(tokio::io::duplex(1).0);
        let plain = std::mem::replace(&mut self.stream, BufReader::new(placeholder)).into_inner();
        let Ok(tls) = TlsAcceptor::from(config).accept(plain).await else {
            return Next::Stop;
        };
        self.tls = tls.get_ref().1.protocol_version().map(|v| format!("{v:?}"));
        let suite = tls.get_ref().1.negotiated_cipher_suite();
        self.cipher = suite.map(|c| format!("{:?}", c.suite()));
        self.stream = BufReader::new(Box::new(tls));
        self.xclient.clear();
        self.user = None;
        Next::Continue
    }

    /// PLAIN with an initial response, or LOGIN in two challenges.
    async fn auth(&mut self, command: &str) -> Next {
        let Some((user, pass)) = self.behaviour.account.clone() else {
            return self.write("502 5.5.1 no AUTH here").await;
        };
        let words: Vec<&str> = command.split_whitespace().collect();
        let (got_user, got_pass) =
            match (words.get(1).map(|m| m.to_ascii_uppercase()), words.get(2)) {
                (Some(m), Some(initial)) if m == "PLAIN" => {
                    let plain = b64(initial);
                    let parts: Vec<&str> = plain.split('\0').collect();
                    (
                        parts.get(1).unwrap_or(&"").to_string(),
                        parts.get(2).unwrap_or(&"").to_string(),
                    )
                }
                (Some(m), None) if m == "LOGIN" => {
                    let Some(u) = self.prompt("334 VXNlcm5hbWU6").await else {
                        return Next::Stop;
                    };
                    let Some(p) = self.prompt("334 UGFzc3dvcmQ6").await else {
                        return Next::Stop;
                    };
                    (b64(&u), b64(&p))
                }
                _ => return self.write("504 5.5.4 mechanism not supported").await,
            };
        if (got_user.as_str(), got_pass.as_str()) == (user.as_str(), pass.as_str()) {
            self.user = Some(got_user);
            return self.write("235 2.7.0 Authentication successful").await;
        }
        self.write("535 5.7.8 Error: authentication failed").await
    }

    async fn prompt(&mut self, challenge: &str) -> Option<String> {
        if let Next::Stop = self.write(challenge).await {
            return None;
        }
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .await
            .ok()
            .filter(|n| *n > 0)?;
        Some(line.trim_end().to_string())
    }

    fn ehlo_reply(&self) -> String {
        let mut lines = vec!["250-upstream.test"];
        if self.behaviour.pipelining {
            lines.push("250-PIPELINING");
        }
        lines.extend(["250-SIZE 52428800", "250-8BITMIME"]);
        if self.behaviour.chunking {
            lines.push("250-CHUNKING");
        }
        if self.behaviour.xclient {
            lines.push("250-XCLIENT NAME ADDR PROTO HELO PORT LOGIN");
        }
        if self.behaviour.account.is_some() {
            lines.push("250-AUTH PLAIN LOGIN");
        }
        if self.behaviour.smtputf8 {
            lines.push("250-SMTPUTF8");
        }
        if self.behaviour.starttls.is_some() && self.tls.is_none() {
            lines.push("250-STARTTLS");
        }
        lines.push("250 ENHANCEDSTATUSCODES");
        lines.join("\r\n")
    }

    async fn rcpt(&mut self, command: &str) -> Next {
        let rcpt = between_brackets(command);
        if self.behaviour.unknown_rcpts.contains(&rcpt) {
            return self
                .write("550 5.1.1 <unknown>: Recipient address rejected")
                .await;
        }
        let next = self.answer(Step::Rcpt, "250 2.1.5 Ok").await;
        self.tx.rcpts.push(rcpt);
        next
    }

    async fn data(&mut self) -> Next {
        if let Next::Stop = self
            .answer(Step::Data, "354 End data with <CR><LF>.<CR><LF>")
            .await
        {
            return Next::Stop;
        }
        let Some(wire) = self.read_data().await else {
            return Next::Stop;
        };
        self.finish(unstuff(&wire), wire).await
    }

    /// One BDAT chunk: exactly its size in octets follows the command;
    /// the chunk marked LAST ends the message.
    async fn bdat(&mut self, command: &str) -> Next {
        let mut words = command.split_whitespace().skip(1);
        let Some(size) = words.next().and_then(|n| n.parse::<usize>().ok()) else {
            return self.write("501 5.5.4 Syntax: BDAT size [LAST]").await;
        };
        let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
        let mut chunk = vec![0u8; size];
        if self.stream.read_exact(&mut chunk).await.is_err() {
            return Next::Stop;
        }
        self.tx.wire.extend_from_slice(&chunk);
        if !last {
            return self.write(&format!("250 2.0.0 {size} octets")).await;
        }
        let wire = std::mem::take(&mut self.tx.wire);
        self.finish(wire.clone(), wire).await
    }

    /// The message is complete: answer for it and keep it if accepted.
    async fn finish(&mut self, message: Vec<u8>, wire: Vec<u8>) -> Next {
        self.tx.message = message;
        self.tx.wire = wire;
        self.tx.xclient = self.xclient.clone();
        self.tx.connection = self.id;
        self.tx.user = self.user.clone();
        self.tx.tls = self.tls.clone();
        self.tx.cipher = self.cipher.clone();
        let faulted = matches!(self.behaviour.fault, Some((Step::Dot, _)));
        let next = self.answer(Step::Dot, "250 2.0.0 Ok: queued as REC1").await;
        if let (Next::Continue, false) = (&next, faulted) {
            self.log
                .lock()
                .unwrap()
                .accepted
                .push(std::mem::take(&mut self.tx));
        }
        next
    }

    async fn read_data(&mut self) -> Option<Vec<u8>> {
        let mut wire = Vec::new();
        loop {
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            wire.extend_from_slice(&chunk[..n]);
            if wire == b".\r\n" || wire.ends_with(b"\r\n.\r\n") {
                return Some(wire);
            }
        }
    }

    /// Gives `reply` unless a fault is set for `step`.
    async fn answer(&mut self, step: Step, reply: &str) -> Next {
        match self.behaviour.fault {
            Some((at, Fault::Close)) if at == step => Next::Stop,
            Some((at, Fault::Stall)) if at == step => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Next::Stop
            }
            Some((at, Fault::Reply(code))) if at == step => {
                let class = code / 100;
                let next = self
                    .write(&format!("{code} {class}.0.0 injected fault"))
                    .await;
                // A 421 closes the channel (RFC 5321 3.8), as servers do.
                if code == 421 {
                    return Next::Stop;
                }
                next
            }
            _ => self.write(reply).await,
        }
    }

    async fn write(&mut self, reply: &str) -> Next {
        let wire = format!("{reply}\r\n");
        match self.stream.get_mut().write_all(wire.as_bytes()).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn between_brackets(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command.rfind('>').unwrap_or(command.len());
    command.get(start..end).unwrap_or("").to_string()
}

/// Removes the final dot and the dot-stuffing from a DATA payload.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = wire.strip_suffix(b".\r\n").unwrap_or(wire);
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}
