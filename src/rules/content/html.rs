//! A bounded scan of an HTML part for what a reader sees and what is kept
//! from them: visible text, text hidden by style or colour, tiny text,
//! images, forms, scripts, and each link with the text it shows.
//!
//! This is not a conforming HTML parser: spam HTML is broken on purpose,
//! and only a few tags and attributes matter here. Tags longer than
//! [`MAX_TAG`] are text; the element stack is capped at [`MAX_DEPTH`].

/// Bytes of one part's HTML looked at.
pub const MAX_HTML: usize = 512 * 1024;
/// Bytes of one tag (`<...>`); longer is not a tag.
const MAX_TAG: usize = 4096;
/// Open elements tracked.
const MAX_DEPTH: usize = 256;
/// Links recorded per part.
pub const MAX_ANCHORS: usize = 1000;
/// Characters of an anchor's text kept.
const MAX_ANCHOR_TEXT: usize = 200;
/// Characters of visible text kept for the text facts.
pub const MAX_TEXT: usize = 256 * 1024;

/// A link: where it goes and what it shows.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Anchor {
    pub href: String,
    pub text: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct HtmlScan {
    /// The visible text, block elements separated by spaces.
    pub text: String,
    pub source_len: usize,
    /// Non-space characters shown.
    pub visible_chars: usize,
    /// Non-space characters hidden by `display:none`, `visibility:hidden`
    /// or a text colour equal to its background.
    pub hidden_chars: usize,
    /// Non-space characters in a font of 4 px (3 pt) or smaller.
    pub tiny_chars: usize,
    pub images: usize,
    pub forms: usize,
    /// `script`, `iframe`, `object` and `embed` elements.
    pub scripts: usize,
    pub anchors: Vec<Anchor>,
}

/// What an open element does to the text inside it.
#[derive(Debug, Clone)]
struct Frame {
    tag: String,
    hidden: bool,
    tiny: bool,
    color: Option<String>,
    background: String,
}

/// Tags whose content is never shown.
const RAW_TEXT: [&str; 3] = ["script", "style", "title"];
const VOID: [&str; 12] = [
    "img", "br", "hr", "meta", "link", "input", "area", "base", "col", "wbr", "param", "source",
];
const BLOCK: [&str; 12] = [
    "br", "p", "div", "td", "th", "tr", "li", "table", "h1", "h2", "h3", "hr",
];

pub fn scan(html: &str) -> HtmlScan {
    let mut html = html;
    if html.len() > MAX_HTML {
        let mut end = MAX_HTML;
        while !html.is_char_boundary(end) {
            end -= 1;
        }
        html = &html[..end];
    }
    let mut scanner = Scanner::new(html.len());
    scanner.run(html);
    scanner.out
}

struct Scanner {
    out: HtmlScan,
    stack: Vec<Frame>,
    /// The anchor being read, if inside `<a href>`.
    anchor: Option<Anchor>,
}

impl Scanner {
    fn new(len: usize) -> Scanner {
        let root = Frame {
            tag: String::new(),
            hidden: false,
            tiny: false,
            color: None,
            background: "#ffffff".into(),
        };
        Scanner {
            out: HtmlScan {
                source_len: len,
                ..HtmlScan::default()
            },
            stack: vec![root],
            anchor: None,
        }
    }

    fn run(&mut self, html: &str) {
        let mut at = 0;
        // The next `>` at or after `at`, found again only once passed, so
        // a text of many `<` without `>` is one pass, not one per `<`.
        let mut next_gt = html.find('>');
        while let Some(lt) = html[at..].find('<').map(|i| at + i) {
            self.text(&html[at..lt]);
            if next_gt.is_some_and(|g| g < lt) {
                next_gt = html[lt..].find('>').map(|i| lt + i);
            }
            let tag_end = next_gt.filter(|g| g - lt <= MAX_TAG);
            at = self.markup(html, lt, tag_end);
        }
        self.text(&html[at..]);
        self.close_anchor();
    }

    /// Handles the markup at `lt` (a `<`) whose tag ends at `gt`, if it
    /// does within bounds, and returns where the text goes on.
    fn markup(&mut self, html: &str, lt: usize, gt: Option<usize>) -> usize {
        let rest = &html[lt..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            return comment
                .find("-->")
                .map_or(html.len(), |end| lt + 4 + end + 3);
        }
        let Some(gt) = gt else {
            self.text("<");
            return lt + 1;
        };
        match Tag::parse(&html[lt + 1..gt]) {
            Some(t) if t.closing => self.close(&t.name),
            Some(t) => return self.open(&t, html, gt + 1),
            None => self.text(&html[lt..=gt]),
        }
        gt + 1
    }

    fn open(&mut self, tag: &Tag, html: &str, after: usize) -> usize {
        self.count(tag);
        if tag.name == "a" {
            self.close_anchor();
            self.anchor = tag.attr("href").map(|href| Anchor {
                href: href.trim().to_string(),
                text: String::new(),
            });
        }
        if BLOCK.contains(&tag.name.as_str()) {
            self.text(" ");
        }
        if RAW_TEXT.contains(&tag.name.as_str()) {
            let end = format!("</{}", tag.name);
            return find_ascii_ci(&html[after..], &end).map_or(html.len(), |i| after + i);
        }
        if !VOID.contains(&tag.name.as_str()) && !tag.self_closing && self.stack.len() < MAX_DEPTH {
            let frame = self.frame(tag);
            self.stack.push(frame);
        }
        after
    }

    fn count(&mut self, tag: &Tag) {
        match tag.name.as_str() {
            "img" => self.out.images += 1,
            "form" => self.out.forms += 1,
            "script" | "iframe" | "object" | "embed" => self.out.scripts += 1,
            _ => {}
        }
    }

    /// The element's effect on its text, inherited from its parent.
    fn frame(&self, tag: &Tag) -> Frame {
        let parent = self.stack.last().cloned().unwrap_or_else(|| Frame {
            tag: String::new(),
            hidden: false,
            tiny: false,
            color: None,
            background: "#ffffff".into(),
        });
        let style = tag.attr("style").map(compact_style).unwrap_or_default();
        let hidden = style.contains("display:none") || style.contains("visibility:hidden");
        let background = tag
            .attr("bgcolor")
            .or_else(|| style_value(&style, "background-color"))
            .or_else(|| style_value(&style, "background"))
            .and_then(color)
            .unwrap_or(parent.background);
        let color = tag
            .attr("color")
            .filter(|_| tag.name == "font")
            .or_else(|| style_value(&style, "color"))
            .and_then(color)
            .or(parent.color);
        Frame {
            tag: tag.name.clone(),
            hidden: parent.hidden || hidden,
            tiny: parent.tiny || tiny_font(&style),
            color,
            background,
        }
    }

    fn close(&mut self, name: &str) {
        if name == "a" {
            self.close_anchor();
        }
        if BLOCK.contains(&name) {
            self.text(" ");
        }
        let depth = self.stack.len();
        let found = self.stack[1..]
            .iter()
            .rev()
            .take(32)
            .position(|f| f.tag == name);
        if let Some(from_top) = found {
            self.stack.truncate(depth - from_top - 1);
        }
    }

    fn close_anchor(&mut self) {
        if let Some(anchor) = self.anchor.take() {
            if self.out.anchors.len() < MAX_ANCHORS {
                self.out.anchors.push(anchor);
            }
        }
    }

    fn text(&mut self, raw: &str) {
        if raw.is_empty() {
            return;
        }
        let text = decode_entities(raw);
        let chars = text.chars().filter(|c| !c.is_whitespace()).count();
        let top = self.stack.last().expect("the root frame is never popped");
        let same_colour = top.color.as_ref() == Some(&top.background);
        if top.hidden || same_colour {
            self.out.hidden_chars += chars;
            return;
        }
        if top.tiny {
            self.out.tiny_chars += chars;
            return;
        }
        self.out.visible_chars += chars;
        if let Some(anchor) = &mut self.anchor {
            let room = MAX_ANCHOR_TEXT.saturating_sub(anchor.text.chars().count());
            anchor.text.extend(text.chars().take(room));
        }
        if self.out.text.len() + text.len() <= MAX_TEXT {
            self.out.text.push_str(&text);
        }
    }
}

/// A start or end tag: its lower-case name and attributes.
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn parse(inner: &str) -> Option<Tag> {
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, inner),
        };
        let name_len = inner
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(inner.len());
        if name_len == 0 || !inner.as_bytes()[0].is_ascii_alphabetic() {
            return None;
        }
        let self_closing = inner.trim_end().ends_with('/');
        Some(Tag {
            name: inner[..name_len].to_ascii_lowercase(),
            closing,
            self_closing,
            attrs: attributes(&inner[name_len..]),
        })
    }

    fn attr(&self, name: &str) -> Option<&str> {
        let found = self.attrs.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }
}

/// `name=value`, `name="value"`, `name='value'` and bare `name`, at most 32.
fn attributes(mut rest: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < 32 {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '=' || c == '/')
            .unwrap_or(rest.len());
        if name_len == 0 {
            break;
        }
        let name = rest[..name_len].to_ascii_lowercase();
        rest = rest[name_len..].trim_start();
        let value;
        (value, rest) = match rest.strip_prefix('=') {
            Some(v) => attribute_value(v.trim_start()),
            None => ("", rest),
        };
        out.push((name, value.to_string()));
    }
    out
}

fn attribute_value(rest: &str) -> (&str, &str) {
    for quote in ['"', '\''] {
        if let Some(inner) = rest.strip_prefix(quote) {
            let end = inner.find(quote).unwrap_or(inner.len());
            return (&inner[..end], inner.get(end + 1..).unwrap_or(""));
        }
    }
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    (&rest[..end], &rest[end..])
}

/// The style attribute lower-cased without spaces: `display: None` is
/// `display:none`.
fn compact_style(style: &str) -> String {
    style
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The value of one declaration of a compacted style.
fn style_value<'s>(style: &'s str, property: &str) -> Option<&'s str> {
    style.split(';').find_map(|decl| {
        let (name, value) = decl.split_once(':')?;
        (name == property).then_some(value)
    })
}

/// A font of 4 px (or 3 pt) or less, or zero in any unit.
fn tiny_font(style: &str) -> bool {
    let Some(size) = style_value(style, "font-size") else {
        return false;
    };
    let number_len = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let Ok(number) = size[..number_len].parse::<f64>() else {
        return false;
    };
    match &size[number_len..] {
        "px" => number <= 4.0,
        "pt" => number <= 3.0,
        _ => number == 0.0,
    }
}

/// A colour as `#rrggbb`: hex forms expanded and the common names.
fn color(value: &str) -> Option<String> {
    let v = value.trim().trim_matches('"').to_ascii_lowercase();
    let named = [
        ("white", "#ffffff"),
        ("black", "#000000"),
        ("red", "#ff0000"),
        ("blue", "#0000ff"),
        ("yellow", "#ffff00"),
        ("silver", "#c0c0c0"),
        ("gray", "#808080"),
        ("green", "#008000"),
    ];
    if let Some((_, hex)) = named.iter().find(|(n, _)| *n == v) {
        return Some((*hex).to_string());
    }
    let hex = v.strip_prefix('#').unwrap_or(&v);
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        6 => Some(format!("#{hex}")),
        3 => Some(hex.chars().fold(String::from("#"), |mut s, c| {
            s.push(c);
            s.push(c);
            s
        })),
        _ => None,
    }
}

/// The few entities that matter for counting and reading text; any other
/// `&name;` counts as one character.
fn decode_entities(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains('&') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.as_bytes()[..rest.len().min(10)]
            .iter()
            .position(|b| *b == b';');
        let Some(end) = end else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        out.push(entity(&rest[1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn entity(name: &str) -> char {
    let numeric = name
        .strip_prefix('#')
        .and_then(|n| match n.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => n.parse().ok(),
        });
    if let Some(c) = numeric.and_then(char::from_u32) {
        return c;
    }
    match name {
        "nbsp" => ' ',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "amp" => '&',
        _ => '?',
    }
}

/// The first position of ASCII `needle` in `hay`, ignoring ASCII case.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    hay.as_bytes()
        .windows(n)
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_table() {
        // (html, visible, hidden, tiny, images, forms, scripts)
        let cases = [
            ("<p>Hello <b>world</b></p>", 10, 0, 0, 0, 0, 0),
            (
                "<div style='display: none'>secret</div>ok",
                2,
                6,
                0,
                0,
                0,
                0,
            ),
            (
                "<span style=\"visibility:hidden\">ab<i>cd</i></span>x",
                1,
                4,
                0,
                0,
                0,
                0,
            ),
            ("<font color=white>hidden</font>", 0, 6, 0, 0, 0, 0),
            ("<font color=\"#FFF\">hidden</font>", 0, 6, 0, 0, 0, 0),
            (
                "<body bgcolor=black><font color=white>shown</font></body>",
                5,
                0,
                0,
                0,
                0,
                0,
            ),
            (
                "<td bgcolor=#000000><font color=#000>dark</font></td>",
                0,
                4,
                0,
                0,
                0,
                0,
            ),
            (
                "<span style='font-size:1px'>tiny</span> big",
                3,
                0,
                4,
                0,
                0,
                0,
            ),
            (
                "<span style='font-size:12px'>normal</span>",
                6,
                0,
                0,
                0,
                0,
                0,
            ),
            ("<img src=a.gif><IMG SRC='b.gif'/>", 0, 0, 0, 2, 0, 0),
            (
                "<form action=x><input></form><script>var a = 1;</script>",
                0,
                0,
                0,
                0,
                1,
                1,
            ),
            ("<style>p {color: red}</style>text", 4, 0, 0, 0, 0, 0),
            ("<!-- a comment -->x", 1, 0, 0, 0, 0, 0),
            ("a &lt; b &amp;&nbsp;c", 5, 0, 0, 0, 0, 0),
            ("1 < 2 and <3", 8, 0, 0, 0, 0, 0),
            ("<iframe src=x></iframe>", 0, 0, 0, 0, 0, 1),
        ];
        for (html, visible, hidden, tiny, images, forms, scripts) in cases {
            let s = scan(html);
            let got = (
                s.visible_chars,
                s.hidden_chars,
                s.tiny_chars,
                s.images,
                s.forms,
                s.scripts,
            );
            assert_eq!(
                got,
                (visible, hidden, tiny, images, forms, scripts),
                "{html}"
            );
        }
    }

    #[test]
    fn anchors_table() {
        let cases: [(&str, &[(&str, &str)]); 4] = [
            (
                "<a href=\"http://x.example/a\">www.bank.example</a>",
                &[("http://x.example/a", "www.bank.example")],
            ),
            (
                "<A HREF=http://y.example>click <b>here</b></A>",
                &[("http://y.example", "click here")],
            ),
            (
                "<a href='u1'>one<a href='u2'>two",
                &[("u1", "one"), ("u2", "two")],
            ),
            ("<a name=top>no link</a>", &[]),
        ];
        for (html, want) in cases {
            let got: Vec<(String, String)> = scan(html)
                .anchors
                .into_iter()
                .map(|a| (a.href, a.text))
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(h, t)| (h.to_string(), t.to_string()))
                .collect();
            assert_eq!(got, want, "{html}");
        }
    }

    #[test]
    fn hostile_input_is_bounded() {
        let deep = "<div>".repeat(100_000) + "x";
        let s = scan(&deep);
        assert_eq!(s.visible_chars, 1);
        let links = "<a href=u>x</a>".repeat(5_000);
        assert_eq!(scan(&links).anchors.len(), MAX_ANCHORS);
        let open = "<".repeat(10_000);
        assert_eq!(scan(&open).visible_chars, 10_000);
        let huge = "y".repeat(MAX_HTML * 2);
        assert_eq!(scan(&huge).visible_chars, MAX_HTML);
    }
}
