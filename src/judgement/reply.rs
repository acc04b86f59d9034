//! SMTP replies. Every reply spamgate sends is built here, so that codes,
//! enhanced status codes (RFC 3463) and wording stay consistent.

use std::fmt;

/// An enhanced status code such as `5.7.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u16, pub u16);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Status {
    /// Reads `X.Y.Z` at the start of a reply text.
    pub fn parse_prefix(text: &str) -> Option<(Status, &str)> {
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        let mut parts = word.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        let valid =
            matches!(class, 2 | 4 | 5) && parts.next().is_none() && subject < 1000 && detail < 1000;
        valid.then_some((Status(class, subject, detail), rest))
    }
}

/// One SMTP reply: a code, an optional enhanced status and one or more lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    pub lines: Vec<String>,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.status {
            write!(f, " {status}")?;
        }
        write!(f, " {}", self.lines.join(" / "))
    }
}

impl Reply {
    pub fn new(code: u16, status: Status, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status: Some(status),
            lines: vec![text.into()],
        }
    }

    /// A reply without enhanced code: the greeting, EHLO and 354 (RFC 2034).
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// RFC 5321 4.2.2: 421 means the service is closing the channel, so
    /// whoever sends it (we or the upstream) must hang up after it.
    pub fn closes_channel(&self) -> bool {
        self.code == 421
    }

    /// Appends the reply in wire form; the status repeats on every line.
    /// Formats straight into `out`: this runs for every reply we send.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{}{sep}", self.code);
            if let Some(status) = self.status {
                let _ = write!(out, "{status} ");
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if self.lines.is_empty() {
            let _ = write!(out, "{}\r\n", self.code);
        }
    }

    /// Takes a reply from another server and makes sure it carries an
    /// enhanced code, so that ours are uniform whatever the upstream does.
    pub fn relayed(code: u16, lines: Vec<String>) -> Reply {
        let mut status = None;
        let lines: Vec<String> = lines
            .into_iter()
            .map(|line| match Status::parse_prefix(&line) {
                Some((s, rest)) => {
                    status.get_or_insert(s);
                    rest.to_string()
                }
                None => line,
            })
            .collect();
        let class = (code / 100) as u8;
        let status = status
            .filter(|s| s.0 == class)
            .or_else(|| default_status(code));
        Reply {
            code,
            status,
            lines,
        }
    }
}

/// Why a reply an operator wrote (in a rule file) cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("code {0} is not a {1}xx code")]
    Code(u16, u8),
    #[error("'{0}' is not an enhanced status code X.Y.Z of class {1}")]
    Status(String, u8),
    #[error("the text must be one line of printable ASCII, at most 400 characters")]
    Text,
}

impl Reply {
    /// A refusal worded by an operator: `class` is 4 (tempfail) or 5
    /// (reject); the code, status and text are checked here once, at load,
    /// so that nothing malformed ever reaches a client.
    pub fn operator(
        class: u8,
        code: u16,
        status: Option<&str>,
        text: &str,
    ) -> Result<Reply, ReplyError> {
        if code / 100 != u16::from(class) || !(400..600).contains(&code) {
            return Err(ReplyError::Code(code, class));
        }
        let status = match status {
            None => Status(class, 7, 1),
            Some(s) => match Status::parse_prefix(s.trim()) {
                Some((status, "")) if status.0 == class => status,
                _ => return Err(ReplyError::Status(s.to_string(), class)),
            },
        };
        let printable = text.bytes().all(|b| (b' '..=b'~').contains(&b));
        if !printable || text.is_empty() || text.len() > 400 {
            return Err(ReplyError::Text);
        }
        Ok(Reply::new(code, status, text))
    }
}

fn default_status(code: u16) -> Option<Status> {
    match code / 100 {
        2 => Some(Status(2, 0, 0)),
        4 => Some(Status(4, 0, 0)),
        5 => Some(Status(5, 0, 0)),
        _ => None,
    }
}

/// The replies spamgate itself gives.
pub mod canned {
    use super::{Reply, Status};

    pub fn greeting(banner: &str) -> Reply {
        Reply::plain(220, vec![banner.to_string()])
    }
    pub fn ok() -> Reply {
        Reply::new(250, Status(2, 0, 0), "OK")
    }
    /// MAIL accepted here; the upstream's word comes with the first RCPT.
    pub fn sender_ok() -> Reply {
        Reply::new(250, Status(2, 1, 0), "Sender OK")
    }
    pub fn helo(hostname: &str, client: &str) -> Reply {
        Reply::new(250, Status(2, 0, 0), format!("{hostname} greets {client}"))
    }
    pub fn ehlo(hostname: &str, extensions: Vec<String>) -> Reply {
        let mut lines = vec![hostname.to_string()];
        lines.extend(extensions);
        Reply::plain(250, lines)
    }
    pub fn bye(hostname: &str) -> Reply {
        Reply::new(
            221,
            Status(2, 0, 0),
            format!("{hostname} closing connection"),
        )
    }
    pub fn vrfy() -> Reply {
        Reply::new(
            252,
            Status(2, 5, 2),
            "Cannot VRFY user, but will accept message and attempt delivery",
        )
    }
    pub fn help() -> Reply {
        Reply::new(
            214,
            Status(2, 0, 0),
            "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
        )
    }
    pub fn start_data() -> Reply {
        Reply::plain(354, vec!["End data with <CR><LF>.<CR><LF>".to_string()])
    }
    pub fn not_implemented() -> Reply {
        Reply::new(502, Status(5, 5, 1), "Command not implemented")
    }
    pub fn auth_challenge(lines: Vec<String>) -> Reply {
        Reply::plain(334, lines)
    }
    pub fn auth_required() -> Reply {
        Reply::new(530, Status(5, 7, 0), "Authentication required")
    }
    pub fn encryption_required() -> Reply {
        Reply::new(
            538,
            Status(5, 7, 11),
            "Encryption required for requested authentication mechanism",
        )
    }
    pub fn auth_unavailable() -> Reply {
        Reply::new(454, Status(4, 7, 0), "Temporary authentication failure")
    }
    pub fn auth_mechanism_unsupported() -> Reply {
        Reply::new(504, Status(5, 5, 4), "Unrecognized authentication type")
    }
    pub fn ready_for_tls() -> Reply {
        Reply::new(220, Status(2, 0, 0), "Ready to start TLS")
    }
    pub fn tls_required() -> Reply {
        Reply::new(530, Status(5, 7, 0), "Must issue a STARTTLS command first")
    }
    pub fn unknown_command() -> Reply {
        Reply::new(500, Status(5, 5, 1), "Command unrecognized")
    }
    pub fn syntax_error(why: &str) -> Reply {
        Reply::new(501, Status(5, 5, 4), format!("Syntax error: {why}"))
    }
    pub fn line_too_long() -> Reply {
        Reply::new(500, Status(5, 5, 2), "Line too long")
    }
    pub fn bare_newline_command() -> Reply {
        Reply::new(
            500,
            Status(5, 5, 2),
            "Bare CR or LF in command; lines must end with CRLF",
        )
    }
    pub fn bad_sequence(why: &str) -> Reply {
        Reply::new(
            503,
            Status(5, 5, 1),
            format!("Bad sequence of commands: {why}"),
        )
    }
    pub fn improper_pipelining() -> Reply {
        Reply::new(
            554,
            Status(5, 5, 0),
            "Improper command pipelining; closing connection",
        )
    }
    pub fn param_not_supported(param: &str) -> Reply {
        Reply::new(
            555,
            Status(5, 5, 4),
            format!("Parameter {param} not supported"),
        )
    }
    pub fn smtputf8_unavailable() -> Reply {
        Reply::new(
            553,
            Status(5, 6, 7),
            "Non-ASCII addresses are not supported here",
        )
    }
    pub fn message_too_big(max: usize) -> Reply {
        Reply::new(
            552,
            Status(5, 3, 4),
            format!("Message size exceeds the limit of {max} bytes"),
        )
    }
    /// The shared DATA memory is spoken for; another try later will fit.
    pub fn insufficient_storage() -> Reply {
        Reply::new(452, Status(4, 3, 1), "Insufficient system storage")
    }
    pub fn too_many_recipients() -> Reply {
        Reply::new(452, Status(4, 5, 3), "Too many recipients")
    }
    pub fn no_valid_recipients() -> Reply {
        Reply::new(554, Status(5, 5, 1), "No valid recipients")
    }
    pub fn bare_newline_data() -> Reply {
        Reply::new(
            550,
            Status(5, 5, 2),
            "Message refused: bare CR or LF; lines must end with CRLF",
        )
    }
    pub fn nul_in_data() -> Reply {
        Reply::new(550, Status(5, 5, 2), "Message refused: NUL byte in message")
    }
    pub fn data_line_too_long(max: usize) -> Reply {
        Reply::new(
            550,
            Status(5, 5, 2),
            format!("Message refused: line longer than {max} bytes"),
        )
    }
    pub fn too_many_errors() -> Reply {
        Reply::new(421, Status(4, 7, 0), "Too many errors; closing connection")
    }
    pub fn too_many_connections() -> Reply {
        Reply::new(
            421,
            Status(4, 7, 0),
            "Too many connections; try again later",
        )
    }
    pub fn too_many_connections_from_ip() -> Reply {
        Reply::new(
            421,
            Status(4, 7, 0),
            "Too many connections from your address; try again later",
        )
    }
    pub fn timeout() -> Reply {
        Reply::new(
            421,
            Status(4, 4, 2),
            "Timeout waiting for input; closing connection",
        )
    }
    pub fn shutting_down(hostname: &str) -> Reply {
        Reply::new(
            421,
            Status(4, 3, 2),
            format!("{hostname} shutting down; try again later"),
        )
    }
    pub fn upstream_unavailable() -> Reply {
        Reply::new(
            451,
            Status(4, 4, 1),
            "Upstream mail server unavailable; try again later",
        )
    }
    pub fn upstream_failed() -> Reply {
        Reply::new(
            451,
            Status(4, 4, 2),
            "Upstream mail server failed; message not accepted, try again later",
        )
    }
    /// Postfix's wording for `reject_unauth_destination`.
    pub fn relay_denied(rcpt: &str) -> Reply {
        let shown: String = rcpt.chars().take(256).collect();
        Reply::new(
            554,
            Status(5, 7, 1),
            format!("<{shown}>: Relay access denied"),
        )
    }
    /// No relay domains, and the upstream was not yet found to refuse
    /// outsiders (or was found to relay for them): nothing is relayed.
    pub fn relay_held() -> Reply {
        Reply::new(
            451,
            Status(4, 7, 1),
            "Relaying is held until the upstream's relay check passes; try again later",
        )
    }
    pub fn client_denied() -> Reply {
        Reply::new(554, Status(5, 7, 1), "Access denied for your address")
    }
    /// postscreen's wording, so operators recognise it.
    pub fn dnsbl_listed(ip: &str, zone: &str) -> Reply {
        Reply::new(
            554,
            Status(5, 7, 1),
            format!("Service unavailable; client host [{ip}] blocked using {zone}"),
        )
    }
    pub fn early_talker() -> Reply {
        Reply::new(
            554,
            Status(5, 5, 1),
            "Protocol error: you talked before the greeting",
        )
    }
    /// `code` is 421 (and the client should go away) or 450.
    pub fn rate_limited(code: u16) -> Reply {
        match code {
            421 => Reply::new(
                421,
                Status(4, 7, 0),
                "Rate limit exceeded; closing connection, try again later",
            ),
            _ => Reply::new(450, Status(4, 7, 1), "Rate limit exceeded; try again later"),
        }
    }
    pub fn greylisted() -> Reply {
        Reply::new(
            450,
            Status(4, 7, 1),
            "Greylisted; please try again in a few minutes",
        )
    }
    pub fn state_unavailable() -> Reply {
        Reply::new(
            451,
            Status(4, 3, 0),
            "Temporary local problem; try again later",
        )
    }
    pub fn check_failed(check: &str) -> Reply {
        Reply::new(
            451,
            Status(4, 3, 0),
            format!("Temporary failure in the {check} check; try again later"),
        )
    }
    /// A rule's `reject` without its own text.
    pub fn rule_rejected() -> Reply {
        Reply::new(550, Status(5, 7, 1), "Message rejected by local policy")
    }
    /// A rule's `tempfail` without its own text.
    pub fn rule_tempfailed() -> Reply {
        Reply::new(
            451,
            Status(4, 7, 1),
            "Message deferred by local policy; try again later",
        )
    }
    pub fn spam_rejected(reference: &str) -> Reply {
        Reply::new(
            550,
            Status(5, 7, 1),
            format!("Message rejected as spam (ref {reference})"),
        )
    }
    // Sender authentication (RFC 7372 codes where one exists).
    pub fn dmarc_rejected(domain: &str) -> Reply {
        Reply::new(
            550,
            Status(5, 7, 1),
            format!("Message rejected: DMARC policy of {domain} says reject"),
        )
    }
    pub fn unauthenticated_protected(domain: &str) -> Reply {
        Reply::new(
            550,
            Status(5, 7, 1),
            format!("Message claims to be from {domain} but is not authenticated"),
        )
    }
    pub fn bad_from_header(why: &str) -> Reply {
        Reply::new(
            550,
            Status(5, 7, 1),
            format!("{why}; exactly one From header with one address is required"),
        )
    }
    pub fn spf_rejected(domain: &str) -> Reply {
        Reply::new(
            550,
            Status(5, 7, 23),
            format!("SPF check failed: {domain} does not authorize this host"),
        )
    }
    pub fn dkim_rejected() -> Reply {
        Reply::new(550, Status(5, 7, 20), "No valid DKIM signature found")
    }
    pub fn arc_rejected() -> Reply {
        Reply::new(550, Status(5, 7, 29), "ARC validation failed")
    }
    pub fn auth_dns_tempfail(method: &str, domain: &str) -> Reply {
        Reply::new(
            451,
            Status(4, 7, 5),
            format!("Temporary DNS failure checking {method} for {domain}; try again later"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let cases: Vec<(Reply, &str)> = vec![
            (canned::ok(), "250 2.0.0 OK\r\n"),
            (canned::greeting("mx ESMTP"), "220 mx ESMTP\r\n"),
            (
                canned::ehlo("mx", vec!["PIPELINING".into(), "SIZE 10".into()]),
                "250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n",
            ),
            (
                canned::start_data(),
                "354 End data with <CR><LF>.<CR><LF>\r\n",
            ),
            (
                Reply::relayed(
                    550,
                    vec!["5.1.1 no such user".into(), "5.1.1 really".into()],
                ),
                "550-5.1.1 no such user\r\n550 5.1.1 really\r\n",
            ),
            (
                Reply::relayed(250, vec!["Ok: queued".into()]),
                "250 2.0.0 Ok: queued\r\n",
            ),
            (
                Reply::relayed(451, vec!["5.1.1 wrong class".into()]),
                "451 4.0.0 wrong class\r\n",
            ),
        ];
        for (reply, wire) in cases {
            let mut out = Vec::new();
            reply.write_to(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), wire);
        }
    }

    #[test]
    fn operator_replies() {
        type Case<'a> = (
            u8,
            u16,
            Option<&'a str>,
            &'a str,
            Result<&'a str, ReplyError>,
        );
        let cases: &[Case] = &[
            (5, 550, None, "No", Ok("550 5.7.1 No\r\n")),
            (
                5,
                554,
                Some("5.7.0"),
                "Go away",
                Ok("554 5.7.0 Go away\r\n"),
            ),
            (4, 451, Some("4.7.1"), "Later", Ok("451 4.7.1 Later\r\n")),
            (5, 451, None, "x", Err(ReplyError::Code(451, 5))),
            (4, 250, None, "x", Err(ReplyError::Code(250, 4))),
            (5, 650, None, "x", Err(ReplyError::Code(650, 5))),
            (
                5,
                550,
                Some("4.7.1"),
                "x",
                Err(ReplyError::Status("4.7.1".into(), 5)),
            ),
            (
                5,
                550,
                Some("5.7"),
                "x",
                Err(ReplyError::Status("5.7".into(), 5)),
            ),
            (5, 550, None, "two\r\nlines", Err(ReplyError::Text)),
            (5, 550, None, "", Err(ReplyError::Text)),
        ];
        for (class, code, status, text, want) in cases {
            let got = Reply::operator(*class, *code, *status, text).map(|r| {
                let mut out = Vec::new();
                r.write_to(&mut out);
                String::from_utf8(out).unwrap()
            });
            assert_eq!(
                got,
                want.clone().map(String::from),
                "{code} {status:?} {text:?}"
            );
        }
    }

    #[test]
    fn status_prefix_table() {
        let cases: &[(&str, Option<(Status, &str)>)] = &[
            ("2.1.0 Ok", Some((Status(2, 1, 0), "Ok"))),
            ("5.7.1", Some((Status(5, 7, 1), ""))),
            ("3.0.0 x", None),
            ("2.1 Ok", None),
            ("2.1.0.1 Ok", None),
            ("Ok 2.1.0", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(Status::parse_prefix(text), *want, "{text:?}");
        }
    }
}
