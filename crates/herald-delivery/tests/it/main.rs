//! The crate's one integration test binary; each module tests one part of the public API.

// Clippy's `allow-unwrap-in-tests` covers `#[test]` functions only, not the helpers and test
// servers beside them; all of this binary is test code.
#![allow(clippy::unwrap_used)]

mod http_client;
mod ssrf;
