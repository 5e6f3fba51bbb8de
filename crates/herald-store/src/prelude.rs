//! Everything needed to call store methods: `use herald_store::prelude::*;`.
//!
//! On `dyn Store` every resource trait's methods can be called as they are (a trait object
//! answers for its supertraits), but on a backend's own type (`SqliteStore`, `PostgresStore`, in
//! tests and benches) or an `impl Store` a method is found only where its trait is in scope. The
//! resource traits come in unnamed (`as _`), so they cannot clash with a caller's own names.

pub use crate::Store;
pub use crate::traits::ApiKeyStore as _;
pub use crate::traits::CustomTypeStore as _;
pub use crate::traits::DecisionStore as _;
pub use crate::traits::DeliveryQueue as _;
pub use crate::traits::DeliveryStore as _;
pub use crate::traits::EndpointStore as _;
pub use crate::traits::EventStore as _;
pub use crate::traits::HookStore as _;
pub use crate::traits::RetentionStore as _;
pub use crate::traits::SourceStore as _;
pub use crate::traits::SsfDeliveryStore as _;
pub use crate::traits::SsfStore as _;
pub use crate::traits::TenantStore as _;
pub use crate::traits::V1aKeyStore as _;
