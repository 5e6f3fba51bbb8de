//! libFuzzer entry point of the `envelope` target; the body is in `harness/envelope.rs`,
//! which the corpus replay test shares.

#![no_main]

#[path = "../harness/envelope.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
