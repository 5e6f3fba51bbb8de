//! The records the store reads and writes, one file per resource. Times are `OffsetDateTime` in
//! UTC; backends choose how to keep them.
//!
//! Records hold parsed values (prefixed ids, secrets, schedules, filters, disable reasons): the
//! API parses them once at the edge and each backend parses its rows back at its own edge, so
//! nothing in between re-parses or falls back on a default.

mod accounts;
mod deliveries;
mod endpoints;
mod events;
mod hooks;
mod sources;

pub use accounts::{
    ApiKeyRecord, CustomTypeRecord, KeyOwner, KeyRevocation, LAST_USED_PRECISION, Tenant,
};
pub use deliveries::{
    AttemptMinute, AttemptOutcome, AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord,
    ReplaySelector,
};
pub use endpoints::{EndpointFilter, EndpointRecord, Ordering};
pub use events::{EventFilter, NewEvent, Published, StoredEvent};
/// Re-exported from the core, where the decision after an attempt is taken.
pub use herald_core::delivery::{DisableReason, NextStep};
pub use hooks::{DecisionRecord, FailurePolicy, HookRecord};
pub use sources::{SOURCE_ERRORS_KEPT, SourceErrorEntry, SourceKind, SourceOutcome, SourceRecord};
