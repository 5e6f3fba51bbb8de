//! Group commit: publishes and attempt outcomes that arrive together share a transaction, and
//! each caller still gets the answer it would have got alone.
//!
//! Many callers are started at once so that they queue behind one another; whichever way they
//! end up grouped, every assertion here must hold.

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::ids::DeliveryId;
use herald_store::conformance::{endpoint, endpoint_id, event};
use herald_store::models::{
    AttemptOutcome, AttemptRecord, DeliveryFilter, NextStep, Ordering, Published, Tenant,
};
use herald_store::prelude::*;
use herald_store_postgres::PostgresStore;
use time::{Duration, OffsetDateTime};
use tokio::task::JoinSet;

use super::fresh_database;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

/// A fresh store with tenant `t1` and one endpoint `ep_1` that takes every event, up to 64 at a
/// time.
async fn store_with_endpoint() -> Arc<PostgresStore> {
    let store = Arc::new(
        PostgresStore::connect(&fresh_database().await, 8)
            .await
            .expect("connects"),
    );
    store
        .create_tenant(Tenant {
            id: "t1".into(),
            name: "Tenant 1".into(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant created");
    let mut takes_everything = endpoint("t1", "ep_1", &["*"], Ordering::None);
    takes_everything.max_concurrency = 64;
    store
        .create_endpoint(takes_everything)
        .await
        .expect("endpoint created");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_queued_together_answer_as_if_alone() {
    let store = store_with_endpoint().await;
    // Every id is published by two callers at once, and caller 0 also repeats an id within its
    // own request: one of each pair is the original, the other its duplicate.
    let mut callers = JoinSet::new();
    for caller in 0..40 {
        let store = store.clone();
        let mut events = vec![event(
            &format!("evt_{}", caller % 20),
            "user.created",
            Some("u"),
        )];
        if caller == 0 {
            events.push(event("evt_0", "user.created", Some("u")));
        }
        callers.spawn(async move { store.publish("t1", events, at(1)).await });
    }
    let mut answers: Vec<Published> = Vec::new();
    while let Some(joined) = callers.join_next().await {
        answers.extend(joined.expect("caller ran").expect("publish succeeded"));
    }
    assert_eq!(answers.len(), 41);

    let originals: HashMap<&str, &Published> = answers
        .iter()
        .filter(|answer| !answer.duplicate)
        .map(|answer| (answer.id.as_str(), answer))
        .collect();
    assert_eq!(originals.len(), 20, "one original per id: {answers:#?}");
    let mut seqs: Vec<i64> = originals.values().map(|original| original.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "gap-free seqs from 1");
    for answer in &answers {
        let original = originals[answer.id.as_str()];
        assert_eq!(
            answer.seq, original.seq,
            "{answer:?} carries its original's seq"
        );
        let expected_deliveries = if answer.duplicate { 0 } else { 1 };
        assert_eq!(answer.n_deliveries, expected_deliveries, "{answer:?}");
    }
    let deliveries = store
        .list_deliveries(
            "t1",
            &DeliveryFilter {
                limit: 100,
                ..DeliveryFilter::default()
            },
        )
        .await
        .expect("deliveries listed");
    assert_eq!(deliveries.len(), 20, "one delivery per original event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publish_the_database_rejects_fails_alone() {
    let store = store_with_endpoint().await;
    let mut callers = JoinSet::new();
    for caller in 0..30 {
        let store = store.clone();
        // PostgreSQL text cannot hold a NUL character, so this one insert fails.
        let subject = if caller == 15 { "bad\u{0}subject" } else { "u" };
        let events = vec![event(
            &format!("evt_{caller}"),
            "user.created",
            Some(subject),
        )];
        callers.spawn(async move { (caller, store.publish("t1", events, at(1)).await) });
    }
    while let Some(joined) = callers.join_next().await {
        let (caller, answer) = joined.expect("caller ran");
        if caller == 15 {
            assert!(answer.is_err(), "the NUL subject was rejected: {answer:?}");
        } else {
            let published = answer.unwrap_or_else(|error| panic!("caller {caller}: {error}"));
            assert!(!published[0].duplicate);
        }
    }
    for caller in (0..30).filter(|caller| *caller != 15) {
        let stored = store
            .get_event("t1", &format!("evt_{caller}"))
            .await
            .expect("event read");
        assert!(stored.is_some(), "evt_{caller} was stored");
    }
    assert!(
        store
            .get_event("t1", "evt_15")
            .await
            .expect("read")
            .is_none()
    );
}

fn outcome(delivery_id: &DeliveryId, next: NextStep, now: OffsetDateTime) -> AttemptOutcome {
    AttemptOutcome {
        tenant_id: "t1".into(),
        endpoint_id: endpoint_id("ep_1"),
        attempt: AttemptRecord {
            delivery_id: delivery_id.clone(),
            attempt_number: 1,
            started_at: now,
            status: Some(if next == NextStep::Delivered {
                204
            } else {
                503
            }),
            latency_ms: 1,
            response_excerpt: None,
            error: None,
        },
        next,
        disable_endpoint: None,
        now,
        operational_events: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_recorded_together_all_land_and_a_bad_one_fails_alone() {
    let store = store_with_endpoint().await;
    let events = (0..30)
        .map(|n| event(&format!("evt_{n}"), "user.created", Some("u")))
        .collect();
    store.publish("t1", events, at(1)).await.expect("published");
    let claimed = store
        .claim_due(at(2), 100, Duration::seconds(30))
        .await
        .expect("claimed");
    assert_eq!(claimed.len(), 30);

    let mut recorders = JoinSet::new();
    for (n, claim) in claimed.iter().enumerate() {
        let store = store.clone();
        let next = if n % 3 == 0 {
            NextStep::RetryAt(at(60))
        } else {
            NextStep::Delivered
        };
        let recorded = outcome(&claim.delivery_id, next, at(3));
        recorders.spawn(async move { store.record_attempt(recorded).await });
    }
    // An attempt of a delivery that does not exist is refused (its attempt row would be an orphan).
    let unknown = store.clone();
    let bad = tokio::spawn(async move {
        unknown
            .record_attempt(outcome(&DeliveryId::new(), NextStep::Delivered, at(3)))
            .await
    });
    while let Some(joined) = recorders.join_next().await {
        joined.expect("recorder ran").expect("attempt recorded");
    }
    assert!(
        bad.await.expect("ran").is_err(),
        "the unknown delivery's attempt failed"
    );

    for (n, claim) in claimed.iter().enumerate() {
        let delivery = store
            .get_delivery("t1", claim.delivery_id.as_str())
            .await
            .expect("read")
            .expect("exists");
        let expected = if n % 3 == 0 { "scheduled" } else { "delivered" };
        assert_eq!(delivery.state.as_str(), expected, "{delivery:?}");
        assert_eq!(delivery.n_attempts, 1);
        let attempts = store
            .list_attempts("t1", claim.delivery_id.as_str())
            .await
            .expect("attempts listed");
        assert_eq!(attempts.len(), 1);
    }
}
