//! What only the embedded store promises: one process owns a file at a time, and so the
//! deliveries a crashed process left in flight are due again as soon as the file is reopened,
//! not when their lease runs out.

use std::sync::Arc;

use herald_store::conformance::{endpoint, event};
use herald_store::models::{Ordering, Tenant};
use herald_store::{Store, StoreError};
use herald_store_sqlite::SqliteStore;
use time::{Duration, OffsetDateTime};

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

#[tokio::test]
async fn a_file_in_use_cannot_be_opened_again_until_its_owner_lets_go() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let owner = SqliteStore::open(&path).expect("opens");
    match SqliteStore::open(&path) {
        Err(StoreError::Unavailable(message)) => {
            assert!(
                message.contains("in use by another Herald process"),
                "{message}"
            );
        }
        other => panic!("a second owner must be refused, got {other:?}"),
    }
    drop(owner);
    SqliteStore::open(&path).expect("opens once the owner is gone");
}

#[tokio::test]
async fn deliveries_left_in_flight_are_due_again_when_the_file_is_reopened() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("opens"));
    store
        .create_tenant(Tenant {
            id: "acme".to_owned(),
            name: "Acme".to_owned(),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant");
    store
        .create_endpoint(endpoint("acme", "ep_1", &["*"], Ordering::Strict))
        .await
        .expect("endpoint");
    store
        .publish("acme", vec![event("e1", "user.created", Some("u1"))], at(1))
        .await
        .expect("published");
    let lease = Duration::seconds(90);
    let claimed = store.claim_due(at(1), 10, lease).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // The process dies with the delivery in flight: nothing is released or recorded.
    drop(store);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopens"));
    let claimed_again = store.claim_due(at(2), 10, lease).await.expect("claim");
    assert_eq!(
        claimed_again.len(),
        1,
        "due at once, long before the lease ends"
    );
    assert_eq!(claimed_again[0].delivery_id, claimed[0].delivery_id);
    assert_eq!(claimed_again[0].n_attempts, 0, "no attempt was recorded");
}
