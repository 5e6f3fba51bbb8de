//! Retention of old events and erasure of one subject's events.

use std::sync::Arc;

use herald_core::delivery::DeliveryState;
use serde_json::json;

use crate::Store;
use crate::models::{DeliveryFilter, EventFilter, Ordering, ReplaySelector};

use super::{at, claim_event_ids, endpoint, event, ids, tenant};

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
