//! libFuzzer entry point of the `signatures` target; the body is in `harness/signatures.rs`,
//! which the corpus replay test shares.

#![no_main]

#[path = "../harness/signatures.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
