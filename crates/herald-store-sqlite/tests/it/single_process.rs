//! What only the embedded store promises: one process owns a file at a time, so its leases are
//! held in memory (a claim writes nothing), and the deliveries a crashed process was attempting
//! are due again as soon as the file is reopened, not when their lease runs out.

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

/// A store with tenant `acme`, a strictly ordered endpoint `ep_1` and one event published to it.
async fn store_with_one_delivery(path: &std::path::Path) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).expect("opens"));
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
    store
}

/// SQLite's count of commits made by other connections to the file, as one of them sees it.
fn commits_seen_by(observer: &rusqlite::Connection) -> i64 {
    observer
        .query_row("PRAGMA data_version", [], |row| row.get(0))
        .expect("data_version")
}

#[tokio::test]
async fn a_claim_writes_nothing_and_its_delivery_is_shown_in_flight() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let store = store_with_one_delivery(&path).await;
    let observer = rusqlite::Connection::open(&path).expect("observer");
    let before = commits_seen_by(&observer);

    let claimed = store
        .claim_due(at(1), 10, Duration::seconds(90))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        commits_seen_by(&observer),
        before,
        "the claim committed nothing"
    );
    let stored: String = observer
        .query_row(
            "SELECT state FROM deliveries WHERE id = ?1",
            [claimed[0].delivery_id.as_str()],
            |row| row.get(0),
        )
        .expect("row");
    assert_eq!(stored, "pending", "the lease is not in the row");
    let shown = store
        .get_delivery("acme", claimed[0].delivery_id.as_str())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(shown.state, herald_core::delivery::DeliveryState::InFlight);
    for (asked, expected) in [
        (herald_core::delivery::DeliveryState::InFlight, 1),
        (herald_core::delivery::DeliveryState::Pending, 0),
    ] {
        let listed = store
            .list_deliveries(
                "acme",
                &herald_store::models::DeliveryFilter {
                    state: Some(asked),
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .expect("listed");
        assert_eq!(listed.len(), expected, "filtered as {asked:?}");
    }
    assert!(
        store
            .claim_due(at(2), 10, Duration::seconds(90))
            .await
            .expect("claim")
            .is_empty(),
        "leased in memory, so not claimed twice"
    );
}

#[tokio::test]
async fn deliveries_being_attempted_are_due_again_when_the_file_is_reopened() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let store = store_with_one_delivery(&path).await;
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

/// A file last written by a Herald that kept leases in the rows may hold `in_flight` ones; they
/// are handed back when it is opened.
#[tokio::test]
async fn rows_left_in_flight_by_an_older_herald_are_due_again_when_the_file_is_opened() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let store = store_with_one_delivery(&path).await;
    drop(store);
    let older = rusqlite::Connection::open(&path).expect("opened");
    let n_leased = older
        .execute(
            "UPDATE deliveries SET state = 'in_flight', lease_until = ?1",
            [1_800_000_000_000_i64 + 90_000],
        )
        .expect("leased the old way");
    assert_eq!(n_leased, 1);
    drop(older);

    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopens"));
    let claimed = store
        .claim_due(at(2), 10, Duration::seconds(90))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "due at once, long before its lease ends");
    assert_eq!(claimed[0].n_attempts, 0);
}
