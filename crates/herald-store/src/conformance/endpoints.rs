//! Endpoints: update and delete, disabling and pausing, signature schemes and signing keys.

use std::sync::Arc;

use herald_core::delivery::{DeliveryState, DisableReason};
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use time::Duration;

use crate::models::{DeliveryFilter, NextStep, Ordering};
use crate::{Store, StoreError};

use super::{at, claim_event_ids, endpoint, endpoint_id, event, ids, outcome, tenant};

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
                endpoint_id: Some(endpoint_id("ep_paused")),
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
