//! Shared Signals durable delivery: stream cursors on the event log, push leases and attempts.
//!
//! The SSF worker reads the events after a stream's cursor, signs their SETs, and hands them back
//! with the new cursor: [`SsfDeliveryStore::advance_ssf_stream`] queues them and moves the cursor
//! in one transaction, only if the cursor is still where the worker read it, so a crash anywhere
//! before the commit leaves the events to be read again, and two nodes doing the same stream at
//! once queue its SETs once (the second finds the cursor moved and rolls back).
//!
//! Pushes are leased per stream (`push_lease_until`), taken with `FOR UPDATE SKIP LOCKED`: two
//! nodes never push one stream at once, so its SETs go out one at a time, in order. The lease
//! outlasts a push's timeout; a node that dies mid-push leaves it to expire.

use std::sync::LazyLock;

use async_trait::async_trait;
use herald_store::SsfDeliveryStore;
use herald_store::ssf::{
    SsfPushAttemptRecord, SsfPushHead, SsfPushOutcome, SsfQueuedSet, SsfStreamBehind,
    SsfStreamRecord,
};
use herald_store::{StoreError, StoreResult};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::rows::{from_ms, get, map_backend, ms, to_i64};
use crate::statements::query_keyed;
use crate::{PostgresStore, execute, query};

/// The stream columns, prefixed for queries that join (`s.` is `ssf_streams`).
const STREAM_COLUMNS_OF_S: &str = "s.id, s.tenant_id, s.receiver_id, s.config, s.status, s.status_reason, s.created_at, s.updated_at";

/// The streams behind their tenant's log, oldest first. Every stream is looked at: there are few
/// of them next to events. The SSF worker asks after every publish, so it runs with a cached
/// plan (`statements::query_keyed`; keyed but for the streams): planned each time, it was the
/// largest planning cost after the claim's at 500 publishes/s.
pub(crate) static STREAMS_BEHIND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {STREAM_COLUMNS_OF_S}, s.cursor_seq, t.next_seq - 1
         FROM ssf_streams s JOIN tenants t ON t.id = s.tenant_id
         WHERE s.status <> 'disabled' AND s.cursor_seq < t.next_seq - 1
         ORDER BY s.created_at, s.id LIMIT $1"
    )
});

/// Whether any push stream has a SET due at `$1` and is not leased (asked after every publish,
/// like [`STREAMS_BEHIND`]).
pub(crate) const ANY_PUSH_DUE: &str = "SELECT EXISTS (
    SELECT 1 FROM ssf_streams s
    WHERE s.status = 'enabled'
      AND (s.push_lease_until IS NULL OR s.push_lease_until <= $1)
      AND (SELECT q.next_attempt_at FROM ssf_poll_queue q WHERE q.stream_id = s.id
           ORDER BY q.position LIMIT 1) <= $1)";

fn read_stream_at(row: &Row) -> StoreResult<SsfStreamRecord> {
    Ok(SsfStreamRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        receiver_id: get(row, 2)?,
        config: get(row, 3)?,
        status: get(row, 4)?,
        status_reason: get(row, 5)?,
        created_at: from_ms(get(row, 6)?),
        updated_at: from_ms(get(row, 7)?),
    })
}

fn read_attempt(row: &Row) -> StoreResult<SsfPushAttemptRecord> {
    let outcome: String = get(row, 8)?;
    let next_attempt_at = get::<Option<i64>>(row, 9)?.map(from_ms);
    Ok(SsfPushAttemptRecord {
        id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        stream_id: get(row, 2)?,
        jti: get(row, 3)?,
        attempted_at: from_ms(get(row, 4)?),
        status_code: get::<Option<i64>>(row, 5)?.and_then(|code| u16::try_from(code).ok()),
        latency_ms: u64::try_from(get::<i64>(row, 6)?).unwrap_or(0),
        error: get(row, 7)?,
        outcome: SsfPushOutcome::from_stored(&outcome, next_attempt_at)
            .ok_or_else(|| StoreError::Backend(format!("unknown push outcome {outcome:?}")))?,
    })
}

/// Tells every node that SETs were queued on the stream (`NOTIFY herald_changes, 'ssf:<id>'`),
/// so their long polls of it look again. Sent inside the queueing transaction: PostgreSQL
/// delivers it exactly when the SETs are committed, never before and never for a rollback.
pub(crate) async fn notify_sets_queued<C: deadpool_postgres::GenericClient>(
    client: &C,
    stream_id: &str,
) -> StoreResult<()> {
    let payload = format!("ssf:{stream_id}");
    query(
        client,
        "SELECT pg_notify('herald_changes', $1)",
        &[&payload],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl SsfDeliveryStore for PostgresStore {
    async fn list_ssf_streams_behind(&self, limit: usize) -> StoreResult<Vec<SsfStreamBehind>> {
        let limit = to_i64(limit);
        let rows = query_keyed(self.client().await?, &STREAMS_BEHIND, vec![&limit]).await?;
        rows.iter()
            .map(|row| {
                Ok(SsfStreamBehind {
                    stream: read_stream_at(row)?,
                    cursor_seq: get(row, 8)?,
                    log_end_seq: get(row, 9)?,
                })
            })
            .collect()
    }

    async fn advance_ssf_stream(
        &self,
        stream_id: &str,
        from_seq: i64,
        to_seq: i64,
        sets: Vec<SsfQueuedSet>,
    ) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let n_moved = execute(
            &transaction,
            "UPDATE ssf_streams SET cursor_seq = $3
             WHERE id = $1 AND cursor_seq = $2 AND status <> 'disabled'",
            &[&stream_id, &from_seq, &to_seq],
        )
        .await?;
        if n_moved == 0 {
            transaction.rollback().await.map_err(map_backend)?;
            return Ok(false);
        }
        let mut n_queued = 0;
        for set in sets.iter().filter(|set| set.stream_id == stream_id) {
            n_queued += execute(
                &transaction,
                "INSERT INTO ssf_poll_queue (stream_id, jti, token, created_at, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
                &[&set.stream_id, &set.jti, &set.token, &ms(set.created_at)],
            )
            .await?;
        }
        if n_queued > 0 {
            notify_sets_queued(&transaction, stream_id).await?;
        }
        transaction.commit().await.map_err(map_backend)?;
        Ok(true)
    }

    async fn lease_ssf_push_heads(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushHead>> {
        // The worker asks after every publish, and most of the time no push stream has a SET
        // due: one statement finds that out, where leasing costs a transaction of four round
        // trips. A stream that falls due just after it is leased at the worker's next step.
        let now_ms = ms(now);
        let any_due = query_keyed(self.client().await?, ANY_PUSH_DUE, vec![&now_ms]).await?;
        match any_due.first() {
            Some(row) if get::<bool>(row, 0)? => {}
            _ => return Ok(Vec::new()),
        }
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        // The head is the oldest queued SET (the order `peek` reads in); only it is ever pushed,
        // so a stream's SETs go out in order. Streams another node is leasing right now are
        // skipped, not waited for.
        let leased = query(
            &transaction,
            &format!(
                "WITH due AS (
                     SELECT s.id FROM ssf_streams s
                     WHERE s.status = 'enabled'
                       AND (s.push_lease_until IS NULL OR s.push_lease_until <= $1)
                       AND (SELECT q.next_attempt_at FROM ssf_poll_queue q WHERE q.stream_id = s.id
                            ORDER BY q.position LIMIT 1) <= $1
                     LIMIT $3
                     FOR UPDATE OF s SKIP LOCKED
                 )
                 UPDATE ssf_streams s SET push_lease_until = $2 FROM due WHERE s.id = due.id
                 RETURNING {STREAM_COLUMNS_OF_S}"
            ),
            &[&ms(now), &ms(lease_until), &to_i64(limit)],
        )
        .await?;
        let streams = leased
            .iter()
            .map(read_stream_at)
            .collect::<StoreResult<Vec<_>>>()?;
        let stream_ids: Vec<String> = streams.iter().map(|stream| stream.id.clone()).collect();
        let heads = query(
            &transaction,
            "SELECT DISTINCT ON (stream_id) stream_id, jti, token, created_at, n_attempts
             FROM ssf_poll_queue WHERE stream_id = ANY($1) ORDER BY stream_id, position",
            &[&stream_ids],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)?;
        let mut out = Vec::with_capacity(heads.len());
        for row in &heads {
            let stream_id: String = get(row, 0)?;
            let Some(stream) = streams.iter().find(|stream| stream.id == stream_id) else {
                continue;
            };
            out.push(SsfPushHead {
                stream: stream.clone(),
                set: SsfQueuedSet {
                    stream_id,
                    jti: get(row, 1)?,
                    token: get(row, 2)?,
                    created_at: from_ms(get(row, 3)?),
                },
                n_attempts: u32::try_from(get::<i64>(row, 4)?).unwrap_or(u32::MAX),
            });
        }
        Ok(out)
    }

    async fn record_ssf_push_attempt(&self, attempt: SsfPushAttemptRecord) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        // Through a SELECT of the stream: the attempt of a stream deleted meanwhile vanishes.
        execute(
            &transaction,
            "INSERT INTO ssf_push_attempts (id, tenant_id, stream_id, jti, attempted_at,
                 status_code, latency_ms, error, outcome, next_attempt_at)
             SELECT $1, tenant_id, id, $3, $4, $5, $6, $7, $8, $9 FROM ssf_streams
             WHERE id = $2 AND tenant_id = $10",
            &[
                &attempt.id,
                &attempt.stream_id,
                &attempt.jti,
                &ms(attempt.attempted_at),
                &attempt.status_code.map(i64::from),
                &to_i64(attempt.latency_ms),
                &attempt.error,
                &attempt.outcome.as_str(),
                &attempt.outcome.next_attempt_at().map(ms),
                &attempt.tenant_id,
            ],
        )
        .await?;
        match attempt.outcome {
            SsfPushOutcome::Retry { next_attempt_at } => {
                execute(
                    &transaction,
                    "UPDATE ssf_poll_queue SET next_attempt_at = $3, n_attempts = n_attempts + 1
                     WHERE stream_id = $1 AND jti = $2",
                    &[&attempt.stream_id, &attempt.jti, &ms(next_attempt_at)],
                )
                .await?;
            }
            SsfPushOutcome::Accepted | SsfPushOutcome::Rejected | SsfPushOutcome::Exhausted => {
                execute(
                    &transaction,
                    "DELETE FROM ssf_poll_queue WHERE stream_id = $1 AND jti = $2",
                    &[&attempt.stream_id, &attempt.jti],
                )
                .await?;
            }
        }
        execute(
            &transaction,
            "UPDATE ssf_streams SET push_lease_until = NULL WHERE id = $1",
            &[&attempt.stream_id],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)
    }

    async fn schedule_ssf_queue(
        &self,
        stream_id: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        execute(
            &transaction,
            "UPDATE ssf_poll_queue SET next_attempt_at = $2 WHERE stream_id = $1",
            &[&stream_id, &next_attempt_at.map(ms)],
        )
        .await?;
        execute(
            &transaction,
            "UPDATE ssf_streams SET push_lease_until = NULL WHERE id = $1",
            &[&stream_id],
        )
        .await?;
        transaction.commit().await.map_err(map_backend)
    }

    async fn list_ssf_push_attempts(
        &self,
        tenant_id: &str,
        stream_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushAttemptRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT id, tenant_id, stream_id, jti, attempted_at, status_code, latency_ms, error,
                 outcome, next_attempt_at
             FROM ssf_push_attempts WHERE tenant_id = $1 AND stream_id = $2
             ORDER BY attempted_at DESC, id DESC LIMIT $3",
            &[&tenant_id, &stream_id, &to_i64(limit)],
        )
        .await?;
        rows.iter().map(read_attempt).collect()
    }

    async fn remove_expired_ssf_push_attempts(
        &self,
        cutoff: OffsetDateTime,
        batch: usize,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM ssf_push_attempts WHERE id IN (
                 SELECT id FROM ssf_push_attempts WHERE attempted_at < $1 LIMIT $2)",
            &[&ms(cutoff), &to_i64(batch)],
        )
        .await
    }
}
