//! A stored id that does not have its kind's prefix (a row written by hand, or by an older bug)
//! is a store error naming its column when it is read back: never a panic, never a default.
//! The rows are spoiled with raw SQL through a second connection, as the suite cannot. (The
//! SQLite backend has the same test.)

use std::sync::Arc;

use herald_core::ids::{ApiKeyId, HookDecisionId, HookId};
use herald_core::secret::SigningSecret;
use herald_store::conformance::{endpoint, event};
use herald_store::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, DecisionRecord, DeliveryFilter, FailurePolicy,
    HookRecord, KeyOwner, NextStep, Ordering, Tenant,
};
use herald_store::{Store, StoreError, StoreResult};
use herald_store_postgres::PostgresStore;
use time::{Duration, OffsetDateTime};
use tokio_postgres::NoTls;

use super::fresh_database;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// Which store method meets the spoiled row.
#[derive(Debug, Clone, Copy)]
enum Read {
    Endpoints,
    Deliveries,
    /// The attempts of the delivery whose id the spoiled row now has.
    Attempts(&'static str),
    Hooks,
    Decisions,
    ApiKeys,
    Claim,
}

async fn read(store: &dyn Store, read: Read) -> StoreResult<usize> {
    match read {
        Read::Endpoints => store.list_endpoints("acme").await.map(|found| found.len()),
        Read::Deliveries => store
            .list_deliveries(
                "acme",
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .map(|found| found.len()),
        Read::Attempts(delivery_id) => store
            .list_attempts("acme", delivery_id)
            .await
            .map(|found| found.len()),
        Read::Hooks => store.list_hooks("acme").await.map(|found| found.len()),
        Read::Decisions => store
            .list_decisions("acme", None, 10)
            .await
            .map(|found| found.len()),
        Read::ApiKeys => store
            .list_api_keys(KeyOwner::Tenant("acme"))
            .await
            .map(|found| found.len()),
        Read::Claim => store
            .claim_due(at(60), 10, Duration::seconds(30))
            .await
            .map(|found| found.len()),
    }
}

/// A store holding one of each record with an id: an endpoint with a delivery that has failed
/// once (due again at 30 s), a hook, a decision and a tenant key.
async fn seeded_store(url: &str) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(url, 2).await.expect("connects"));
    store
        .create_tenant(Tenant {
            id: "acme".to_owned(),
            name: "Acme".to_owned(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant");
    let endpoint = endpoint("acme", "ep_1", &["*"], Ordering::None);
    store
        .create_endpoint(endpoint.clone())
        .await
        .expect("endpoint");
    store
        .publish("acme", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    let claimed = store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claimed");
    store
        .record_attempt(AttemptOutcome {
            tenant_id: "acme".to_owned(),
            endpoint_id: endpoint.id.clone(),
            attempt: AttemptRecord {
                delivery_id: claimed[0].delivery_id.clone(),
                attempt_number: 1,
                started_at: at(2),
                status: Some(500),
                latency_ms: 1,
                response_excerpt: None,
                error: None,
            },
            next: NextStep::RetryAt(at(30)),
            disable_endpoint: None,
            now: at(2),
            operational_events: Vec::new(),
        })
        .await
        .expect("attempt recorded");
    store
        .create_hook(HookRecord {
            id: HookId::new(),
            tenant_id: "acme".to_owned(),
            event_type: "user.pre_create".to_owned(),
            url: "https://hooks.example.com/1".to_owned(),
            position: 0,
            timeout_ms: 5_000,
            failure_policy: FailurePolicy::FailClosed,
            secret: SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret"),
            enabled: true,
            created_at: at(0),
            updated_at: at(0),
        })
        .await
        .expect("hook");
    store
        .record_decisions(vec![DecisionRecord {
            id: HookDecisionId::new(),
            tenant_id: "acme".to_owned(),
            event_type: "user.pre_create".to_owned(),
            event_id: None,
            is_allowed: true,
            reasons: serde_json::json!([]),
            trace: serde_json::json!([]),
            latency_us: 1,
            created_at: at(0),
        }])
        .await
        .expect("decision");
    store
        .create_api_key(ApiKeyRecord::for_new_key(
            ApiKeyId::new(),
            "herald_tk_acme",
            KeyOwner::Tenant("acme"),
            None,
            false,
            at(0),
        ))
        .await
        .expect("key");
    store
}

/// Spoils a seeded store with `sql`, then expects `reader` to fail with a backend error that
/// names `column` and `value` (so it is the spoiled row that failed, not something else).
async fn check(sql: &str, reader: Read, column: &str, value: &str) {
    let url = fresh_database().await;
    let store = seeded_store(&url).await;
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    client.batch_execute(sql).await.expect("row spoiled");
    match read(store.as_ref(), reader).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains(&format!("stored column {column}: ")),
                "{reader:?}: {message}"
            );
            assert!(
                message.contains(&format!("{value:?}")),
                "{reader:?}: {message}"
            );
        }
        other => panic!("{reader:?} after `{sql}` must be a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_id_of_the_wrong_shape_read_back_is_a_store_error_naming_its_column() {
    check(
        "UPDATE endpoints SET id = 'bogus'",
        Read::Endpoints,
        "id",
        "bogus",
    )
    .await;
    check(
        "UPDATE deliveries SET id = 'bogus'",
        Read::Deliveries,
        "id",
        "bogus",
    )
    .await;
    check(
        "UPDATE deliveries SET endpoint_id = 'dl_1'",
        Read::Deliveries,
        "endpoint_id",
        "dl_1",
    )
    .await;
    check(
        "UPDATE deliveries SET id = 'hk_1'; UPDATE attempts SET delivery_id = 'hk_1'",
        Read::Attempts("hk_1"),
        "delivery_id",
        "hk_1",
    )
    .await;
    check("UPDATE hooks SET id = 'bogus'", Read::Hooks, "id", "bogus").await;
    check(
        "UPDATE decisions SET id = 'hk_1'",
        Read::Decisions,
        "id",
        "hk_1",
    )
    .await;
    check(
        "UPDATE api_keys SET id = 'ep_1'",
        Read::ApiKeys,
        "id",
        "ep_1",
    )
    .await;
    check("UPDATE deliveries SET id = ''", Read::Claim, "id", "").await;
}
