//! The configuration loader on arbitrary text: it must answer with a
//! config or with errors, never panic or hang (serde-saphyr's alias and
//! depth limits are what stand between us and a billion laughs).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use spamgate::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_yaml(text, Path::new("fuzz.yaml")) {
        Ok(config) => {
            let l = &config.limits;
            assert!(l.max_command_line >= 512 && l.max_text_line >= 1000);
            assert!(config.scoring.reject_score >= config.scoring.tag_score);
            assert!(!config.smtp.banner.contains(['\r', '\n']));
        }
        Err(errors) => assert!(!errors.0.is_empty(), "an error without errors"),
    }
});
