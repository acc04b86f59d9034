//! The rule loader and matcher: a rule file from the fuzzer (the text
//! before the first 0xFF byte) is loaded, and when it loads, every stage is
//! evaluated on the message that follows. Loading answers with rules or
//! errors (never a panic, never an error list that is empty), and
//! evaluating never panics, whatever regexes, headers or bytes come in.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spamgate::checks::{Facts, Stage};
use spamgate::config::rules::RulesConfig;
use spamgate::rules::{Input, RuleSet};

/// One file per fuzzing process (libFuzzer may run several with -jobs),
/// removed as soon as it is loaded: only a crash mid-run leaves one.
fn rule_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("spamgate-fuzz-rules-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let message = data.get(split + 1..).unwrap_or_default();
    std::fs::write(rule_file(), text).expect("write the rule file");
    let config = RulesConfig {
        files: vec![rule_file().clone()],
        ..RulesConfig::default()
    };
    let loaded = RuleSet::load(&config);
    let _ = std::fs::remove_file(rule_file());
    let set = match loaded {
        Ok(set) => set,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "failed without an error");
            return;
        }
    };
    let input = Input::new([192, 0, 2, 1].into()).with_message(message);
    let facts = Facts::default();
    for stage in [
        Stage::Connect,
        Stage::Helo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
    ] {
        for hit in set.evaluate(stage, &input, &facts, 0.0) {
            assert_eq!(hit.rule.stage, stage, "a rule fired outside its stage");
        }
    }
});
