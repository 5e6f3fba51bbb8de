//! A stored id that does not have its kind's prefix is a store error naming its column when it is
//! read back (the cases are `herald_store::spoiled_ids`'s, as on SQLite; the rows are spoiled
//! with raw SQL through a second connection). The rows the benchmark fixture writes in bulk SQL
//! must read back, too.

use std::sync::Arc;

use herald_store::Store;
use herald_store::spoiled_ids::{
    SPOILED_IDS, history_reads_back, names_the_spoiled_column, read, seed,
};
use herald_store_postgres::PostgresStore;
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use super::fresh_database;

#[tokio::test]
async fn an_id_of_the_wrong_shape_read_back_is_a_store_error_naming_its_column() {
    for case in SPOILED_IDS {
        let url = fresh_database().await;
        let store: Arc<dyn Store> =
            Arc::new(PostgresStore::connect(&url, 2).await.expect("connects"));
        seed(store.as_ref()).await;
        let (client, connection) = tokio_postgres::connect(&url, NoTls)
            .await
            .expect("connects");
        tokio::spawn(connection);
        client.batch_execute(case.sql).await.expect("row spoiled");
        let result = read(store.as_ref(), case.read).await;
        if let Err(why) = names_the_spoiled_column(case, result) {
            panic!("{why}");
        }
    }
}

#[tokio::test]
async fn the_benchmark_history_reads_back() {
    let url = fresh_database().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, 2).await.expect("connects"));
    seed(store.as_ref()).await;
    herald_store_postgres::history::fill_delivered_history(
        &url,
        "acme",
        &["ep_1".to_owned()],
        3,
        OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("in range"),
    )
    .await
    .expect("history written");
    history_reads_back(store.as_ref()).await;
}
