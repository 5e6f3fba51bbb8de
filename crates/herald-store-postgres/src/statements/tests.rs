//! A pipelined transaction against a real server: what it commits, what it leaves behind when a
//! statement fails before or after it is sent, and what becomes of its connection.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::*;
use crate::test_support::{
    database_config, drop_database, fresh_database, unique_indexes, unkeyed_nodes,
};

/// A pool of one connection to a fresh database with table `t (n int8)`, and the database's name.
async fn one_connection_pool() -> (Pool, String) {
    let (name, config) = fresh_database().await;
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

async fn close_and_drop(pool: Pool, name: &str) {
    pool.close();
    drop_database(name).await;
}

/// A fresh database's one-connection pool and name, a transaction on that connection, and the
/// statement that inserts `$1` into `t` (answering with it), prepared on it.
async fn transaction_with_insert() -> (Pool, String, PipelinedTransaction, Statement) {
    let (pool, name) = one_connection_pool().await;
    let transaction = PipelinedTransaction::new(pool.get().await.expect("connection"));
    let client = transaction.client().expect("client");
    let insert = prepare(client, "INSERT INTO t VALUES ($1) RETURNING n")
        .await
        .expect("prepared");
    (pool, name, transaction, insert)
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
    let (pool, name, mut transaction, insert) = transaction_with_insert().await;
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
    close_and_drop(pool, &name).await;
}

#[tokio::test]
async fn a_statement_the_server_rejects_commits_nothing_and_leaves_the_connection_clean() {
    let (pool, name, mut transaction, insert) = transaction_with_insert().await;
    let client = transaction.client().expect("client");
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
    close_and_drop(pool, &name).await;
}

#[tokio::test]
async fn a_statement_that_cannot_be_sent_turns_the_commit_into_a_rollback() {
    let (pool, name, mut transaction, insert) = transaction_with_insert().await;
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
    close_and_drop(pool, &name).await;
}

#[tokio::test]
async fn a_transaction_dropped_open_takes_its_connection_out_of_the_pool() {
    let (pool, name, mut transaction, insert) = transaction_with_insert().await;
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
    close_and_drop(pool, &name).await;
}

/// The plans `statements` cache under [`KEYED_PLANS`] on a schema whose tables are empty (where
/// a plan's estimates are least like the tables it will run on): for each statement whose plan
/// is not keyed, what is wrong with it, node by node.
async fn unkeyed_plans(statements: &[String]) -> Vec<(Vec<String>, String)> {
    let (pool, name) = one_connection_pool().await;
    let config = database_config(&name);
    crate::connect::migrate_with(&config)
        .await
        .expect("migrated");
    let client = pool.get().await.expect("connection");
    let unique = unique_indexes(&client).await;
    client.batch_execute("BEGIN").await.expect("begun");
    client.query(KEYED_PLANS, &[]).await.expect("settings");
    let mut unkeyed = Vec::new();
    for (index, sql) in statements.iter().enumerate() {
        client
            .batch_execute(&format!("PREPARE planned_{index} AS {sql}"))
            .await
            .unwrap_or_else(|error| panic!("prepared {sql}: {error}"));
        let n_params: i64 = client
            .query_one(
                "SELECT cardinality(parameter_types)::int8 FROM pg_prepared_statements WHERE name = $1",
                &[&format!("planned_{index}")],
            )
            .await
            .expect("parameters")
            .get(0);
        let nulls = vec!["NULL"; usize::try_from(n_params).expect("count")].join(", ");
        // The simple protocol answers in text, which is the JSON document itself.
        let explained = client
            .simple_query(&format!(
                "EXPLAIN (FORMAT JSON) EXECUTE planned_{index}({nulls})"
            ))
            .await
            .unwrap_or_else(|error| panic!("explained {sql}: {error}"));
        let text = explained
            .iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
                _ => None,
            })
            .expect("a plan");
        let plan: serde_json::Value = serde_json::from_str(text).expect("JSON plan");
        let mut found = unkeyed_nodes(&plan[0]["Plan"], &unique);
        // A plan that costs more than `jit_above_cost` is compiled on every execution: tens of
        // milliseconds for a statement that runs in microseconds.
        if plan[0].get("JIT").is_some() {
            found.push("JIT compilation".to_owned());
        }
        if !found.is_empty() {
            unkeyed.push((found, sql.clone()));
        }
    }
    client.batch_execute("ROLLBACK").await.expect("ended");
    drop(client);
    close_and_drop(pool, &name).await;
    unkeyed
}

/// What a publish or attempt group sends with its commit, and the API key lookup, cache a plan
/// that stays keyed however large the tables grow.
#[tokio::test]
async fn group_writes_cache_keyed_plans_made_on_empty_tables() {
    let writes: Vec<String> = crate::publish::WRITES
        .into_iter()
        .chain(crate::attempts::GROUP_STATEMENTS)
        .chain([crate::keys::AUTHENTICATE])
        .map(str::to_owned)
        .collect();
    let unkeyed = unkeyed_plans(&writes).await;
    assert!(unkeyed.is_empty(), "{unkeyed:#?}");
}

/// Why a publish's reads are planned per execution: the lookup of known event ids, planned once
/// on empty tables, would look a tenant's events up by an index that holds the tenant but not the
/// id, and read the tenant's whole log for every id. (If this starts to pass, the reads could go
/// out with the cached plans too.)
#[tokio::test]
async fn the_known_ids_lookup_planned_on_empty_tables_would_not_be_keyed() {
    let unkeyed = unkeyed_plans(&[crate::publish::SELECT_KNOWN.to_owned()]).await;
    assert_eq!(unkeyed.len(), 1, "{unkeyed:#?}");
}

/// The SSF worker's checks after every publish read every stream, by design (there are few next
/// to events), and their cached plans must read nothing else whole: the tenants and queued SETs
/// they look at are found by key.
#[tokio::test]
async fn the_ssf_checks_cache_plans_that_read_only_streams_whole() {
    let checks = [
        crate::ssf_delivery::STREAMS_BEHIND.clone(),
        crate::ssf_delivery::ANY_PUSH_DUE.to_owned(),
    ];
    let unkeyed = unkeyed_plans(&checks).await;
    let elsewhere: Vec<_> = unkeyed
        .iter()
        .flat_map(|(nodes, sql)| nodes.iter().map(move |node| (node, sql)))
        .filter(|(node, _)| !node.contains("ssf_streams"))
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:#?}");
}
