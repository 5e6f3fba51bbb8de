//! Operational events that an attempt's outcome publishes, written with the attempt itself.

use std::sync::Arc;

use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::DisableReason;
use time::Duration;

use crate::Store;
use crate::models::{EventFilter, NextStep, Ordering};

use super::{at, endpoint, event, ids, outcome, tenant};

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
