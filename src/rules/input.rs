//! What the rules look at, taken from a check context: the envelope, and
//! at DATA the message, parsed once with mail-parser and turned into the
//! texts each field needs (decoded headers, decoded body text, attachment
//! names and types) only when a rule asks for that field.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::net::IpAddr;

use mail_parser::{html_to_text, HeaderForm, Message, MessageParser, PartKind};

use super::condition::Field;
use super::content::{self, Fact, FactSource};

/// The parts of a transaction the rules can see.
pub struct Input<'a> {
    pub client_ip: IpAddr,
    pub helo: Option<&'a str>,
    pub sender: Option<&'a str>,
    /// The recipient being judged at RCPT; every recipient at DATA.
    pub recipients: Vec<&'a str>,
    /// The number of recipients, the one being judged included.
    pub recipient_count: usize,
    pub raw: Option<&'a [u8]>,
    /// Parsed on first use: stages without content rules never pay for it.
    parsed: OnceCell<Option<Message<'a>>>,
    /// The parse the checks share, when given: used instead of `parsed`.
    shared: Option<Option<&'a Message<'a>>>,
    /// Content facts, each group computed when a rule first reads it.
    content: content::Cache,
}

impl<'a> Input<'a> {
    pub fn new(client_ip: IpAddr) -> Self {
        Input {
            client_ip,
            helo: None,
            sender: None,
            recipients: Vec::new(),
            recipient_count: 0,
            raw: None,
            parsed: OnceCell::new(),
            shared: None,
            content: content::Cache::default(),
        }
    }

    /// Adds the message (at DATA); it is parsed once, when first needed.
    pub fn with_message(mut self, raw: &'a [u8]) -> Self {
        self.raw = Some(raw);
        self
    }

    /// Adds the message and the parse the checks share (at DATA).
    pub fn with_parsed(mut self, raw: &'a [u8], parsed: Option<&'a Message<'a>>) -> Self {
        self.raw = Some(raw);
        self.shared = Some(parsed);
        self
    }

    fn parsed(&self) -> Option<&Message<'a>> {
        if let Some(shared) = self.shared {
            return shared;
        }
        let parse = || self.raw.and_then(|raw| MessageParser::new().parse(raw));
        self.parsed.get_or_init(parse).as_ref()
    }

    pub fn size(&self) -> usize {
        self.raw.map_or(0, <[u8]>::len)
    }

    /// The texts a field's regexes are matched against, one per occurrence.
    pub fn texts(&self, field: &Field) -> Vec<Cow<'_, str>> {
        let borrowed = |s: Option<&'a str>| s.map(Cow::Borrowed).into_iter().collect();
        match field {
            Field::Helo => borrowed(self.helo),
            Field::Sender => borrowed(self.sender),
            Field::Recipient => self.recipients.iter().map(|r| Cow::Borrowed(*r)).collect(),
            Field::Raw => self.raw.map(lossy).into_iter().collect(),
            _ => self
                .parsed()
                .map_or_else(Vec::new, |m| message_texts(m, field)),
        }
    }
}

impl FactSource for Input<'_> {
    fn fact(&self, fact: Fact) -> Option<f64> {
        self.content.value(fact, self.parsed())
    }
}

/// The raw message as text. The fast validator first: almost all mail is
/// valid UTF-8, and `from_utf8_lossy` checks it several times slower.
fn lossy(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

fn message_texts<'m>(message: &'m Message<'_>, field: &Field) -> Vec<Cow<'m, str>> {
    match field {
        Field::Header(name) => header_values(message, Some(name)),
        Field::AnyHeader => header_values(message, None),
        Field::Body => body_texts(message),
        Field::AttachmentName => {
            attachments(message, |p| p.attachment_name().map(|n| n.to_string()))
        }
        Field::AttachmentType => attachments(message, |p| {
            let ct = p.content_type()?;
            Some(match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
                None => ct.ctype().to_ascii_lowercase(),
            })
        }),
        _ => Vec::new(),
    }
}

/// The top-level header fields, decoded (RFC 2047) and unfolded: one text
/// per occurrence of `name`, or `Name: value` for every field.
fn header_values<'m>(message: &'m Message<'_>, name: Option<&str>) -> Vec<Cow<'m, str>> {
    let headers = message.root().headers();
    headers
        .iter()
        .filter(|h| name.is_none_or(|n| h.raw_name().eq_ignore_ascii_case(n)))
        .map(|h| {
            let parsed = h.parse_as(HeaderForm::Text);
            let value = parsed.value().as_text().unwrap_or_default().to_string();
            match name {
                Some(_) => Cow::Owned(value),
                None => Cow::Owned(format!("{}: {value}", h.raw_name())),
            }
        })
        .collect()
}

/// Every text part of the message and of messages inside it: transfer
/// encodings and charsets decoded, HTML reduced to its text.
fn body_texts<'m>(message: &'m Message<'_>) -> Vec<Cow<'m, str>> {
    message
        .parts()
        .filter(|p| p.attachment_name().is_none())
        .filter_map(|p| match p.kind() {
            PartKind::Text => p.text(),
            PartKind::Html => p.text().map(|h| Cow::Owned(html_to_text(&h))),
            _ => None,
        })
        .collect()
}

/// One text per attachment of the message or of messages inside it.
fn attachments<'m>(
    message: &'m Message<'_>,
    text: impl Fn(&mail_parser::MessagePart<'m>) -> Option<String>,
) -> Vec<Cow<'m, str>> {
    message
        .messages()
        .flat_map(|m| m.attachments())
        .filter_map(|p| text(&p).map(Cow::Owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: =?UTF-8?B?UGF5UGFs?= <x@evil.example>\r\n\
Subject: =?ISO-8859-1?Q?Gr=FC=DFe?= and\r\n more\r\n\
Subject: second\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9 =\r\nsoft break\r\n\
--b\r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+PGI+SGlkZGVuPC9iPiB0ZXh0PC9wPg==\r\n\
--b\r\n\
Content-Type: application/x-msdownload; name=\"invoice.exe\"\r\n\
Content-Disposition: attachment; filename=\"invoice.exe\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
TVqQAAMAAAAEAAAA\r\n\
--b--\r\n";

    #[test]
    fn fields_table() {
        let input = Input::new("192.0.2.1".parse().unwrap()).with_message(MESSAGE);
        let cases: Vec<(Field, Vec<&str>)> = vec![
            (
                Field::Header("subject".into()),
                vec!["Grüße and more", "second"],
            ),
            (
                Field::Header("from".into()),
                vec!["PayPal <x@evil.example>"],
            ),
            (Field::Header("date".into()), vec![]),
            (Field::AttachmentName, vec!["invoice.exe"]),
            (Field::AttachmentType, vec!["application/x-msdownload"]),
        ];
        for (field, want) in cases {
            let got: Vec<String> = input
                .texts(&field)
                .into_iter()
                .map(|t| t.into_owned())
                .collect();
            assert_eq!(got, want, "{field:?}");
        }
        let body = input.texts(&Field::Body).join("\n");
        assert!(body.contains("café soft break"), "{body}");
        assert!(
            body.contains("Hidden text") && !body.contains("<b>"),
            "{body}"
        );
        let any = input.texts(&Field::AnyHeader);
        assert!(any.iter().any(|h| h == "Subject: second"), "{any:?}");
    }
}
