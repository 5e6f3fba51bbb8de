//! Shared by both backends' tests: a stored id that does not have its kind's prefix (a row
//! written by hand, or by an older bug) must be a store error naming its column when it is read
//! back, never a panic or a default. Each backend's test seeds a store with [`seed`], spoils one
//! row per case of [`SPOILED_IDS`] with raw SQL through its own connection (the `Store` trait
//! cannot), reads with [`read`] and judges with [`names_the_spoiled_column`]. It is not part of
//! the conformance suite, whose checks need nothing but the trait.
//!
//! The benchmark's history is written in bulk SQL too (`history.rs` of each backend), so the same
//! tests read it back with [`history_reads_back`].

use herald_core::ids::{ApiKeyId, HookDecisionId, HookId};
use time::Duration;

use crate::conformance::{at, endpoint, event, outcome, test_secret};
use crate::models::{
    ApiKeyRecord, DecisionRecord, DeliveryFilter, FailurePolicy, HookRecord, KeyOwner, NextStep,
    Ordering, Tenant,
};
use crate::{Store, StoreError, StoreResult};

/// Which store method meets the spoiled row.
#[derive(Debug, Clone, Copy)]
pub enum Read {
    Endpoints,
    Deliveries,
    /// The attempts of the delivery whose id the spoiled row now has.
    Attempts(&'static str),
    Hooks,
    Decisions,
    ApiKeys,
    Claim,
}

pub async fn read(store: &dyn Store, read: Read) -> StoreResult<usize> {
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

/// Seeds one of each record with an id: an endpoint `ep_1` with a delivery that has failed once
/// (due again at 30 s), a hook, a decision and a key of tenant `acme`.
pub async fn seed(store: &dyn Store) {
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
        .record_attempt(outcome(
            "acme",
            endpoint.id.as_str(),
            &claimed[0].delivery_id,
            1,
            NextStep::RetryAt(at(30)),
            at(2),
        ))
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
            secret: test_secret(),
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
}

/// One spoiled row: the SQL that spoils it (the same on both backends), the read that meets it,
/// and the column and value its error must name.
#[derive(Debug, Clone, Copy)]
pub struct SpoiledId {
    pub sql: &'static str,
    pub read: Read,
    pub column: &'static str,
    pub value: &'static str,
}

/// Every record field that holds a typed id, spoiled.
pub const SPOILED_IDS: &[SpoiledId] = &[
    SpoiledId {
        sql: "UPDATE endpoints SET id = 'bogus'",
        read: Read::Endpoints,
        column: "id",
        value: "bogus",
    },
    SpoiledId {
        sql: "UPDATE deliveries SET id = 'bogus'",
        read: Read::Deliveries,
        column: "id",
        value: "bogus",
    },
    SpoiledId {
        sql: "UPDATE deliveries SET endpoint_id = 'dl_1'",
        read: Read::Deliveries,
        column: "endpoint_id",
        value: "dl_1",
    },
    SpoiledId {
        sql: "UPDATE deliveries SET id = 'hk_1'; UPDATE attempts SET delivery_id = 'hk_1'",
        read: Read::Attempts("hk_1"),
        column: "delivery_id",
        value: "hk_1",
    },
    SpoiledId {
        sql: "UPDATE hooks SET id = 'bogus'",
        read: Read::Hooks,
        column: "id",
        value: "bogus",
    },
    SpoiledId {
        sql: "UPDATE decisions SET id = 'hk_1'",
        read: Read::Decisions,
        column: "id",
        value: "hk_1",
    },
    SpoiledId {
        sql: "UPDATE api_keys SET id = 'ep_1'",
        read: Read::ApiKeys,
        column: "id",
        value: "ep_1",
    },
    SpoiledId {
        sql: "UPDATE deliveries SET id = ''",
        read: Read::Claim,
        column: "id",
        value: "",
    },
];

/// Whether `result`, read after `case` spoiled its row, is the backend error naming the spoiled
/// column and value (so it is that row that failed, not something else); why not, otherwise.
pub fn names_the_spoiled_column(
    case: &SpoiledId,
    result: StoreResult<usize>,
) -> Result<(), String> {
    match result {
        Err(StoreError::Backend(message))
            if message.contains(&format!("stored column {}: ", case.column))
                && message.contains(&format!("{:?}", case.value)) =>
        {
            Ok(())
        }
        other => Err(format!(
            "{:?} after `{}` must be a backend error naming {} = {:?}, got {other:?}",
            case.read, case.sql, case.column, case.value
        )),
    }
}

/// Reads back a store that [`seed`] made and whose `ep_1` was then given three delivered
/// deliveries of benchmark history: they list with the seeded one, and each has its attempt.
pub async fn history_reads_back(store: &dyn Store) {
    let deliveries = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("history reads back");
    assert_eq!(
        deliveries.len(),
        4,
        "the seeded delivery and three of history"
    );
    let attempts = store
        .list_attempts("acme", deliveries[3].id.as_str())
        .await
        .expect("attempts read back");
    assert_eq!(attempts.len(), 1);
}
