//! What every handler shares: the store, the clock, the tenants' catalogs, and the settings.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use herald_catalog::catalog::{Catalog, CustomTypeSpec, TypeLookup, compile_custom_type};
use herald_catalog::definition::EventTypeDef;
use herald_catalog::taxonomy::Taxonomy;
use herald_core::clock::Clock;
use herald_delivery::ssrf::NetworkPolicy;
use herald_store::Store;
use herald_store::models::{CustomTypeRecord, HookRecord};
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
    /// The most a chain of blocking hooks may take, checked before each hook.
    pub hook_chain_deadline: std::time::Duration,
    /// Where receivers reach Herald (`--public-url`, no trailing slash): the Shared Signals
    /// issuer. `None`: taken from a loopback Host header (development) and refused otherwise.
    pub public_url: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            max_body_bytes: 256 * 1024,
            max_batch: 1_000,
            secret_overlap: time::Duration::hours(24),
            hook_chain_deadline: std::time::Duration::from_secs(10),
            public_url: None,
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
    /// The outbound client blocking hooks are called with (it shares the delivery client's pool).
    pub hook_client: herald_delivery::http_client::HttpClient,
    pub hooks: Arc<HooksCache>,
    pub decisions: crate::recorder::DecisionRecorder,
    pub known_tenants: Arc<crate::auth::KnownTenants>,
    /// The `herald listen` streams connected to this node, shared with the dispatcher.
    pub listen: Arc<herald_delivery::listen::ListenHub>,
    /// Shared Signals: wakes this node's SSF worker and its long polls.
    pub ssf: Arc<herald_delivery::ssf::SsfSignals>,
}

/// Each tenant's enabled hooks by event type, in position order, read from the store on first use
/// and dropped whenever the tenant's hooks change: by this node's handlers at once, and on a
/// PostgreSQL cluster by every node when the change's notice arrives (`herald_changes`).
/// Evaluating a blocking event then needs no database round trip before the first hook is called.
/// One tenant's enabled hooks, by event type, each list in call order.
type HookChains = HashMap<String, Vec<HookRecord>>;

#[derive(Debug, Default)]
pub struct HooksCache {
    by_tenant: RwLock<HashMap<String, Arc<HookChains>>>,
    /// Bumped by every change, so a read that raced with a change is not cached.
    generation: std::sync::atomic::AtomicU64,
    /// Set while the node cannot hear other nodes' changes: chains are then read every time.
    deaf: std::sync::atomic::AtomicBool,
}

impl HooksCache {
    /// The tenant's enabled hooks for `event_type`, in call order.
    pub async fn chain_for(
        &self,
        store: &dyn Store,
        tenant_id: &str,
        event_type: &str,
    ) -> ApiResult<Vec<HookRecord>> {
        let cached = self
            .by_tenant
            .read()
            .ok()
            .and_then(|map| map.get(tenant_id).cloned());
        let by_type = match cached {
            Some(by_type) => by_type,
            None => {
                let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
                let mut by_type: HookChains = HashMap::new();
                for hook in store.list_hooks(tenant_id).await? {
                    if hook.enabled {
                        by_type
                            .entry(hook.event_type.clone())
                            .or_default()
                            .push(hook);
                    }
                }
                let by_type = Arc::new(by_type);
                if let Ok(mut map) = self.by_tenant.write()
                    && self.generation.load(std::sync::atomic::Ordering::SeqCst) == generation
                    && !self.deaf.load(std::sync::atomic::Ordering::SeqCst)
                {
                    map.insert(tenant_id.to_owned(), Arc::clone(&by_type));
                }
                by_type
            }
        };
        Ok(by_type.get(event_type).cloned().unwrap_or_default())
    }

    /// Acts on a change another node (or this one) announced.
    pub fn notice(&self, notice: &herald_store::ChangeNotice) {
        use herald_store::ChangeNotice;
        use std::sync::atomic::Ordering;
        match notice {
            ChangeNotice::Hooks { tenant_id } => self.invalidate(tenant_id),
            ChangeNotice::MaybeMissed => self.invalidate_all(),
            ChangeNotice::ListenerDown => {
                self.deaf.store(true, Ordering::SeqCst);
                self.invalidate_all();
            }
            ChangeNotice::ListenerUp => {
                self.invalidate_all();
                self.deaf.store(false, Ordering::SeqCst);
            }
            // Not about hooks.
            ChangeNotice::Ssf { .. } => {}
        }
    }

    /// Forgets every tenant's hooks: changes may have been missed.
    pub fn invalidate_all(&self) {
        if let Ok(mut map) = self.by_tenant.write() {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            map.clear();
        }
    }

    /// Forgets a tenant's hooks after a change, so the next evaluation reads them again.
    pub fn invalidate(&self, tenant_id: &str) {
        if let Ok(mut map) = self.by_tenant.write() {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            map.remove(tenant_id);
        }
    }
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

    /// The tenant's catalog, sure to include `event_type` if any node has registered it: a type
    /// this node does not know is looked up in the store (another node may have added it) before
    /// the event is judged unknown.
    pub async fn lookup_knowing(
        &self,
        store: &dyn Store,
        tenant_id: &str,
        event_type: Option<&str>,
    ) -> ApiResult<TenantTypes> {
        let types = self.lookup_for(tenant_id);
        let Some(event_type) = event_type else {
            return Ok(types);
        };
        if types.lookup(event_type).is_some() {
            return Ok(types);
        }
        let records = store.list_custom_types(Some(tenant_id)).await?;
        if !records.iter().any(|record| record.name == event_type) {
            return Ok(types);
        }
        let mut catalog = Catalog::default();
        for record in records {
            match compile_custom_type(spec_of(record)) {
                Ok(definition) => {
                    if let Err(error) = catalog.insert(definition) {
                        tracing::warn!(%error, "custom event type skipped");
                    }
                }
                Err(error) => tracing::warn!(%error, "stored custom event type skipped"),
            }
        }
        let catalog = Arc::new(catalog);
        if let Ok(mut map) = self.by_tenant.write() {
            map.insert(tenant_id.to_owned(), Arc::clone(&catalog));
        }
        Ok(TenantTypes {
            custom: Some(catalog),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store::ChangeNotice;
    use herald_store::models::{FailurePolicy, HookRecord, Tenant};
    use herald_store::prelude::*;
    use herald_store_sqlite::SqliteStore;

    fn hook(id: &str) -> HookRecord {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        HookRecord {
            id: herald_core::ids::HookId::parse(id).expect("a hook id"),
            tenant_id: "acme".to_owned(),
            event_type: "user.pre_create".to_owned(),
            url: format!("https://hooks.example.com/{id}"),
            position: 0,
            timeout_ms: 5_000,
            failure_policy: FailurePolicy::FailClosed,
            secret: herald_core::secret::SigningSecret::parse(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            )
            .expect("a valid secret"),
            enabled: true,
            created_at: now,
            updated_at: now,
        }
    }

    /// The hooks cache as another node changes the store behind its back: it holds what it read
    /// until a notice names the tenant, and caches nothing while it cannot hear notices.
    #[tokio::test]
    async fn the_hooks_cache_follows_notices_and_caches_nothing_while_deaf() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&directory.path().join("herald.db")).expect("store");
        store
            .create_tenant(Tenant {
                id: "acme".to_owned(),
                name: "Acme".to_owned(),
                issuer: None,
                created_at: time::OffsetDateTime::UNIX_EPOCH,
            })
            .await
            .expect("tenant");
        let cache = HooksCache::default();
        let chain = async |cache: &HooksCache| {
            cache
                .chain_for(&store, "acme", "user.pre_create")
                .await
                .expect("chain")
                .iter()
                .map(|hook| hook.id.to_string())
                .collect::<Vec<_>>()
        };
        assert!(chain(&cache).await.is_empty());
        store.create_hook(hook("hk_1")).await.expect("hook");
        assert!(chain(&cache).await.is_empty(), "cached until told");
        cache.notice(&ChangeNotice::Hooks {
            tenant_id: "other".to_owned(),
        });
        assert!(chain(&cache).await.is_empty(), "another tenant's notice");
        cache.notice(&ChangeNotice::Hooks {
            tenant_id: "acme".to_owned(),
        });
        assert_eq!(chain(&cache).await, ["hk_1"]);

        cache.notice(&ChangeNotice::ListenerDown);
        store.create_hook(hook("hk_2")).await.expect("hook");
        assert_eq!(
            chain(&cache).await,
            ["hk_1", "hk_2"],
            "read again when deaf"
        );
        store.delete_hook("acme", "hk_1").await.expect("deleted");
        assert_eq!(chain(&cache).await, ["hk_2"], "and not cached meanwhile");

        cache.notice(&ChangeNotice::ListenerUp);
        assert_eq!(chain(&cache).await, ["hk_2"]);
        store.delete_hook("acme", "hk_2").await.expect("deleted");
        assert_eq!(chain(&cache).await, ["hk_2"], "cached again once listening");
        cache.notice(&ChangeNotice::MaybeMissed);
        assert!(chain(&cache).await.is_empty());
    }
}
