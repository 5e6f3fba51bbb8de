//! Tenants, their API keys and custom event types, and the wall between tenants.

use std::sync::Arc;

use herald_core::ids::ApiKeyId;
use serde_json::json;

use crate::models::{
    ApiKeyRecord, CustomTypeRecord, DeliveryFilter, EventFilter, KeyOwner, KeyRevocation, Ordering,
    ReplaySelector, Tenant,
};
use crate::{Store, StoreError};

use super::{at, endpoint, event, ids, tenant};

pub async fn tenants_and_api_keys(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let again = store
        .create_tenant(Tenant {
            id: "acme".into(),
            name: "Other".into(),
            issuer: None,
            created_at: at(1),
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let fetched = store
        .get_tenant("acme")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fetched.name, "Tenant acme");
    assert_eq!(fetched.created_at, at(0));
    assert!(store.get_tenant("nope").await.expect("get").is_none());
    tenant(&store, "beta").await;
    assert_eq!(
        ids(&store.list_tenants().await.expect("list"), |t| t
            .id
            .as_str()),
        ["acme", "beta"]
    );

    store
        .create_api_key(api_key("key_1", Some("acme"), "aa11", 2))
        .await
        .expect("key");
    let found = store
        .authenticate_api_key("aa11", at(2))
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(
        (found.id.as_str(), found.tenant_id.as_deref()),
        ("key_1", Some("acme"))
    );
    assert!(
        store
            .authenticate_api_key("aa12", at(2))
            .await
            .expect("find")
            .is_none()
    );
    assert!(
        !store.has_admin_key().await.expect("admin?"),
        "a tenant key is no admin key"
    );
    store
        .create_api_key(api_key("key_admin", None, "bb22", 3))
        .await
        .expect("admin key");
    assert!(store.has_admin_key().await.expect("admin?"));
    assert_eq!(
        store
            .authenticate_api_key("bb22", at(3))
            .await
            .expect("find")
            .expect("exists")
            .tenant_id,
        None
    );
}

fn api_key(id: &str, tenant_id: Option<&str>, key_hash: &str, created_s: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: ApiKeyId::parse(id).expect("a fixture's key id"),
        tenant_id: tenant_id.map(str::to_owned),
        key_hash: key_hash.to_owned(),
        prefix: format!("herald_tk_{}", &key_hash[..2]),
        name: Some(format!("key {id}")),
        generated_at_start: false,
        created_at: at(created_s),
        last_used_at: None,
    }
}

async fn key_ids(store: &Arc<dyn Store>, owner: KeyOwner<'_>) -> Vec<String> {
    ids(
        &store.list_api_keys(owner).await.expect("list keys"),
        |key| key.id.as_str(),
    )
}

pub async fn api_keys_are_listed_used_and_revoked(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    for (id, owner, hash, created_s) in [
        ("key_a1", Some("acme"), "a1", 1),
        ("key_a2", Some("acme"), "a2", 2),
        ("key_b1", Some("beta"), "b1", 3),
        ("key_admin1", None, "c1", 4),
    ] {
        store
            .create_api_key(api_key(id, owner, hash, created_s))
            .await
            .expect("key");
    }
    assert_eq!(
        key_ids(&store, KeyOwner::Tenant("acme")).await,
        ["key_a1", "key_a2"]
    );
    assert_eq!(key_ids(&store, KeyOwner::Tenant("beta")).await, ["key_b1"]);
    assert_eq!(key_ids(&store, KeyOwner::Admin).await, ["key_admin1"]);
    let listed = store
        .list_api_keys(KeyOwner::Tenant("acme"))
        .await
        .expect("list");
    assert_eq!(listed[0], api_key("key_a1", Some("acme"), "a1", 1));

    // Use is noted the first time, then at most once per LAST_USED_PRECISION.
    let last_used = |store: Arc<dyn Store>| async move {
        store
            .list_api_keys(KeyOwner::Tenant("acme"))
            .await
            .expect("list")[0]
            .last_used_at
    };
    let used = store
        .authenticate_api_key("a1", at(100))
        .await
        .expect("use")
        .expect("exists");
    assert_eq!(used.last_used_at, Some(at(100)));
    assert_eq!(last_used(Arc::clone(&store)).await, Some(at(100)));
    store
        .authenticate_api_key("a1", at(130))
        .await
        .expect("use")
        .expect("exists");
    assert_eq!(
        last_used(Arc::clone(&store)).await,
        Some(at(100)),
        "a use within the minute is not written"
    );
    store
        .authenticate_api_key("a1", at(160))
        .await
        .expect("use")
        .expect("exists");
    assert_eq!(last_used(Arc::clone(&store)).await, Some(at(160)));

    // Revocation: only the owner's own key, and it stops working at once.
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Tenant("beta"), "key_a1", false)
            .await
            .expect("revoke"),
        KeyRevocation::NotFound,
        "another tenant's key is not found"
    );
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Admin, "key_a1", false)
            .await
            .expect("revoke"),
        KeyRevocation::NotFound,
        "a tenant key is no admin key"
    );
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Tenant("acme"), "key_a1", false)
            .await
            .expect("revoke"),
        KeyRevocation::Revoked
    );
    assert!(
        store
            .authenticate_api_key("a1", at(161))
            .await
            .expect("use")
            .is_none(),
        "a revoked key is refused at once"
    );
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Tenant("acme"), "key_a1", false)
            .await
            .expect("revoke"),
        KeyRevocation::NotFound,
        "revoking twice finds nothing"
    );
    assert_eq!(key_ids(&store, KeyOwner::Tenant("acme")).await, ["key_a2"]);
    assert!(
        store
            .authenticate_api_key("b1", at(161))
            .await
            .expect("use")
            .is_some()
    );

    // The last admin key is kept when asked; a generated one goes when it is replaced.
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Admin, "key_admin1", true)
            .await
            .expect("revoke"),
        KeyRevocation::LastAdminKey
    );
    let mut generated = api_key("key_generated", None, "d1", 5);
    generated.generated_at_start = true;
    store.create_api_key(generated).await.expect("key");
    assert_eq!(
        store
            .revoke_api_key(KeyOwner::Admin, "key_admin1", true)
            .await
            .expect("revoke"),
        KeyRevocation::Revoked,
        "another admin key remains"
    );
    assert_eq!(
        store.revoke_generated_admin_keys().await.expect("revoke"),
        1
    );
    assert!(!store.has_admin_key().await.expect("admin?"));
    assert!(
        store
            .authenticate_api_key("d1", at(170))
            .await
            .expect("use")
            .is_none()
    );
    assert_eq!(
        store.revoke_generated_admin_keys().await.expect("revoke"),
        0
    );
}

pub async fn custom_types_are_per_tenant(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let record = |tenant_id: &str| CustomTypeRecord {
        tenant_id: tenant_id.to_owned(),
        name: "acme.badge.awarded".into(),
        description: "A badge.".into(),
        module: None,
        subject_pointer: Some("/user_id".into()),
        schema: json!({"type": "object"}),
        example: Some(json!({"user_id": "u"})),
        created_at: at(0),
    };
    store
        .create_custom_type(record("acme"))
        .await
        .expect("created");
    store
        .create_custom_type(record("beta"))
        .await
        .expect("same name, other tenant");
    let again = store.create_custom_type(record("acme")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let acme = store.list_custom_types(Some("acme")).await.expect("list");
    assert_eq!(acme, vec![record("acme")]);
    assert_eq!(store.list_custom_types(None).await.expect("list").len(), 2);
}

pub async fn tenants_never_see_each_other(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish("acme", vec![event("e1", "user.created", Some("u1"))], at(1))
        .await
        .expect("published");
    let delivery = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .expect("list")
        .remove(0);
    assert!(
        store
            .get_endpoint("beta", "ep_1")
            .await
            .expect("get")
            .is_none()
    );
    assert!(store.list_endpoints("beta").await.expect("list").is_empty());
    assert!(store.get_event("beta", "e1").await.expect("get").is_none());
    assert!(
        store
            .list_events(
                "beta",
                &EventFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .get_delivery("beta", delivery.id.as_str())
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .list_deliveries(
                "beta",
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .list_attempts("beta", delivery.id.as_str())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .retry_delivery("beta", delivery.id.as_str(), at(2))
            .await
            .expect("retry")
            .is_none()
    );
    assert!(matches!(
        store
            .replay("beta", "ep_1", &ReplaySelector::Failed, at(2))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.erase_subject("beta", "u1").await.expect("erase"), 0);
    assert!(!store.delete_endpoint("beta", "ep_1").await.expect("delete"));
    let mut hijack = endpoint("beta", "ep_1", &["*"], Ordering::None);
    hijack.url = "https://evil.example.com/".into();
    assert!(matches!(
        store.update_endpoint(hijack).await,
        Err(StoreError::NotFound(_))
    ));
    // A duplicate id in another tenant is another event.
    let beta = store
        .publish("beta", vec![event("e1", "user.created", None)], at(3))
        .await
        .expect("published");
    assert!(!beta[0].duplicate);
    assert_eq!(
        store
            .get_endpoint("acme", "ep_1")
            .await
            .expect("get")
            .expect("kept")
            .url,
        "https://hooks.example.com/ep_1"
    );
}
