//! Delivery attempts: the states they move a delivery through, retries, replays and counts.

use std::sync::Arc;

use herald_core::delivery::DeliveryState;
use time::Duration;

use crate::models::{DeliveryFilter, NextStep, Ordering, ReplaySelector};
use crate::{Store, StoreError};

use super::{at, claim_event_ids, endpoint, event, ids, outcome, tenant};

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
        .get_delivery("acme", claim.delivery_id.as_str())
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
        .get_delivery("acme", claim.delivery_id.as_str())
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
        .list_attempts("acme", claim.delivery_id.as_str())
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
        .retry_delivery("acme", claim.delivery_id.as_str(), at(7))
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
        let id = &claim.delivery_id;
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
