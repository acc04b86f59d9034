//! The PROXY v1/v2 header parser: never panics, a complete header never
//! claims more bytes than it was given, and the verdict does not depend on
//! how the bytes were split across reads (every shorter prefix is either
//! "incomplete" or the same error, never a different header).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spamgate::proxy_protocol::{parse, Parsed};

fuzz_target!(|buf: &[u8]| {
    let verdict = parse(buf);
    let Ok(Parsed::Complete { header, len }) = verdict else {
        return;
    };
    assert!(
        len > 0 && len <= buf.len(),
        "header of {len} bytes from {}",
        buf.len()
    );
    assert_eq!(
        parse(&buf[..len]),
        verdict,
        "the header alone parses differently"
    );
    for cut in 0..len {
        match parse(&buf[..cut]) {
            Ok(Parsed::Incomplete) => {}
            other => panic!("prefix of {cut} bytes gave {other:?}, the whole gave {header:?}"),
        }
    }
});
