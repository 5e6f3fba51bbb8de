//! Small helpers over prepared (and per-connection cached) statements.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::{GenericClient, Object, Transaction};
use herald_store::{StoreError, StoreResult};
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
pub(crate) async fn prepare<C: GenericClient>(client: &C, sql: &str) -> StoreResult<Statement> {
    client.prepare_cached(sql).await.map_err(map_backend)
}

/// Announces, at commit, that due work changed (see `wakeups.rs`).
pub(crate) async fn notify(transaction: &Transaction<'_>) -> StoreResult<()> {
    execute(transaction, wakeups::NOTIFY_STATEMENT, &[]).await?;
    Ok(())
}

/// How the statements a [`PipelinedTransaction`] sends with its `COMMIT` are planned: sent first
/// in that round trip, it holds until the commit. The connections plan every execution for its
/// parameters (`connect.rs`), because a plan cached while the tables were empty once kept
/// scanning a tenant's whole log after they grew. Planning that way was a quarter of
/// PostgreSQL's CPU at 500 publishes/s, most of it for the group writes, which are all keyed by
/// a unique key: the rows they insert, and rows found by primary key or delivery id. So those
/// cache one plan per statement, and may choose only plans that stay keyed whatever the tables
/// held when it was made: no sequential scans, no hash or merge joins (which read a whole side).
/// What a group reads before it writes (a publish's tenants, routes and known ids) is still
/// planned per execution: `events` has three indexes that start with the tenant, and a plan made
/// on empty tables picks the wrong one. The plan test in `statements/tests.rs` checks both.
///
/// JIT is off: a scan these settings disable but that is the only way to read a table (one read
/// whole by design) is costed at PostgreSQL's "disabled" cost, far above `jit_above_cost`, and
/// such a plan was compiled on every execution (80–180 ms for a statement of microseconds).
pub(crate) const KEYED_PLANS: &str =
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
     set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
     set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)";

/// Runs one statement with a cached keyed plan ([`KEYED_PLANS`]) on a connection of its own: its
/// `BEGIN`, the plan settings, the statement and `COMMIT` go out together, in one round trip as
/// the statement alone would. For statements run so often that planning them each time was a
/// large part of PostgreSQL's CPU, and whose plans stay right on any table size: keyed, or
/// reading whole only a table that is small by design (the plan tests in `statements/tests.rs`
/// check each).
pub(crate) async fn query_keyed(
    connection: Object,
    sql: &str,
    params: Vec<&(dyn ToSql + Sync)>,
) -> StoreResult<Vec<Row>> {
    let mut transaction = PipelinedTransaction::new(connection);
    let statement = prepare(transaction.client()?, sql).await?;
    let mut answers = transaction
        .round_trip(true, &[(&statement, params)], true)
        .await?;
    Ok(answers.pop().unwrap_or_default())
}

/// A prepared statement and its parameters.
pub(crate) type Sql<'a> = (&'a Statement, Vec<&'a (dyn ToSql + Sync)>);

type Answer<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// A transaction on a pooled connection whose `BEGIN` goes out with its first statements and
/// whose `COMMIT` with its last (and [`KEYED_PLANS`] before them) ([`PipelinedTransaction::round_trip`]): a group whose statements
/// need no answer in between costs one round trip instead of three, and one that reads first,
/// two instead of four. Each round trip waits for a core that the node, PostgreSQL and the load
/// they serve share, so round trips, more than statements, set a write's latency.
///
/// tokio-postgres sends a request when its future is first polled and the server runs requests
/// in the order received, each in the transaction the ones before it opened. A statement that
/// fails aborts the transaction: every later one fails, and the `COMMIT` sent behind them ends
/// it as a rollback. A statement that fails before it is sent (it could not be encoded) is
/// seen before the end of the transaction is sent, which is then `ROLLBACK`, so nothing is
/// committed without it. A transaction not ended when this is dropped (a panic, an error the
/// `ROLLBACK` after it could not clear) takes its connection out of the pool: closing it is the
/// server's rollback, and no later user of the pool finds itself inside it.
pub(crate) struct PipelinedTransaction {
    connection: Option<Object>,
    open: bool,
}

impl PipelinedTransaction {
    pub(crate) fn new(connection: Object) -> Self {
        PipelinedTransaction {
            connection: Some(connection),
            open: false,
        }
    }

    /// The connection, to prepare statements on.
    pub(crate) fn client(&self) -> StoreResult<&Object> {
        self.connection
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the transaction's connection is gone".into()))
    }

    /// Sends `BEGIN` (with `begin`), `statements` in order, and `COMMIT` (with `commit`)
    /// together, and returns each statement's rows. On an error, the transaction is rolled back
    /// before the error is returned.
    pub(crate) async fn round_trip(
        &mut self,
        begin: bool,
        statements: &[Sql<'_>],
        commit: bool,
    ) -> StoreResult<Vec<Vec<Row>>> {
        let keyed_plans = if commit {
            Some(prepare(self.client()?, KEYED_PLANS).await?)
        } else {
            None
        };
        let client: &tokio_postgres::Client = self.client()?;
        let mut pending: Vec<Answer<'_>> = Vec::with_capacity(statements.len() + 2);
        if begin {
            pending.push(Box::pin(async move {
                client.batch_execute("BEGIN").await.map(|()| Vec::new())
            }));
        }
        if let Some(keyed_plans) = &keyed_plans {
            pending.push(Box::pin(client.query(keyed_plans, &[])));
        }
        for (statement, params) in statements {
            pending.push(Box::pin(client.query(*statement, params)));
        }
        let mut answers: Vec<Option<Result<Vec<Row>, tokio_postgres::Error>>> =
            (0..pending.len()).map(|_| None).collect();
        // The first poll of each sends it, in order.
        poll_fn(|context| {
            for (future, answer) in pending.iter_mut().zip(answers.iter_mut()) {
                if let Poll::Ready(result) = future.as_mut().poll(context) {
                    *answer = Some(result);
                }
            }
            Poll::Ready(())
        })
        .await;
        if commit {
            let failed_unsent = answers.iter().any(|answer| matches!(answer, Some(Err(_))));
            let end = if failed_unsent { "ROLLBACK" } else { "COMMIT" };
            pending.push(Box::pin(async move {
                client.batch_execute(end).await.map(|()| Vec::new())
            }));
            answers.push(None);
        }
        poll_fn(|context| {
            let mut all_answered = true;
            for (future, answer) in pending.iter_mut().zip(answers.iter_mut()) {
                if answer.is_none() {
                    match future.as_mut().poll(context) {
                        Poll::Ready(result) => *answer = Some(result),
                        Poll::Pending => all_answered = false,
                    }
                }
            }
            if all_answered {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        drop(pending);
        self.open = (self.open || begin) && !commit;
        let mut rows = Vec::with_capacity(answers.len());
        let mut first_error = None;
        for answer in answers {
            match answer {
                Some(Ok(answered)) => rows.push(answered),
                Some(Err(error)) => {
                    first_error.get_or_insert(error);
                }
                None => {}
            }
        }
        if let Some(error) = first_error {
            self.roll_back().await;
            return Err(map_backend(error));
        }
        if begin {
            rows.remove(0);
        }
        if commit {
            rows.remove(0);
        }
        if commit {
            rows.pop();
        }
        Ok(rows)
    }

    /// Ends the transaction without committing it. `ROLLBACK` outside a transaction is only a
    /// warning, so this is safe whether or not a `COMMIT` already ended it; if even that fails,
    /// the connection is closed instead.
    pub(crate) async fn roll_back(&mut self) {
        let cleared = match self.connection.as_ref() {
            Some(client) => client.batch_execute("ROLLBACK").await.is_ok(),
            None => false,
        };
        if cleared {
            self.open = false;
        } else {
            self.discard_connection();
        }
    }

    fn discard_connection(&mut self) {
        if let Some(connection) = self.connection.take() {
            drop(Object::take(connection));
        }
        self.open = false;
    }
}

impl Drop for PipelinedTransaction {
    fn drop(&mut self) {
        if self.open {
            self.discard_connection();
        }
    }
}

#[cfg(test)]
mod tests;
