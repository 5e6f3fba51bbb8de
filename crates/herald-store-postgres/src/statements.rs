//! Small helpers over prepared (and per-connection cached) statements.

use deadpool_postgres::{GenericClient, Transaction};
use futures_util::future::join_all;
use herald_store::StoreResult;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::rows::map_backend;
use crate::wakeups;

pub(crate) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client.query(&statement, params).await.map_err(map_backend)
}

pub(crate) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .query_opt(&statement, params)
        .await
        .map_err(map_backend)
}

pub(crate) async fn query_one<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Row> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .query_one(&statement, params)
        .await
        .map_err(map_backend)
}

pub(crate) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(map_backend)?;
    client
        .execute(&statement, params)
        .await
        .map_err(map_backend)
}

/// Prepares `sql` on the connection, or finds it in the connection's cache. Statements to be sent
/// together are prepared first, so that they go out in the order written.
pub(crate) async fn prepare(transaction: &Transaction<'_>, sql: &str) -> StoreResult<Statement> {
    transaction.prepare_cached(sql).await.map_err(map_backend)
}

/// Announces, at commit, that due work changed (see `wakeups.rs`).
pub(crate) async fn notify(transaction: &Transaction<'_>) -> StoreResult<()> {
    execute(transaction, wakeups::NOTIFY_STATEMENT, &[]).await?;
    Ok(())
}

/// Sends `statements` together (tokio-postgres pipelines them on the connection) and waits for
/// them all; the server runs them in the order given. The first failure aborts the transaction,
/// and every later statement fails with it.
pub(crate) async fn execute_pipelined(
    transaction: &Transaction<'_>,
    statements: &[(&Statement, Vec<&(dyn ToSql + Sync)>)],
) -> StoreResult<()> {
    for result in join_all(
        statements
            .iter()
            .map(|(statement, params)| transaction.execute(*statement, params)),
    )
    .await
    {
        result.map_err(map_backend)?;
    }
    Ok(())
}
