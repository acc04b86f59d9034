//! Facts about the text people read: shouting, exclamation and money
//! signs, and spam words disguised to get past word filters
//! (`v1agra`, `c.i.a.l.i.s`, `V I A G R A`).

use super::html::MAX_TEXT;
use super::is_space_byte;

/// Letters the text needs before its upper-case share means anything.
const UPPER_MIN_LETTERS: usize = 200;
/// Longest token looked at for disguised words.
const MAX_TOKEN: usize = 40;

/// Words that spammers disguise. The disguise is the signal: the plain
/// word in normal text is left to the `body` rules.
const DISGUISED: [&str; 30] = [
    "viagra",
    "cialis",
    "levitra",
    "xanax",
    "valium",
    "vicodin",
    "phentermine",
    "pharmacy",
    "prescription",
    "medication",
    "pills",
    "meds",
    "mortgage",
    "refinance",
    "casino",
    "penis",
    "enlargement",
    "erection",
    "porn",
    "rolex",
    "replica",
    "money",
    "cash",
    "free",
    "credit",
    "loan",
    "lottery",
    "winner",
    "discount",
    "cheap",
];

#[derive(Debug, Default, Clone, PartialEq)]
pub struct TextFacts {
    pub upper_ratio: Option<f64>,
    pub exclamations: usize,
    /// `$` followed by a digit, or a digit followed by `$`.
    pub money: usize,
    pub obfuscated: usize,
}

impl TextFacts {
    pub fn of(text: &str) -> TextFacts {
        let text = &text[..floor_boundary(text, MAX_TEXT * 2)];
        let ascii = text.is_ascii();
        let (letters, upper) = letters(text, ascii);
        TextFacts {
            upper_ratio: (letters >= UPPER_MIN_LETTERS).then(|| upper as f64 / letters as f64),
            exclamations: memchr::memchr_iter(b'!', text.as_bytes()).count(),
            money: money_amounts(text),
            obfuscated: obfuscated_words(text, ascii),
        }
    }
}

/// Letters and upper-case letters. Most mail text is ASCII, whose bytes
/// are counted without decoding characters (several times faster).
fn letters(text: &str, ascii: bool) -> (usize, usize) {
    if ascii {
        return ascii_letters(text.as_bytes());
    }
    let (mut letters, mut upper) = (0, 0);
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        letters += 1;
        upper += usize::from(c.is_uppercase());
    }
    (letters, upper)
}

/// [`letters`] for ASCII: one pass, counted in byte-wide lanes for 255
/// bytes at a time (which the compiler turns into SIMD adds) before the
/// totals are widened.
fn ascii_letters(bytes: &[u8]) -> (usize, usize) {
    let (mut letters, mut upper) = (0, 0);
    for chunk in bytes.chunks(255) {
        let (mut l, mut u) = (0u8, 0u8);
        for &b in chunk {
            let folded = b | 0x20;
            l += u8::from(folded.wrapping_sub(b'a') < 26);
            u += u8::from(b.wrapping_sub(b'A') < 26);
        }
        letters += usize::from(l);
        upper += usize::from(u);
    }
    (letters, upper)
}

fn floor_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn money_amounts(text: &str) -> usize {
    let b = text.as_bytes();
    memchr::memchr_iter(b'$', b)
        .filter(|&i| {
            let next = b.get(i + 1).is_some_and(u8::is_ascii_digit);
            let prev = i > 0 && b[i - 1].is_ascii_digit();
            next || prev
        })
        .count()
}

/// Disguised spam words: tokens that become a [`DISGUISED`] word once
/// digits and symbols standing for letters are read as letters, or once
/// separators between single letters are dropped, and runs of single
/// letters separated by spaces that spell one.
fn obfuscated_words(text: &str, ascii: bool) -> usize {
    match ascii {
        true => obfuscated_in(ascii_tokens(text)),
        false => obfuscated_in(text.split_whitespace()),
    }
}

/// What `split_whitespace` yields for ASCII text (vertical tab is white
/// space there too), split by bytes without decoding characters.
fn ascii_tokens(text: &str) -> impl Iterator<Item = &str> {
    let (bytes, mut at) = (text.as_bytes(), 0);
    std::iter::from_fn(move || {
        while bytes.get(at).is_some_and(|&b| is_space_byte(b)) {
            at += 1;
        }
        let start = at;
        while bytes.get(at).is_some_and(|&b| !is_space_byte(b)) {
            at += 1;
        }
        (at > start).then(|| &text[start..at])
    })
}

fn obfuscated_in<'t>(tokens: impl Iterator<Item = &'t str>) -> usize {
    let mut found = 0;
    let mut spaced = String::new();
    for token in tokens {
        let token = token
            .trim_matches(|c| matches!(c, ',' | ';' | ':' | '!' | '?' | '(' | ')' | '"' | '\''));
        if let Some(letter) = single_letter(token) {
            spaced.extend(letter.to_lowercase());
            continue;
        }
        found += usize::from(spaced.len() >= 4 && DISGUISED.contains(&spaced.as_str()));
        spaced.clear();
        found += usize::from(disguised(token));
    }
    found + usize::from(spaced.len() >= 4 && DISGUISED.contains(&spaced.as_str()))
}

/// The token's letter when it is one letter alone.
fn single_letter(token: &str) -> Option<char> {
    let mut chars = token.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_alphabetic() => Some(c),
        _ => None,
    }
}

/// One token that is a disguised spam word (the plain word is not).
fn disguised(token: &str) -> bool {
    if token.len() < 4 || token.len() > MAX_TOKEN || token.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return false;
    }
    could_be_disguised(token) && disguised_exactly(token)
}

/// False for ASCII tokens that neither read as a word letter for letter
/// ([`letter_for`] knows every byte) nor have a separator second: most
/// tokens of ordinary text ("report.", "2024-05", "e-mail"), which are
/// then refused without lowercasing or collecting anything.
fn could_be_disguised(token: &str) -> bool {
    let bytes = token.as_bytes();
    let look_alike = |b: &u8| b.is_ascii_alphabetic() || b"0134@5$7|!".contains(b);
    let separated = bytes.len() >= 7 && bytes.get(1).is_some_and(|b| b".-_*+~|/".contains(b));
    !token.is_ascii() || separated || bytes.iter().all(look_alike)
}

fn disguised_exactly(token: &str) -> bool {
    let lower = token.to_lowercase();
    if let Some(word) = unseparated(&lower) {
        return DISGUISED.contains(&word.as_str());
    }
    [('i', 'i'), ('l', 'l')].iter().any(|&(one, bar)| {
        let word: Option<String> = lower.chars().map(|c| letter_for(c, one, bar)).collect();
        word.is_some_and(|w| w != lower && DISGUISED.contains(&w.as_str()))
    })
}

/// `c.i.a.l.i.s`, `v-i-a-g-r-a`: single letters with one separator
/// between each, the separators dropped.
fn unseparated(token: &str) -> Option<String> {
    let chars: Vec<char> = token.chars().collect();
    let sep = *chars.get(1)?;
    if !".-_*+~|/".contains(sep) || chars.len() < 7 {
        return None;
    }
    let letters: Option<String> = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| match i % 2 {
            0 if c.is_alphabetic() => Some(Some(c)),
            1 if c == sep => Some(None),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|v| v.into_iter().flatten().collect());
    letters
}

/// The letter a look-alike stands for; `one` and `bar` choose what `1`
/// and `|` are read as (i or l). `None`: not a letter look-alike.
fn letter_for(c: char, one: char, bar: char) -> Option<char> {
    Some(match c {
        'a'..='z' => c,
        '0' => 'o',
        '1' => one,
        '|' => bar,
        '!' => 'i',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        'à' | 'á' | 'â' | 'ä' => 'a',
        'í' | 'ì' | 'ï' => 'i',
        'ó' | 'ò' | 'ö' => 'o',
        'é' | 'è' => 'e',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obfuscation_table() {
        let cases = [
            ("buy v1agra now", 1),
            ("buy V1AGRA now", 1),
            ("cheap c.i.a.l.i.s here", 1),
            ("v-i-a-g-r-a and m0ney", 2),
            ("V I A G R A", 1),
            ("get F R E E stuff", 1),
            ("viagra is a plain word", 0),
            ("win2k mp3 b2b h4x0r", 0),
            ("a.b.c.d e-f-g", 0),
            ("I A M here", 0),
            ("$ave on c1al1s", 1),
            ("vi@gra", 1),
        ];
        for (text, want) in cases {
            assert_eq!(obfuscated_words(text, text.is_ascii()), want, "{text}");
        }
    }

    /// The shortcut refuses only tokens the full test refuses.
    #[test]
    fn shortcut_refuses_no_disguised_word() {
        let mut tokens: Vec<String> = [
            "v1agra",
            "c.i.a.l.i.s",
            "vi@gra",
            "$ave",
            "m0ney",
            "fr33",
            "report.",
            "e-mail",
            "2024-05-01",
            "l0an!",
            "c|al|s",
            "pr1ce,",
            "v_i_a_g_r_a",
            "ça1ssé",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        for word in DISGUISED {
            for (from, to) in [
                ("i", "1"),
                ("o", "0"),
                ("a", "@"),
                ("e", "3"),
                ("s", "$"),
                ("i", "|"),
                ("t", "7"),
                ("a", "4"),
            ] {
                tokens.push(word.replacen(from, to, 1));
                tokens.push(word.to_uppercase().replacen(&from.to_uppercase(), to, 1));
            }
            let chars: Vec<String> = word.chars().map(String::from).collect();
            for sep in [".", "-", "_", "*", "+", "~", "|", "/", ","] {
                tokens.push(chars.join(sep));
            }
        }
        for token in &tokens {
            if disguised_exactly(token) {
                assert!(could_be_disguised(token), "{token}");
            }
        }
        assert!(tokens.iter().filter(|t| disguised(t)).count() > 200);
    }

    #[test]
    fn counts_table() {
        let cases = [
            ("Only $5! Save $1,000!!! 20$ off", 3, 4),
            ("price: USD 5", 0, 0),
            ("$ alone and a$b", 0, 0),
        ];
        for (text, money, exclamations) in cases {
            let facts = TextFacts::of(text);
            assert_eq!(
                (facts.money, facts.exclamations),
                (money, exclamations),
                "{text}"
            );
        }
    }

    /// The ASCII shortcut counts what the character-by-character way does.
    #[test]
    fn letter_counts_agree_with_chars() {
        let long = format!("{}{}", "A".repeat(300), "b~".repeat(300));
        let edges = [
            "Buy NOW!",
            "v1agra\x0bFREE\r\n",
            "",
            "Grüße ÉTÉ ß",
            "123 $",
            "@[`{ AZaz\x7f",
        ];
        for text in edges.into_iter().chain([long.as_str()]) {
            let slow = text
                .chars()
                .filter(|c| c.is_alphabetic())
                .fold((0, 0), |(l, u), c| {
                    (l + 1, u + usize::from(c.is_uppercase()))
                });
            assert_eq!(letters(text, text.is_ascii()), slow, "{text:?}");
        }
    }

    #[test]
    fn ascii_tokens_are_split_whitespace() {
        for text in ["a  b\tc\r\n d", "x\x0By\x0Cz ", "", "   ", "v 1 a g r a!"] {
            let slow: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(ascii_tokens(text).collect::<Vec<_>>(), slow, "{text:?}");
        }
    }

    #[test]
    fn upper_ratio_table() {
        let shout = "BUY NOW ".repeat(50);
        let calm = "Buy now ".repeat(50);
        let short = "BUY NOW";
        assert_eq!(TextFacts::of(&shout).upper_ratio, Some(1.0));
        assert_eq!(TextFacts::of(&calm).upper_ratio, Some(1.0 / 6.0));
        assert_eq!(TextFacts::of(short).upper_ratio, None);
    }
}
