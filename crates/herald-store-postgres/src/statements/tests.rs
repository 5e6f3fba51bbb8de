//! A pipelined transaction against a real server: what it commits, what it leaves behind when a
//! statement fails before or after it is sent, and what becomes of its connection.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::*;

/// A pool of one connection to a fresh database (named like the integration tests' ones, so a
/// run that dies before dropping it leaves it to their clean-up), with table `t (n int8)`.
async fn one_connection_pool() -> (Pool, String) {
    let server = std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (admin, connection) = tokio_postgres::connect(&server, NoTls)
        .await
        .unwrap_or_else(|error| panic!("PostgreSQL at {server} is needed: {error}"));
    tokio::spawn(connection);
    let name = format!(
        "herald_test_{}_{}",
        time::OffsetDateTime::now_utc().unix_timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("database created");
    let mut config: tokio_postgres::Config = server.parse().expect("server url");
    config.dbname(&name);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(1)
        .runtime(Runtime::Tokio1)
        .build()
        .expect("pool");
    pool.get()
        .await
        .expect("connects")
        .batch_execute("CREATE TABLE t (n int8 NOT NULL)")
        .await
        .expect("table");
    (pool, name)
}

async fn drop_database(pool: Pool, name: &str) {
    pool.close();
    let server = std::env::var("HERALD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let (admin, connection) = tokio_postgres::connect(&server, NoTls)
        .await
        .expect("connects");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("dropped");
}

/// The rows of `t`, read on the pool's connection outside any transaction: a connection left
/// inside an aborted transaction would fail this read.
async fn stored(pool: &Pool) -> Vec<i64> {
    let client = pool.get().await.expect("connection");
    client
        .query("SELECT n FROM t ORDER BY n", &[])
        .await
        .expect("read outside a transaction")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn what_is_sent_with_begin_and_commit_commits_in_one_round_trip() {
    let (pool, name) = one_connection_pool().await;
    let mut transaction = PipelinedTransaction::new(pool.get().await.expect("connection"));
    let client = transaction.client().expect("client");
    let insert = prepare(client, "INSERT INTO t VALUES ($1) RETURNING n")
        .await
        .expect("prepared");
    let (one, two) = (1_i64, 2_i64);
    let rows = transaction
        .round_trip(true, &[(&insert, vec![&one]), (&insert, vec![&two])], true)
        .await
        .expect("committed");
    assert_eq!(
        rows.len(),
        2,
        "an answer per statement, none for BEGIN and COMMIT"
    );
    assert_eq!(rows[1][0].get::<_, i64>(0), 2);
    drop(transaction);
    assert_eq!(stored(&pool).await, [1, 2]);
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn a_statement_the_server_rejects_commits_nothing_and_leaves_the_connection_clean() {
    let (pool, name) = one_connection_pool().await;
    let mut transaction = PipelinedTransaction::new(pool.get().await.expect("connection"));
    let client = transaction.client().expect("client");
    let insert = prepare(client, "INSERT INTO t VALUES ($1)")
        .await
        .expect("prepared");
    let divide = prepare(client, "INSERT INTO t VALUES (1 / $1::int8)")
        .await
        .expect("prepared");
    let (one, zero) = (1_i64, 0_i64);
    // The reads and writes of the first round trip, then a write that fails with the commit.
    transaction
        .round_trip(true, &[(&insert, vec![&one])], false)
        .await
        .expect("first round trip");
    let failed = transaction
        .round_trip(
            false,
            &[(&insert, vec![&one]), (&divide, vec![&zero])],
            true,
        )
        .await;
    assert!(failed.is_err(), "division by zero: {failed:?}");
    drop(transaction);
    assert_eq!(stored(&pool).await, Vec::<i64>::new(), "nothing committed");
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn a_statement_that_cannot_be_sent_turns_the_commit_into_a_rollback() {
    let (pool, name) = one_connection_pool().await;
    let mut transaction = PipelinedTransaction::new(pool.get().await.expect("connection"));
    let client = transaction.client().expect("client");
    let insert = prepare(client, "INSERT INTO t VALUES ($1)")
        .await
        .expect("prepared");
    let one = 1_i64;
    let wrong_type = "one";
    // The second insert fails to encode (text for an int8) before it is sent; the first was sent
    // and succeeds, so only the end of the transaction can keep it from being committed.
    let failed = transaction
        .round_trip(
            true,
            &[(&insert, vec![&one]), (&insert, vec![&wrong_type])],
            true,
        )
        .await;
    assert!(failed.is_err(), "a text parameter for int8: {failed:?}");
    drop(transaction);
    assert_eq!(stored(&pool).await, Vec::<i64>::new(), "nothing committed");
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn a_transaction_dropped_open_takes_its_connection_out_of_the_pool() {
    let (pool, name) = one_connection_pool().await;
    let mut transaction = PipelinedTransaction::new(pool.get().await.expect("connection"));
    let client = transaction.client().expect("client");
    let insert = prepare(client, "INSERT INTO t VALUES ($1)")
        .await
        .expect("prepared");
    let one = 1_i64;
    transaction
        .round_trip(true, &[(&insert, vec![&one])], false)
        .await
        .expect("sent");
    assert_eq!(pool.status().size, 1);
    drop(transaction);
    assert_eq!(
        pool.status().size,
        0,
        "the open connection was not put back"
    );
    assert_eq!(
        stored(&pool).await,
        Vec::<i64>::new(),
        "closing it rolled back"
    );
    drop_database(pool, &name).await;
}
