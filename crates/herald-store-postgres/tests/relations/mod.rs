//! The relations the store keeps itself, now that the hot tables have no foreign keys
//! (migration 0011): deleting an endpoint or expiring an event takes its deliveries and their
//! attempts along, an attempt for a delivery that is gone is refused, and a replay to a
//! deleted endpoint creates nothing. Rows are counted in the database itself.

use herald_core::ids::{DeliveryId, EndpointId};
use herald_store::StoreError;
use herald_store::conformance::{endpoint, event};
use herald_store::models::{
    AttemptOutcome, AttemptRecord, NextStep, Ordering, ReplaySelector, Tenant,
};
use herald_store::prelude::*;
use herald_store_postgres::PostgresStore;
use time::{Duration, OffsetDateTime};
use tokio_postgres::NoTls;

use super::fresh_database;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// A store with tenant `t1` and endpoints `ep_1` and `ep_2` taking every event, and a plain
/// connection to the same database for counting rows.
async fn two_endpoints() -> (PostgresStore, tokio_postgres::Client) {
    let url = fresh_database().await;
    let store = PostgresStore::connect(&url, 4).await.expect("connects");
    store
        .create_tenant(Tenant {
            id: "t1".into(),
            name: "Tenant 1".into(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant created");
    for id in ["ep_1", "ep_2"] {
        store
            .create_endpoint(endpoint("t1", id, &["*"], Ordering::None))
            .await
            .expect("endpoint created");
    }
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    (store, client)
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect("counted").get(0)
}

fn failed_attempt(
    endpoint_id: &EndpointId,
    delivery_id: &DeliveryId,
    now: OffsetDateTime,
) -> AttemptOutcome {
    AttemptOutcome {
        tenant_id: "t1".to_owned(),
        endpoint_id: endpoint_id.clone(),
        attempt: AttemptRecord {
            delivery_id: delivery_id.clone(),
            attempt_number: 1,
            started_at: now,
            status: Some(500),
            latency_ms: 1,
            response_excerpt: None,
            error: Some("HTTP 500".into()),
        },
        next: NextStep::RetryAt(now + Duration::hours(1)),
        disable_endpoint: None,
        now,
        operational_events: Vec::new(),
    }
}

/// Claims everything due and records a failed attempt for each, retried an hour later.
async fn attempt_everything(store: &PostgresStore, now: OffsetDateTime) {
    let claimed = store
        .claim_due(now, 100, Duration::minutes(1))
        .await
        .expect("claimed");
    assert!(!claimed.is_empty(), "something to attempt");
    for delivery in claimed {
        store
            .record_attempt(failed_attempt(
                &delivery.endpoint.id,
                &delivery.delivery_id,
                now,
            ))
            .await
            .expect("recorded");
    }
}

const ORPHAN_ATTEMPTS: &str = "SELECT count(*) FROM attempts a
     WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)";

#[tokio::test]
async fn deleting_an_endpoint_takes_its_deliveries_and_attempts() {
    let (store, client) = two_endpoints().await;
    store
        .publish(
            "t1",
            vec![event("evt_1", "user.created", Some("u1"))],
            at(1),
        )
        .await
        .expect("published");
    attempt_everything(&store, at(2)).await;
    assert_eq!(count(&client, "SELECT count(*) FROM deliveries").await, 2);
    assert_eq!(count(&client, "SELECT count(*) FROM attempts").await, 2);

    assert!(store.delete_endpoint("t1", "ep_1").await.expect("deleted"));

    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM deliveries WHERE endpoint_id = 'ep_1'"
        )
        .await,
        0
    );
    assert_eq!(count(&client, ORPHAN_ATTEMPTS).await, 0);
    assert_eq!(count(&client, "SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(count(&client, "SELECT count(*) FROM attempts").await, 1);
}

#[tokio::test]
async fn an_attempt_for_a_delivery_deleted_meanwhile_is_refused() {
    let (store, client) = two_endpoints().await;
    store
        .publish(
            "t1",
            vec![event("evt_1", "user.created", Some("u1"))],
            at(1),
        )
        .await
        .expect("published");
    let claimed = store
        .claim_due(at(2), 100, Duration::minutes(1))
        .await
        .expect("claimed");
    let on_ep1 = claimed
        .iter()
        .find(|delivery| delivery.endpoint.id.as_str() == "ep_1")
        .expect("ep_1's delivery claimed");
    // The endpoint is deleted while its delivery is being attempted.
    assert!(store.delete_endpoint("t1", "ep_1").await.expect("deleted"));
    let recorded = store
        .record_attempt(failed_attempt(
            &on_ep1.endpoint.id,
            &on_ep1.delivery_id,
            at(3),
        ))
        .await;
    assert!(recorded.is_err(), "its delivery is gone: {recorded:?}");
    assert_eq!(count(&client, "SELECT count(*) FROM attempts").await, 0);
    assert_eq!(count(&client, "SELECT count(*) FROM deliveries").await, 1);
}

#[tokio::test]
async fn retention_takes_the_deliveries_and_attempts_of_the_events_it_removes() {
    let (store, client) = two_endpoints().await;
    store
        .publish(
            "t1",
            vec![event("evt_old", "user.created", Some("u1"))],
            at(1),
        )
        .await
        .expect("published");
    attempt_everything(&store, at(2)).await;
    store
        .publish(
            "t1",
            vec![event("evt_new", "user.created", Some("u1"))],
            at(100),
        )
        .await
        .expect("published");

    let removed = store.remove_expired(at(50), 100).await.expect("removed");

    assert_eq!(removed, 1, "the old event");
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM deliveries WHERE event_id = 'evt_old'"
        )
        .await,
        0
    );
    assert_eq!(count(&client, "SELECT count(*) FROM attempts").await, 0);
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM deliveries WHERE event_id = 'evt_new'"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_replay_to_a_deleted_endpoint_creates_nothing() {
    let (store, client) = two_endpoints().await;
    store
        .publish(
            "t1",
            vec![event("evt_1", "user.created", Some("u1"))],
            at(1),
        )
        .await
        .expect("published");
    assert!(store.delete_endpoint("t1", "ep_1").await.expect("deleted"));
    let replayed = store
        .replay("t1", "ep_1", &ReplaySelector::SinceSeq(0), at(2))
        .await;
    assert!(
        matches!(replayed, Err(StoreError::NotFound(_))),
        "{replayed:?}"
    );
    assert_eq!(
        count(
            &client,
            "SELECT count(*) FROM deliveries WHERE endpoint_id = 'ep_1'"
        )
        .await,
        0
    );
}
