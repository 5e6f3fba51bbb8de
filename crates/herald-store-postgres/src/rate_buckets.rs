//! An endpoint's rate limit token bucket row, read and written by claims under the endpoint's
//! claim lock (see `claims.rs`), so the limit holds across nodes.

use deadpool_postgres::Transaction;
use herald_core::rate::TokenBucket;
use herald_store::StoreResult;

use crate::rows::{from_ms, get, ms};
use crate::{execute, query_opt};

/// The endpoint's token bucket as the last claim left it, if it has one.
pub(crate) async fn read_bucket(
    transaction: &Transaction<'_>,
    endpoint_id: &str,
) -> StoreResult<Option<TokenBucket>> {
    let row = query_opt(
        transaction,
        "SELECT tokens, refilled_at FROM endpoint_rate_buckets WHERE endpoint_id = $1",
        &[&endpoint_id],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let refilled_at: i64 = get(&row, 1)?;
    Ok(Some(TokenBucket {
        tokens: get(&row, 0)?,
        refilled_at: from_ms(refilled_at),
    }))
}

/// Stores the endpoint's token bucket; only ever under the endpoint's claim lock.
pub(crate) async fn write_bucket(
    transaction: &Transaction<'_>,
    endpoint_id: &str,
    bucket: &TokenBucket,
) -> StoreResult<()> {
    execute(
        transaction,
        "INSERT INTO endpoint_rate_buckets (endpoint_id, tokens, refilled_at) VALUES ($1, $2, $3)
         ON CONFLICT (endpoint_id) DO UPDATE SET tokens = $2, refilled_at = $3",
        &[&endpoint_id, &bucket.tokens, &ms(bucket.refilled_at)],
    )
    .await?;
    Ok(())
}
