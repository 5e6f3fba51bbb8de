//! Claiming due work: leases, subject and strict ordering, concurrency and rate limits.

use std::sync::Arc;

use herald_core::delivery::DeliveryState;
use time::Duration;

use crate::Store;
use crate::models::{NewEvent, NextStep, Ordering, ReplaySelector};

use super::{at, claim_event_ids, endpoint, event, ids, outcome, tenant};

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
    assert_eq!(claimed[0].endpoint.id.as_str(), "ep_1");
    assert_eq!(claimed[0].tenant_issuer, "urn:herald:tenant:acme");
    assert_eq!(claimed[0].n_attempts, 0);
    let delivery = store
        .get_delivery("acme", claimed[0].delivery_id.as_str())
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
        .release(claimed[0].delivery_id.as_str(), at(40))
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
                claim.endpoint.id.as_str(),
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
