//! Herald's event catalog: which identity events exist, what their payloads look like, and how each
//! vendor wraps them on the wire.
//!
//! The crate is pure — it never does I/O and knows nothing of HTTP, storage or tokio. Its pieces:
//!
//! - [`taxonomy`]: the families of event types (`asgardeo`, `onewelcome`, `authgear`, `custom`, ...).
//! - [`vendor`]: what differs per vendor (catalog file, envelope, rendering, signature header),
//!   one module each behind the [`vendor::Vendor`] trait, listed once in [`vendor::VENDORS`].
//! - [`definition`]: one event type — native name, module, description, blocking flag, payload schema
//!   compiled once, and where the subject (the user) lives in the payload.
//! - [`catalog`]: the set of built-in types, loaded from the JSON files under `catalog/` that are
//!   embedded at build time, plus the run-time registration of `custom` types.
//! - [`validation`]: the problems a payload can have, each with its JSON pointer.
//! - [`schema_definitions`]: which shared definitions a schema reaches, to show a type with only those.
//! - [`filter`]: which event types an endpoint subscribes to.
//! - [`envelope`]: detecting, parsing and rendering envelopes (through the vendor registry), and
//!   Herald's canonical form.
//! - [`json`]: strict JSON for untrusted bodies (a repeated member name is refused).

pub mod catalog;
pub mod definition;
pub mod envelope;
pub mod filter;
pub mod json;
pub mod schema_definitions;
pub mod taxonomy;
pub mod validation;
pub mod vendor;
