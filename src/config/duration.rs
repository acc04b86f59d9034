//! Human durations in the configuration ("250ms", "30s", "5m", "1h").
//!
//! Operators write timeouts by hand; a bare number of seconds is accepted too
//! so that `timeouts.idle: 300` means what it looks like.

use std::time::Duration;

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 250ms, 30s, 5m, 1h)"))?;
    let millis = match unit.trim() {
        "ms" => Some(value),
        "" | "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => {
            return Err(format!(
                "unknown duration unit '{other}' (use ms, s, m or h)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration '{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("250ms", Some(250)),
            ("30s", Some(30_000)),
            ("30", Some(30_000)),
            ("5m", Some(300_000)),
            ("1h", Some(3_600_000)),
            (" 2s ", Some(2_000)),
            ("0s", Some(0)),
            ("s", None),
            ("", None),
            ("5d", None),
            ("-1s", None),
            ("1.5s", None),
            ("99999999999999999999h", None),
        ];
        for (input, want) in cases {
            let got = parse_duration(input).ok().map(|d| d.as_millis() as u64);
            assert_eq!(got, *want, "input {input:?}");
        }
    }
}
