//! One client session: reads commands, runs the checks of each stage,
//! relays in lockstep to the upstream, and answers with [`Reply`] values.
//!
//! [`State`] says where in the dialogue we are; [`ClientInfo`] and the
//! transaction hold what the session learned. One file per SMTP stage.

mod auth;
mod connect;
mod data;
mod helo;
mod log;
mod mail;
mod rcpt;
mod relay;
mod starttls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant as Deadline;
use tracing::Instrument;

use crate::checks::{ClientInfo, Envelope};
use crate::config::ListenerMode;
use crate::judgement::reply::{canned, Reply};
use crate::judgement::{Facts, Judgement};
use crate::shared::Shared;
use crate::smtp::codec::{Line, SmtpStream};
use crate::smtp::command::{Command, CommandError};
use crate::tls::{ClientIo, TlsInfo};
use crate::upstream::Upstream;

/// Where the dialogue stands.
enum State {
    /// Banner sent; waiting for HELO or EHLO.
    Greeted,
    /// Introduced; no transaction open.
    Ready,
    /// MAIL accepted (by the upstream, or by us with the upstream's word
    /// still pending); recipients and DATA may follow.
    Transaction(Box<Transaction>),
}

/// Where the upstream stands on the transaction's MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
enum UpstreamSender {
    /// Not sent yet: it goes out with the first RCPT in one write (the
    /// upstream offers PIPELINING), which saves a round trip per message.
    Pending,
    Accepted,
    /// Refused when it went out with the first RCPT: each RCPT gets this.
    Refused(Reply),
}

/// What one transaction has learned so far.
struct Transaction {
    id: String,
    envelope: Envelope,
    facts: Facts,
    judgement: Judgement,
    sender: UpstreamSender,
    /// The last upstream reply, for the transaction log.
    upstream_reply: Option<Reply>,
    /// Every RCPT's reply, for the transaction log.
    rcpt_log: log::RcptLog,
    /// Octets received in DATA.
    size: usize,
}

/// Why a read from the client ended without input.
enum ReadEnd {
    TimedOut,
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

pub struct Session<S> {
    stream: SmtpStream<ClientIo<S>>,
    /// What this listener does: TLS, submission.
    mode: ListenerMode,
    /// Set once a TLS handshake succeeded.
    tls: Option<TlsInfo>,
    shared: Arc<Shared>,
    id: u64,
    client: ClientInfo,
    state: State,
    conn_facts: Facts,
    conn_judgement: Judgement,
    upstream: Option<Upstream>,
    bad_commands: usize,
    transactions: u32,
    started: Instant,
    deadline: Deadline,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub fn new(io: S, peer: SocketAddr, shared: Arc<Shared>) -> Self {
        let deadline = Deadline::now() + shared.config.timeouts.session;
        Session {
            stream: SmtpStream::new(ClientIo::Plain(io)),
            mode: ListenerMode::default(),
            tls: None,
            id: shared.next_session_id(),
            shared,
            client: ClientInfo {
                addr: peer,
                helo: None,
                esmtp: false,
            },
            state: State::Greeted,
            conn_facts: Facts::default(),
            conn_judgement: Judgement::default(),
            upstream: None,
            bad_commands: 0,
            transactions: 0,
            started: Instant::now(),
            deadline,
        }
    }

    /// Sets what the listener does (TLS, submission).
    pub fn with_mode(mut self, mode: ListenerMode) -> Self {
        self.mode = mode;
        self
    }

    /// Runs the whole session; never panics on client input, never hangs
    /// past the configured timeouts. Takes the session boxed: a future
    /// stores what it owns, and each layer holding the 1 KiB session by
    /// value would cost every idle session that much again.
    pub async fn run(mut self: Box<Self>) {
        let span = tracing::info_span!("session", id = self.id, client = %self.client.addr.ip());
        async move {
            self.shared.metrics.sessions.inc();
            self.shared.metrics.active_sessions.inc();
            tracing::debug!("connected");
            if self.open().await == Flow::Continue {
                self.command_loop().await;
            }
            Box::pin(self.finish()).await;
        }
        .instrument(span)
        .await
    }

    /// Implicit TLS (if this listener does it), then the connect stage.
    async fn open(&mut self) -> Flow {
        if self.mode.implicit_tls && Box::pin(self.implicit_tls()).await == Flow::Close {
            return Flow::Close;
        }
        Box::pin(self.connect()).await
    }

    async fn command_loop(&mut self) {
        while let Some(line) = self.next_line().await {
            if self.handle_line(line).await == Flow::Close {
                return;
            }
        }
    }

    async fn handle_line(&mut self, line: Line) -> Flow {
        let bytes = match line {
            Line::TooLong => return self.error(canned::line_too_long()),
            Line::Text {
                canonical: false, ..
            } => return self.error(canned::bare_newline_command()),
            Line::Text { bytes, .. } => bytes,
        };
        match Command::parse(&bytes) {
            Ok(command) if self.out_of_sync(&command) => self.desynchronised(),
            Ok(command) => self.dispatch(command).await,
            Err(CommandError::Syntax(why)) => self.error(canned::syntax_error(why)),
            Err(CommandError::UnsupportedParam(p)) => self.error(canned::param_not_supported(&p)),
        }
    }

    /// Each stage's future is boxed: they hold upstream I/O, checks and TLS
    /// handshakes, and unboxed their room would sit in every idle session.
    async fn dispatch(&mut self, command: Command) -> Flow {
        match command {
            Command::Ehlo(domain) => Box::pin(self.helo(domain, true)).await,
            Command::Helo(domain) => Box::pin(self.helo(domain, false)).await,
            Command::Mail { from, params } => Box::pin(self.mail(from, params)).await,
            Command::Rcpt { to } => Box::pin(self.rcpt(to)).await,
            Command::Data => Box::pin(self.data()).await,
            Command::Rset => Box::pin(self.rset()).await,
            Command::Noop => self.reply(canned::ok()),
            Command::Vrfy => self.reply(canned::vrfy()),
            Command::Help => self.reply(canned::help()),
            Command::Quit => {
                self.reply(canned::bye(&self.shared.config.hostname));
                Flow::Close
            }
            Command::StartTls => Box::pin(self.starttls()).await,
            Command::Auth { mechanism, initial } => Box::pin(self.auth(mechanism, initial)).await,
            Command::Expn => self.error(canned::not_implemented()),
            Command::Unknown(_) => self.error(canned::unknown_command()),
        }
    }

    /// RFC 2920: without PIPELINING every command waits for its reply, and
    /// with it some commands still end a group. Bytes queued behind them
    /// mean the client is not listening (or is smuggling).
    fn out_of_sync(&self, command: &Command) -> bool {
        if !self.stream.has_buffered_input() || *command == Command::Quit {
            return false;
        }
        !self.client.esmtp || command.ends_pipeline_group()
    }

    fn desynchronised(&mut self) -> Flow {
        self.stream.discard_input();
        self.shared.metrics.rejection("protocol", "pipelining");
        tracing::info!("improper pipelining; closing");
        self.reply(canned::improper_pipelining());
        Flow::Close
    }

    fn reply(&mut self, reply: Reply) -> Flow {
        self.stream.queue(&reply);
        match reply.closes_channel() {
            true => Flow::Close,
            false => Flow::Continue,
        }
    }

    /// A client error: answered, counted, and fatal past the limit.
    fn error(&mut self, reply: Reply) -> Flow {
        self.stream.queue(&reply);
        self.bad_commands += 1;
        if self.bad_commands < self.shared.config.limits.max_bad_commands {
            return Flow::Continue;
        }
        self.shared.metrics.rejection("protocol", "too_many_errors");
        self.reply(canned::too_many_errors());
        Flow::Close
    }

    async fn rset(&mut self) -> Flow {
        self.abort_transaction("client reset").await;
        self.reply(canned::ok())
    }

    /// Reads the next command line, flushing replies first unless the client
    /// already pipelined more. Gives up on timeout, shutdown or EOF.
    async fn next_line(&mut self) -> Option<Line> {
        if !self.stream.has_buffered_line() && self.stream.flush().await.is_err() {
            return None;
        }
        let deadline = self
            .deadline
            .min(Deadline::now() + self.shared.config.timeouts.idle);
        let idle = !matches!(self.state, State::Transaction(_));
        let max = self.shared.config.limits.max_command_line;
        let shutdown = &self.shared.shutdown;
        let read = tokio::select! {
            biased;
            _ = shutdown.abort.cancelled() => None,
            _ = shutdown.stop.cancelled(), if idle => None,
            read = tokio::time::timeout_at(deadline, self.stream.read_line(max)) => Some(read),
        };
        match read {
            Some(Ok(Ok(line))) => Some(line),
            Some(Ok(Err(_))) => None,
            Some(Err(_)) => self.read_ended(ReadEnd::TimedOut),
            None => self.read_ended(ReadEnd::Shutdown),
        }
    }

    /// Says why we stop listening, when the client can still hear it.
    fn read_ended<T>(&mut self, end: ReadEnd) -> Option<T> {
        match end {
            ReadEnd::TimedOut => {
                tracing::info!("client timed out");
                self.reply(canned::timeout());
            }
            ReadEnd::Shutdown => {
                self.reply(canned::shutting_down(&self.shared.config.hostname));
            }
        }
        None
    }

    async fn finish(mut self) {
        self.abort_transaction("session ended").await;
        if let Some(upstream) = self.upstream.take() {
            upstream.quit().await;
        }
        self.stream.shutdown().await;
        let metrics = &self.shared.metrics;
        metrics.active_sessions.dec();
        metrics
            .session_duration
            .observe(self.started.elapsed().as_secs_f64());
        tracing::debug!(transactions = self.transactions, "closed");
    }
}
