//! A stored id that does not have its kind's prefix is a store error naming its column when it is
//! read back (the cases are `herald_store::spoiled_ids`'s; the rows are spoiled with raw SQL
//! through a second connection). The rows the benchmark fixture writes in bulk SQL must read
//! back, too.

use std::path::Path;
use std::sync::Arc;

use herald_store::Store;
use herald_store::spoiled_ids::{
    SPOILED_IDS, history_reads_back, names_the_spoiled_column, read, seed,
};
use herald_store_sqlite::SqliteStore;
use time::OffsetDateTime;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

async fn seeded_store(path: &Path) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path).expect("opens"));
    seed(store.as_ref()).await;
    store
}

#[tokio::test]
async fn an_id_of_the_wrong_shape_read_back_is_a_store_error_naming_its_column() {
    for case in SPOILED_IDS {
        let directory = tempfile::tempdir().expect("tempdir");
        let path = directory.path().join("herald.db");
        let store = seeded_store(&path).await;
        // Without the foreign keys, which would refuse (or follow) an id changed by hand.
        rusqlite::Connection::open(&path)
            .and_then(|connection| {
                connection.execute_batch(&format!("PRAGMA foreign_keys = OFF; {}", case.sql))
            })
            .expect("row spoiled");
        let result = read(store.as_ref(), case.read).await;
        if let Err(why) = names_the_spoiled_column(case, result) {
            panic!("{why}");
        }
    }
}

#[tokio::test]
async fn the_benchmark_history_reads_back() {
    let directory = tempfile::tempdir().expect("tempdir");
    let path = directory.path().join("herald.db");
    let store = seeded_store(&path).await;
    drop(store);
    herald_store_sqlite::history::fill_delivered_history(
        &path,
        "acme",
        &["ep_1".to_owned()],
        3,
        at(100),
    )
    .expect("history written");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).expect("reopens"));
    history_reads_back(store.as_ref()).await;
}
