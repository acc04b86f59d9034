//! The lockstep client towards the upstream MTA. One `Upstream` follows one
//! client session: it is opened at the client's first MAIL, carries every
//! transaction of that session, and is dropped at the first error.

pub mod probe;
pub mod xclient;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::config::{Timeouts, UpstreamConfig, UpstreamTlsConfig, UpstreamTlsMode};
use crate::judgement::reply::Reply;
use crate::smtp::codec::{dot_stuff_into, Line, ReadError, SmtpStream};
use crate::smtp::command::MailParams;
use crate::tls::client::UpstreamIo;
use crate::tls::TlsInfo;
pub use probe::{ProbeReport, RelayFinding, XclientFinding};

pub use xclient::ClientIdentity;

const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

/// The step of the upstream dialogue where something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    Ehlo,
    Starttls,
    Xclient,
    Mail,
    Rcpt,
    Data,
    Message,
    Rset,
    Auth,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("timeout at {0:?}")]
    Timeout(Phase),
    #[error("connection lost at {0:?}")]
    Closed(Phase),
    #[error("protocol error at {0:?}: {1}")]
    Protocol(Phase, String),
    #[error("upstream refused at {0:?}: {1}")]
    Refused(Phase, Reply),
    /// `upstream.xclient` is on, but the upstream does not let us pass the
    /// client on (not authorised, or not offered): nothing is relayed.
    #[error(
        "upstream.xclient is on but the upstream offers {0} to spamgate; \
             authorise spamgate's address for XCLIENT in the MTA (Postfix: \
             smtpd_authorized_xclient_hosts, then postfix reload); until then every \
             transaction gets 451"
    )]
    XclientUnavailable(&'static str),
    /// The probe found that the upstream relays for outsiders and
    /// spamgate has no relay domains of its own: refusing to start.
    #[error("{address} relays for outsiders: {finding}; with spamgate in front, this system would be an open relay; {}", probe::OPEN_RELAY_FIXES)]
    OpenRelay { address: String, finding: String },
    #[error("upstream.tls.mode is required but the upstream does not offer STARTTLS")]
    TlsNotOffered,
    #[error("TLS to the upstream failed: {0}")]
    Tls(String),
    /// The startup probe's verdict on a TLS failure, naming the upstream:
    /// the operator reads it once, in the error that stops the start.
    #[error("{address}: {source}; every message would get 451 4.4.1")]
    Unusable {
        address: String,
        source: Box<UpstreamError>,
    },
}

impl UpstreamError {
    /// The metric label: a closed set.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Closed(_) => "disconnect",
            UpstreamError::Protocol(..) => "protocol",
            UpstreamError::Refused(..) => "refused",
            UpstreamError::XclientUnavailable(_) => "xclient",
            UpstreamError::OpenRelay { .. } => "open_relay",
            UpstreamError::TlsNotOffered
            | UpstreamError::Tls(_)
            | UpstreamError::Unusable { .. } => "tls",
        }
    }

    /// Whether the upstream answered but TLS could not be had: a setup
    /// problem (certificate, name, missing STARTTLS), not an outage.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            UpstreamError::TlsNotOffered | UpstreamError::Tls(_) | UpstreamError::Unusable { .. }
        )
    }

    /// A problem the operator must fix (TLS, XCLIENT), not an outage.
    pub fn is_setup(&self) -> bool {
        self.is_tls() || matches!(self, UpstreamError::XclientUnavailable(_))
    }

    /// Names the upstream in a TLS error found by the startup probe.
    pub fn unusable(self, address: &str) -> UpstreamError {
        UpstreamError::Unusable {
            address: address.to_string(),
            source: Box::new(self),
        }
    }
}

/// What the upstream announced in its EHLO reply.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub size: Option<u64>,
    pub eightbit: bool,
    pub smtputf8: bool,
    pub pipelining: bool,
    pub chunking: bool,
    pub xclient: Option<Vec<String>>,
    /// SASL mechanisms offered (for relaying AUTH on submission listeners).
    pub auth: Vec<String>,
    pub starttls: bool,
}

impl Capabilities {
    fn parse(ehlo: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in ehlo.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "SIZE" => caps.size = words.next().and_then(|n| n.parse().ok()).or(Some(0)),
                "8BITMIME" => caps.eightbit = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "PIPELINING" => caps.pipelining = true,
                "CHUNKING" => caps.chunking = true,
                "XCLIENT" => caps.xclient = Some(words.map(str::to_string).collect()),
                "AUTH" => caps.auth = words.map(str::to_ascii_uppercase).collect(),
                "STARTTLS" => caps.starttls = true,
                _ => {}
            }
        }
        caps
    }
}

/// What the last upstream EHLO said, shared by all sessions so that we only
/// advertise SMTPUTF8 and AUTH mechanisms to clients when the upstream can
/// take them; and what the probe found about relaying.
#[derive(Debug, Default)]
pub struct SharedCapabilities {
    smtputf8: AtomicBool,
    /// Set once an EHLO was seen: before that, AUTH is advertised as
    /// configured (the upstream is not known yet).
    known: AtomicBool,
    auth: std::sync::RwLock<Vec<String>>,
    relay: AtomicU8,
}

/// What the probe found about the upstream relaying for outsiders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelaySafety {
    /// Not probed yet (the upstream was not reachable).
    Unknown = 0,
    /// The upstream refuses outsiders' foreign recipients, or spamgate
    /// restricts relaying itself.
    Safe = 1,
    /// The upstream would relay for anyone and spamgate has no
    /// `relay_domains`: every RCPT is held with a 4xx.
    Unsafe = 2,
}

impl SharedCapabilities {
    pub fn smtputf8(&self) -> bool {
        self.smtputf8.load(Ordering::Relaxed)
    }

    /// The SASL mechanisms the upstream offers, or `None` before any EHLO.
    pub fn auth(&self) -> Option<Vec<String>> {
        if !self.known.load(Ordering::Relaxed) {
            return None;
        }
        self.auth.read().ok().map(|mechanisms| mechanisms.clone())
    }

    pub fn relay_safety(&self) -> RelaySafety {
        match self.relay.load(Ordering::Relaxed) {
            1 => RelaySafety::Safe,
            2 => RelaySafety::Unsafe,
            _ => RelaySafety::Unknown,
        }
    }

    pub fn set_relay_safety(&self, safety: RelaySafety) {
        self.relay.store(safety as u8, Ordering::Relaxed);
    }

    fn learn(&self, caps: &Capabilities) {
        self.smtputf8.store(caps.smtputf8, Ordering::Relaxed);
        if let Ok(mut auth) = self.auth.write() {
            if *auth != caps.auth {
                *auth = caps.auth.clone();
            }
        }
        self.known.store(true, Ordering::Relaxed);
    }
}

/// Timings of one upstream exchange, for the latency metrics.
#[derive(Debug, Clone, Copy)]
pub struct Timed<T> {
    pub value: T,
    pub elapsed: Duration,
}

/// The upstream's replies to a RCPT and, when it went in the same write,
/// to the MAIL before it.
#[derive(Debug, Clone)]
pub struct RcptReplies {
    pub mail: Option<Reply>,
    pub rcpt: Reply,
}

/// How TLS towards the upstream went on one connection, for
/// `spamgate_upstream_tls_total`: a closed set.
pub fn tls_outcome(
    mode: UpstreamTlsMode,
    connected: &Result<Upstream, UpstreamError>,
) -> Option<&'static str> {
    match (mode, connected) {
        (UpstreamTlsMode::Off, _) => None,
        (_, Ok(upstream)) if upstream.tls.is_some() => Some("established"),
        (_, Ok(_)) | (_, Err(UpstreamError::TlsNotOffered)) => Some("not_offered"),
        (_, Err(UpstreamError::Tls(_))) => Some("failed"),
        (_, Err(_)) => None,
    }
}

pub struct Upstream {
    stream: SmtpStream<UpstreamIo>,
    caps: Capabilities,
    command_timeout: Duration,
    data_timeout: Duration,
    /// `upstream.chunking`: BDAT may be used when offered.
    chunking: bool,
    /// The TLS session, when STARTTLS succeeded.
    tls: Option<TlsInfo>,
}

impl Upstream {
    /// Connects, greets, and introduces the real client with XCLIENT.
    pub async fn connect(
        config: &UpstreamConfig,
        timeouts: &Timeouts,
        client: &ClientIdentity,
        shared: &SharedCapabilities,
    ) -> Result<Upstream, UpstreamError> {
        let mut upstream = Upstream::greet(config, timeouts).await?;
        if config.xclient {
            let offered = upstream.xclient_offered()?;
            upstream
                .xclient(client, &offered, &config.helo_name)
                .await?;
        }
        shared.learn(&upstream.caps);
        Ok(upstream)
    }

    /// Connects and says EHLO, over TLS when `upstream.tls` asks for it.
    async fn greet(
        config: &UpstreamConfig,
        timeouts: &Timeouts,
    ) -> Result<Upstream, UpstreamError> {
        let mut upstream = Upstream::open(config, timeouts).await?;
        upstream.secure(&config.tls, &config.helo_name).await?;
        Ok(upstream)
    }

    async fn open(config: &UpstreamConfig, timeouts: &Timeouts) -> Result<Upstream, UpstreamError> {
        let stream = open(&config.address, timeouts.upstream_connect).await?;
        let mut upstream = Upstream {
            stream: SmtpStream::new(UpstreamIo::Plain(stream)),
            caps: Capabilities::default(),
            command_timeout: timeouts.upstream_command,
            data_timeout: timeouts.upstream_data,
            chunking: config.chunking,
            tls: None,
        };
        upstream.expect(Phase::Greeting, 220).await?;
        upstream.ehlo(&config.helo_name).await?;
        Ok(upstream)
    }

    /// The XCLIENT attributes offered, when ADDR is among them. Without it
    /// the upstream would see every client as spamgate, an address it may
    /// trust to relay anywhere: fail closed instead.
    fn xclient_offered(&self) -> Result<Vec<String>, UpstreamError> {
        match &self.caps.xclient {
            Some(offered) if offered.iter().any(|a| a.eq_ignore_ascii_case("ADDR")) => {
                Ok(offered.clone())
            }
            Some(_) => Err(UpstreamError::XclientUnavailable("XCLIENT without ADDR")),
            None => Err(UpstreamError::XclientUnavailable("no XCLIENT")),
        }
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The TLS session to the upstream, if there is one.
    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// Applies `upstream.tls` after the first EHLO. Never falls back to
    /// plaintext once STARTTLS was tried: a failed handshake may be an
    /// attacker's doing, and a silent downgrade is what they want.
    async fn secure(&mut self, tls: &UpstreamTlsConfig, helo: &str) -> Result<(), UpstreamError> {
        let client = match (tls.mode, tls.client.as_ref()) {
            (UpstreamTlsMode::Off, _) => return Ok(()),
            (_, Some(client)) => client,
            // Only a configuration built by hand gets here: never go plain.
            (_, None) => return Err(UpstreamError::Tls("no TLS client configured".into())),
        };
        match (self.caps.starttls, tls.mode) {
            (true, _) => self.starttls(client, helo).await,
            (false, UpstreamTlsMode::Required) => Err(UpstreamError::TlsNotOffered),
            (false, _) => Ok(()),
        }
    }

    /// STARTTLS, the handshake, and the EHLO again (RFC 3207 §4.2: what
    /// the server said before TLS no longer counts).
    async fn starttls(
        &mut self,
        client: &crate::tls::client::TlsClient,
        helo: &str,
    ) -> Result<(), UpstreamError> {
        let failed = UpstreamError::Tls;
        let reply = self
            .command(Phase::Starttls, "STARTTLS")
            .await
            .map_err(|e| failed(e.to_string()))?;
        if reply.code != 220 {
            return Err(failed(format!("STARTTLS refused: {reply}")));
        }
        // Bytes behind the 220 were sent in clear and could be anyone's.
        if self.stream.has_buffered_input() {
            return Err(failed("data pipelined after the STARTTLS reply".into()));
        }
        let handshake = self.stream.get_mut().start_tls(client);
        let info = match timeout(self.command_timeout, handshake).await {
            Ok(Ok(info)) => info,
            Ok(Err(error)) => return Err(failed(error.to_string())),
            Err(_) => return Err(failed("handshake timed out".into())),
        };
        self.tls = Some(info);
        self.ehlo(helo).await
    }

    async fn ehlo(&mut self, helo_name: &str) -> Result<(), UpstreamError> {
        let reply = self
            .command(Phase::Ehlo, &format!("EHLO {helo_name}"))
            .await?;
        if reply.code != 250 {
            return Err(UpstreamError::Refused(Phase::Ehlo, reply));
        }
        self.caps = Capabilities::parse(&reply);
        Ok(())
    }

    /// Each XCLIENT line restarts the upstream session (220), so EHLO again,
    /// and with the client's own HELO name: Postfix takes the name from
    /// the EHLO that follows XCLIENT, overriding XCLIENT's HELO attribute
    /// (nginx's mail proxy does the same). A name the upstream refuses
    /// falls back to ours.
    async fn xclient(
        &mut self,
        client: &ClientIdentity,
        offered: &[String],
        helo: &str,
    ) -> Result<(), UpstreamError> {
        for line in xclient::commands(client, offered) {
            // Postfix answers 220 (a new greeting); older servers and
            // smtp-sink answer 250. Both accepted the attributes.
            let reply = self.command(Phase::Xclient, &line).await?;
            if !(200..300).contains(&reply.code) {
                return Err(UpstreamError::Refused(Phase::Xclient, reply));
            }
        }
        let client_helo = client.helo.as_deref().filter(|h| is_safe_helo(h));
        match client_helo {
            Some(name) => match self.ehlo(name).await {
                Err(UpstreamError::Refused(..)) => self.ehlo(helo).await,
                other => other,
            },
            None => self.ehlo(helo).await,
        }
    }

    /// Relays MAIL FROM; the caller passes the reply on to the client.
    /// The line is formatted straight into the write buffer, as RCPT's is:
    /// these two run for every message.
    pub async fn mail(&mut self, from: &str, params: &MailParams) -> Result<Reply, UpstreamError> {
        self.queue_mail(from, params);
        self.send_queued(Phase::Mail).await
    }

    /// Formats MAIL FROM (without its CRLF) into the write buffer.
    fn queue_mail(&mut self, from: &str, params: &MailParams) {
        let line = self.stream.queued_mut();
        line.extend_from_slice(b"MAIL FROM:<");
        line.extend_from_slice(from.as_bytes());
        line.push(b'>');
        if let (Some(size), Some(_)) = (params.size, self.caps.size) {
            // Writing into a Vec cannot fail.
            let _ = write!(line, " SIZE={size}");
        }
        if params.body_8bit && self.caps.eightbit {
            line.extend_from_slice(b" BODY=8BITMIME");
        }
        if params.smtputf8 && self.caps.smtputf8 {
            line.extend_from_slice(b" SMTPUTF8");
        }
    }

    /// One step of a relayed AUTH exchange: the client's line as is.
    pub async fn auth_step(&mut self, line: &str) -> Result<Reply, UpstreamError> {
        self.command(Phase::Auth, line).await
    }

    pub async fn rcpt(&mut self, to: &str) -> Result<Reply, UpstreamError> {
        self.queue_rcpt(to);
        self.send_queued(Phase::Rcpt).await
    }

    /// [`Upstream::rcpt`] in the shape of [`Upstream::mail_rcpt`]'s answer.
    pub async fn rcpt_only(&mut self, to: &str) -> Result<RcptReplies, UpstreamError> {
        let rcpt = self.rcpt(to).await?;
        Ok(RcptReplies { mail: None, rcpt })
    }

    /// MAIL and RCPT in one write (RFC 2920), then both replies. After a
    /// 421 to MAIL the upstream is gone: its word is the answer to both.
    pub async fn mail_rcpt(
        &mut self,
        from: &str,
        params: &MailParams,
        to: &str,
    ) -> Result<RcptReplies, UpstreamError> {
        self.queue_mail(from, params);
        self.stream.queue_raw(b"\r\n");
        self.queue_rcpt(to);
        self.stream.queue_raw(b"\r\n");
        self.flush(Phase::Mail).await?;
        let mail = self.read_reply(Phase::Mail, self.command_timeout).await?;
        let rcpt = match mail.closes_channel() {
            true => mail.clone(),
            false => self.read_reply(Phase::Rcpt, self.command_timeout).await?,
        };
        Ok(RcptReplies {
            mail: Some(mail),
            rcpt,
        })
    }

    fn queue_rcpt(&mut self, to: &str) {
        let line = self.stream.queued_mut();
        line.extend_from_slice(b"RCPT TO:<");
        line.extend_from_slice(to.as_bytes());
        line.push(b'>');
    }

    /// Sends the message (`headers`, then `body`) and returns the
    /// upstream's verdict on it, or its refusal of DATA itself.
    pub async fn data(&mut self, headers: &[u8], body: &[u8]) -> Result<Reply, UpstreamError> {
        match self.chunking && self.caps.chunking {
            true => self.bdat(headers, body).await,
            false => self.dot_data(headers, body).await,
        }
    }

    /// One `BDAT n LAST` with the message as is (RFC 3030): no 354 to wait
    /// for and no dot-stuffing, so nothing in the message can end it early.
    async fn bdat(&mut self, headers: &[u8], body: &[u8]) -> Result<Reply, UpstreamError> {
        // The octets are counted, not framed: unlike DATA, nothing needs
        // adding (the client's DATA already ended the message with CRLF).
        let size = headers.len() + body.len();
        let out = self.stream.queued_mut();
        out.reserve(size + 32);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "BDAT {size} LAST\r\n");
        out.extend_from_slice(headers);
        out.extend_from_slice(body);
        self.flush(Phase::Message).await?;
        self.read_reply(Phase::Message, self.data_timeout).await
    }

    /// DATA, the 354, then the message dot-stuffed and its final dot.
    async fn dot_data(&mut self, headers: &[u8], body: &[u8]) -> Result<Reply, UpstreamError> {
        let reply = self.command(Phase::Data, "DATA").await?;
        if reply.code != 354 {
            return Ok(reply);
        }
        // Straight into the write buffer: one copy of the message, one write.
        let out = self.stream.queued_mut();
        out.reserve(headers.len() + body.len() + body.len() / 64 + 8);
        out.extend_from_slice(headers);
        dot_stuff_into(out, body);
        self.flush(Phase::Message).await?;
        self.read_reply(Phase::Message, self.data_timeout).await
    }

    /// Ends an unfinished transaction so that the next one starts clean.
    pub async fn rset(&mut self) -> Result<(), UpstreamError> {
        let reply = self.command(Phase::Rset, "RSET").await?;
        match reply.code {
            250 => Ok(()),
            _ => Err(UpstreamError::Refused(Phase::Rset, reply)),
        }
    }

    /// Says goodbye politely but without waiting long for the answer.
    pub async fn quit(mut self) {
        self.stream.queue_raw(b"QUIT\r\n");
        let _ = timeout(Duration::from_secs(2), async {
            self.stream.flush().await.ok()?;
            self.stream.read_line(MAX_REPLY_LINE).await.ok()
        })
        .await;
        self.stream.shutdown().await;
    }

    /// Sends `line` after whatever is already queued (MAIL and RCPT format
    /// theirs in place and pass ""), then reads the reply.
    async fn command(&mut self, phase: Phase, line: &str) -> Result<Reply, UpstreamError> {
        self.stream.queue_raw(line.as_bytes());
        self.send_queued(phase).await
    }

    /// Ends the command line already queued (formatted in place by the
    /// caller), sends it and reads its reply.
    async fn send_queued(&mut self, phase: Phase) -> Result<Reply, UpstreamError> {
        self.stream.queue_raw(b"\r\n");
        self.flush(phase).await?;
        self.read_reply(phase, self.command_timeout).await
    }

    async fn expect(&mut self, phase: Phase, code: u16) -> Result<Reply, UpstreamError> {
        let reply = self.read_reply(phase, self.command_timeout).await?;
        match reply.code == code {
            true => Ok(reply),
            false => Err(UpstreamError::Refused(phase, reply)),
        }
    }

    async fn flush(&mut self, phase: Phase) -> Result<(), UpstreamError> {
        let flushed = timeout(self.command_timeout, self.stream.flush()).await;
        match flushed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(UpstreamError::Closed(phase)),
            Err(_) => Err(UpstreamError::Timeout(phase)),
        }
    }

    async fn read_reply(&mut self, phase: Phase, limit: Duration) -> Result<Reply, UpstreamError> {
        match timeout(limit, read_reply(&mut self.stream, phase)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(phase)),
        }
    }
}

/// A HELO name we can repeat in a command line: printable ASCII, one word.
fn is_safe_helo(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())
}

async fn open(address: &str, limit: Duration) -> Result<TcpStream, UpstreamError> {
    let error = |source| UpstreamError::Connect {
        address: address.to_string(),
        source,
    };
    let stream = match timeout(limit, TcpStream::connect(address)).await {
        Ok(result) => result.map_err(error)?,
        Err(_) => return Err(UpstreamError::Timeout(Phase::Connect)),
    };
    stream.set_nodelay(true).map_err(error)?;
    Ok(stream)
}

/// Reads a (possibly multi-line) reply: `250-a`, `250-b`, `250 c`.
async fn read_reply(
    stream: &mut SmtpStream<UpstreamIo>,
    phase: Phase,
) -> Result<Reply, UpstreamError> {
    let mut lines = Vec::new();
    let mut code = None;
    while lines.len() < MAX_REPLY_LINES {
        let bytes = match stream.read_line(MAX_REPLY_LINE).await {
            Ok(Line::Text { bytes, .. }) => bytes,
            Ok(Line::TooLong) => {
                return Err(UpstreamError::Protocol(phase, "reply line too long".into()))
            }
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => {
                return Err(UpstreamError::Closed(phase))
            }
        };
        let (this_code, last, text) = parse_reply_line(&bytes).ok_or_else(|| {
            UpstreamError::Protocol(
                phase,
                format!("bad reply line {:?}", String::from_utf8_lossy(&bytes)),
            )
        })?;
        if *code.get_or_insert(this_code) != this_code {
            return Err(UpstreamError::Protocol(
                phase,
                "reply codes differ between lines".into(),
            ));
        }
        lines.push(text);
        if last {
            return Ok(Reply::relayed(this_code, lines));
        }
    }
    Err(UpstreamError::Protocol(
        phase,
        "reply has too many lines".into(),
    ))
}

fn parse_reply_line(bytes: &[u8]) -> Option<(u16, bool, String)> {
    let code_text = std::str::from_utf8(bytes.get(..3)?).ok()?;
    let code: u16 = code_text.parse().ok().filter(|c| (200..600).contains(c))?;
    let last = match bytes.get(3) {
        None | Some(b' ') => true,
        Some(b'-') => false,
        _ => return None,
    };
    let text = String::from_utf8_lossy(bytes.get(4..).unwrap_or_default()).into_owned();
    Some((code, last, text))
}

/// Measures how long a future takes, for the latency histograms.
pub async fn timed<T>(future: impl std::future::Future<Output = T>) -> Timed<T> {
    let start = Instant::now();
    let value = future.await;
    Timed {
        value,
        elapsed: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_line_table() {
        type Case<'a> = (&'a [u8], Option<(u16, bool, &'a str)>);
        let cases: &[Case] = &[
            (b"250 ok", Some((250, true, "ok"))),
            (b"250-PIPELINING", Some((250, false, "PIPELINING"))),
            (b"250", Some((250, true, ""))),
            (b"354 go", Some((354, true, "go"))),
            (b"199 x", None),
            (b"25", None),
            (b"250x", None),
            (b"abc def", None),
        ];
        for (line, want) in cases {
            let got = parse_reply_line(line);
            let got = got.as_ref().map(|(c, l, t)| (*c, *l, t.as_str()));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn capabilities_from_ehlo() {
        let lines = [
            "mx",
            "PIPELINING",
            "SIZE 10240000",
            "8BITMIME",
            "XCLIENT NAME ADDR PROTO HELO",
            "SMTPUTF8",
        ];
        let ehlo = Reply::plain(250, lines.map(String::from).to_vec());
        let caps = Capabilities::parse(&ehlo);
        assert_eq!(caps.size, Some(10_240_000));
        assert!(caps.eightbit && caps.smtputf8 && caps.pipelining);
        assert_eq!(caps.xclient.unwrap(), ["NAME", "ADDR", "PROTO", "HELO"]);
    }
}
