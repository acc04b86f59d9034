//! Facts about the top-level header: forgeries and inconsistencies that
//! real mail programs do not produce.

use mail_parser::{HeaderName, Message};

use super::{count, flag, Fact};

/// Letters a Subject needs before its upper-case share means anything.
const SUBJECT_MIN_LETTERS: usize = 10;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct HeaderFacts {
    /// Date minus the newest Received date, in hours: negative when the
    /// message claims to be older than its delivery. Clocks are compared
    /// with the message's own relays, not with ours, so stored mail is
    /// judged as it was when it arrived.
    pub date_skew_hours: Option<f64>,
    pub date_invalid: bool,
    pub message_id_malformed: bool,
    pub from_name_other_address: bool,
    pub subject_upper_ratio: Option<f64>,
    pub header_raw_8bit: usize,
    pub received_count: usize,
}

impl HeaderFacts {
    pub fn of(message: &Message<'_>) -> HeaderFacts {
        let root = message.root();
        let headers = root.headers();
        let date = headers.date().filter(|d| d.is_valid());
        let newest = headers
            .all_received()
            .filter_map(|r| r.date())
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp())
            .max();
        let skew = date
            .zip(newest)
            .map(|(d, r)| (d.to_timestamp() - r) as f64 / 3600.0);
        HeaderFacts {
            date_skew_hours: skew,
            date_invalid: headers.contains(HeaderName::Date) && date.is_none(),
            message_id_malformed: message_id_malformed(message),
            from_name_other_address: from_name_other_address(message),
            subject_upper_ratio: headers.subject().and_then(upper_ratio),
            header_raw_8bit: headers
                .iter()
                .filter(|h| h.raw_value().iter().any(|b| *b >= 0x80))
                .count(),
            received_count: headers.all_received().count(),
        }
    }

    pub fn value(&self, fact: Fact) -> Option<f64> {
        match fact {
            Fact::DateSkewHours => self.date_skew_hours,
            Fact::DateInvalid => flag(self.date_invalid),
            Fact::MessageIdMalformed => flag(self.message_id_malformed),
            Fact::FromNameOtherAddress => flag(self.from_name_other_address),
            Fact::SubjectUpperRatio => self.subject_upper_ratio,
            Fact::HeaderRaw8bit => count(self.header_raw_8bit),
            Fact::ReceivedCount => count(self.received_count),
            _ => None,
        }
    }
}

/// The share of upper-case letters, if there are enough letters.
fn upper_ratio(text: &str) -> Option<f64> {
    let letters = text.chars().filter(|c| c.is_alphabetic());
    let (upper, all) = letters.fold((0usize, 0usize), |(u, a), c| {
        (u + usize::from(c.is_uppercase()), a + 1)
    });
    (all >= SUBJECT_MIN_LETTERS).then(|| upper as f64 / all as f64)
}

/// A Message-ID that is present but not `<left@right>` (RFC 5322 msg-id):
/// mail systems always generate the right form; hand-rolled tools do not.
fn message_id_malformed(message: &Message<'_>) -> bool {
    let root = message.root();
    let Some(header) = root.headers().get(HeaderName::MessageId) else {
        return false;
    };
    let value = String::from_utf8_lossy(header.raw_value());
    !valid_msg_id(value.trim())
}

fn valid_msg_id(value: &str) -> bool {
    let Some(inner) = value.strip_prefix('<').and_then(|v| v.strip_suffix('>')) else {
        return false;
    };
    let Some((left, right)) = inner.rsplit_once('@') else {
        return false;
    };
    let clean = |s: &str| !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '<');
    clean(left) && clean(right)
}

/// The From display name holds an address other than the real one
/// (`"support@bank.example" <x@elsewhere.example>`): the name is what
/// people read, so spoofers put the address they want to be seen there.
fn from_name_other_address(message: &Message<'_>) -> bool {
    let Some(from) = message.root().from().and_then(|l| l.first()) else {
        return false;
    };
    let (Some(name), Some(address)) = (from.name(), from.address()) else {
        return false;
    };
    name.split(|c: char| c.is_whitespace() || "<>()\"'[],;".contains(c))
        .filter(|word| looks_like_address(word))
        .any(|word| !word.eq_ignore_ascii_case(address))
}

fn looks_like_address(word: &str) -> bool {
    let Some((local, domain)) = word.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(headers: &str) -> HeaderFacts {
        let raw = format!("{headers}\r\n\r\nbody\r\n");
        let message = mail_parser::MessageParser::new()
            .parse(raw.as_bytes())
            .unwrap();
        HeaderFacts::of(&message)
    }

    const RECEIVED: &str = "Received: from a.example by b.example; Thu, 22 Aug 2002 13:00:00 +0000";

    #[test]
    fn date_skew_table() {
        let cases = [
            ("Date: Thu, 22 Aug 2002 12:00:00 +0000", Some(-1.0)),
            ("Date: Thu, 22 Aug 2002 15:00:00 +0200", Some(0.0)),
            ("Date: Sat, 24 Aug 2002 13:00:00 +0000", Some(48.0)),
            ("Date: Mon, 22 Jul 2002 13:00:00 +0000", Some(-744.0)),
        ];
        for (date, want) in cases {
            let got = facts(&format!("{RECEIVED}\r\n{date}")).date_skew_hours;
            assert_eq!(got, want, "{date}");
        }
        let no_received = facts("Date: Thu, 22 Aug 2002 12:00:00 +0000");
        assert_eq!(no_received.date_skew_hours, None);
        assert!(!no_received.date_invalid);
        assert!(facts("Date: yesterday at noon").date_invalid);
        assert!(!facts("Subject: no date").date_invalid);
    }

    #[test]
    fn message_id_table() {
        let cases = [
            ("Message-ID: <abc.123@mail.example>", false),
            ("Message-ID: <abc@localhost>", false),
            ("Message-ID: abc@mail.example", true),
            ("Message-ID: <abc.mail.example>", true),
            ("Message-ID: <@mail.example>", true),
            ("Message-ID: <a b@mail.example>", true),
            ("Message-ID: ", true),
            ("Subject: none", false),
        ];
        for (header, want) in cases {
            assert_eq!(facts(header).message_id_malformed, want, "{header}");
        }
    }

    #[test]
    fn from_name_table() {
        let cases = [
            ("From: \"service@bank.example\" <x@evil.example>", true),
            ("From: Bank (support@bank.example) <x@evil.example>", true),
            ("From: \"x@evil.example\" <x@evil.example>", false),
            ("From: \"X@Evil.example\" <x@evil.example>", false),
            ("From: Jane Doe <jane@example.org>", false),
            ("From: \"me @ home\" <jane@example.org>", false),
            ("From: jane@example.org", false),
        ];
        for (header, want) in cases {
            assert_eq!(facts(header).from_name_other_address, want, "{header}");
        }
    }

    #[test]
    fn subject_and_counts_table() {
        let cases = [
            ("Subject: FREE MONEY FOR YOU", Some(1.0)),
            ("Subject: Free money for you", Some(1.0 / 15.0)),
            ("Subject: HI THERE", None),
            ("Subject: =?UTF-8?B?R1LDnFNTRSBBTiBBTExF?=", Some(1.0)),
        ];
        for (header, want) in cases {
            assert_eq!(facts(header).subject_upper_ratio, want, "{header}");
        }
        let raw8 = facts("Subject: caf\u{e9} \u{fc}ber\r\nX-Other: plain");
        assert_eq!(raw8.header_raw_8bit, 1);
        let two = facts(&format!("{RECEIVED}\r\n{RECEIVED}"));
        assert_eq!(two.received_count, 2);
    }
}
