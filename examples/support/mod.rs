//! Shared by the bench drivers (`cargo run --example flood|ledger`) and by
//! `tests/hostile.rs`, so the automated test runs the same code as the bench.
#![allow(dead_code)]

pub mod flaky;
pub mod ledger;
pub mod smtp;
pub mod spawn;
