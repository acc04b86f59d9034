//! The command parser: never panics, and whatever it accepts can be relayed
//! verbatim: an address we forward re-parses to itself and carries no
//! control character that could split or end the upstream's line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spamgate::smtp::command::{Command, MailParams};

fuzz_target!(|line: &[u8]| {
    let Ok(command) = Command::parse(line) else {
        return;
    };
    match command {
        Command::Ehlo(domain) | Command::Helo(domain) => {
            assert!(!domain.is_empty(), "empty HELO accepted");
            assert!(
                !domain.chars().any(|c| c.is_control() || c == ' '),
                "HELO {domain:?} would break the XCLIENT line"
            );
        }
        Command::Mail { from, .. } => {
            assert_relayable(&from);
            let again = Command::parse(format!("MAIL FROM:<{from}>").as_bytes());
            let want = Command::Mail {
                from: from.clone(),
                params: MailParams::default(),
            };
            assert_eq!(again, Ok(want), "relayed MAIL re-parses differently");
        }
        Command::Rcpt { to } => {
            assert_relayable(&to);
            let again = Command::parse(format!("RCPT TO:<{to}>").as_bytes());
            assert_eq!(again, Ok(Command::Rcpt { to: to.clone() }));
        }
        Command::Unknown(verb) => assert!(verb.chars().count() <= 16),
        _ => {}
    }
});

fn assert_relayable(address: &str) {
    assert!(
        !address.chars().any(char::is_control),
        "control character in relayed address {address:?}"
    );
    assert!(address.len() <= 256, "address longer than the path limit");
}
