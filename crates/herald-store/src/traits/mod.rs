//! The storage contract, one trait per resource, and [`Store`], which is all of them.
//!
//! Each backend implements each trait in the file that holds that resource's queries, so no
//! backend keeps a table that repeats the method list. Callers hold an `Arc<dyn Store>`; where
//! they call methods on a backend's own type, `use herald_store::prelude::*;` brings the traits
//! into scope.

mod accounts;
mod deliveries;
mod endpoints;
mod events;
mod hooks;
mod sources;
mod ssf;

pub use accounts::{ApiKeyStore, CustomTypeStore, TenantStore};
pub use deliveries::{DeliveryQueue, DeliveryStore};
pub use endpoints::EndpointStore;
pub use events::{EventStore, RetentionStore};
pub use hooks::{DecisionStore, HookStore};
pub use sources::SourceStore;
pub use ssf::{SsfDeliveryStore, SsfStore, V1aKeyStore};

/// Declares [`Store`] as every trait named, and implements it for every type that implements
/// them all, from one list.
macro_rules! store_made_of {
    ($(#[$doc:meta])* $($resource:path),+ $(,)?) => {
        $(#[$doc])*
        pub trait Store: $($resource +)+ Send + Sync + std::fmt::Debug + 'static {}

        impl<T> Store for T where T: $($resource +)+ Send + Sync + std::fmt::Debug + 'static {}
    };
}

store_made_of!(
    /// Durable state of a Herald installation. Every method that takes a `tenant_id` sees only
    /// that tenant's rows: a row of another tenant is reported as absent.
    ///
    /// Nothing is implemented here: a type that implements every resource trait is a `Store`.
    TenantStore,
    ApiKeyStore,
    CustomTypeStore,
    EndpointStore,
    EventStore,
    RetentionStore,
    DeliveryQueue,
    DeliveryStore,
    HookStore,
    DecisionStore,
    SourceStore,
    SsfStore,
    SsfDeliveryStore,
    V1aKeyStore,
);
