//! Everything in Herald that calls out over the network.
//!
//! - [`ssrf`]: the SSRF guard's policy, pure: which addresses may be reached
//!   ([`ssrf::NetworkPolicy::check_ip`]) and which user-given URLs may be stored
//!   ([`ssrf::NetworkPolicy::check_url`]).
//! - [`http_client`]: the one outbound HTTP client, which applies that policy at connect time
//!   to every resolved address, never follows redirects, pools connections, and bounds each
//!   exchange by its timeout.
//! - [`outbound`]: the one function that builds and signs an outbound request, for deliveries
//!   and hooks alike.
//! - [`hooks`]: the blocking-hook runner: a chain of hooks called in order with deadlines.
//! - [`listen`]: the `listen` transport: deliveries handed to a `herald listen` stream held
//!   open by a developer's CLI, and the CLI's answers taken back.
//! - [`v1a_keys`]: which of a tenant's Ed25519 keys sign Standard Webhooks `v1a` signatures now.
//! - [`native`]: which vendor signature header a delivery carries (the catalog's kind, mapped
//!   to `herald-core`'s signer).
//! - [`dispatcher`]: the delivery worker, with a single-step `run_once` for tests and the
//!   background `run` loop; `rendered` keeps the bodies it rendered last, so an event sent to
//!   several endpoints in one format is rendered once.
//! - [`ssf`]: the Shared Signals worker: each stream's share of the event log becomes signed SETs
//!   (queued with the stream's cursor in one transaction), and push streams' SETs are pushed.
//!
//! Architecture invariant: no outbound request leaves Herald except through
//! [`http_client::HttpClient`], so no request can skip the guard. (The `listen` transport opens no
//! connection at all: it writes to a stream the CLI opened to Herald.) The policy itself does no
//! I/O; resolving names and connecting happen only in `http_client`.

pub mod dispatcher;
pub mod hooks;
pub mod http_client;
pub mod listen;
pub mod native;
pub mod outbound;
mod rendered;
pub mod ssf;
pub mod ssrf;
pub mod v1a_keys;
