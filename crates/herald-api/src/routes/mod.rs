//! One module per API resource, each exposing its router.

pub mod api_keys;
pub mod blocking;
pub mod catalog;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod health;
pub mod hooks;
pub mod ingest;
pub mod listen;
pub mod outbound;
pub mod sources;
pub mod ssf;
pub mod ssf_streams;
pub mod subjects;
pub mod tenants;
