//! SPF record syntax (RFC 7208 4.5, 4.6, 5, 6, 7.1): a record either
//! parses whole or is a `permerror` — errors anywhere count, even after
//! the term that would have matched.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::macros::MacroString;
use super::syntax::SyntaxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(MacroString),
    A {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
}

fn error<T>(why: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError(why.into()))
}

/// True for a TXT string that is an SPF record: `v=spf1` alone or
/// followed by a space (4.5), in any case.
pub fn is_spf(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"v=spf1")
        && (bytes.len() == 6 || bytes[6] == b' ')
}

impl Record {
    /// Parses a record that [`is_spf`].
    pub fn parse(text: &str) -> Result<Record, SyntaxError> {
        let mut record = Record::default();
        for term in text[6..].split(' ').filter(|t| !t.is_empty()) {
            if !term.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return error(format!("invalid character in '{}'", term.escape_default()));
            }
            record.term(term)?;
        }
        Ok(record)
    }

    fn term(&mut self, term: &str) -> Result<(), SyntaxError> {
        let first = term.find([':', '/', '=']);
        if let Some(eq) = first.filter(|i| term.as_bytes()[*i] == b'=') {
            return self.modifier(&term[..eq], &term[eq + 1..]);
        }
        self.directives.push(directive(term)?);
        Ok(())
    }

    fn modifier(&mut self, name: &str, value: &str) -> Result<(), SyntaxError> {
        let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            return error(format!("invalid modifier name '{name}'"));
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "redirect" => &mut self.redirect,
            "exp" => &mut self.exp,
            _ => {
                MacroString::parse(value, true)?; // unknown: ignored, but must parse
                return Ok(());
            }
        };
        if slot.is_some() {
            return error(format!("{name} given twice"));
        }
        // Both take a domain-spec; c, r and t belong in the explanation
        // text that `exp` points at, not in the name itself.
        *slot = Some(domain_spec(value, false)?);
        Ok(())
    }
}

fn directive(term: &str) -> Result<Directive, SyntaxError> {
    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, argument) = rest.split_at(split);
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if argument.is_empty() => Mechanism::All,
        "include" => Mechanism::Include(required_domain(argument)?),
        "a" => {
            let (domain, cidr4, cidr6) = domain_and_cidr(argument)?;
            Mechanism::A {
                domain,
                cidr4,
                cidr6,
            }
        }
        "mx" => {
            let (domain, cidr4, cidr6) = domain_and_cidr(argument)?;
            Mechanism::Mx {
                domain,
                cidr4,
                cidr6,
            }
        }
        "ptr" => Mechanism::Ptr(optional_domain(argument)?),
        "ip4" => ip4(argument)?,
        "ip6" => ip6(argument)?,
        "exists" => Mechanism::Exists(required_domain(argument)?),
        _ => return error(format!("unknown mechanism '{term}'")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
    })
}

/// `:domain-spec`, required.
fn required_domain(argument: &str) -> Result<MacroString, SyntaxError> {
    match argument.strip_prefix(':') {
        Some(spec) => domain_spec(spec, false),
        None => error("a domain is required"),
    }
}

/// `[:domain-spec]`.
fn optional_domain(argument: &str) -> Result<Option<MacroString>, SyntaxError> {
    match argument {
        "" => Ok(None),
        _ => required_domain(argument).map(Some),
    }
}

/// `[:domain-spec][/cidr4][//cidr6]` of `a` and `mx`. A `/` may also
/// appear inside the domain, so only a numeric tail is a CIDR length.
fn domain_and_cidr(argument: &str) -> Result<(Option<MacroString>, u8, u8), SyntaxError> {
    let (rest, cidr6) = match split_cidr(argument, "//") {
        Some((rest, bits)) => (rest, cidr_length(bits, 128)?),
        None => (argument, 128),
    };
    let (rest, cidr4) = match split_cidr(rest, "/") {
        Some((rest, bits)) if !rest.ends_with('/') => (rest, cidr_length(bits, 32)?),
        _ => (rest, 32),
    };
    Ok((optional_domain(rest)?, cidr4, cidr6))
}

fn split_cidr<'a>(text: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let (rest, bits) = text.rsplit_once(separator)?;
    let numeric = !bits.is_empty() && bits.bytes().all(|b| b.is_ascii_digit());
    numeric.then_some((rest, bits))
}

/// A prefix length: no leading zeros, at most `max`.
fn cidr_length(bits: &str, max: u8) -> Result<u8, SyntaxError> {
    let value = bits.parse::<u16>().ok().filter(|v| *v <= u16::from(max));
    match (value, bits.len() > 1 && bits.starts_with('0')) {
        (Some(value), false) => Ok(value as u8),
        _ => error(format!("invalid CIDR length /{bits}")),
    }
}

fn ip4(argument: &str) -> Result<Mechanism, SyntaxError> {
    let network = argument
        .strip_prefix(':')
        .ok_or(SyntaxError("ip4 needs an address".into()))?;
    let (address, bits) = match network.split_once('/') {
        Some((address, bits)) => (address, cidr_length(bits, 32)?),
        None => (network, 32),
    };
    match address.parse::<Ipv4Addr>() {
        Ok(address) => Ok(Mechanism::Ip4(address, bits)),
        Err(_) => error(format!("invalid IPv4 address '{address}'")),
    }
}

fn ip6(argument: &str) -> Result<Mechanism, SyntaxError> {
    let network = argument
        .strip_prefix(':')
        .ok_or(SyntaxError("ip6 needs an address".into()))?;
    let (address, bits) = match network.split_once('/') {
        Some((address, bits)) => (address, cidr_length(bits, 128)?),
        None => (network, 128),
    };
    match address.parse::<Ipv6Addr>() {
        Ok(address) => Ok(Mechanism::Ip6(address, bits)),
        Err(_) => error(format!("invalid IPv6 address '{address}'")),
    }
}

/// A domain-spec: a macro string ending in a macro or in `.toplabel[.]`
/// (8.1), checked before expansion.
fn domain_spec(spec: &str, exp: bool) -> Result<MacroString, SyntaxError> {
    let macros = MacroString::parse(spec, exp)?;
    if spec.is_empty() || !(macros.ends_with_macro() || ends_with_toplabel(spec)) {
        return error(format!("'{spec}' is not a domain"));
    }
    Ok(macros)
}

fn ends_with_toplabel(spec: &str) -> bool {
    let spec = spec.strip_suffix('.').unwrap_or(spec);
    let Some((_, top)) = spec.rsplit_once('.') else {
        return false;
    };
    !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.bytes().all(|b| b.is_ascii_digit())
        && !top.starts_with('-')
        && !top.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_records_are_recognised() {
        for (text, want) in [
            ("v=spf1", true),
            ("v=spf1 -all", true),
            ("V=SPF1 -all", true),
            ("v=spf10 -all", false),
            ("v=spf1-all", false),
            ("spf1", false),
        ] {
            assert_eq!(is_spf(text), want, "{text}");
        }
    }

    #[test]
    fn terms_table() {
        let ok = [
            "v=spf1 -all",
            "v=spf1 a mx ptr ~all",
            "v=spf1 a:example.com/24//64 mx//0 ?ptr:example.org",
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all",
            "v=spf1 include:_spf.example.com exists:%{i}.%{d}",
            "v=spf1 redirect=_spf.example.com",
            "v=spf1 moo.cow-far_out=man:dog/cat ip4:1.2.3.4 -all",
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 exp=explain.%{d}",
            "v=spf1 a:example.com. -all",
        ];
        for text in ok {
            assert!(
                Record::parse(text).is_ok(),
                "{text}: {:?}",
                Record::parse(text)
            );
        }
        let bad = [
            "v=spf1 -all.",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip6:::1/129",
            "v=spf1 ip4:",
            "v=spf1 a:example.123",
            "v=spf1 a:museum",
            "v=spf1 mx:",
            "v=spf1 include",
            "v=spf1 foo",
            "v=spf1 =foo",
            "v=spf1 moo.cow/far_out=man:dog/cat",
            "v=spf1 redirect=a.example.com redirect=b.example.com",
            "v=spf1 a:%{c}.example.com",
            "v=spf1 foo=bar%",
            "v=spf1 ip4:192.0.2.5\n",
            "v=spf1 all:foo",
        ];
        for text in bad {
            assert!(Record::parse(text).is_err(), "{text} should not parse");
        }
    }

    #[test]
    fn dual_cidr() {
        let record = Record::parse("v=spf1 a/24//64 mx:example.com//48").unwrap();
        assert_eq!(
            record.directives[0].mechanism,
            Mechanism::A {
                domain: None,
                cidr4: 24,
                cidr6: 64
            }
        );
        let Mechanism::Mx { cidr4, cidr6, .. } = &record.directives[1].mechanism else {
            panic!("mx");
        };
        assert_eq!((*cidr4, *cidr6), (32, 48));
    }
}
