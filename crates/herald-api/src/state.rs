//! What every handler shares: the store, the clock, the tenants' catalogs, and the settings.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use herald_catalog::catalog::{Catalog, CustomTypeSpec, TypeLookup, compile_custom_type};
use herald_catalog::definition::EventTypeDef;
use herald_catalog::taxonomy::Taxonomy;
use herald_core::clock::Clock;
use herald_delivery::ssrf::NetworkPolicy;
use herald_store::Store;
use herald_store::models::CustomTypeRecord;
use tokio::sync::Notify;

use crate::error::{ApiError, ApiResult};

/// Settings of the API layer.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most events in one `events:batch` request.
    pub max_batch: usize,
    /// How long a rotated-out secret keeps signing.
    pub secret_overlap: time::Duration,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: 256 * 1024,
            max_batch: 1_000,
            secret_overlap: time::Duration::hours(24),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// SHA-256 of the admin key.
    pub admin_key_hash: Arc<str>,
    /// Refuses endpoint and hook URLs that point into private networks.
    pub network_policy: Arc<NetworkPolicy>,
    /// Woken after every publish so delivery starts at once instead of at the next poll.
    pub delivery_wakeup: Arc<Notify>,
    pub settings: Arc<ApiSettings>,
    pub custom_types: Arc<CustomTypes>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

/// Each tenant's custom event types, compiled once and kept in memory.
#[derive(Debug, Default)]
pub struct CustomTypes {
    by_tenant: RwLock<HashMap<String, Arc<Catalog>>>,
}

impl CustomTypes {
    /// Loads every tenant's custom types; a stored schema that no longer compiles is skipped and
    /// logged rather than stopping the server.
    pub fn from_records(records: Vec<CustomTypeRecord>) -> Self {
        let mut by_tenant: HashMap<String, Catalog> = HashMap::new();
        for record in records {
            let tenant_id = record.tenant_id.clone();
            match compile_custom_type(spec_of(record)) {
                Ok(definition) => {
                    let catalog = by_tenant.entry(tenant_id).or_default();
                    if let Err(error) = catalog.insert(definition) {
                        tracing::warn!(%error, "custom event type skipped");
                    }
                }
                Err(error) => tracing::warn!(%error, "stored custom event type skipped"),
            }
        }
        CustomTypes {
            by_tenant: RwLock::new(
                by_tenant
                    .into_iter()
                    .map(|(tenant, catalog)| (tenant, Arc::new(catalog)))
                    .collect(),
            ),
        }
    }

    /// The catalog a tenant publishes against: built-in types plus its own.
    pub fn lookup_for(&self, tenant_id: &str) -> TenantTypes {
        let custom = self
            .by_tenant
            .read()
            .ok()
            .and_then(|map| map.get(tenant_id).cloned());
        TenantTypes { custom }
    }

    /// Adds a compiled custom type to a tenant's set (after it was stored).
    pub fn add(&self, tenant_id: &str, definition: EventTypeDef) -> ApiResult<()> {
        let mut map = self
            .by_tenant
            .write()
            .map_err(|_| ApiError::Internal("custom type cache poisoned".to_owned()))?;
        let mut catalog = Catalog::default();
        if let Some(existing) = map.get(tenant_id) {
            for known in existing.iter() {
                catalog
                    .insert(rebuild(known)?)
                    .map_err(|error| ApiError::Internal(error.to_string()))?;
            }
        }
        catalog
            .insert(definition)
            .map_err(|error| ApiError::Conflict(error.to_string()))?;
        map.insert(tenant_id.to_owned(), Arc::new(catalog));
        Ok(())
    }
}

/// Definitions are not `Clone` (their compiled validator is not), so a copy is compiled again from
/// the same parts; this happens only when a tenant registers a type.
fn rebuild(definition: &EventTypeDef) -> ApiResult<EventTypeDef> {
    compile_custom_type(CustomTypeSpec {
        name: definition.name().to_owned(),
        description: definition.description().to_owned(),
        module: Some(definition.module().to_owned()),
        subject_pointer: definition.subject_pointer().map(str::to_owned),
        schema: definition.schema().clone(),
        example: definition.example().cloned(),
    })
    .map_err(|error| ApiError::Internal(error.to_string()))
}

pub fn spec_of(record: CustomTypeRecord) -> CustomTypeSpec {
    CustomTypeSpec {
        name: record.name,
        description: record.description,
        module: record.module,
        subject_pointer: record.subject_pointer,
        schema: record.schema,
        example: record.example,
    }
}

/// Built-in types, then the tenant's custom ones.
#[derive(Debug, Clone)]
pub struct TenantTypes {
    custom: Option<Arc<Catalog>>,
}

impl TenantTypes {
    pub fn custom(&self) -> Option<&Catalog> {
        self.custom.as_deref()
    }
}

impl TypeLookup for TenantTypes {
    fn lookup(&self, name: &str) -> Option<&EventTypeDef> {
        Catalog::builtin().lookup(name).or_else(|| {
            self.custom
                .as_deref()
                .and_then(|catalog| catalog.get(name).map(AsRef::as_ref))
        })
    }

    fn context_validator(&self, taxonomy: Taxonomy) -> Option<&jsonschema::Validator> {
        Catalog::builtin().context_validator(taxonomy)
    }
}
