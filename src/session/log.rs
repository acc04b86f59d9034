//! One log line per transaction: who, what, and why it ended as it did.

use std::fmt::{self, Display};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Session, Transaction};
use crate::judgement::reply::Reply;
use crate::tls::TlsInfo;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Logs and counts the end of a transaction. `verdict` is a closed set:
    /// accept, tag, reject, tempfail, abandoned.
    pub(super) fn end_transaction(
        &self,
        tx: &Transaction,
        verdict: &'static str,
        reply: Option<&Reply>,
    ) {
        self.shared.metrics.transaction(verdict);
        self.log_transaction(tx, verdict, reply);
    }

    pub(super) fn log_transaction(
        &self,
        tx: &Transaction,
        verdict: &'static str,
        reply: Option<&Reply>,
    ) {
        let envelope = &tx.envelope;
        let upstream_tls = self.upstream.as_ref().and_then(|u| u.tls());
        tracing::info!(
            target: "spamgate::transaction",
            tx = %tx.id,
            client = %self.client.addr.ip(),
            helo = self.client.helo.as_deref().unwrap_or(""),
            from = %envelope.mail_from,
            rcpts = %Joined(&envelope.rcpts),
            rcpt_replies = %tx.rcpt_log,
            size = tx.size,
            verdict,
            score = tx.judgement.score,
            reason = %tx.judgement.reasons_text(),
            reply = %Maybe(reply),
            upstream = %Maybe(tx.upstream_reply.as_ref()),
            upstream_tls = %Maybe(upstream_tls.map(TlsText)),
            "transaction"
        );
    }
}

/// What happened to each RCPT of a transaction, accepted or refused and
/// by whom: relay attempts and dictionary attacks show in the log line.
/// Bounded: a client may try thousands of recipients.
#[derive(Debug, Default)]
pub(super) struct RcptLog {
    entries: Vec<RcptEntry>,
    /// Recipients past [`RcptLog::MAX`], counted only.
    more: usize,
}

#[derive(Debug)]
struct RcptEntry {
    to: String,
    reply: Reply,
    /// "upstream", or the spamgate check that answered.
    by: &'static str,
}

impl RcptLog {
    const MAX: usize = 50;

    pub(super) fn record(&mut self, to: &str, reply: &Reply, by: &'static str) {
        if self.entries.len() >= Self::MAX {
            self.more += 1;
            return;
        }
        let to = to.chars().take(128).collect();
        let reply = reply.clone();
        self.entries.push(RcptEntry { to, reply, by });
    }
}

/// `a@x 250 2.1.5 upstream; b@y 554 5.7.1 spamgate:relay "Relay access denied"`.
impl Display for RcptLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", entry.to, entry.reply.code)?;
            if let Some(status) = entry.reply.status {
                write!(f, " {status}")?;
            }
            match entry.by {
                "upstream" => f.write_str(" upstream")?,
                check => write!(f, " spamgate:{check}")?,
            }
            if !entry.reply.is_positive() {
                let text = entry.reply.lines.first().map_or("", String::as_str);
                write!(f, " {:?}", text.chars().take(120).collect::<String>())?;
            }
        }
        if self.more > 0 {
            write!(f, "; +{} more", self.more)?;
        }
        Ok(())
    }
}

/// The log fields below format straight into the log line: one line per
/// transaction is on the hot path, and a `String` per field is not free.
struct Joined<'a>(&'a [String]);

impl Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(item)?;
        }
        Ok(())
    }
}

/// Empty when absent, as the log's readers expect.
struct Maybe<T>(Option<T>);

impl<T: Display> Display for Maybe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

/// "TLSv1.3 TLS13_AES_256_GCM_SHA384".
struct TlsText<'a>(&'a TlsInfo);

impl Display for TlsText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0.version, self.0.cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judgement::reply::{canned, Status};

    /// A dictionary attack and a relay attempt show in the log line, one
    /// entry per RCPT with its code and who answered; past the bound only
    /// a count.
    #[test]
    fn rcpt_log_names_each_recipient_and_its_answer() {
        let mut log = RcptLog::default();
        log.record(
            "a@example.org",
            &Reply::new(250, Status(2, 1, 5), "ok"),
            "upstream",
        );
        let unknown = Reply::relayed(550, vec!["5.1.1 User unknown".into()]);
        log.record("b@example.org", &unknown, "upstream");
        log.record(
            "c@outside.example",
            &canned::relay_denied("c@outside.example"),
            "relay",
        );
        let line = log.to_string();
        assert_eq!(
            line,
            "a@example.org 250 2.1.5 upstream; b@example.org 550 5.1.1 upstream \"User unknown\"; \
             c@outside.example 554 5.7.1 spamgate:relay \"<c@outside.example>: Relay access denied\""
        );
        for i in 0..RcptLog::MAX {
            log.record(&format!("x{i}@example.org"), &unknown, "upstream");
        }
        assert!(log.to_string().ends_with("; +3 more"), "{log}");
    }
}
