//! The crate's one integration test binary: the shared storage conformance suite on SQLite, the
//! ids of rows spoiled by hand, and what only the embedded store promises.

mod conformance;
mod corrupt_ids;
mod single_process;
