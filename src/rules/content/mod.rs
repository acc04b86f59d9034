//! Content facts: numbers about a message that regexes express badly or
//! not at all (how much of an HTML part is markup, how many links point at
//! bare IP addresses, how far the Date header is from the newest Received
//! date). A `fact` condition compares one of them with bounds.
//!
//! Facts are computed at most once per message and only when a rule asks:
//! the header facts and the body facts are two groups, each computed
//! whole on its first use. Every computation is bounded (parts, bytes,
//! links, nesting), so a hostile message costs at most a few passes over
//! the first megabyte of its text.

mod body;
mod headers;
mod html;
mod links;
mod mime;
mod text;

use std::cell::OnceCell;

use mail_parser::Message;

pub use body::BodyFacts;
pub use headers::HeaderFacts;

/// Every fact a rule can name. [`Fact::NAMES`] is the rule language's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fact {
    DateSkewHours,
    DateInvalid,
    MessageIdMalformed,
    FromNameOtherAddress,
    SubjectUpperRatio,
    HeaderRaw8bit,
    ReceivedCount,
    TextLength,
    TextParts,
    HtmlParts,
    HtmlOnly,
    HtmlTextRatio,
    HtmlHiddenText,
    HtmlTinyText,
    HtmlForms,
    HtmlScripts,
    ImageCount,
    LinkCount,
    LinkHostMismatch,
    IpLinks,
    ShortenerLinks,
    ObfuscatedWords,
    TextUpperRatio,
    Exclamations,
    MoneyAmounts,
    Base64TextParts,
    CharsetMismatch,
}

impl Fact {
    pub const NAMES: [(&'static str, Fact); 27] = [
        ("date_skew_hours", Fact::DateSkewHours),
        ("date_invalid", Fact::DateInvalid),
        ("message_id_malformed", Fact::MessageIdMalformed),
        ("from_name_other_address", Fact::FromNameOtherAddress),
        ("subject_upper_ratio", Fact::SubjectUpperRatio),
        ("header_raw_8bit", Fact::HeaderRaw8bit),
        ("received_count", Fact::ReceivedCount),
        ("text_length", Fact::TextLength),
        ("text_parts", Fact::TextParts),
        ("html_parts", Fact::HtmlParts),
        ("html_only", Fact::HtmlOnly),
        ("html_text_ratio", Fact::HtmlTextRatio),
        ("html_hidden_text", Fact::HtmlHiddenText),
        ("html_tiny_text", Fact::HtmlTinyText),
        ("html_forms", Fact::HtmlForms),
        ("html_scripts", Fact::HtmlScripts),
        ("image_count", Fact::ImageCount),
        ("link_count", Fact::LinkCount),
        ("link_host_mismatch", Fact::LinkHostMismatch),
        ("ip_links", Fact::IpLinks),
        ("shortener_links", Fact::ShortenerLinks),
        ("obfuscated_words", Fact::ObfuscatedWords),
        ("text_upper_ratio", Fact::TextUpperRatio),
        ("exclamations", Fact::Exclamations),
        ("money_amounts", Fact::MoneyAmounts),
        ("base64_text_parts", Fact::Base64TextParts),
        ("charset_mismatch", Fact::CharsetMismatch),
    ];

    pub fn from_name(name: &str) -> Option<Fact> {
        let found = Fact::NAMES.iter().find(|(n, _)| *n == name);
        found.map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        let found = Fact::NAMES.iter().find(|(_, f)| *f == self);
        found.map_or("", |(n, _)| n)
    }

    fn is_header_fact(self) -> bool {
        matches!(
            self,
            Fact::DateSkewHours
                | Fact::DateInvalid
                | Fact::MessageIdMalformed
                | Fact::FromNameOtherAddress
                | Fact::SubjectUpperRatio
                | Fact::HeaderRaw8bit
                | Fact::ReceivedCount
        )
    }
}

/// Reads a fact of the message being judged; `None` when the fact is not
/// defined for it (no message, or a ratio without enough text): a `fact`
/// condition on an undefined fact does not match.
pub trait FactSource {
    fn fact(&self, fact: Fact) -> Option<f64>;
}

/// The lazily computed fact groups of one message.
#[derive(Default)]
pub struct Cache {
    headers: OnceCell<HeaderFacts>,
    body: OnceCell<BodyFacts>,
}

impl Cache {
    pub fn value(&self, fact: Fact, message: Option<&Message<'_>>) -> Option<f64> {
        let message = message?;
        if fact.is_header_fact() {
            let facts = self.headers.get_or_init(|| HeaderFacts::of(message));
            return facts.value(fact);
        }
        let facts = self.body.get_or_init(|| BodyFacts::of(message));
        facts.value(fact)
    }
}

/// A count as a fact value.
/// `char::is_whitespace` for an ASCII byte (vertical tab included, which
/// `u8::is_ascii_whitespace` leaves out): the byte-wise shortcuts over
/// ASCII text must split and count exactly as the character-wise way.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn count(n: usize) -> Option<f64> {
    Some(n as f64)
}

/// A yes/no fact as 1 or 0.
fn flag(b: bool) -> Option<f64> {
    Some(if b { 1.0 } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fact_has_one_name() {
        for (name, fact) in Fact::NAMES {
            assert_eq!(Fact::from_name(name), Some(fact));
            assert_eq!(fact.name(), name);
        }
        assert_eq!(Fact::from_name("no_such_fact"), None);
    }

    #[test]
    fn facts_are_computed_from_the_message() {
        let raw = b"Subject: FREE MONEY NOW FOR YOU\r\nContent-Type: text/html\r\n\r\n<a href=\"http://192.0.2.1/x\">www.bank.example</a>";
        let message = mail_parser::MessageParser::new().parse(&raw[..]).unwrap();
        let cache = Cache::default();
        assert_eq!(
            cache.value(Fact::SubjectUpperRatio, Some(&message)),
            Some(1.0)
        );
        assert_eq!(cache.value(Fact::IpLinks, Some(&message)), Some(1.0));
        assert_eq!(
            cache.value(Fact::LinkHostMismatch, Some(&message)),
            Some(1.0)
        );
        assert_eq!(cache.value(Fact::HtmlOnly, Some(&message)), Some(1.0));
        assert_eq!(cache.value(Fact::TextLength, None), None);
    }
}
