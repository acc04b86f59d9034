//! Fuzzy fingerprints of a message's text: the decoded text parts (HTML
//! reduced to text) and the Subject, normalised so that what a campaign
//! varies per recipient (names in greetings, numbers, links, addresses,
//! spacing, case) moves few word shingles, then min-hashed over 4-word
//! shingles and grouped into LSH bands. Two texts whose shingle sets have
//! Jaccard similarity `s` share at least one band key with probability
//! `1 - (1 - s^ROWS)^BANDS`: about 96% at s = 0.8, 22% at 0.5, 2% at 0.3.
//!
//! The idea is that of rspamd's fuzzy hashes and DCC's fuzzy checksums;
//! the code is our own.

use mail_parser::{html_to_text, Message, MessageParser, PartKind};

/// Words per shingle.
pub const SHINGLE: usize = 4;
/// Band keys per message.
pub const BANDS: usize = 8;
/// Min-hashes per band.
pub const ROWS: usize = 5;
const HASHES: usize = BANDS * ROWS;
/// Text beyond this many bytes is not read: a campaign shows in its first
/// 64 KiB, and hostile megabyte bodies cost no more than that.
pub const MAX_TEXT: usize = 64 * 1024;
/// Words beyond this many are not shingled (bounds the CPU per message).
pub const MAX_WORDS: usize = 4096;

/// The LSH band keys of one message: near-duplicates share at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub bands: [u64; BANDS],
}

/// The fingerprint of a raw message; `None` when its text has fewer than
/// `min_words` words (too short to tell a campaign from a coincidence).
pub fn of_message(raw: &[u8], min_words: usize) -> Option<Fingerprint> {
    of_text(&message_text(raw), min_words)
}

/// The fingerprint of text already extracted.
pub fn of_text(text: &str, min_words: usize) -> Option<Fingerprint> {
    let mut hashes = Vec::new();
    each_word(text, |piece| hashes.push(piece_hash(piece)));
    if hashes.len() < min_words.max(SHINGLE) {
        return None;
    }
    Some(Fingerprint {
        bands: bands(&min_hashes(&hashes)),
    })
}

/// The Subject and every text part of the message (not attachments),
/// decoded, HTML as text, cut at [`MAX_TEXT`] bytes.
pub fn message_text(raw: &[u8]) -> String {
    MessageParser::new()
        .parse(raw)
        .map(|m| text_of(&m))
        .unwrap_or_default()
}

/// [`message_text`] of a message already parsed.
pub fn text_of(message: &Message<'_>) -> String {
    let mut text = message.subject().unwrap_or_default().to_string();
    for part in message.parts().filter(|p| p.attachment_name().is_none()) {
        if text.len() >= MAX_TEXT {
            break;
        }
        let body = match part.kind() {
            PartKind::Text => part.text(),
            PartKind::Html => part.text().map(|h| html_to_text(&h).into()),
            _ => None,
        };
        text.push('\n');
        push_unquoted(&mut text, body.as_deref().unwrap_or_default());
    }
    cut(text, MAX_TEXT)
}

/// Quoted lines (`> ...`) are left out: a reply quoting a campaign is
/// not the campaign, and replies on a list would match what they quote.
fn push_unquoted(text: &mut String, body: &str) {
    for line in body.lines().filter(|l| !l.trim_start().starts_with('>')) {
        text.push_str(line);
        text.push('\n');
    }
}

fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A normalised word, or a placeholder for what campaigns vary; the
/// text is borrowed from [`each_word`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Url,
    Email,
    Number,
}

/// Counts what was emitted (for [`MAX_WORDS`]) and collapses runs of
/// numbers: `12,345.67` is one number, not three.
struct Emitter<F> {
    emit: F,
    count: usize,
    last_number: bool,
}

impl<F: FnMut(Piece<'_>)> Emitter<F> {
    fn push(&mut self, piece: Piece<'_>) {
        let number = piece == Piece::Number;
        if number && self.last_number {
            return;
        }
        self.last_number = number;
        self.count += 1;
        (self.emit)(piece);
    }
}

/// The text as words: lower case, punctuation dropped, links, addresses
/// and anything with a digit replaced by placeholders, and words of one
/// letter (initials, stray letters of broken HTML) dropped. Each word goes
/// to `emit` from one reused buffer, so the fingerprint hashes words
/// without a String each (the proxy fingerprints every message at DATA).
fn each_word(text: &str, emit: impl FnMut(Piece<'_>)) {
    let mut out = Emitter {
        emit,
        count: 0,
        last_number: false,
    };
    let mut lower = String::new();
    for token in text.split_whitespace() {
        if out.count >= MAX_WORDS {
            break;
        }
        lowercase_into(token, &mut lower);
        classify(&lower, &mut out);
    }
}

/// `str::to_lowercase`, without its allocation for ASCII tokens.
fn lowercase_into(token: &str, out: &mut String) {
    out.clear();
    if token.is_ascii() {
        out.push_str(token);
        out.make_ascii_lowercase();
    } else {
        out.push_str(&token.to_lowercase());
    }
}

fn classify<F: FnMut(Piece<'_>)>(lower: &str, out: &mut Emitter<F>) {
    if is_url(lower) {
        return out.push(Piece::Url);
    }
    if lower.contains('@') && lower.contains('.') {
        return out.push(Piece::Email);
    }
    for piece in lower.split(|c: char| !c.is_alphanumeric()) {
        if piece.chars().any(char::is_numeric) {
            out.push(Piece::Number);
        } else if piece.chars().nth(1).is_some() {
            out.push(Piece::Text(piece));
        }
    }
}

fn is_url(token: &str) -> bool {
    let t = token.trim_start_matches(['<', '(', '[', '"', '\'']);
    ["http://", "https://", "www.", "ftp://", "mailto:"]
        .iter()
        .any(|p| t.starts_with(p))
}

/// Fixed seeds: fingerprints must agree across processes and restarts.
fn seed(i: usize) -> u64 {
    mix(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(i as u64 + 1))
}

/// A strong 64-bit finaliser (splitmix64's).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a: stable across builds, unlike std's hasher.
fn piece_hash(piece: Piece<'_>) -> u64 {
    let bytes: &[u8] = match piece {
        Piece::Text(t) => t.as_bytes(),
        Piece::Url => b"\x01url",
        Piece::Email => b"\x01email",
        Piece::Number => b"\x01num",
    };
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn min_hashes(hashes: &[u64]) -> [u64; HASHES] {
    let seeds: [u64; HASHES] = std::array::from_fn(seed);
    let mut mins = [u64::MAX; HASHES];
    for shingle in hashes.windows(SHINGLE) {
        let h = shingle.iter().fold(0u64, |acc, w| mix(acc ^ w));
        for (min, seed) in mins.iter_mut().zip(seeds) {
            *min = (*min).min(mix(h ^ seed));
        }
    }
    mins
}

fn bands(mins: &[u64; HASHES]) -> [u64; BANDS] {
    std::array::from_fn(|b| {
        let rows = &mins[b * ROWS..(b + 1) * ROWS];
        rows.iter().fold(mix(b as u64 + 1), |acc, m| mix(acc ^ m))
    })
}

/// True when two fingerprints share a band key.
pub fn shares_band(a: &Fingerprint, b: &Fingerprint) -> bool {
    a.bands.iter().any(|k| b.bands.contains(k))
}

#[cfg(test)]
mod tests;
