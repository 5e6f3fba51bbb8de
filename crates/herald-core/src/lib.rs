//! Herald's pure core: the rules every other crate shares, with no I/O and no async runtime.
//!
//! - [`clock`]: the `Clock` trait, the system clock and a manual clock for tests.
//! - [`ids`]: event ids and prefixed resource ids (UUID v7).
//! - [`secret`]: signing secrets parsed from user input, API key hashing.
//! - [`api_key`]: how API keys are spelled (scanner-matchable prefixes) and shown.
//! - [`asymmetric`]: Standard Webhooks `v1a` (Ed25519) keys, signatures and their verification.
//! - [`signing`]: Standard Webhooks and vendor-native signatures, and their verification.
//! - [`retry`]: retry schedules with jitter, and the `Retry-After` header.
//! - [`delivery`]: the delivery state machine, the decision after each attempt, and `conclude`,
//!   which turns an attempt's answer into the next step and any disable reason.
//! - [`hooks`]: the blocking-hook answer and the rules for applying its mutations.
//! - [`source_auth`]: sources' inbound authentication, body shapes, WebSub and Authgear answers.
//!
//! Architecture invariant: nothing here reads the clock except `SystemClock` and the id
//! generators, nothing touches the network, the disk or the environment, and there is no tokio.
//! Time arrives as an argument or through a `Clock`, randomness through an `Rng` wherever a test
//! needs to pin it.

pub mod api_key;
pub mod asymmetric;
pub mod clock;
pub mod delivery;
pub mod hooks;
pub mod ids;
pub mod rate;
pub mod retry;
pub mod secret;
pub mod signing;
pub mod source_auth;
