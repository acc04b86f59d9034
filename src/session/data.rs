//! DATA: receive the whole message into a bounded buffer, run the content
//! checks, and only then relay it; the client hears the upstream's answer.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant as Deadline;

use super::{Flow, ReadEnd, Session, State};
use crate::checks::{CheckContext, ClientInfo, MessageView};
use crate::config::BareNewline;
use crate::judgement::reply::{canned, Reply};
use crate::judgement::{Judgement, Refusal, Stage, Verdict};
use crate::shared::Reservation;
use crate::smtp::codec::{DataBody, DataFlaw, DataLimits, FIRST_GRANT};
use crate::tls::TlsInfo;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    pub(super) async fn data(&mut self) -> Flow {
        match &self.state {
            State::Transaction(tx) if !tx.envelope.rcpts.is_empty() => {}
            State::Transaction(_) => return self.error(canned::no_valid_recipients()),
            _ => return self.error(canned::bad_sequence("need MAIL and RCPT before DATA")),
        }
        let Some(mut reservation) = self.reserve_data_memory() else {
            self.shared.metrics.rejection("data", "data_memory");
            return self.reply(canned::insufficient_storage());
        };
        self.reply(canned::start_data());
        if self.stream.flush().await.is_err() {
            return Flow::Close;
        }
        // The reservation lives until the reply: the message is held (and
        // copied for the upstream) until then.
        let Some(body) = self.receive(&mut reservation).await else {
            return Flow::Close;
        };
        self.shared
            .metrics
            .message_size
            .observe(body.received as f64);
        let reply = match body.flaw {
            Some(flaw) => {
                self.refuse_message(flaw_refusal(flaw, &self.shared.config.limits))
                    .await
            }
            None => self.judge_and_relay(body.bytes).await,
        };
        self.reply(reply)
    }

    /// The buffer's first grant, taken before the 354 so that a client the
    /// pool cannot serve hears 452 before it sends a byte of the message.
    fn reserve_data_memory(&self) -> Option<Reservation> {
        let first = FIRST_GRANT.min(self.shared.config.limits.max_message_size);
        self.shared.data_memory.reserve(first)
    }

    /// Reads the message; `None` when the session must end (the reason,
    /// if the client can still hear it, is already queued).
    async fn receive(&mut self, budget: &mut Reservation) -> Option<DataBody> {
        let config = &self.shared.config;
        let limits = DataLimits {
            max_size: config.limits.max_message_size,
            max_line: config.limits.max_text_line,
            normalize: config.smtp.bare_newline == BareNewline::Normalize,
        };
        let deadline = self.deadline.min(Deadline::now() + config.timeouts.data);
        let abort = &self.shared.shutdown.abort;
        let read = tokio::select! {
            biased;
            _ = abort.cancelled() => None,
            read = tokio::time::timeout_at(deadline, self.stream.read_data_within(limits, budget)) => Some(read),
        };
        match read {
            Some(Ok(Ok(body))) => Some(body),
            Some(Ok(Err(_))) => None,
            Some(Err(_)) => self.read_ended(ReadEnd::TimedOut),
            None => self.read_ended(ReadEnd::Shutdown),
        }
    }

    async fn judge_and_relay(&mut self, message: Vec<u8>) -> Reply {
        let State::Transaction(tx) = &mut self.state else {
            return canned::upstream_failed();
        };
        tx.size = message.len();
        let view = MessageView::new(&message);
        let ctx = CheckContext::new(Stage::Data, &self.client, &mut tx.facts)
            .envelope(&tx.envelope)
            .message(&view);
        let judgement = self.shared.pipeline.judge(ctx).await;
        tx.judgement.merge(judgement);
        let verdict = tx.judgement.verdict(&self.shared.config.scoring, &tx.id);
        self.shared
            .pipeline
            .autolearn(&message, &tx.facts, &tx.judgement);
        let mut headers = match &verdict {
            Verdict::Refuse(refusal) => return self.refuse_message(refusal.clone()).await,
            Verdict::Tag => added_headers(&tx.judgement, true),
            Verdict::Accept => added_headers(&tx.judgement, false),
        };
        let host = &self.shared.config.hostname;
        let received = received_header(
            &self.client,
            self.tls.as_ref(),
            host,
            &tx.id,
            &tx.envelope.rcpts,
        );
        headers.extend_from_slice(received.as_bytes());
        let forwarded = tx.judgement.forwarded(&message);
        let reply = self.relay_data(&headers, &forwarded).await;
        self.message_relayed(verdict.label(), &reply);
        reply
    }

    /// Ends the transaction after the upstream's final reply.
    fn message_relayed(&mut self, verdict: &'static str, reply: &Reply) {
        let Some(mut tx) = self.close_transaction() else {
            return; // the upstream failed and the transaction is already logged
        };
        let verdict = match (reply.is_positive(), reply.is_transient()) {
            (true, _) => verdict,
            (false, true) => "tempfail",
            (false, false) => "reject",
        };
        if !reply.is_positive() {
            self.shared.metrics.rejection("data", "upstream");
        }
        tx.upstream_reply = Some(reply.clone());
        self.shared.metrics.message(verdict);
        self.end_transaction(&tx, verdict, Some(reply));
    }

    /// Refuses the message ourselves and resets the upstream transaction.
    async fn refuse_message(&mut self, refusal: Refusal) -> Reply {
        let label = refusal.label();
        self.shared.metrics.message(label);
        self.shared.metrics.rejection("data", refusal.check);
        if let Some(mut tx) = self.close_transaction() {
            tx.judgement.refusal.get_or_insert(refusal.clone());
            self.end_transaction(&tx, label, Some(&refusal.reply));
        }
        self.reset_upstream().await;
        refusal.reply
    }
}

fn flaw_refusal(flaw: DataFlaw, limits: &crate::config::Limits) -> Refusal {
    let (check, reply) = match flaw {
        DataFlaw::TooBig => (
            "max_message_size",
            canned::message_too_big(limits.max_message_size),
        ),
        DataFlaw::LineTooLong => (
            "max_text_line",
            canned::data_line_too_long(limits.max_text_line),
        ),
        DataFlaw::BareNewline => ("bare_newline", canned::bare_newline_data()),
        DataFlaw::Nul => ("nul_byte", canned::nul_in_data()),
        DataFlaw::NoMemory => ("data_memory", canned::insufficient_storage()),
    };
    Refusal { check, reply }
}

/// Our trace header (RFC 5321 §4.4), with the TLS version and cipher
/// when the client used TLS (`ESMTPS`, RFC 3848).
fn received_header(
    client: &ClientInfo,
    tls: Option<&TlsInfo>,
    host: &str,
    id: &str,
    rcpts: &[String],
) -> String {
    let helo = client.helo.as_deref().unwrap_or("unknown");
    let ip = client.addr.ip();
    let (with, tls) = match (tls, client.esmtp) {
        (Some(t), _) => (
            "ESMTPS",
            format!("\r\n\t(version={} cipher={})", t.version, t.cipher),
        ),
        (None, true) => ("ESMTP", String::new()),
        (None, false) => ("SMTP", String::new()),
    };
    let date = rfc822_now();
    let rcpt = match rcpts {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    let helo = sanitize(helo);
    format!("Received: from {helo} ([{ip}])\r\n\tby {host} (spamgate) with {with} id {id}{tls}{rcpt};\r\n\t{date}\r\n")
}

/// The current date in RFC 5322 form, formatted once a second per thread:
/// every relayed message needs it and formatting a date is not cheap.
fn rfc822_now() -> String {
    thread_local! {
        static DATE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = unix_now();
    DATE.with_borrow_mut(|(second, text)| {
        if *second != now {
            *second = now;
            *text = mail_parser::DateTime::from_timestamp(now).to_rfc822();
        }
        text.clone()
    })
}

fn unix_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map_or(0, |d| d.as_secs() as i64)
}

/// Keeps client-supplied text from breaking a header: no controls, no
/// parentheses or brackets that would end a comment or address early.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => '?',
            '(' | ')' | '[' | ']' | ';' | '\\' => '?',
            c => c,
        })
        .take(255)
        .collect()
}

/// Header lines the checks asked for, plus the spam verdict when tagging.
/// Values are folded onto one line so no check can inject header lines.
fn added_headers(judgement: &Judgement, tagged: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, value: &str| {
        let value: String = value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    };
    for (name, value) in &judgement.headers {
        push(name, value);
    }
    if tagged {
        let tests: Vec<&str> = judgement
            .reasons
            .iter()
            .filter(|r| r.score != 0.0)
            .map(|r| r.test_name())
            .collect();
        push("X-Spam-Score", &format!("{:.1}", judgement.score));
        push(
            "X-Spam-Status",
            &format!(
                "Yes, score={:.1} tests={}",
                judgement.score,
                tests.join(",")
            ),
        );
    }
    out
}
