//! libFuzzer entry point of the `json_body` target; the body is in `harness/json_body.rs`,
//! which the corpus replay test shares.

#![no_main]

#[path = "../harness/json_body.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::run(data));
