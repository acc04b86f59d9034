//! SPF macros (RFC 7208 7): `%{s}`, `%{ir}.%{v}`, `%{d2}` and friends,
//! parsed with the record and expanded per check.

use super::syntax::SyntaxError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Macro {
        letter: char,
        /// An upper-case letter asks for URL escaping.
        escape: bool,
        keep: Option<usize>,
        reverse: bool,
        delimiters: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacroString(Vec<Part>);

/// The values macros expand to, for one evaluation.
pub trait MacroValues {
    /// The value of a macro letter (lower case); `p` may need DNS, so it
    /// is resolved by the caller before expansion.
    fn value(&self, letter: char) -> String;
}

impl MacroString {
    /// Parses `text`; `exp` allows the letters only explanations may use.
    pub fn parse(text: &str, exp: bool) -> Result<MacroString, SyntaxError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            match chars.next() {
                Some('%') => literal.push('%'),
                Some('_') => literal.push(' '),
                Some('-') => literal.push_str("%20"),
                Some('{') => {
                    let body: String = chars.by_ref().take_while(|c| *c != '}').collect();
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                    parts.push(parse_macro(&body, exp)?);
                }
                _ => return Err(SyntaxError(format!("bad '%' in '{text}'"))),
            }
        }
        if text.ends_with("%{") || (text.contains("%{") && unclosed(text)) {
            return Err(SyntaxError(format!("unclosed macro in '{text}'")));
        }
        parts.push(Part::Literal(literal));
        parts.retain(|p| !matches!(p, Part::Literal(l) if l.is_empty()));
        Ok(MacroString(parts))
    }

    pub fn ends_with_macro(&self) -> bool {
        matches!(self.0.last(), Some(Part::Macro { .. }))
    }

    /// True when expanding needs the `p` macro (a DNS lookup).
    pub fn uses_p(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Part::Macro { letter: 'p', .. }))
    }

    pub fn expand(&self, values: &dyn MacroValues) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Macro {
                    letter,
                    escape,
                    keep,
                    reverse,
                    delimiters,
                } => {
                    let value = transform(&values.value(*letter), *keep, *reverse, delimiters);
                    match escape {
                        true => out.push_str(&url_escape(&value)),
                        false => out.push_str(&value),
                    }
                }
            }
        }
        out
    }
}

/// True if some `%{` has no `}` after it.
fn unclosed(text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find("%{") {
        match rest[i..].find('}') {
            Some(j) => rest = &rest[i + j + 1..],
            None => return true,
        }
    }
    false
}

fn parse_macro(body: &str, exp: bool) -> Result<Part, SyntaxError> {
    let bad = || SyntaxError(format!("bad macro '%{{{body}}}'"));
    let mut chars = body.chars();
    let letter = chars.next().ok_or_else(bad)?;
    let lower = letter.to_ascii_lowercase();
    let allowed = "slodiphv".contains(lower) || (exp && "crt".contains(lower));
    if !letter.is_ascii_alphabetic() || !allowed {
        return Err(bad());
    }
    let rest: String = chars.collect();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let rest = &rest[digits.len()..];
    let (reverse, delimiters) = match rest.strip_prefix(['r', 'R']) {
        Some(after) => (true, after),
        None => (false, rest),
    };
    if !delimiters.chars().all(|c| ".-+,/_=".contains(c)) {
        return Err(bad());
    }
    let keep = match digits.as_str() {
        "" => None,
        n => Some(n.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad)?),
    };
    Ok(Part::Macro {
        letter: lower,
        escape: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: delimiters.to_string(),
    })
}

/// Splits on the delimiters, reverses, keeps the rightmost `keep` parts,
/// and joins with dots (7.3).
fn transform(value: &str, keep: Option<usize>, reverse: bool, delimiters: &str) -> String {
    let delimiters = if delimiters.is_empty() {
        "."
    } else {
        delimiters
    };
    let mut parts: Vec<&str> = value.split(|c| delimiters.contains(c)).collect();
    if reverse {
        parts.reverse();
    }
    if let Some(keep) = keep.filter(|k| *k < parts.len()) {
        parts.drain(..parts.len() - keep);
    }
    parts.join(".")
}

fn url_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Values;

    impl MacroValues for Values {
        fn value(&self, letter: char) -> String {
            match letter {
                's' => "strong-bad@email.example.com",
                'l' => "strong-bad",
                'o' => "email.example.com",
                'd' => "email.example.com",
                'i' => "192.0.2.3",
                'v' => "in-addr",
                'h' => "mx.example.org",
                _ => "",
            }
            .to_string()
        }
    }

    /// The examples of RFC 7208 7.4.
    #[test]
    fn rfc_examples() {
        let cases = [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
            ("%{S}", "strong-bad%40email.example.com"),
            ("a%%b%_c%-d", "a%b c%20d"),
        ];
        for (text, want) in cases {
            let parsed = MacroString::parse(text, false).unwrap();
            assert_eq!(parsed.expand(&Values), want, "{text}");
        }
    }

    #[test]
    fn bad_macros() {
        for text in [
            "%", "%x", "%{", "%{x}", "%{d0}", "%{c}", "%{d2r!}", "abc%{d",
        ] {
            assert!(MacroString::parse(text, false).is_err(), "{text}");
        }
        assert!(MacroString::parse("%{c} %{r} %{t}", true).is_ok());
    }
}
