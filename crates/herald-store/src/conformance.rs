//! The behaviour every storage backend must have, written once and run against each.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with an async
//! expression that makes a fresh, empty store; every function here becomes one test.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_catalog::envelope::RenderFormat;
use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::{DeliveryState, DisableReason};
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use serde_json::{Map, json};
use time::{Duration, OffsetDateTime};

use crate::models::{
    ApiKeyRecord, AttemptOutcome, AttemptRecord, CustomTypeRecord, DecisionRecord, DeliveryFilter,
    EndpointFilter, EndpointRecord, EventFilter, FailurePolicy, HookRecord, KeyOwner,
    KeyRevocation, NewEvent, NextStep, Ordering, ReplaySelector, SOURCE_ERRORS_KEPT,
    SourceErrorEntry, SourceKind, SourceOutcome, SourceRecord, Tenant,
};
use crate::{Store, StoreError};

/// Expands to one `#[tokio::test]` per conformance check, each on a store from `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            tenants_and_api_keys,
            api_keys_are_listed_used_and_revoked,
            custom_types_are_per_tenant,
            publish_orders_and_deduplicates,
            publish_delivers_to_matching_enabled_endpoints,
            publish_to_an_unknown_tenant_stores_nothing,
            events_page_by_cursor_and_filter,
            claims_lease_and_expired_leases_come_back,
            subject_ordering_holds_one_subject_and_lets_others_flow,
            strict_ordering_and_concurrency_limits,
            attempts_move_deliveries_through_their_states,
            a_gone_endpoint_is_disabled_and_its_work_waits,
            a_paused_endpoint_queues_its_deliveries_until_resumed,
            retry_and_replay,
            retention_removes_old_events_in_batches,
            erasure_empties_a_subjects_events,
            tenants_never_see_each_other,
            endpoints_update_and_delete,
            hooks_are_ordered_per_event_type_and_tenant,
            decisions_are_listed_by_cursor_and_expire,
            rate_limits_spread_claims_over_time,
            sources_are_per_tenant_and_count_their_outcomes,
            an_events_deliveries_are_listed_within_its_tenant,
            ssf_keys_streams_subjects_and_poll_queue,
            ssf_streams_follow_the_log_and_push_under_a_lease,
            work_that_returns_after_an_idle_claim_is_claimed,
            // The console's overview (issue 15).
            attempts_are_counted_per_minute_within_the_tenant,
            // Standard Webhooks `v1a` (issue 14)
            endpoints_keep_their_signature_scheme,
            a_signing_key_is_retired_alone_within_its_tenant,
            // --- issue 17 (seams) ---
            an_attempt_publishes_its_operational_events_in_its_own_transaction,
            a_subject_claim_reads_past_any_number_of_blocked_deliveries,
        );
    };
    (@each $make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store: std::sync::Arc<dyn $crate::Store> = $make.await;
                $crate::conformance::$name(store).await;
            }
        )+
    };
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

async fn tenant(store: &Arc<dyn Store>, id: &str) {
    store
        .create_tenant(Tenant {
            id: id.to_owned(),
            name: format!("Tenant {id}"),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant created");
}

/// The secret the conformance records sign with.
fn test_secret() -> SigningSecret {
    SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret")
}

/// An endpoint of `tenant_id` with these filters and ordering, enabled, defaults elsewhere.
pub fn endpoint(tenant_id: &str, id: &str, filters: &[&str], ordering: Ordering) -> EndpointRecord {
    EndpointRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        description: String::new(),
        filters: EndpointFilter::parse_all(filters).expect("valid filters"),
        format: RenderFormat::Native,
        secret: test_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        ordering,
        retry_schedule: RetrySchedule::from_seconds(&[5, 300]).expect("a schedule"),
        timeout_ms: 15_000,
        max_concurrency: 16,
        rate_limit_per_s: None,
        headers: BTreeMap::new(),
        enabled: true,
        paused: false,
        disabled_reason: None,
        failing_since: None,
        created_at: at(0),
        updated_at: at(0),
        signature_scheme: SignatureScheme::V1,
    }
}

/// An Authgear `user.*` event of `subject`.
pub fn event(id: &str, event_type: &str, subject: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        taxonomy: Taxonomy::Authgear,
        event_type: event_type.to_owned(),
        subject: subject.map(str::to_owned),
        occurred_at: at(0),
        payload: json!({"user": {"id": subject}}),
        context: Map::new(),
        producer: Map::new(),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|item| id(item).to_owned()).collect()
}

async fn claim_event_ids(store: &Arc<dyn Store>, now: OffsetDateTime) -> Vec<String> {
    let claimed = store
        .claim_due(now, 100, Duration::seconds(30))
        .await
        .expect("claim");
    let mut event_ids = ids(&claimed, |claim| claim.event.id.as_str());
    event_ids.sort();
    event_ids
}

fn outcome(
    tenant_id: &str,
    endpoint_id: &str,
    delivery_id: &str,
    number: u32,
    next: NextStep,
    now: OffsetDateTime,
) -> AttemptOutcome {
    AttemptOutcome {
        tenant_id: tenant_id.to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        attempt: AttemptRecord {
            delivery_id: delivery_id.to_owned(),
            attempt_number: number,
            started_at: now,
            status: Some(if next == NextStep::Delivered {
                200
            } else {
                500
            }),
            latency_ms: 12,
            response_excerpt: Some("ok".to_owned()),
            error: None,
        },
        next,
        disable_endpoint: None,
        now,
        operational_events: Vec::new(),
    }
}

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
        id: id.to_owned(),
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

pub async fn publish_orders_and_deduplicates(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    let first = store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", Some("u1")),
                event("e2", "user.created", Some("u2")),
            ],
            at(1),
        )
        .await
        .expect("published");
    assert_eq!(
        first
            .iter()
            .map(|p| (p.seq, p.duplicate, p.n_deliveries))
            .collect::<Vec<_>>(),
        [(1, false, 1), (2, false, 1)]
    );
    // Publishing a known id again answers with the original seq and delivers nothing; an id
    // repeated inside one batch is caught too.
    let again = store
        .publish(
            "acme",
            vec![
                event("e2", "user.deleted", Some("u2")),
                event("e3", "user.created", None),
                event("e3", "user.created", None),
            ],
            at(2),
        )
        .await
        .expect("published");
    assert_eq!(
        again
            .iter()
            .map(|p| (p.id.as_str(), p.seq, p.duplicate))
            .collect::<Vec<_>>(),
        [("e2", 2, true), ("e3", 3, false), ("e3", 3, true)]
    );
    let stored = store
        .get_event("acme", "e2")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        stored.event.event_type, "user.created",
        "the original is kept"
    );
    let deliveries = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(deliveries.len(), 3);
    // Each tenant has its own sequence.
    let beta = store
        .publish("beta", vec![event("e1", "user.created", None)], at(3))
        .await
        .expect("published");
    assert_eq!((beta[0].seq, beta[0].duplicate), (1, false));
}

pub async fn publish_delivers_to_matching_enabled_endpoints(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let mut disabled = endpoint("acme", "ep_off", &["*"], Ordering::None);
    disabled.enabled = false;
    for record in [
        endpoint("acme", "ep_exact", &["user.created"], Ordering::None),
        endpoint("acme", "ep_prefix", &["user.*"], Ordering::None),
        endpoint("acme", "ep_taxonomy", &["authgear"], Ordering::None),
        endpoint(
            "acme",
            "ep_other",
            &["identity.*", "onewelcome"],
            Ordering::None,
        ),
        disabled,
    ] {
        store.create_endpoint(record).await.expect("endpoint");
    }
    let published = store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", None),
                event("e2", "user.deleted", None),
                event("e3", "identity.email.added", None),
            ],
            at(1),
        )
        .await
        .expect("published");
    assert_eq!(
        published.iter().map(|p| p.n_deliveries).collect::<Vec<_>>(),
        [3, 2, 2]
    );
    let for_endpoint = |endpoint_id: &str| DeliveryFilter {
        endpoint_id: Some(endpoint_id.to_owned()),
        limit: 100,
        ..Default::default()
    };
    let exact = store
        .list_deliveries("acme", &for_endpoint("ep_exact"))
        .await
        .expect("list");
    assert_eq!(ids(&exact, |d| d.event_id.as_str()), ["e1"]);
    assert_eq!(exact[0].state, DeliveryState::Pending);
    assert_eq!(exact[0].event_seq, 1);
    assert!(
        store
            .list_deliveries("acme", &for_endpoint("ep_off"))
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn publish_to_an_unknown_tenant_stores_nothing(store: Arc<dyn Store>) {
    let result = store
        .publish("ghost", vec![event("e1", "user.created", None)], at(1))
        .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    tenant(&store, "ghost").await;
    assert!(store.get_event("ghost", "e1").await.expect("get").is_none());
    let published = store
        .publish("ghost", vec![event("e1", "user.created", None)], at(2))
        .await
        .expect("published");
    assert_eq!(published[0].seq, 1, "the failed publish used no seq");
}

pub async fn events_page_by_cursor_and_filter(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let events: Vec<NewEvent> = (1..=7)
        .map(|n| {
            event(
                &format!("e{n}"),
                if n % 2 == 0 {
                    "user.deleted"
                } else {
                    "user.created"
                },
                Some(if n <= 3 { "u1" } else { "u2" }),
            )
        })
        .collect();
    store
        .publish("acme", events, at(1))
        .await
        .expect("published");
    let mut seen = Vec::new();
    let mut after_seq = 0;
    loop {
        let page = store
            .list_events(
                "acme",
                &EventFilter {
                    after_seq,
                    limit: 3,
                    ..Default::default()
                },
            )
            .await
            .expect("page");
        let Some(last) = page.last() else { break };
        after_seq = last.event.seq;
        seen.extend(page.iter().map(|stored| stored.event.seq));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    let deleted = store
        .list_events(
            "acme",
            &EventFilter {
                limit: 10,
                event_type: Some("user.deleted".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(
        deleted
            .iter()
            .map(|stored| stored.event.seq)
            .collect::<Vec<_>>(),
        [2, 4, 6]
    );
    let u1 = store
        .list_events(
            "acme",
            &EventFilter {
                after_seq: 1,
                limit: 10,
                subject: Some("u1".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(
        u1.iter().map(|stored| stored.event.seq).collect::<Vec<_>>(),
        [2, 3]
    );
    let stored = &u1[0];
    assert_eq!(stored.event.payload, json!({"user": {"id": "u1"}}));
    assert_eq!(
        (stored.event.taxonomy, stored.received_at, stored.erased),
        (Taxonomy::Authgear, at(1), false)
    );
}

pub async fn claims_lease_and_expired_leases_come_back(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish("acme", vec![event("e1", "user.created", Some("u1"))], at(1))
        .await
        .expect("published");
    assert!(
        claim_event_ids(&store, at(0)).await.is_empty(),
        "not due before it was published"
    );
    let claimed = store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.id, "ep_1");
    assert_eq!(claimed[0].tenant_issuer, "urn:herald:tenant:acme");
    assert_eq!(claimed[0].n_attempts, 0);
    let delivery = store
        .get_delivery("acme", &claimed[0].delivery_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(delivery.state, DeliveryState::InFlight);
    assert!(claim_event_ids(&store, at(20)).await.is_empty(), "leased");
    assert_eq!(store.next_due_at().await.expect("next"), Some(at(31)));
    assert_eq!(
        claim_event_ids(&store, at(31)).await,
        ["e1"],
        "the lease expired: another node takes it"
    );
    store
        .release(&claimed[0].delivery_id, at(40))
        .await
        .expect("released");
    assert_eq!(store.count_pending().await.expect("count"), 1);
    assert!(claim_event_ids(&store, at(39)).await.is_empty());
    assert_eq!(claim_event_ids(&store, at(40)).await, ["e1"]);
}

pub async fn subject_ordering_holds_one_subject_and_lets_others_flow(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::Subject))
        .await
        .expect("endpoint");
    store
        .publish(
            "acme",
            vec![
                event("a1", "user.created", Some("alice")),
                event("a2", "user.deleted", Some("alice")),
                event("b1", "user.created", Some("bob")),
                event("n1", "user.created", None),
                event("n2", "user.created", None),
            ],
            at(1),
        )
        .await
        .expect("published");
    let claimed = store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claim");
    let mut first = ids(&claimed, |claim| claim.event.id.as_str());
    first.sort();
    assert_eq!(
        first,
        ["a1", "b1", "n1", "n2"],
        "alice's second event waits; events without a subject are not ordered"
    );
    let alice = claimed
        .iter()
        .find(|claim| claim.event.id == "a1")
        .expect("a1");
    // A failure keeps alice's queue blocked until a1 is finished.
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &alice.delivery_id,
            1,
            NextStep::RetryAt(at(10)),
            at(2),
        ))
        .await
        .expect("recorded");
    assert!(claim_event_ids(&store, at(5)).await.is_empty());
    assert_eq!(claim_event_ids(&store, at(10)).await, ["a1"]);
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &alice.delivery_id,
            2,
            NextStep::Delivered,
            at(11),
        ))
        .await
        .expect("recorded");
    assert_eq!(claim_event_ids(&store, at(11)).await, ["a2"]);
}

pub async fn strict_ordering_and_concurrency_limits(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint(
            "acme",
            "ep_fifo",
            &["user.created"],
            Ordering::Strict,
        ))
        .await
        .expect("endpoint");
    let mut narrow = endpoint("acme", "ep_narrow", &["user.deleted"], Ordering::None);
    narrow.max_concurrency = 2;
    store.create_endpoint(narrow).await.expect("endpoint");
    let events = vec![
        event("c1", "user.created", Some("u1")),
        event("c2", "user.created", Some("u2")),
        event("d1", "user.deleted", Some("u1")),
        event("d2", "user.deleted", Some("u2")),
        event("d3", "user.deleted", Some("u3")),
    ];
    store
        .publish("acme", events, at(1))
        .await
        .expect("published");
    let claimed = store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claim");
    let mut first = ids(&claimed, |claim| claim.event.id.as_str());
    first.sort();
    assert_eq!(
        first,
        ["c1", "d1", "d2"],
        "strict offers its head only; the narrow endpoint takes two at a time"
    );
    for claim in &claimed {
        store
            .record_attempt(outcome(
                "acme",
                &claim.endpoint.id,
                &claim.delivery_id,
                1,
                NextStep::Delivered,
                at(2),
            ))
            .await
            .expect("recorded");
    }
    assert_eq!(claim_event_ids(&store, at(2)).await, ["c2", "d3"]);
}

pub async fn attempts_move_deliveries_through_their_states(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish("acme", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    let claim = store
        .claim_due(at(1), 1, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claim.delivery_id,
            1,
            NextStep::RetryAt(at(6)),
            at(1),
        ))
        .await
        .expect("recorded");
    let delivery = store
        .get_delivery("acme", &claim.delivery_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (
            delivery.state,
            delivery.n_attempts,
            delivery.next_attempt_at,
            delivery.last_status
        ),
        (DeliveryState::Scheduled, 1, Some(at(6)), Some(500))
    );
    let failing = store
        .get_endpoint("acme", "ep_1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(failing.failing_since, Some(at(1)));
    let claim = store
        .claim_due(at(6), 1, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(claim.n_attempts, 1);
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claim.delivery_id,
            2,
            NextStep::Exhausted,
            at(6),
        ))
        .await
        .expect("recorded");
    let delivery = store
        .get_delivery("acme", &claim.delivery_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (
            delivery.state,
            delivery.n_attempts,
            delivery.next_attempt_at
        ),
        (DeliveryState::Exhausted, 2, None)
    );
    assert_eq!(store.count_pending().await.expect("count"), 0);
    assert!(
        claim_event_ids(&store, at(1000)).await.is_empty(),
        "exhausted deliveries are not claimed"
    );
    let attempts = store
        .list_attempts("acme", &claim.delivery_id)
        .await
        .expect("attempts");
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt_number, a.status, a.latency_ms))
            .collect::<Vec<_>>(),
        [(1, Some(500), 12), (2, Some(500), 12)]
    );
    assert_eq!(attempts[0].response_excerpt.as_deref(), Some("ok"));
    // A success clears the endpoint's failure streak.
    store
        .retry_delivery("acme", &claim.delivery_id, at(7))
        .await
        .expect("retry")
        .expect("exists");
    let claim = store
        .claim_due(at(7), 1, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claim.delivery_id,
            3,
            NextStep::Delivered,
            at(7),
        ))
        .await
        .expect("recorded");
    let healthy = store
        .get_endpoint("acme", "ep_1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(healthy.failing_since, None);
    let delivered = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                state: Some(DeliveryState::Delivered),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(delivered.len(), 1);
}

pub async fn a_gone_endpoint_is_disabled_and_its_work_waits(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", None),
                event("e2", "user.created", None),
            ],
            at(1),
        )
        .await
        .expect("published");
    let claim = store
        .claim_due(at(1), 1, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut gone = outcome(
        "acme",
        "ep_1",
        &claim.delivery_id,
        1,
        NextStep::Exhausted,
        at(1),
    );
    gone.disable_endpoint = Some(DisableReason::Gone);
    store.record_attempt(gone).await.expect("recorded");
    let disabled = store
        .get_endpoint("acme", "ep_1")
        .await
        .expect("get")
        .expect("exists");
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason, Some(DisableReason::Gone));
    assert!(
        claim_event_ids(&store, at(2)).await.is_empty(),
        "a disabled endpoint gets nothing"
    );
    assert_eq!(store.next_due_at().await.expect("next"), None);
    let published = store
        .publish("acme", vec![event("e3", "user.created", None)], at(3))
        .await
        .expect("published");
    assert_eq!(published[0].n_deliveries, 0);
    let mut enabled = disabled.clone();
    enabled.enabled = true;
    enabled.disabled_reason = None;
    store.update_endpoint(enabled).await.expect("updated");
    assert_eq!(
        claim_event_ids(&store, at(4)).await,
        ["e2"],
        "re-enabled, the waiting delivery goes out"
    );
}

pub async fn a_paused_endpoint_queues_its_deliveries_until_resumed(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let mut paused = endpoint("acme", "ep_paused", &["*"], Ordering::None);
    paused.paused = true;
    store
        .create_endpoint(paused.clone())
        .await
        .expect("endpoint");
    assert_eq!(
        store.get_endpoint("acme", "ep_paused").await.expect("get"),
        Some(paused.clone())
    );
    let published = store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", Some("u1")),
                event("e2", "user.created", Some("u2")),
                event("e3", "user.created", Some("u3")),
            ],
            at(1),
        )
        .await
        .expect("published");
    assert_eq!(
        published.iter().map(|p| p.n_deliveries).collect::<Vec<_>>(),
        [1, 1, 1],
        "a paused endpoint still gets its deliveries"
    );
    let queued = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                endpoint_id: Some("ep_paused".to_owned()),
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(ids(&queued, |d| d.event_id.as_str()), ["e1", "e2", "e3"]);
    assert!(
        queued
            .iter()
            .all(|delivery| delivery.state == DeliveryState::Pending)
    );
    assert!(
        claim_event_ids(&store, at(2)).await.is_empty(),
        "nothing of a paused endpoint is claimed"
    );
    assert_eq!(
        store.next_due_at().await.expect("next"),
        None,
        "a paused endpoint's queue is not due work"
    );

    // A live endpoint beside it is unaffected; pausing it while an attempt is in flight keeps
    // even the expired lease from being taken over until it is resumed.
    let mut live = endpoint("acme", "ep_live", &["*"], Ordering::None);
    store.create_endpoint(live.clone()).await.expect("endpoint");
    let published = store
        .publish("acme", vec![event("e4", "user.created", Some("u4"))], at(3))
        .await
        .expect("published");
    assert_eq!(published[0].n_deliveries, 2, "one for each endpoint");
    let claimed = store
        .claim_due(at(3), 100, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(
        ids(&claimed, |claim| claim.endpoint.id.as_str()),
        ["ep_live"]
    );
    assert_eq!(
        store.next_due_at().await.expect("next"),
        Some(at(33)),
        "only the live endpoint's lease counts"
    );
    live.paused = true;
    store.update_endpoint(live.clone()).await.expect("updated");
    assert_eq!(store.next_due_at().await.expect("next"), None);
    assert!(claim_event_ids(&store, at(40)).await.is_empty());

    for mut resumed in [paused, live] {
        resumed.paused = false;
        resumed.updated_at = at(41);
        store.update_endpoint(resumed).await.expect("updated");
    }
    assert_eq!(
        store.next_due_at().await.expect("next"),
        Some(at(1)),
        "resumed, the queue is due since it was published"
    );
    assert_eq!(
        claim_event_ids(&store, at(41)).await,
        ["e1", "e2", "e3", "e4", "e4"],
        "resumed, both queues drain and the expired lease is taken over"
    );
}

pub async fn retry_and_replay(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["user.created"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", None),
                event("e2", "user.deleted", None),
                event("e3", "user.created", None),
            ],
            at(1),
        )
        .await
        .expect("published");
    for claim in store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claim")
    {
        store
            .record_attempt(outcome(
                "acme",
                "ep_1",
                &claim.delivery_id,
                1,
                NextStep::Exhausted,
                at(2),
            ))
            .await
            .expect("recorded");
    }
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::Failed, at(3))
            .await
            .expect("replay"),
        2
    );
    assert_eq!(claim_event_ids(&store, at(3)).await, ["e1", "e3"]);
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::SinceSeq(1), at(4))
            .await
            .expect("replay"),
        1,
        "e3 only: e2 does not match"
    );
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::Event("e2".into()), at(4))
            .await
            .expect("replay"),
        1,
        "an explicit event goes whatever the filters"
    );
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::SinceTime(at(1)), at(4))
            .await
            .expect("replay"),
        2
    );
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::SinceTime(at(2)), at(4))
            .await
            .expect("replay"),
        0
    );
    assert_eq!(
        claim_event_ids(&store, at(4)).await,
        ["e1", "e2", "e3", "e3"]
    );
    let missing = store
        .replay("acme", "ep_1", &ReplaySelector::Event("nope".into()), at(4))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    let no_endpoint = store
        .replay("acme", "ep_none", &ReplaySelector::Failed, at(4))
        .await;
    assert!(
        matches!(no_endpoint, Err(StoreError::NotFound(_))),
        "{no_endpoint:?}"
    );
}

pub async fn retention_removes_old_events_in_batches(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    for n in 0..5 {
        store
            .publish(
                "acme",
                vec![event(&format!("old{n}"), "user.created", None)],
                at(n),
            )
            .await
            .expect("published");
    }
    store
        .publish("acme", vec![event("new", "user.created", None)], at(100))
        .await
        .expect("published");
    assert_eq!(store.remove_expired(at(50), 2).await.expect("removed"), 2);
    assert_eq!(store.remove_expired(at(50), 2).await.expect("removed"), 2);
    assert_eq!(store.remove_expired(at(50), 2).await.expect("removed"), 1);
    assert_eq!(store.remove_expired(at(50), 2).await.expect("removed"), 0);
    let left = store
        .list_events(
            "acme",
            &EventFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(ids(&left, |stored| stored.event.id.as_str()), ["new"]);
    let deliveries = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(
        ids(&deliveries, |d| d.event_id.as_str()),
        ["new"],
        "deliveries go with their events"
    );
    let published = store
        .publish("acme", vec![event("later", "user.created", None)], at(101))
        .await
        .expect("published");
    assert_eq!(published[0].seq, 7, "seq never goes back");
}

pub async fn erasure_empties_a_subjects_events(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish(
            "acme",
            vec![
                event("a1", "user.created", Some("alice")),
                event("a2", "user.deleted", Some("alice")),
                event("b1", "user.created", Some("bob")),
            ],
            at(1),
        )
        .await
        .expect("published");
    assert_eq!(
        store.erase_subject("acme", "alice").await.expect("erased"),
        2
    );
    let erased = store
        .get_event("acme", "a1")
        .await
        .expect("get")
        .expect("kept");
    assert!(erased.erased);
    assert_eq!(erased.event.payload, json!({}));
    let bob = store
        .get_event("acme", "b1")
        .await
        .expect("get")
        .expect("kept");
    assert!(!bob.erased);
    assert_eq!(bob.event.payload, json!({"user": {"id": "bob"}}));
    assert_eq!(
        claim_event_ids(&store, at(2)).await,
        ["b1"],
        "an erased subject's waiting deliveries are cancelled"
    );
    let cancelled = store
        .list_deliveries(
            "acme",
            &DeliveryFilter {
                state: Some(DeliveryState::Cancelled),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("list");
    assert_eq!(cancelled.len(), 2);
    assert_eq!(
        store
            .replay("acme", "ep_1", &ReplaySelector::SinceSeq(0), at(3))
            .await
            .expect("replay"),
        1,
        "erased events are not replayed"
    );
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
            .get_delivery("beta", &delivery.id)
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
            .list_attempts("beta", &delivery.id)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .retry_delivery("beta", &delivery.id, at(2))
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

pub async fn endpoints_update_and_delete(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let missing_tenant = store
        .create_endpoint(endpoint("ghost", "ep_0", &["*"], Ordering::None))
        .await;
    assert!(
        matches!(missing_tenant, Err(StoreError::NotFound(_))),
        "{missing_tenant:?}"
    );
    let mut record = endpoint("acme", "ep_1", &["*"], Ordering::None);
    record.headers.insert("x-team".into(), "identity".into());
    record.rate_limit_per_s = Some(50);
    store
        .create_endpoint(record.clone())
        .await
        .expect("created");
    assert_eq!(
        store.get_endpoint("acme", "ep_1").await.expect("get"),
        Some(record.clone())
    );
    record.url = "https://hooks.example.com/v2".into();
    record.previous_secret = Some(record.secret.clone());
    record.previous_secret_expires_at = Some(at(86_400));
    record.secret = SigningSecret::parse("plain-vendor-secret").expect("a plain secret");
    record.ordering = Ordering::Strict;
    record.retry_schedule = RetrySchedule::from_seconds(&[1, 2, 3]).expect("a schedule");
    record.updated_at = at(5);
    store
        .update_endpoint(record.clone())
        .await
        .expect("updated");
    assert_eq!(
        store.list_endpoints("acme").await.expect("list"),
        vec![record]
    );
    store
        .publish("acme", vec![event("e1", "user.created", None)], at(6))
        .await
        .expect("published");
    assert!(
        store
            .delete_endpoint("acme", "ep_1")
            .await
            .expect("deleted")
    );
    assert!(
        store
            .get_endpoint("acme", "ep_1")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .list_deliveries(
                "acme",
                &DeliveryFilter {
                    limit: 10,
                    ..Default::default()
                }
            )
            .await
            .expect("list")
            .is_empty(),
        "its deliveries went with it"
    );
    assert!(
        store.get_event("acme", "e1").await.expect("get").is_some(),
        "the log keeps the event"
    );
}

fn hook(tenant_id: &str, id: &str, event_type: &str, position: i32) -> HookRecord {
    HookRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        event_type: event_type.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        position,
        timeout_ms: 5_000,
        failure_policy: FailurePolicy::FailClosed,
        secret: test_secret(),
        enabled: true,
        created_at: at(i64::from(position)),
        updated_at: at(i64::from(position)),
    }
}

pub async fn hooks_are_ordered_per_event_type_and_tenant(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let missing_tenant = store
        .create_hook(hook("ghost", "hk_0", "user.pre_create", 1))
        .await;
    assert!(
        matches!(missing_tenant, Err(StoreError::NotFound(_))),
        "{missing_tenant:?}"
    );
    for record in [
        hook("acme", "hk_c", "user.pre_create", 30),
        hook("acme", "hk_a", "user.pre_create", 10),
        hook("acme", "hk_j", "oidc.jwt.pre_create", 1),
        hook("acme", "hk_b", "user.pre_create", 20),
        hook("beta", "hk_x", "user.pre_create", 5),
    ] {
        store.create_hook(record).await.expect("hook");
    }
    let listed = store.list_hooks("acme").await.expect("list");
    assert_eq!(
        ids(&listed, |h| h.id.as_str()),
        ["hk_j", "hk_a", "hk_b", "hk_c"]
    );
    let mut changed = listed[1].clone();
    changed.position = 99;
    changed.failure_policy = FailurePolicy::FailOpen;
    changed.enabled = false;
    store.update_hook(changed.clone()).await.expect("updated");
    assert_eq!(
        store.get_hook("acme", "hk_a").await.expect("get"),
        Some(changed)
    );
    assert_eq!(
        ids(&store.list_hooks("acme").await.expect("list"), |h| h
            .id
            .as_str()),
        ["hk_j", "hk_b", "hk_c", "hk_a"]
    );
    assert!(store.get_hook("beta", "hk_a").await.expect("get").is_none());
    let hijack = hook("beta", "hk_a", "user.pre_create", 1);
    assert!(matches!(
        store.update_hook(hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_hook("beta", "hk_a").await.expect("delete"));
    assert!(store.delete_hook("acme", "hk_a").await.expect("delete"));
    assert_eq!(store.list_hooks("acme").await.expect("list").len(), 3);
    assert_eq!(
        ids(&store.list_hooks("beta").await.expect("list"), |h| h
            .id
            .as_str()),
        ["hk_x"]
    );
}

pub async fn decisions_are_listed_by_cursor_and_expire(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let decision = |tenant_id: &str, id: &str, seconds: i64, is_allowed: bool| DecisionRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        event_type: "user.pre_create".to_owned(),
        event_id: Some(format!("evt-{id}")),
        is_allowed,
        reasons: if is_allowed {
            json!([])
        } else {
            json!([{"title": "No", "reason": "blocked"}])
        },
        trace: json!([{"hook_id": "hk_a", "outcome": "allowed", "status": 200, "latency_ms": 1}]),
        latency_us: 1500,
        created_at: at(seconds),
    };
    store
        .record_decisions(vec![
            decision("acme", "hd_1", 1, true),
            decision("acme", "hd_2", 2, false),
            decision("beta", "hd_3", 3, true),
            decision("acme", "hd_4", 100, true),
        ])
        .await
        .expect("recorded");
    let first = store.list_decisions("acme", None, 2).await.expect("list");
    assert_eq!(ids(&first, |d| d.id.as_str()), ["hd_1", "hd_2"]);
    assert_eq!(first[1], decision("acme", "hd_2", 2, false));
    let rest = store
        .list_decisions("acme", Some("hd_2"), 10)
        .await
        .expect("list");
    assert_eq!(ids(&rest, |d| d.id.as_str()), ["hd_4"]);
    assert_eq!(
        ids(
            &store.list_decisions("beta", None, 10).await.expect("list"),
            |d| d.id.as_str()
        ),
        ["hd_3"]
    );
    assert_eq!(store.remove_expired(at(50), 10).await.expect("removed"), 3);
    assert_eq!(
        ids(
            &store.list_decisions("acme", None, 10).await.expect("list"),
            |d| d.id.as_str()
        ),
        ["hd_4"]
    );
}

pub async fn rate_limits_spread_claims_over_time(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let mut limited = endpoint("acme", "ep_1", &["*"], Ordering::None);
    limited.rate_limit_per_s = Some(2);
    store.create_endpoint(limited).await.expect("endpoint");
    let events: Vec<NewEvent> = (1..=5)
        .map(|n| event(&format!("e{n}"), "user.created", None))
        .collect();
    store
        .publish("acme", events, at(0))
        .await
        .expect("published");
    assert_eq!(
        claim_event_ids(&store, at(0)).await.len(),
        2,
        "a second's worth at once"
    );
    assert!(
        claim_event_ids(&store, at(0)).await.is_empty(),
        "then nothing until a token is back"
    );
    let next_due = store.next_due_at().await.expect("next").expect("some");
    assert!(
        next_due > at(0) && next_due <= at(1),
        "the held deliveries wait for the next token: {next_due}"
    );
    assert_eq!(claim_event_ids(&store, at(1)).await.len(), 2);
    assert_eq!(claim_event_ids(&store, at(2)).await.len(), 1);
}

fn source(tenant_id: &str, id: &str, kind: SourceKind) -> SourceRecord {
    SourceRecord {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        kind,
        name: Some(format!("{} in production", kind.as_str())),
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        header_name: None,
        username: None,
        accepted_topics: Vec::new(),
        lease_expires_at: None,
        n_accepted: 0,
        n_duplicates: 0,
        n_refused: 0,
        last_success_at: None,
        last_error_at: None,
        last_errors: Vec::new(),
        created_at: at(0),
        updated_at: at(0),
    }
}

pub async fn sources_are_per_tenant_and_count_their_outcomes(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let missing_tenant = store
        .create_source(source("ghost", "src_0", SourceKind::Authgear))
        .await;
    assert!(
        matches!(missing_tenant, Err(StoreError::NotFound(_))),
        "{missing_tenant:?}"
    );
    let mut asgardeo = source("acme", "src_b", SourceKind::Asgardeo);
    asgardeo.accepted_topics = vec![
        "myorg-USER_OPERATIONS".to_owned(),
        "myorg-LOGINS".to_owned(),
    ];
    asgardeo.created_at = at(2);
    let mut onewelcome = source("acme", "src_c", SourceKind::Onewelcome);
    onewelcome.username = Some("exporter".to_owned());
    onewelcome.name = None;
    onewelcome.created_at = at(3);
    for record in [
        source("acme", "src_a", SourceKind::Authgear),
        asgardeo.clone(),
        onewelcome.clone(),
        source("beta", "src_x", SourceKind::Authgear),
    ] {
        store.create_source(record).await.expect("source");
    }
    let listed = store.list_sources("acme").await.expect("list");
    assert_eq!(ids(&listed, |s| s.id.as_str()), ["src_a", "src_b", "src_c"]);
    assert_eq!(listed[1], asgardeo);
    assert_eq!(listed[2], onewelcome);
    assert_eq!(
        store.get_source("acme", "src_b").await.expect("get"),
        Some(asgardeo.clone())
    );
    // Another tenant's source is absent, by tenant; the ingest lookup by id alone finds it.
    assert!(
        store
            .get_source("beta", "src_b")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store.get_source_by_id("src_b").await.expect("by id"),
        Some(asgardeo.clone())
    );
    assert!(
        store
            .get_source_by_id("src_none")
            .await
            .expect("by id")
            .is_none()
    );

    // Outcomes add up, errors are kept newest first and capped.
    for (idx, seconds) in (10..10 + SOURCE_ERRORS_KEPT as i64 + 2).enumerate() {
        store
            .record_source_outcome(
                "src_b",
                SourceOutcome {
                    at: at(seconds),
                    n_accepted: 0,
                    n_duplicates: 0,
                    n_refused: 1,
                    error: Some(SourceErrorEntry {
                        at: at(seconds),
                        status: 401,
                        detail: format!("refusal {idx}"),
                    }),
                },
            )
            .await
            .expect("outcome");
    }
    store
        .record_source_outcome(
            "src_b",
            SourceOutcome {
                at: at(100),
                n_accepted: 3,
                n_duplicates: 1,
                n_refused: 0,
                error: None,
            },
        )
        .await
        .expect("outcome");
    let lease = Some(at(864_000));
    store
        .record_source_lease("src_b", lease)
        .await
        .expect("lease");
    // Counting a source that is gone is no error: a request may race with a delete.
    store
        .record_source_outcome(
            "src_none",
            SourceOutcome {
                at: at(1),
                n_accepted: 1,
                n_duplicates: 0,
                n_refused: 0,
                error: None,
            },
        )
        .await
        .expect("outcome of a missing source");

    let counted = store
        .get_source("acme", "src_b")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        (counted.n_accepted, counted.n_duplicates, counted.n_refused),
        (3, 1, SOURCE_ERRORS_KEPT as u64 + 2)
    );
    assert_eq!(counted.last_success_at, Some(at(100)));
    assert_eq!(
        counted.last_error_at,
        Some(at(10 + SOURCE_ERRORS_KEPT as i64 + 1))
    );
    assert_eq!(counted.lease_expires_at, lease);
    assert_eq!(counted.last_errors.len(), SOURCE_ERRORS_KEPT);
    assert_eq!(
        counted.last_errors[0].detail,
        format!("refusal {}", SOURCE_ERRORS_KEPT + 1)
    );
    assert_eq!(counted.last_errors[0].status, 401);
    assert_eq!(
        counted.last_errors[SOURCE_ERRORS_KEPT - 1].detail,
        "refusal 2"
    );

    // An update changes the settings and keeps the counters, errors and lease.
    let mut changed = asgardeo.clone();
    changed.name = Some("renamed".to_owned());
    changed.secret = "rotated-secret".to_owned();
    changed.accepted_topics = vec!["myorg-SESSIONS".to_owned()];
    changed.n_accepted = 999;
    changed.updated_at = at(200);
    let updated = store.update_source(changed).await.expect("updated");
    assert_eq!(updated.n_accepted, 3);
    let read_back = store
        .get_source("acme", "src_b")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(read_back, updated);
    assert_eq!(read_back.name.as_deref(), Some("renamed"));
    assert_eq!(read_back.secret, "rotated-secret");
    assert_eq!(read_back.accepted_topics, ["myorg-SESSIONS"]);
    assert_eq!(read_back.updated_at, at(200));
    assert_eq!(read_back.last_errors.len(), SOURCE_ERRORS_KEPT);
    assert_eq!(read_back.lease_expires_at, lease);
    store
        .record_source_lease("src_b", None)
        .await
        .expect("unsubscribed");
    assert_eq!(
        store
            .get_source("acme", "src_b")
            .await
            .expect("get")
            .expect("there")
            .lease_expires_at,
        None
    );

    // Another tenant can neither update nor delete it.
    let mut hijack = source("beta", "src_b", SourceKind::Authgear);
    hijack.secret = "stolen".to_owned();
    assert!(matches!(
        store.update_source(hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(!store.delete_source("beta", "src_b").await.expect("delete"));
    assert!(store.delete_source("acme", "src_b").await.expect("delete"));
    assert!(!store.delete_source("acme", "src_b").await.expect("delete"));
    assert!(
        store
            .get_source_by_id("src_b")
            .await
            .expect("by id")
            .is_none()
    );
    assert_eq!(
        ids(&store.list_sources("acme").await.expect("list"), |s| s
            .id
            .as_str()),
        ["src_a", "src_c"]
    );
}

pub async fn an_events_deliveries_are_listed_within_its_tenant(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    for (tenant_id, endpoint_id) in [("acme", "ep_a1"), ("acme", "ep_a2"), ("beta", "ep_b1")] {
        store
            .create_endpoint(endpoint(tenant_id, endpoint_id, &["*"], Ordering::None))
            .await
            .expect("endpoint");
    }
    store
        .publish(
            "acme",
            vec![
                event("e1", "user.created", None),
                event("e2", "user.deleted", None),
            ],
            at(1),
        )
        .await
        .expect("published");
    // The same event id in another tenant's log is another event.
    store
        .publish("beta", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    let acme_e1 = store
        .list_event_deliveries("acme", "e1")
        .await
        .expect("list");
    assert_eq!(
        ids(&acme_e1, |d| d.endpoint_id.as_str()),
        ["ep_a1", "ep_a2"]
    );
    assert!(acme_e1.iter().all(|delivery| delivery.event_id == "e1"));
    let beta_e1 = store
        .list_event_deliveries("beta", "e1")
        .await
        .expect("list");
    assert_eq!(ids(&beta_e1, |d| d.endpoint_id.as_str()), ["ep_b1"]);
    assert!(
        store
            .list_event_deliveries("beta", "e2")
            .await
            .expect("list")
            .is_empty()
    );
}

// ---- Shared Signals (issue 14) ------------------------------------------------------------------

pub async fn ssf_keys_streams_subjects_and_poll_queue(store: Arc<dyn Store>) {
    use crate::ssf::{SsfQueuedSet, SsfReceiverRecord, SsfSigningKeyRecord, SsfStreamRecord};
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let key = |tenant_id: &str, kid: &str, seconds: i64| SsfSigningKeyRecord {
        kid: kid.to_owned(),
        tenant_id: tenant_id.to_owned(),
        algorithm: "ES256".to_owned(),
        private_key: format!("private-{kid}"),
        created_at: at(seconds),
        retired_at: None,
    };
    let missing = store.create_ssf_signing_key(key("ghost", "k0", 0)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    for record in [
        key("acme", "k1", 1),
        key("acme", "k2", 2),
        key("beta", "k3", 3),
    ] {
        store.create_ssf_signing_key(record).await.expect("key");
    }
    let duplicate = store.create_ssf_signing_key(key("acme", "k1", 5)).await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(
        store
            .retire_ssf_signing_keys("acme", "k2", at(10))
            .await
            .expect("retire"),
        1
    );
    assert_eq!(
        store
            .retire_ssf_signing_keys("acme", "k2", at(11))
            .await
            .expect("retire again"),
        0
    );
    let keys = store.list_ssf_signing_keys("acme").await.expect("keys");
    assert_eq!(
        keys.iter().map(|key| key.kid.as_str()).collect::<Vec<_>>(),
        ["k2", "k1"]
    );
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].retired_at, Some(at(10)));
    assert_eq!(keys[1].private_key, "private-k1");

    let receiver = SsfReceiverRecord {
        id: "rcv_1".to_owned(),
        tenant_id: "acme".to_owned(),
        name: Some("RP".to_owned()),
        token_hash: "hash-1".to_owned(),
        may_receive_all_subjects: true,
        created_at: at(1),
    };
    store
        .create_ssf_receiver(receiver.clone())
        .await
        .expect("receiver");
    assert_eq!(
        store
            .find_ssf_receiver_by_token("hash-1")
            .await
            .expect("find"),
        Some(receiver.clone())
    );
    assert_eq!(
        store
            .find_ssf_receiver_by_token("hash-2")
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.list_ssf_receivers("acme").await.expect("list"),
        vec![receiver.clone()]
    );
    assert!(
        store
            .list_ssf_receivers("beta")
            .await
            .expect("list")
            .is_empty()
    );

    let stream = |id: &str, seconds: i64| SsfStreamRecord {
        id: id.to_owned(),
        tenant_id: "acme".to_owned(),
        receiver_id: "rcv_1".to_owned(),
        config: "{\"v\":1}".to_owned(),
        status: "enabled".to_owned(),
        status_reason: None,
        created_at: at(seconds),
        updated_at: at(seconds),
    };
    store
        .create_ssf_stream(stream("str_1", 1))
        .await
        .expect("stream");
    store
        .create_ssf_stream(stream("str_2", 2))
        .await
        .expect("stream");
    let mut paused = stream("str_1", 1);
    paused.status = "paused".to_owned();
    paused.status_reason = Some("maintenance".to_owned());
    paused.updated_at = at(5);
    store
        .update_ssf_stream(paused.clone())
        .await
        .expect("update");
    let mut foreign = paused.clone();
    foreign.tenant_id = "beta".to_owned();
    let refused = store.update_ssf_stream(foreign).await;
    assert!(
        matches!(refused, Err(StoreError::NotFound(_))),
        "{refused:?}"
    );
    let streams = store.list_ssf_streams("acme").await.expect("streams");
    assert_eq!(streams, vec![paused, stream("str_2", 2)]);
    assert!(
        store
            .list_ssf_streams("beta")
            .await
            .expect("streams")
            .is_empty()
    );

    store
        .add_ssf_subject("str_1", "subject-a")
        .await
        .expect("add");
    store
        .add_ssf_subject("str_1", "subject-a")
        .await
        .expect("add twice");
    store
        .add_ssf_subject("str_1", "subject-b")
        .await
        .expect("add");
    assert_eq!(
        store.list_ssf_subjects("str_1").await.expect("subjects"),
        ["subject-a", "subject-b"]
    );
    assert!(
        store
            .remove_ssf_subject("str_1", "subject-a")
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_ssf_subject("str_1", "subject-a")
            .await
            .expect("remove twice")
    );
    assert_eq!(
        store.list_ssf_subjects("str_1").await.expect("subjects"),
        ["subject-b"]
    );

    let queued = |stream_id: &str, jti: &str| SsfQueuedSet {
        stream_id: stream_id.to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{jti}"),
        created_at: at(7),
    };
    store
        .enqueue_ssf_sets(vec![
            queued("str_1", "j3"),
            queued("str_1", "j1"),
            queued("str_1", "j2"),
            queued("str_2", "j9"),
        ])
        .await
        .expect("enqueue");
    store
        .enqueue_ssf_sets(vec![queued("str_1", "j3")])
        .await
        .expect("enqueue again");
    let peeked = store.peek_ssf_sets("str_1", 2).await.expect("peek");
    assert_eq!(
        peeked
            .iter()
            .map(|set| set.jti.as_str())
            .collect::<Vec<_>>(),
        ["j3", "j1"],
        "in the order queued"
    );
    assert_eq!(peeked[0].token, "token-j3");
    assert_eq!(
        store
            .ack_ssf_sets(
                "str_1",
                vec!["j3".to_owned(), "j9".to_owned(), "nope".to_owned()]
            )
            .await
            .expect("ack"),
        1,
        "only the stream's own SETs are acknowledged"
    );
    let left = store.peek_ssf_sets("str_1", 10).await.expect("peek");
    assert_eq!(
        left.iter().map(|set| set.jti.as_str()).collect::<Vec<_>>(),
        ["j1", "j2"]
    );
    assert_eq!(store.clear_ssf_queue("str_1").await.expect("clear"), 2);
    assert!(
        store
            .peek_ssf_sets("str_1", 10)
            .await
            .expect("peek")
            .is_empty()
    );
    assert_eq!(
        store.peek_ssf_sets("str_2", 10).await.expect("peek").len(),
        1
    );

    assert!(
        !store
            .delete_ssf_stream("beta", "str_2")
            .await
            .expect("foreign delete")
    );
    assert!(
        store
            .delete_ssf_stream("acme", "str_2")
            .await
            .expect("delete")
    );
    assert!(
        store
            .peek_ssf_sets("str_2", 10)
            .await
            .expect("peek")
            .is_empty(),
        "the queue goes with the stream"
    );
    assert_eq!(
        store.list_ssf_streams("acme").await.expect("streams").len(),
        1
    );
}

// ---- Shared Signals durable delivery (issue 14) ---------------------------------------------------

pub async fn ssf_streams_follow_the_log_and_push_under_a_lease(store: Arc<dyn Store>) {
    use crate::ssf::{
        SsfPushAttemptRecord, SsfPushOutcome, SsfQueuedSet, SsfReceiverRecord, SsfStreamRecord,
    };
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let publish = |ids: &[&str]| {
        let events = ids
            .iter()
            .map(|id| event(id, "user.disabled", Some("u1")))
            .collect();
        let store = Arc::clone(&store);
        async move {
            store
                .publish("acme", events, at(1))
                .await
                .expect("published")
        }
    };
    publish(&["e1", "e2"]).await;
    store
        .create_ssf_receiver(SsfReceiverRecord {
            id: "rcv_1".to_owned(),
            tenant_id: "acme".to_owned(),
            name: None,
            token_hash: "hash-1".to_owned(),
            may_receive_all_subjects: false,
            created_at: at(1),
        })
        .await
        .expect("receiver");
    let mut stream = SsfStreamRecord {
        id: "str_1".to_owned(),
        tenant_id: "acme".to_owned(),
        receiver_id: "rcv_1".to_owned(),
        config: "{\"v\":1}".to_owned(),
        status: "enabled".to_owned(),
        status_reason: None,
        created_at: at(1),
        updated_at: at(1),
    };
    store
        .create_ssf_stream(stream.clone())
        .await
        .expect("stream");
    let behind = |limit: usize| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_ssf_streams_behind(limit)
                .await
                .expect("behind")
                .into_iter()
                .map(|behind| (behind.stream.id, behind.cursor_seq, behind.log_end_seq))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(behind(10).await, [], "a new stream starts at the log's end");

    publish(&["e3", "e4"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 2, 4)]);
    let set = |jti: &str, seconds: i64| SsfQueuedSet {
        stream_id: "str_1".to_owned(),
        jti: jti.to_owned(),
        token: format!("token-{jti}"),
        created_at: at(seconds),
    };
    assert!(
        store
            .advance_ssf_stream("str_1", 2, 4, vec![set("a", 5), set("b", 5)])
            .await
            .expect("advance")
    );
    assert!(
        !store
            .advance_ssf_stream("str_1", 2, 4, vec![set("a2", 5)])
            .await
            .expect("advance from a stale cursor"),
        "a second worker from the same cursor changes nothing"
    );
    assert_eq!(behind(10).await, []);
    let queued: Vec<String> = store
        .peek_ssf_sets("str_1", 10)
        .await
        .expect("peek")
        .into_iter()
        .map(|set| set.jti)
        .collect();
    assert_eq!(queued, ["a", "b"]);

    // Pushes: the head only, under a lease; a retry waits, then the next SET comes.
    let heads = |now: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .lease_ssf_push_heads(at(now), at(now + 60), 10)
                .await
                .expect("lease")
                .into_iter()
                .map(|head| (head.set.jti, head.n_attempts))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(heads(10).await, [("a".to_owned(), 0)]);
    assert_eq!(heads(10).await, [], "a leased stream is not leased twice");
    let attempt =
        |id: &str, jti: &str, seconds: i64, outcome: SsfPushOutcome| SsfPushAttemptRecord {
            id: id.to_owned(),
            tenant_id: "acme".to_owned(),
            stream_id: "str_1".to_owned(),
            jti: jti.to_owned(),
            attempted_at: at(seconds),
            status_code: Some(503),
            latency_ms: 12,
            error: Some("status 503".to_owned()),
            outcome,
        };
    let retry = SsfPushOutcome::Retry {
        next_attempt_at: at(20),
    };
    store
        .record_ssf_push_attempt(attempt("att_1", "a", 10, retry))
        .await
        .expect("record");
    assert_eq!(heads(15).await, [], "the head waits for its retry time");
    assert_eq!(heads(20).await, [("a".to_owned(), 1)]);
    store
        .record_ssf_push_attempt(attempt("att_2", "a", 21, SsfPushOutcome::Accepted))
        .await
        .expect("record");
    assert_eq!(heads(22).await, [("b".to_owned(), 0)]);
    store
        .record_ssf_push_attempt(attempt("att_3", "b", 23, SsfPushOutcome::Rejected))
        .await
        .expect("record");
    assert_eq!(heads(24).await, []);
    let attempts = store
        .list_ssf_push_attempts("acme", "str_1", 10)
        .await
        .expect("attempts");
    assert_eq!(
        attempts
            .iter()
            .map(|attempt| (attempt.id.as_str(), attempt.outcome))
            .collect::<Vec<_>>(),
        [
            ("att_3", SsfPushOutcome::Rejected),
            ("att_2", SsfPushOutcome::Accepted),
            ("att_1", retry),
        ]
    );
    assert_eq!(attempts[2], attempt("att_1", "a", 10, retry));
    // Retention: attempts made before the cutoff go, in batches.
    assert_eq!(
        store
            .remove_expired_ssf_push_attempts(at(22), 1)
            .await
            .expect("retention"),
        1
    );
    assert_eq!(
        store
            .remove_expired_ssf_push_attempts(at(22), 10)
            .await
            .expect("retention"),
        1
    );
    let kept = store
        .list_ssf_push_attempts("acme", "str_1", 10)
        .await
        .expect("attempts");
    assert_eq!(
        kept.iter()
            .map(|attempt| attempt.id.as_str())
            .collect::<Vec<_>>(),
        ["att_3"]
    );
    assert!(
        store
            .list_ssf_push_attempts("beta", "str_1", 10)
            .await
            .expect("attempts")
            .is_empty()
    );

    // A poll stream's SETs are parked (never pushed) until scheduled again.
    store
        .enqueue_ssf_sets(vec![set("c", 30)])
        .await
        .expect("enqueue");
    store.schedule_ssf_queue("str_1", None).await.expect("park");
    assert_eq!(heads(40).await, []);
    store
        .schedule_ssf_queue("str_1", Some(at(41)))
        .await
        .expect("unpark");
    assert_eq!(heads(41).await, [("c".to_owned(), 0)]);
    store.schedule_ssf_queue("str_1", None).await.expect("park");

    // Paused: still follows the log (its SETs are kept) but nothing is pushed.
    stream.status = "paused".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("pause");
    publish(&["e5"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 4, 5)]);
    store
        .schedule_ssf_queue("str_1", Some(at(50)))
        .await
        .expect("due");
    assert_eq!(heads(50).await, [], "a paused stream is not pushed");

    // Disabled drops: it does not follow the log, and enabled again it starts at the log's end.
    stream.status = "disabled".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("disable");
    publish(&["e6"]).await;
    assert_eq!(behind(10).await, []);
    assert!(
        !store
            .advance_ssf_stream("str_1", 5, 6, vec![])
            .await
            .expect("advance"),
        "a disabled stream's cursor does not move"
    );
    stream.status = "enabled".to_owned();
    store
        .update_ssf_stream(stream.clone())
        .await
        .expect("enable");
    assert_eq!(behind(10).await, []);
    publish(&["e7"]).await;
    assert_eq!(behind(10).await, [("str_1".to_owned(), 6, 7)]);
}

/// A claim that finds an endpoint with nothing left to do may stop looking at it (the SQLite
/// store keeps only endpoints with unfinished work in view): whatever makes work due again later
/// (a replay, a new event, a retry that falls due) must still be claimed, and idle endpoints
/// beside it change nothing.
pub async fn work_that_returns_after_an_idle_claim_is_claimed(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["user.created"], Ordering::None))
        .await
        .expect("endpoint");
    for index in 0..20 {
        store
            .create_endpoint(endpoint(
                "acme",
                &format!("ep_idle_{index}"),
                &["user.deleted"],
                Ordering::None,
            ))
            .await
            .expect("idle endpoint");
    }
    let lease = Duration::seconds(30);
    store
        .publish("acme", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    let claimed = store.claim_due(at(1), 10, lease).await.expect("claim");
    assert_eq!(ids(&claimed, |claim| claim.event.id.as_str()), ["e1"]);
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claimed[0].delivery_id,
            1,
            NextStep::Exhausted,
            at(2),
        ))
        .await
        .expect("recorded");
    assert!(
        claim_event_ids(&store, at(3)).await.is_empty(),
        "nothing is left"
    );

    // A replay reopens a finished delivery.
    let replayed = store
        .replay("acme", "ep_1", &ReplaySelector::Failed, at(4))
        .await
        .expect("replay");
    assert_eq!(replayed, 1);
    let claimed = store.claim_due(at(4), 10, lease).await.expect("claim");
    assert_eq!(
        ids(&claimed, |claim| claim.event.id.as_str()),
        ["e1"],
        "replayed work is claimed"
    );
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claimed[0].delivery_id,
            2,
            NextStep::Delivered,
            at(5),
        ))
        .await
        .expect("recorded");
    assert!(claim_event_ids(&store, at(5)).await.is_empty());

    // A new event after the endpoint went idle.
    store
        .publish("acme", vec![event("e2", "user.created", None)], at(6))
        .await
        .expect("published");
    let claimed = store.claim_due(at(6), 10, lease).await.expect("claim");
    assert_eq!(
        ids(&claimed, |claim| claim.event.id.as_str()),
        ["e2"],
        "new work is claimed"
    );

    // A retry scheduled for later: not due yet, claimed once it is.
    store
        .record_attempt(outcome(
            "acme",
            "ep_1",
            &claimed[0].delivery_id,
            1,
            NextStep::RetryAt(at(20)),
            at(7),
        ))
        .await
        .expect("recorded");
    assert!(
        claim_event_ids(&store, at(8)).await.is_empty(),
        "not due before 20"
    );
    assert_eq!(
        store.next_due_at().await.expect("next due"),
        Some(at(20)),
        "the retry is still known to be coming"
    );
    assert_eq!(
        claim_event_ids(&store, at(20)).await,
        ["e2"],
        "the retry falls due"
    );
}

// --- the console's overview (issue 15) ---

pub async fn attempts_are_counted_per_minute_within_the_tenant(store: Arc<dyn Store>) {
    use crate::models::AttemptMinute;
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    store
        .create_endpoint(endpoint("acme", "ep_a", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .create_endpoint(endpoint("beta", "ep_b", &["*"], Ordering::None))
        .await
        .expect("endpoint");
    let acme_events = ["e1", "e2", "e3"].map(|id| event(id, "user.created", None));
    store
        .publish("acme", acme_events.to_vec(), at(1))
        .await
        .expect("published");
    store
        .publish("beta", vec![event("b1", "user.created", None)], at(1))
        .await
        .expect("published");
    let claims = store
        .claim_due(at(1), 100, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(claims.len(), 4);
    for claim in &claims {
        let tenant_id = claim.endpoint.tenant_id.as_str();
        let endpoint_id = claim.endpoint.id.as_str();
        let id = claim.delivery_id.as_str();
        let attempt = match claim.event.id.as_str() {
            "e1" => outcome(
                tenant_id,
                endpoint_id,
                id,
                1,
                NextStep::RetryAt(at(60)),
                at(5),
            ),
            "e2" => outcome(tenant_id, endpoint_id, id, 1, NextStep::Delivered, at(10)),
            "e3" => {
                // No answer at all (a refused connection): a failure without a status.
                let mut refused = outcome(
                    tenant_id,
                    endpoint_id,
                    id,
                    1,
                    NextStep::RetryAt(at(900)),
                    at(30),
                );
                refused.attempt.status = None;
                refused.attempt.error = Some("connection refused".to_owned());
                refused
            }
            _ => outcome(
                tenant_id,
                endpoint_id,
                id,
                1,
                NextStep::RetryAt(at(900)),
                at(20),
            ),
        };
        store.record_attempt(attempt).await.expect("recorded");
    }
    let again = store
        .claim_due(at(60), 100, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(ids(&again, |claim| claim.event.id.as_str()), ["e1"]);
    store
        .record_attempt(outcome(
            "acme",
            "ep_a",
            &again[0].delivery_id,
            2,
            NextStep::Delivered,
            at(60),
        ))
        .await
        .expect("recorded");

    let minute = |start: i64, n_attempts: u64, n_failed: u64| AttemptMinute {
        minute: at(start),
        n_attempts,
        n_failed,
    };
    assert_eq!(
        store
            .count_attempts_per_minute("acme", at(0))
            .await
            .expect("counted"),
        [minute(0, 3, 2), minute(60, 1, 0)],
        "a minute each, oldest first; no status is a failure"
    );
    assert_eq!(
        store
            .count_attempts_per_minute("acme", at(60))
            .await
            .expect("counted"),
        [minute(60, 1, 0)],
        "from `since` on, an attempt started at `since` included"
    );
    assert_eq!(
        store
            .count_attempts_per_minute("beta", at(0))
            .await
            .expect("counted"),
        [minute(0, 1, 1)],
        "another tenant's attempts are not counted"
    );
    assert!(
        store
            .count_attempts_per_minute("nobody", at(0))
            .await
            .expect("counted")
            .is_empty()
    );
}

// ---- Standard Webhooks `v1a` (issue 14) ------------------------------------------------------

pub async fn endpoints_keep_their_signature_scheme(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    let mut record = endpoint("acme", "ep_v1a", &["*"], Ordering::None);
    record.signature_scheme = SignatureScheme::V1a;
    store
        .create_endpoint(record.clone())
        .await
        .expect("created");
    let stored = store.get_endpoint("acme", "ep_v1a").await.expect("read");
    assert_eq!(
        stored.map(|stored| stored.signature_scheme),
        Some(SignatureScheme::V1a)
    );
    record.signature_scheme = SignatureScheme::V1aAndV1;
    store.update_endpoint(record).await.expect("updated");
    let listed = store.list_endpoints("acme").await.expect("listed");
    assert_eq!(
        listed
            .iter()
            .map(|listed| listed.signature_scheme)
            .collect::<Vec<_>>(),
        [SignatureScheme::V1aAndV1]
    );
    // What the dispatcher is handed carries it too.
    store
        .publish("acme", vec![event("e1", "user.created", None)], at(1))
        .await
        .expect("published");
    let claimed = store
        .claim_due(at(2), 10, Duration::seconds(60))
        .await
        .expect("claimed");
    assert_eq!(
        claimed
            .iter()
            .map(|claimed| claimed.endpoint.signature_scheme)
            .collect::<Vec<_>>(),
        [SignatureScheme::V1aAndV1]
    );
}

pub async fn a_signing_key_is_retired_alone_within_its_tenant(store: Arc<dyn Store>) {
    use crate::ssf::SsfSigningKeyRecord;
    tenant(&store, "acme").await;
    tenant(&store, "beta").await;
    let key = |tenant_id: &str, kid: &str, algorithm: &str, seconds: i64| SsfSigningKeyRecord {
        kid: kid.to_owned(),
        tenant_id: tenant_id.to_owned(),
        algorithm: algorithm.to_owned(),
        private_key: format!("private-{kid}"),
        created_at: at(seconds),
        retired_at: None,
    };
    for record in [
        key("acme", "set_key", "ES256", 1),
        key("acme", "webhook_key", "EdDSA", 2),
        key("beta", "beta_key", "EdDSA", 3),
    ] {
        store.create_ssf_signing_key(record).await.expect("key");
    }
    let retire = |tenant_id: &'static str, kid: &'static str, seconds: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .retire_ssf_signing_key(tenant_id, kid, at(seconds))
                .await
                .expect("retire")
        }
    };
    assert!(
        !retire("acme", "beta_key", 10).await,
        "another tenant's key is absent"
    );
    assert!(!retire("acme", "no_such_key", 10).await);
    assert!(retire("acme", "webhook_key", 10).await);
    assert!(
        !retire("acme", "webhook_key", 11).await,
        "already retired: unchanged"
    );
    let retired_at = |keys: &[SsfSigningKeyRecord], kid: &str| {
        keys.iter()
            .find(|key| key.kid == kid)
            .map(|key| key.retired_at)
    };
    let acme = store.list_ssf_signing_keys("acme").await.expect("keys");
    assert_eq!(retired_at(&acme, "webhook_key"), Some(Some(at(10))));
    assert_eq!(
        retired_at(&acme, "set_key"),
        Some(None),
        "the other key still signs"
    );
    let beta = store.list_ssf_signing_keys("beta").await.expect("keys");
    assert_eq!(retired_at(&beta, "beta_key"), Some(None));
}

// --- issue 17 (seams): operational events written with their attempt ---

/// The operational events of an attempt are in the log, numbered and delivered, as soon as
/// `record_attempt` returns: no second call publishes them, so no crash can fall between the two.
pub async fn an_attempt_publishes_its_operational_events_in_its_own_transaction(
    store: Arc<dyn Store>,
) {
    use crate::operational::{AttemptReport, events_after_attempt};

    tenant(&store, "acme").await;
    // Subscribed to Herald's events too: disabled by the attempt, it must get none of them.
    store
        .create_endpoint(endpoint(
            "acme",
            "ep_gone",
            &["user.*", "herald.*"],
            Ordering::None,
        ))
        .await
        .expect("endpoint");
    store
        .create_endpoint(endpoint("acme", "ep_ops", &["herald.*"], Ordering::None))
        .await
        .expect("endpoint");
    store
        .publish(
            "acme",
            vec![event("e1", "user.created", Some("alice"))],
            at(1),
        )
        .await
        .expect("published");
    let claim = store
        .claim_due(at(1), 10, Duration::seconds(30))
        .await
        .expect("claim")
        .remove(0);
    let mut gone = outcome(
        "acme",
        "ep_gone",
        &claim.delivery_id,
        1,
        NextStep::Exhausted,
        at(2),
    );
    gone.disable_endpoint = Some(DisableReason::Gone);
    gone.operational_events = events_after_attempt(&AttemptReport {
        delivery: &claim,
        next: NextStep::Exhausted,
        disable_reason: Some(DisableReason::Gone),
        last_status: Some(410),
        last_error: Some("HTTP 410"),
        n_attempts: 1,
        now: at(2),
    });
    let published = store.record_attempt(gone).await.expect("recorded");
    assert_eq!(
        published
            .iter()
            .map(|outcome| (outcome.seq, outcome.duplicate, outcome.n_deliveries))
            .collect::<Vec<_>>(),
        [(2, false, 1), (3, false, 1)],
        "numbered after e1 and delivered to ep_ops alone"
    );

    let logged = store
        .list_events(
            "acme",
            &EventFilter {
                after_seq: 1,
                limit: 10,
                ..EventFilter::default()
            },
        )
        .await
        .expect("events");
    let logged_types: Vec<&str> = logged
        .iter()
        .map(|stored| stored.event.event_type.as_str())
        .collect();
    assert_eq!(
        logged_types,
        ["herald.endpoint.disabled", "herald.delivery.exhausted"]
    );
    assert!(
        logged
            .iter()
            .all(|stored| stored.event.taxonomy == Taxonomy::Herald)
    );
    assert_eq!(
        logged[1].event.payload["delivery_id"],
        claim.delivery_id.as_str()
    );
    assert_eq!(logged[1].event.payload["event_id"], "e1");
    assert_eq!(logged[0].event.payload["endpoint_id"], "ep_gone");
    assert_eq!(logged[0].event.occurred_at, at(2));
    let gone_endpoint = store
        .get_endpoint("acme", "ep_gone")
        .await
        .expect("get")
        .expect("exists");
    assert!(!gone_endpoint.enabled, "disabled in the same call");

    // Due at once, for the subscriber of Herald's events only.
    let operational = store
        .claim_due(at(2), 10, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(
        ids(&operational, |claim| claim.endpoint.id.as_str()),
        ["ep_ops", "ep_ops"]
    );

    // A delivery of Herald's own events raises none, however it ends.
    let herald_claim = &operational[0];
    let mut exhausted = outcome(
        "acme",
        "ep_ops",
        &herald_claim.delivery_id,
        1,
        NextStep::Exhausted,
        at(3),
    );
    exhausted.operational_events = events_after_attempt(&AttemptReport {
        delivery: herald_claim,
        next: NextStep::Exhausted,
        disable_reason: Some(DisableReason::FailingTooLong),
        last_status: Some(500),
        last_error: Some("HTTP 500"),
        n_attempts: 1,
        now: at(3),
    });
    assert!(exhausted.operational_events.is_empty());
    assert!(
        store
            .record_attempt(exhausted)
            .await
            .expect("recorded")
            .is_empty()
    );
    let all = store
        .list_events(
            "acme",
            &EventFilter {
                after_seq: 0,
                limit: 10,
                ..EventFilter::default()
            },
        )
        .await
        .expect("events");
    assert_eq!(all.len(), 3, "nothing more was logged");
}

/// One subject's backlog, waiting behind its first delivery in flight, never holds up another
/// subject's head, however long that backlog is (`planner::SubjectLookAhead`).
pub async fn a_subject_claim_reads_past_any_number_of_blocked_deliveries(store: Arc<dyn Store>) {
    tenant(&store, "acme").await;
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::Subject))
        .await
        .expect("endpoint");
    let backlog: Vec<NewEvent> = (1..=10)
        .map(|n| event(&format!("a{n}"), "user.updated", Some("alice")))
        .collect();
    store
        .publish("acme", backlog, at(1))
        .await
        .expect("published");
    store
        .publish(
            "acme",
            vec![event("b1", "user.updated", Some("bob"))],
            at(2),
        )
        .await
        .expect("published");
    let first = store
        .claim_due(at(3), 1, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(ids(&first, |claim| claim.event.id.as_str()), ["a1"]);
    let next = store
        .claim_due(at(3), 1, Duration::seconds(30))
        .await
        .expect("claim");
    assert_eq!(
        ids(&next, |claim| claim.event.id.as_str()),
        ["b1"],
        "bob's head is found behind alice's nine waiting deliveries"
    );
}
