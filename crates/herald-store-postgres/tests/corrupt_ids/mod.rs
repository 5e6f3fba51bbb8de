//! A stored id that does not have its kind's prefix is a store error naming its column when it is
//! read back (the cases are `herald_store::spoiled_ids`'s, as on SQLite; the rows are spoiled
//! with raw SQL through a second connection).

use std::sync::Arc;

use herald_store::Store;
use herald_store::spoiled_ids::{SPOILED_IDS, names_the_spoiled_column, read, seed};
use herald_store_postgres::PostgresStore;
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
