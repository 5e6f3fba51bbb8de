//! The crate's one integration test binary: the shared storage conformance suite on SQLite, and
//! what only the embedded store promises.

mod conformance;
mod single_process;
