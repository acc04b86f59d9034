//! Turns a message into the tokens the classifier counts.
//!
//! Tokens come from the decoded text parts (HTML reduced to text), the
//! Subject, the hosts of links, and a few header fields that tell senders
//! and their software apart (sender and From domain, X-Mailer/User-Agent,
//! Content-Type, the shape of the Message-ID, the two oldest Received hops).
//! Header tokens carry a field prefix so that `paypal` in a From domain and
//! `paypal` in the body are counted apart.
//!
//! Word streams (body parts, Subject) give unigrams plus orthogonal sparse
//! bigrams: each word paired with each of the 4 words before it, the
//! distance part of the token (a window of 5, as CRM114 and rspamd do).
//! Pairs catch phrases that single words miss ("click here", "act now").
//!
//! Every token is hashed to a u64 with xxh3 and a fixed seed: the value is
//! the same on every machine and every run, so a database (file or Redis)
//! is portable. Everything is bounded: text bytes looked at, words per
//! message, parts, header bytes.

use std::borrow::Cow;

use mail_parser::{html_to_text, Message, MessageParser, PartKind};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Fixed, so that hashes are stable across machines and versions.
const SEED: u64 = 0x5350_414d_4741_5445; // "SPAMGATE"
/// The most decoded text read from all parts of one message.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// The most words taken from one message (each gives up to 5 tokens).
pub const MAX_WORDS: usize = 3000;
/// The most MIME parts looked at.
const MAX_PARTS: usize = 64;
/// The most link hosts taken.
const MAX_LINKS: usize = 64;
/// Words longer than this become a shape token (base64 runs, hashes).
const MAX_WORD_CHARS: usize = 32;
/// Shorter words carry too little to count (SpamAssassin skips them too).
const MIN_WORD_CHARS: usize = 3;
/// The OSB window: a word and the 4 before it.
const WINDOW: usize = 5;

/// Where a token came from, for the readable form of the telling ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Word(u32),
    /// The earlier word, the later one, and how far apart they are (1..4).
    Pair(u32, u32, u8),
}

/// The distinct tokens of one message, sorted by hash.
#[derive(Debug, Default)]
pub struct Tokens {
    text: String,
    words: Vec<(u32, u32)>,
    entries: Vec<(u64, Source)>,
}

impl Tokens {
    /// The distinct token hashes, ascending.
    pub fn hashes(&self) -> impl ExactSizeIterator<Item = u64> + '_ {
        self.entries.iter().map(|(h, _)| *h)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The token at `index` (in hash order) as a person reads it.
    pub fn readable(&self, index: usize) -> String {
        match self.entries.get(index).map(|(_, s)| *s) {
            Some(Source::Word(w)) => self.word(w).to_string(),
            Some(Source::Pair(a, b, 1)) => format!("{} {}", self.word(a), self.word(b)),
            Some(Source::Pair(a, b, d)) => {
                format!(
                    "{} {}{}",
                    self.word(a),
                    "* ".repeat(d as usize - 1),
                    self.word(b)
                )
            }
            None => String::new(),
        }
    }

    fn word(&self, index: u32) -> &str {
        let (start, end) = self.words[index as usize];
        &self.text[start as usize..end as usize]
    }
}

/// Builds [`Tokens`]: words are appended to one buffer, streams of words
/// give pairs, then the entries are sorted and deduplicated.
struct Builder {
    tokens: Tokens,
    hashes: Vec<u64>,
    text_budget: usize,
}

impl Builder {
    fn new() -> Self {
        Builder {
            tokens: Tokens::default(),
            hashes: Vec::new(),
            text_budget: MAX_TEXT_BYTES,
        }
    }

    fn full(&self) -> bool {
        self.tokens.words.len() >= MAX_WORDS
    }

    /// Adds one word (already normalised, prefix included); its index.
    fn word(&mut self, text: &str) -> Option<u32> {
        if self.full() {
            return None;
        }
        let start = self.tokens.text.len() as u32;
        self.tokens.text.push_str(text);
        let index = self.tokens.words.len() as u32;
        self.tokens
            .words
            .push((start, self.tokens.text.len() as u32));
        let hash = xxh3_64_with_seed(text.as_bytes(), SEED);
        self.hashes.push(hash);
        self.tokens.entries.push((hash, Source::Word(index)));
        Some(index)
    }

    /// A single field token, e.g. `from:example.com`.
    fn field(&mut self, prefix: &str, value: &str) {
        let value: String = value.chars().take(64).collect();
        self.word(&format!("{prefix}:{}", value.to_lowercase()));
    }

    /// A stream of words: unigrams plus sparse bigrams inside the window.
    fn stream(&mut self, text: &str, prefix: &str) {
        let text = self.take_budget(text);
        let mut recent: Vec<u32> = Vec::with_capacity(WINDOW);
        let mut buf = String::new();
        for raw in text.split(|c: char| c.is_whitespace()) {
            if !normalise(raw, prefix, &mut buf) {
                continue;
            }
            let Some(index) = self.word(&buf) else { return };
            for (back, &earlier) in recent.iter().rev().enumerate() {
                self.pair(earlier, index, back as u8 + 1);
            }
            if recent.len() == WINDOW - 1 {
                recent.remove(0);
            }
            recent.push(index);
        }
    }

    fn take_budget<'t>(&mut self, text: &'t str) -> &'t str {
        let mut cut = text.len().min(self.text_budget);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text_budget -= cut;
        &text[..cut]
    }

    fn pair(&mut self, a: u32, b: u32, distance: u8) {
        let (ha, hb) = (self.hashes[a as usize], self.hashes[b as usize]);
        let hash =
            mix(ha.rotate_left(17) ^ hb ^ u64::from(distance).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        self.tokens
            .entries
            .push((hash, Source::Pair(a, b, distance)));
    }

    fn finish(mut self) -> Tokens {
        self.tokens.entries.sort_unstable_by_key(|(h, _)| *h);
        self.tokens.entries.dedup_by_key(|(h, _)| *h);
        self.tokens
    }
}

/// The splitmix64 finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Lowercases `raw` into `out` without the punctuation around it; false
/// when nothing worth counting is left. Long words become a shape
/// (`~long:` + their first 3 characters + length rounded to 8) so that
/// random strings neither fill the database nor go unnoticed.
fn normalise(raw: &str, prefix: &str, out: &mut String) -> bool {
    let kept = |c: char| c.is_alphanumeric() || matches!(c, '$' | '€' | '£' | '%' | '!');
    let word = raw.trim_matches(|c: char| !kept(c));
    // ASCII words (most of them): one byte a character, ASCII lowercase.
    let ascii = word.is_ascii();
    let chars = if ascii {
        word.len()
    } else {
        word.chars().count()
    };
    if chars < MIN_WORD_CHARS {
        return false;
    }
    out.clear();
    out.push_str(prefix);
    if chars > MAX_WORD_CHARS {
        let head: String = word.chars().take(3).flat_map(char::to_lowercase).collect();
        out.push_str(&format!("~long:{head}:{}", chars / 8 * 8));
        return true;
    }
    if ascii {
        let start = out.len();
        out.push_str(word);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    true
}

/// The tokens of a raw message (CRLF or LF line ends).
pub fn tokenize(raw: &[u8]) -> Tokens {
    match MessageParser::new().parse(raw) {
        Some(message) => tokenize_message(&message),
        None => Builder::new().finish(),
    }
}

/// The tokens of a message already parsed (the checks share one parse).
pub fn tokenize_message(message: &Message<'_>) -> Tokens {
    let mut builder = Builder::new();
    headers(&mut builder, message);
    bodies(&mut builder, message);
    builder.finish()
}

fn headers(b: &mut Builder, message: &Message<'_>) {
    let headers = message.root().headers();
    if let Some(subject) = headers.subject() {
        b.stream(subject, "s:");
    }
    let domain = |a: &str| a.rsplit_once('@').map(|(_, d)| d.to_string());
    let from = headers
        .from()
        .and_then(|l| l.first())
        .and_then(|m| m.address().and_then(domain));
    if let Some(d) = from {
        b.field("from", &d);
    }
    match headers.return_address().and_then(domain) {
        Some(d) => b.field("sender", d.trim_end_matches('>')),
        None => b.field("sender", "none"),
    }
    for name in ["X-Mailer", "User-Agent"] {
        if let Some(value) = headers.get(name).and_then(|h| text_value(&h)) {
            b.field("mailer", &shape_digits(&value));
        }
    }
    if let Some(ct) = headers.get("Content-Type").and_then(|h| text_value(&h)) {
        b.field("ct", ct.split(';').next().unwrap_or_default().trim());
    }
    match headers.message_id() {
        Some(id) => b.field("mid", &message_id_shape(id)),
        None => b.field("mid", "none"),
    }
    // The oldest hops, the sender's side: a message at DATA and the same
    // message learned from a mailbox share them, while the newest hops of
    // stored mail are this site's own delivery path, which the proxy never
    // sees and which only tells how the training mail was collected.
    let (mut older, mut oldest) = (None, None);
    for received in headers.all_received() {
        older = oldest.replace(received);
    }
    for received in [oldest, older].into_iter().flatten() {
        received_tokens(b, &received);
    }
}

fn text_value(header: &mail_parser::Header<'_>) -> Option<String> {
    let parsed = header.parse_as(mail_parser::HeaderForm::Text);
    parsed.value().as_text().map(|t| t.trim().to_string())
}

/// Digits as `9`: `Outlook 16.0.1234` and `Outlook 16.0.5678` are one mailer.
fn shape_digits(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect()
}

/// `local@domain` with the local part reduced to its character classes
/// (`a` letters, `9` digits, others kept, runs collapsed): bulk mailers'
/// IDs have telling shapes, and the values never repeat.
fn message_id_shape(id: &str) -> String {
    let (local, domain) = id.rsplit_once('@').unwrap_or((id, ""));
    let mut shape = String::new();
    for c in local.chars().take(64) {
        let class = match c {
            c if c.is_ascii_digit() => '9',
            c if c.is_alphabetic() => 'a',
            c => c,
        };
        if !shape.ends_with(class) {
            shape.push(class);
        }
    }
    format!("{shape}@{}", registrable(domain))
}

/// The registrable domain (`mail.example.co.uk` → `example.co.uk`).
fn registrable(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&host).map_or(host.clone(), str::to_string)
}

/// One Received hop as `rcvd:` tokens: the sending host's domain, its /24
/// (or /48), and the receiving host's domain.
fn received_tokens(b: &mut Builder, received: &mail_parser::Received<'_>) {
    use mail_parser::Host;
    match received.from() {
        Some(Host::Name(name)) => b.field("rcvd-from", &registrable(name)),
        Some(Host::IpAddr(ip)) => b.field("rcvd-from", &ip_shape(ip)),
        None => {}
    }
    if let Some(ip) = received.from_ip() {
        b.field("rcvd-ip", &ip_shape(ip));
    }
    if let Some(Host::Name(name)) = received.by() {
        b.field("rcvd-by", &registrable(name));
    }
}

fn ip_shape(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

fn bodies(b: &mut Builder, message: &Message<'_>) {
    let mut links = 0;
    for part in message.parts().take(MAX_PARTS) {
        if part.attachment_name().is_some() {
            attachment(b, &part);
            continue;
        }
        let text = match part.kind() {
            PartKind::Text | PartKind::Html => part.text_prefix_bytes(b.text_budget),
            PartKind::Binary | PartKind::InlineBinary => {
                attachment(b, &part);
                None
            }
            _ => None,
        };
        let Some(text) = text else { continue };
        links += link_hosts(b, &text, MAX_LINKS - links.min(MAX_LINKS));
        let text = match part.kind() {
            PartKind::Html => Cow::Owned(html_to_text(&text)),
            _ => text,
        };
        b.stream(&text, "");
        if b.full() || b.text_budget == 0 {
            return;
        }
    }
}

fn attachment(b: &mut Builder, part: &mail_parser::MessagePart<'_>) {
    let kind = part.content_type().map_or("none".to_string(), |ct| {
        format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
    });
    b.field("att", &kind);
}

/// `url:` tokens for the hosts of http(s) links (and their registrable
/// domain); returns how many were taken, at most `left`.
fn link_hosts(b: &mut Builder, text: &str, left: usize) -> usize {
    let mut taken = 0;
    let mut rest = text;
    while taken < left {
        let Some(at) = rest.find("://") else { break };
        let scheme_ok = rest[..at].to_ascii_lowercase().ends_with("http")
            || rest[..at].to_ascii_lowercase().ends_with("https");
        rest = &rest[at + 3..];
        if !scheme_ok {
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let host = rest[..end].trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            continue;
        }
        let domain = registrable(&host);
        if domain != host {
            b.field("url", &domain);
        }
        b.field("url", &host);
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(raw: &str) -> Vec<String> {
        let tokens = tokenize(raw.as_bytes());
        (0..tokens.len()).map(|i| tokens.readable(i)).collect()
    }

    #[test]
    fn normalise_table() {
        let cases = [
            ("Hello,", Some("hello")),
            ("(FREE!)", Some("free!")),
            ("an", None),
            ("...", None),
            ("ÉTÉS", Some("étés")),
            ("$100", Some("$100")),
            (
                "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkwMTIzNDU2",
                Some("~long:quj:48"),
            ),
        ];
        let mut out = String::new();
        for (raw, want) in cases {
            let got = normalise(raw, "", &mut out).then(|| out.clone());
            assert_eq!(got.as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn fields_and_pairs() {
        let tokens = readable(
            "From: Bob <bob@mail.example.co.uk>\r\nSubject: Cheap pills\r\n\
X-Mailer: Mailer 4.21\r\nMessage-ID: <AB12cd.99@mx.example.com>\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n\
<p>Click <a href=\"https://www.shop.example.com/x\">here</a> now</p>\r\n",
        );
        for want in [
            "from:mail.example.co.uk",
            "s:cheap",
            "s:cheap s:pills",
            "mailer:mailer 9.99",
            "mid:a9a.9@example.com",
            "ct:text/html",
            "url:example.com",
            "url:www.shop.example.com",
            "click here",
            "click * now",
            "sender:mail.example.co.uk",
        ] {
            assert!(tokens.iter().any(|t| t == want), "{want} not in {tokens:?}");
        }
        assert!(!tokens.iter().any(|t| t.contains("<p>")), "{tokens:?}");
    }

    #[test]
    fn hashes_are_stable_and_distinct() {
        let a = tokenize(b"Subject: hello world\r\n\r\nbuy cheap watches today\r\n");
        let b = tokenize(b"Subject: hello world\r\n\r\nbuy cheap watches today\r\n");
        let ha: Vec<u64> = a.hashes().collect();
        assert_eq!(ha, b.hashes().collect::<Vec<_>>());
        assert!(ha.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        // A phrase repeated gives each of its tokens once.
        let repeated = tokenize(b"\r\nbuy cheap buy cheap buy cheap buy cheap\r\n");
        let hashes: Vec<u64> = repeated.hashes().collect();
        assert!(hashes.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        let words: Vec<String> = (0..repeated.len()).map(|i| repeated.readable(i)).collect();
        assert!(words.contains(&"buy".to_string()) && words.contains(&"cheap".to_string()));
        // Values pinned: a change of hash would orphan every database.
        // (mix(1) checked against an independent splitmix64 in Python.)
        assert_eq!(
            format!("{:016x}", xxh3_64_with_seed(b"viagra", SEED)),
            "649c49b485dc61de"
        );
        assert_eq!(format!("{:016x}", mix(1)), "5692161d100b05e5");
    }

    #[test]
    fn bounded_on_huge_input() {
        let mut raw = b"Subject: x\r\n\r\n".to_vec();
        for i in 0..200_000 {
            raw.extend_from_slice(format!("word{i} ").as_bytes());
        }
        let tokens = tokenize(&raw);
        assert!(tokens.len() <= MAX_WORDS * WINDOW, "{}", tokens.len());
        assert!(tokens.text.len() <= MAX_WORDS * (MAX_WORD_CHARS * 4 + 16));
    }
}
