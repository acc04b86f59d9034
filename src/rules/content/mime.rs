//! Facts about the MIME structure: what kinds of parts there are, text
//! sent base64-encoded (which only hides it from filters: text needs no
//! such encoding), and parts whose declared charset cannot be true.

use mail_parser::{Encoding, MessagePart, PartKind};

/// High-bit bytes a us-ascii part may hold before its charset is a lie
/// (a stray byte is a typo; a run is text in another charset).
const MISMATCH_MIN_BYTES: usize = 8;
/// Bytes of a part's body looked at for the charset check.
const MAX_CHECK: usize = 256 * 1024;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct MimeFacts {
    /// text/plain parts with some non-space text.
    pub text_parts: usize,
    pub html_parts: usize,
    pub image_parts: usize,
    pub base64_text: usize,
    pub charset_mismatch: usize,
}

impl MimeFacts {
    /// Adds one part that is not an attachment with a file name.
    pub fn add(&mut self, part: &MessagePart<'_>, text: Option<&str>) {
        match part.kind() {
            PartKind::Text => {
                let nonblank = text.is_some_and(|t| t.chars().any(|c| !c.is_whitespace()));
                self.text_parts += usize::from(nonblank);
            }
            PartKind::Html => self.html_parts += 1,
            _ => {}
        }
        let is_text = matches!(part.kind(), PartKind::Text | PartKind::Html);
        self.base64_text += usize::from(is_text && part.encoding() == Encoding::Base64);
        self.charset_mismatch += usize::from(is_text && charset_lies(part));
    }

    pub fn add_image(&mut self) {
        self.image_parts += 1;
    }
}

/// A text part declared us-ascii (or declaring nothing, which means
/// us-ascii) whose decoded bytes are full of 8-bit characters.
fn charset_lies(part: &MessagePart<'_>) -> bool {
    let charset = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(|c| c.trim().to_ascii_lowercase());
    let ascii = charset
        .as_deref()
        .is_none_or(|c| c == "us-ascii" || c == "ascii");
    if !ascii {
        return false;
    }
    let body = part.decoded();
    let high = body[..body.len().min(MAX_CHECK)]
        .iter()
        .filter(|b| **b >= 0x80)
        .count();
    high >= MISMATCH_MIN_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(raw: &[u8]) -> MimeFacts {
        let message = mail_parser::MessageParser::new().parse(raw).unwrap();
        let mut facts = MimeFacts::default();
        for part in message.parts().filter(|p| !p.is_multipart()) {
            let text = part.text();
            facts.add(&part, text.as_deref());
        }
        facts
    }

    #[test]
    fn mime_table() {
        let high = "\u{e9}".repeat(10);
        let cases: Vec<(String, MimeFacts)> = vec![
            (
                "Content-Type: text/plain\r\n\r\nhello".into(),
                MimeFacts { text_parts: 1, ..Default::default() },
            ),
            (
                format!("Content-Type: text/plain; charset=us-ascii\r\n\r\n{high}"),
                MimeFacts { text_parts: 1, charset_mismatch: 1, ..Default::default() },
            ),
            (
                format!("Content-Type: text/plain\r\n\r\n{high}"),
                MimeFacts { text_parts: 1, charset_mismatch: 1, ..Default::default() },
            ),
            (
                format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{high}"),
                MimeFacts { text_parts: 1, ..Default::default() },
            ),
            (
                "Content-Type: text/plain; charset=us-ascii\r\n\r\ncaf\u{e9}".into(),
                MimeFacts { text_parts: 1, ..Default::default() },
            ),
            (
                "Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n".into(),
                MimeFacts { html_parts: 1, base64_text: 1, ..Default::default() },
            ),
            (
                "Content-Type: text/plain\r\n\r\n  \r\n".into(),
                MimeFacts::default(),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(facts(raw.as_bytes()), want, "{raw}");
        }
    }
}
