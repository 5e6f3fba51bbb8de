//! Publishing events: order, deduplication, fan-out to endpoints, and reading the log back.

use std::sync::Arc;

use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::DeliveryState;
use serde_json::json;

use crate::models::{DeliveryFilter, EventFilter, NewEvent, Ordering};
use crate::{Store, StoreError};

use super::{at, endpoint, endpoint_id, event, ids, tenant};

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
        endpoint_id: Some(self::endpoint_id(endpoint_id)),
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
