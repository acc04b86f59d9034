//! Parses client command lines (RFC 5321 §4.1), strictly: what we cannot
//! parse we do not relay.

/// A command line, parsed. Addresses are kept without the angle brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: String,
        params: MailParams,
    },
    Rcpt {
        to: String,
    },
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A verb we do not implement; kept for the log.
    Unknown(String),
}

/// The MAIL FROM parameters we support (RFC 1870, 6152, 6531).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body_8bit: bool,
    pub smtputf8: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Syntax(&'static str),
    #[error("parameter {0} not supported")]
    UnsupportedParam(String),
}

const MAX_PATH: usize = 256;

impl Command {
    /// Parses one line without its CRLF.
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = std::str::from_utf8(line)
            .map_err(|_| CommandError::Syntax("command is not valid UTF-8"))?;
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => Ok(Command::Ehlo(parse_domain_arg(rest)?)),
            "HELO" => Ok(Command::Helo(parse_domain_arg(rest)?)),
            "MAIL" => parse_mail(rest),
            "RCPT" => parse_rcpt(rest),
            "DATA" => no_args(rest, Command::Data),
            "RSET" => no_args(rest, Command::Rset),
            "QUIT" => no_args(rest, Command::Quit),
            "STARTTLS" => no_args(rest, Command::StartTls),
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help),
            "VRFY" => Ok(Command::Vrfy),
            "EXPN" => Ok(Command::Expn),
            "AUTH" => parse_auth(rest),
            _ => Ok(Command::Unknown(verb.chars().take(16).collect())),
        }
    }

    /// Commands after which the client must wait for our reply (RFC 2920
    /// §3.1): anything pipelined behind them is a desynchronised client.
    pub fn ends_pipeline_group(&self) -> bool {
        matches!(
            self,
            Command::Ehlo(_)
                | Command::Helo(_)
                | Command::Data
                | Command::Quit
                | Command::StartTls
                | Command::Auth { .. }
        )
    }
}

fn no_args(rest: &str, command: Command) -> Result<Command, CommandError> {
    if rest.trim_matches(' ').is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax("this command takes no argument"))
    }
}

/// SMTP separates words with ASCII spaces only; Unicode white space
/// (U+00A0, U+0085...) is part of a word, not a separator.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(' ').filter(|w| !w.is_empty())
}

fn parse_auth(rest: &str) -> Result<Command, CommandError> {
    let mut words = words(rest);
    let mechanism = words
        .next()
        .ok_or(CommandError::Syntax("AUTH needs a mechanism"))?;
    let initial = words.next().map(str::to_string);
    if words.next().is_some()
        || !mechanism
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(CommandError::Syntax("AUTH mechanism [initial-response]"));
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial,
    })
}

fn parse_domain_arg(rest: &str) -> Result<String, CommandError> {
    let arg = rest.trim_matches(' ');
    if arg.is_empty() || arg.contains(char::is_whitespace) {
        return Err(CommandError::Syntax(
            "a single domain or address literal is required",
        ));
    }
    if arg.chars().any(|c| c.is_control()) {
        return Err(CommandError::Syntax("control characters in domain"));
    }
    Ok(arg.to_string())
}

/// Accepts `FROM:<path>` and the common `FROM: <path>`.
fn strip_keyword<'a>(rest: &'a str, keyword: &str) -> Result<&'a str, CommandError> {
    let head = rest
        .get(..keyword.len())
        .filter(|h| h.eq_ignore_ascii_case(keyword));
    match head {
        Some(_) => Ok(rest[keyword.len()..].trim_start_matches(' ')),
        None if keyword == "FROM:" => Err(CommandError::Syntax("expected MAIL FROM:<address>")),
        None => Err(CommandError::Syntax("expected RCPT TO:<address>")),
    }
}

fn parse_mail(rest: &str) -> Result<Command, CommandError> {
    let (path, params) = split_path(strip_keyword(rest, "FROM:")?)?;
    let from = parse_path(path, true)?;
    let params = parse_mail_params(params)?;
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(rest: &str) -> Result<Command, CommandError> {
    let (path, params) = split_path(strip_keyword(rest, "TO:")?)?;
    let to = parse_path(path, false)?;
    if let Some(param) = words(params).next() {
        return Err(CommandError::UnsupportedParam(param_name(param)));
    }
    Ok(Command::Rcpt { to })
}

/// Splits `<path> params` at the closing bracket, minding quoted strings.
fn split_path(text: &str) -> Result<(&str, &str), CommandError> {
    if !text.starts_with('<') {
        return Err(CommandError::Syntax("address must be enclosed in <>"));
    }
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => return Ok((&text[1..i], text[i + 1..].trim_start_matches(' '))),
            _ => {}
        }
    }
    Err(CommandError::Syntax("address must be enclosed in <>"))
}

/// Validates a path and drops any source route (`@a,@b:`), which RFC 5321
/// says to accept and ignore.
fn parse_path(path: &str, null_ok: bool) -> Result<String, CommandError> {
    if path.is_empty() {
        return if null_ok {
            Ok(String::new())
        } else {
            Err(CommandError::Syntax("empty recipient"))
        };
    }
    if path.len() > MAX_PATH {
        return Err(CommandError::Syntax("address too long"));
    }
    let mailbox = match path.strip_prefix('@') {
        Some(_) => strip_route(path)?,
        None => path,
    };
    validate_mailbox(mailbox, null_ok)?;
    Ok(mailbox.to_string())
}

/// `@a.example,@b.example:user@c.example` → `user@c.example`, only when
/// every hop is a valid `@domain`.
fn strip_route(path: &str) -> Result<&str, CommandError> {
    let bad = CommandError::Syntax("bad source route");
    let (route, mailbox) = path.split_once(':').ok_or(bad.clone())?;
    let hops_valid = route
        .split(',')
        .all(|hop| hop.strip_prefix('@').is_some_and(valid_domain));
    if hops_valid {
        Ok(mailbox)
    } else {
        Err(bad)
    }
}

/// RFC 5321 Local-part: a Dot-string of atext (UTF-8 allowed, for
/// SMTPUTF8) or a Quoted-string. Anything else could be read differently
/// by the upstream than by our checks.
fn valid_local_part(local: &str) -> bool {
    match local.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Some(quoted) => valid_quoted(quoted),
        None => local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext)),
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn valid_quoted(inner: &str) -> bool {
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let ok = match c {
            '\\' => chars.next().is_some_and(|n| (' '..='~').contains(&n)),
            '"' => false,
            c => c == ' ' || c == '!' || ('#'..='~').contains(&c) || !c.is_ascii(),
        };
        if !ok {
            return false;
        }
    }
    true
}

fn validate_mailbox(mailbox: &str, is_sender: bool) -> Result<(), CommandError> {
    if mailbox
        .chars()
        .any(|c| c.is_control() || c == ' ' && !mailbox.starts_with('"'))
    {
        return Err(CommandError::Syntax("invalid character in address"));
    }
    let Some((local, domain)) = mailbox.rsplit_once('@') else {
        return match is_sender || !mailbox.eq_ignore_ascii_case("postmaster") {
            true => Err(CommandError::Syntax("address needs a domain")),
            false => Ok(()),
        };
    };
    if !valid_local_part(local) || domain.is_empty() || !valid_domain(domain) {
        return Err(CommandError::Syntax("invalid address"));
    }
    Ok(())
}

fn valid_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[') {
        return literal.ends_with(']');
    }
    domain.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || !c.is_ascii())
    })
}

fn param_name(param: &str) -> String {
    param
        .split('=')
        .next()
        .unwrap_or(param)
        .to_ascii_uppercase()
}

fn parse_mail_params(text: &str) -> Result<MailParams, CommandError> {
    let mut params = MailParams::default();
    for param in words(text) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match (
            key.to_ascii_uppercase().as_str(),
            value.to_ascii_uppercase().as_str(),
        ) {
            ("SIZE", v) => {
                params.size = Some(
                    v.parse()
                        .map_err(|_| CommandError::Syntax("SIZE needs a number"))?,
                )
            }
            ("BODY", "8BITMIME") => params.body_8bit = true,
            ("BODY", "7BIT") => params.body_8bit = false,
            ("SMTPUTF8", "") => params.smtputf8 = true,
            _ => return Err(CommandError::UnsupportedParam(param_name(param))),
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(from: &str, params: MailParams) -> Result<Command, CommandError> {
        Ok(Command::Mail {
            from: from.into(),
            params,
        })
    }

    #[test]
    fn parse_table() {
        let utf8 = MailParams {
            smtputf8: true,
            ..Default::default()
        };
        let sized = MailParams {
            size: Some(1000),
            body_8bit: true,
            ..Default::default()
        };
        let syntax = |m| Err(CommandError::Syntax(m));
        let cases: Vec<(&[u8], Result<Command, CommandError>)> = vec![
            (
                b"EHLO client.example",
                Ok(Command::Ehlo("client.example".into())),
            ),
            (b"ehlo [192.0.2.1]", Ok(Command::Ehlo("[192.0.2.1]".into()))),
            (b"HELO x", Ok(Command::Helo("x".into()))),
            (
                b"EHLO",
                syntax("a single domain or address literal is required"),
            ),
            (
                b"EHLO a b",
                syntax("a single domain or address literal is required"),
            ),
            (
                b"MAIL FROM:<a@b.example>",
                mail("a@b.example", MailParams::default()),
            ),
            (
                b"mail from: <a@b.example>",
                mail("a@b.example", MailParams::default()),
            ),
            (b"MAIL FROM:<>", mail("", MailParams::default())),
            (
                b"MAIL FROM:<a@b.c> SIZE=1000 BODY=8BITMIME",
                mail("a@b.c", sized),
            ),
            (
                b"MAIL FROM:<\xc3\xa9@b.c> SMTPUTF8",
                mail("\u{e9}@b.c", utf8),
            ),
            (
                b"MAIL FROM:<@r1,@r2:a@b.c>",
                mail("a@b.c", MailParams::default()),
            ),
            (
                b"MAIL FROM:<\"a b>c\"@d.e>",
                mail("\"a b>c\"@d.e", MailParams::default()),
            ),
            (b"MAIL FROM:a@b.c", syntax("address must be enclosed in <>")),
            (
                b"MAIL FROM:<a@b.c",
                syntax("address must be enclosed in <>"),
            ),
            (b"MAIL TO:<a@b.c>", syntax("expected MAIL FROM:<address>")),
            (b"MAIL FROM:<a@b.c> SIZE=x", syntax("SIZE needs a number")),
            (
                b"MAIL FROM:<a@b.c> RET=FULL",
                Err(CommandError::UnsupportedParam("RET".into())),
            ),
            (b"MAIL FROM:<nodomain>", syntax("address needs a domain")),
            (b"MAIL FROM:<a@b..c>", syntax("invalid address")),
            (b"MAIL FROM:<a..b@c.d>", syntax("invalid address")),
            (b"MAIL FROM:<a,b@c.d>", syntax("invalid address")),
            (b"MAIL FROM:<@1r2ar:@,@b.c>", syntax("invalid address")),
            (b"MAIL FROM:<@bad route:a@b.c>", syntax("bad source route")),
            (
                b"MAIL FROM:<o'hara+tag@b.c>",
                mail("o'hara+tag@b.c", MailParams::default()),
            ),
            (
                b"EHLO \xc2\xa0x",
                syntax("a single domain or address literal is required"),
            ),
            (b"RSET \xc2\x85", syntax("this command takes no argument")),
            (
                b"MAIL FROM:<a@b\x01c>",
                syntax("invalid character in address"),
            ),
            (b"RCPT TO:<x@y.z>", Ok(Command::Rcpt { to: "x@y.z".into() })),
            (
                b"RCPT TO:<Postmaster>",
                Ok(Command::Rcpt {
                    to: "Postmaster".into(),
                }),
            ),
            (b"RCPT TO:<>", syntax("empty recipient")),
            (
                b"RCPT TO:<x@y.z> NOTIFY=NEVER",
                Err(CommandError::UnsupportedParam("NOTIFY".into())),
            ),
            (b"RCPT FROM:<x@y.z>", syntax("expected RCPT TO:<address>")),
            (b"DATA", Ok(Command::Data)),
            (b"DATA x", syntax("this command takes no argument")),
            (b"rset", Ok(Command::Rset)),
            (b"NOOP anything", Ok(Command::Noop)),
            (b"QUIT", Ok(Command::Quit)),
            (b"VRFY root", Ok(Command::Vrfy)),
            (b"HELP", Ok(Command::Help)),
            (b"STARTTLS", Ok(Command::StartTls)),
            (
                b"AUTH plain dGVzdAB0ZXN0AHRlc3Q=",
                Ok(Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some("dGVzdAB0ZXN0AHRlc3Q=".into()),
                }),
            ),
            (
                b"AUTH LOGIN",
                Ok(Command::Auth {
                    mechanism: "LOGIN".into(),
                    initial: None,
                }),
            ),
            (b"AUTH", syntax("AUTH needs a mechanism")),
            (
                b"AUTH PLAIN a b",
                syntax("AUTH mechanism [initial-response]"),
            ),
            (
                b"XCLIENT ADDR=1.2.3.4",
                Ok(Command::Unknown("XCLIENT".into())),
            ),
            (b"\xff\xfe", syntax("command is not valid UTF-8")),
            (b"", Ok(Command::Unknown("".into()))),
        ];
        for (line, want) in cases {
            assert_eq!(
                Command::parse(line),
                want,
                "line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn overlong_path_is_refused() {
        let line = format!("MAIL FROM:<{}@example.com>", "a".repeat(300));
        assert_eq!(
            Command::parse(line.as_bytes()),
            Err(CommandError::Syntax("address too long"))
        );
    }
}
