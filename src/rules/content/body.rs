//! The body facts: one pass over the message's parts, HTML scanned,
//! links and disguised words counted, the MIME structure summed up.

use mail_parser::{Message, MessagePart, PartKind};

use super::html::{self, MAX_TEXT};
use super::links::LinkFacts;
use super::mime::MimeFacts;
use super::text::TextFacts;
use super::{count, flag, is_space_byte, Fact};

/// Parts looked at per message (nested messages included).
const MAX_PARTS: usize = 200;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct BodyFacts {
    /// Non-space characters of plain text parts.
    pub plain_chars: usize,
    /// Bytes of HTML source, and the non-space characters it shows.
    pub html_source: usize,
    pub html_visible: usize,
    pub html_hidden: usize,
    pub html_tiny: usize,
    pub html_forms: usize,
    pub html_scripts: usize,
    /// `<img>` tags and image parts (attached or inline).
    pub images: usize,
    pub links: LinkFacts,
    pub text: TextFacts,
    pub mime: MimeFacts,
}

impl BodyFacts {
    pub fn of(message: &Message<'_>) -> BodyFacts {
        let mut facts = BodyFacts::default();
        let (mut plain, mut shown) = (String::new(), String::new());
        for part in message.parts().take(MAX_PARTS) {
            facts.add_part(&part, &mut plain, &mut shown);
        }
        // What a reader sees: the HTML when there is some (mail programs
        // show it in preference to the plain alternative), else the text.
        let read = if facts.html_visible > 0 {
            &shown
        } else {
            &plain
        };
        facts.text = TextFacts::of(read);
        facts
    }

    fn add_part(&mut self, part: &MessagePart<'_>, plain: &mut String, shown: &mut String) {
        let is_image = part
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("image"));
        if is_image {
            self.mime.add_image();
            self.images += 1;
        }
        if part.attachment_name().is_some() {
            return;
        }
        let kind = part.kind();
        if !matches!(kind, PartKind::Text | PartKind::Html) {
            return;
        }
        let text = part.text();
        self.mime.add(part, text.as_deref());
        let Some(text) = text else {
            return;
        };
        match kind {
            PartKind::Html => self.add_html(&text, shown),
            _ => {
                self.plain_chars += non_space_chars(&text);
                self.links.add_text(&text);
                push_bounded(plain, &text);
            }
        }
    }

    fn add_html(&mut self, source: &str, shown: &mut String) {
        let scan = html::scan(source);
        self.html_source += scan.source_len;
        self.html_visible += scan.visible_chars;
        self.html_hidden += scan.hidden_chars;
        self.html_tiny += scan.tiny_chars;
        self.html_forms += scan.forms;
        self.html_scripts += scan.scripts;
        self.images += scan.images;
        for anchor in &scan.anchors {
            self.links.add_anchor(anchor);
        }
        self.links.add_text(&scan.text);
        push_bounded(shown, &scan.text);
    }

    pub fn value(&self, fact: Fact) -> Option<f64> {
        let m = &self.mime;
        match fact {
            Fact::TextLength => count(self.plain_chars.max(self.html_visible)),
            Fact::TextParts => count(m.text_parts),
            Fact::HtmlParts => count(m.html_parts),
            Fact::HtmlOnly => flag(m.html_parts > 0 && m.text_parts == 0),
            Fact::HtmlTextRatio => {
                (self.html_source > 0).then(|| self.html_visible as f64 / self.html_source as f64)
            }
            Fact::HtmlHiddenText => count(self.html_hidden),
            Fact::HtmlTinyText => count(self.html_tiny),
            Fact::HtmlForms => count(self.html_forms),
            Fact::HtmlScripts => count(self.html_scripts),
            Fact::ImageCount => count(self.images),
            Fact::LinkCount => count(self.links.count),
            Fact::LinkHostMismatch => count(self.links.host_mismatch),
            Fact::IpLinks => count(self.links.ip),
            Fact::ShortenerLinks => count(self.links.shortener),
            Fact::ObfuscatedWords => count(self.text.obfuscated),
            Fact::TextUpperRatio => self.text.upper_ratio,
            Fact::Exclamations => count(self.text.exclamations),
            Fact::MoneyAmounts => count(self.text.money),
            Fact::Base64TextParts => count(m.base64_text),
            Fact::CharsetMismatch => count(m.charset_mismatch),
            _ => None,
        }
    }
}

/// Characters that are not white space; ASCII text by its bytes (the
/// white space of `char::is_whitespace`, vertical tab included).
fn non_space_chars(text: &str) -> usize {
    if text.is_ascii() {
        return text.len() - text.bytes().filter(|&b| is_space_byte(b)).count();
    }
    text.chars().filter(|c| !c.is_whitespace()).count()
}

fn push_bounded(out: &mut String, text: &str) {
    if out.len() >= MAX_TEXT {
        return;
    }
    let mut end = text.len().min(MAX_TEXT - out.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&text[..end]);
    out.push(' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(raw: &str) -> BodyFacts {
        let message = mail_parser::MessageParser::new()
            .parse(raw.as_bytes())
            .unwrap();
        BodyFacts::of(&message)
    }

    const ALTERNATIVE: &str = "MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nHello there, see http://example.com/\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>Hello <b>there</b>, see <a href=\"http://example.com/\">our site</a></p>\r\n\
--b--\r\n";

    const IMAGE_ONLY: &str = "MIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n\
PGltZyBzcmM9ImNpZDp4Ij48YSBocmVmPSJodHRwOi8vMTkyLjAuMi4xLyI+R288L2E+\r\n\
--b\r\nContent-Type: image/gif\r\nContent-ID: <x>\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlhAQABAAAAACw=\r\n\
--b--\r\n";

    /// The ASCII shortcut counts what the character-by-character way does.
    #[test]
    fn non_space_counts_agree_with_chars() {
        for text in ["a b\tc\r\n", "x\x0By\x0Cz", "", "Grüße\u{a0}ok \u{2003}"] {
            let slow = text.chars().filter(|c| !c.is_whitespace()).count();
            assert_eq!(non_space_chars(text), slow, "{text:?}");
        }
    }

    #[test]
    fn body_facts_table() {
        // (message, fact, value)
        let cases = [
            (ALTERNATIVE, Fact::TextParts, Some(1.0)),
            (ALTERNATIVE, Fact::HtmlParts, Some(1.0)),
            (ALTERNATIVE, Fact::HtmlOnly, Some(0.0)),
            (ALTERNATIVE, Fact::LinkCount, Some(1.0)),
            (ALTERNATIVE, Fact::TextLength, Some(33.0)),
            (ALTERNATIVE, Fact::ImageCount, Some(0.0)),
            (IMAGE_ONLY, Fact::HtmlOnly, Some(1.0)),
            (IMAGE_ONLY, Fact::ImageCount, Some(2.0)),
            (IMAGE_ONLY, Fact::TextLength, Some(2.0)),
            (IMAGE_ONLY, Fact::IpLinks, Some(1.0)),
            (IMAGE_ONLY, Fact::Base64TextParts, Some(1.0)),
            (IMAGE_ONLY, Fact::TextUpperRatio, None),
        ];
        for (raw, fact, want) in cases {
            assert_eq!(facts(raw).value(fact), want, "{fact:?}");
        }
        let ratio = facts(ALTERNATIVE).value(Fact::HtmlTextRatio).unwrap();
        assert!(ratio > 0.2 && ratio < 0.5, "{ratio}");
    }
}
