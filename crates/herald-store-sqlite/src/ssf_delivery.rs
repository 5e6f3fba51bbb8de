//! Shared Signals durable delivery: stream cursors on the event log, push leases and attempts.
//!
//! The SSF worker reads the events after a stream's cursor, signs their SETs, and hands them back
//! with the new cursor: [`SsfDeliveryStore::advance_ssf_stream`] queues them and moves the cursor
//! in one transaction, only if the cursor is still where the worker read it, so a crash anywhere
//! before the commit leaves the events to be read again and nothing is queued twice.

use async_trait::async_trait;
use herald_store::SsfDeliveryStore;
use herald_store::ssf::{
    SsfPushAttemptRecord, SsfPushHead, SsfPushOutcome, SsfQueuedSet, SsfStreamBehind,
};
use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use crate::SqliteStore;
use crate::rows::{from_ms, map_backend, ms};
use crate::writer::Durability;

/// The stream columns, prefixed for queries that join (`s.` is `ssf_streams`).
const STREAM_COLUMNS_OF_S: &str = "s.id, s.tenant_id, s.receiver_id, s.config, s.status, s.status_reason, s.created_at, s.updated_at";

fn read_stream_at(row: &Row<'_>) -> rusqlite::Result<herald_store::ssf::SsfStreamRecord> {
    Ok(herald_store::ssf::SsfStreamRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        receiver_id: row.get(2)?,
        config: row.get(3)?,
        status: row.get(4)?,
        status_reason: row.get(5)?,
        created_at: from_ms(row.get(6)?),
        updated_at: from_ms(row.get(7)?),
    })
}

fn read_attempt(row: &Row<'_>) -> rusqlite::Result<SsfPushAttemptRecord> {
    let outcome: String = row.get(8)?;
    let next_attempt_at = row.get::<_, Option<i64>>(9)?.map(from_ms);
    Ok(SsfPushAttemptRecord {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        stream_id: row.get(2)?,
        jti: row.get(3)?,
        attempted_at: from_ms(row.get(4)?),
        status_code: row
            .get::<_, Option<i64>>(5)?
            .and_then(|code| u16::try_from(code).ok()),
        latency_ms: u64::try_from(row.get::<_, i64>(6)?).unwrap_or(0),
        error: row.get(7)?,
        outcome: SsfPushOutcome::from_stored(&outcome, next_attempt_at).ok_or_else(|| {
            rusqlite::Error::InvalidColumnType(8, outcome.clone(), rusqlite::types::Type::Text)
        })?,
    })
}

#[async_trait]
impl SsfDeliveryStore for SqliteStore {
    async fn list_ssf_streams_behind(&self, limit: usize) -> StoreResult<Vec<SsfStreamBehind>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            // Every stream is looked at: there are few of them next to events.
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {STREAM_COLUMNS_OF_S}, s.cursor_seq, t.next_seq - 1
                     FROM ssf_streams s JOIN tenants t ON t.id = s.tenant_id
                     WHERE s.status <> 'disabled' AND s.cursor_seq < t.next_seq - 1
                     ORDER BY s.created_at, s.id LIMIT ?1"
                ))
                .map_err(map_backend)?;
            statement
                .query_map(params![limit], |row| {
                    Ok(SsfStreamBehind {
                        stream: read_stream_at(row)?,
                        cursor_seq: row.get(8)?,
                        log_end_seq: row.get(9)?,
                    })
                })
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(map_backend)
        })
        .await
    }

    async fn advance_ssf_stream(
        &self,
        stream_id: &str,
        from_seq: i64,
        to_seq: i64,
        sets: Vec<SsfQueuedSet>,
    ) -> StoreResult<bool> {
        let stream_id = stream_id.to_owned();
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                let n_moved = transaction
                    .execute(
                        "UPDATE ssf_streams SET cursor_seq = ?3
                         WHERE id = ?1 AND cursor_seq = ?2 AND status <> 'disabled'",
                        params![stream_id, from_seq, to_seq],
                    )
                    .map_err(map_backend)?;
                if n_moved == 0 {
                    return Ok(false);
                }
                for set in sets.iter().filter(|set| set.stream_id == stream_id) {
                    transaction
                        .execute(
                            "INSERT INTO ssf_poll_queue (stream_id, jti, token, created_at, next_attempt_at)
                             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT DO NOTHING",
                            params![set.stream_id, set.jti, set.token, ms(set.created_at)],
                        )
                        .map_err(map_backend)?;
                }
                Ok(true)
            })
            .await
    }

    async fn lease_ssf_push_heads(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushHead>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The worker asks after every publish, and most of the time no push stream has a SET
        // due: finding that out is a read, not a job for the writer. Only this process leases
        // (it owns the file), so what the read found is still there for the writer to lease.
        if self
            .read(move |connection| due_push_heads(connection, now, limit))
            .await?
            .is_empty()
        {
            return Ok(Vec::new());
        }
        self.writer
            .write(Durability::Committed, move |transaction| {
                let heads = due_push_heads(transaction, now, limit)?;
                for head in &heads {
                    transaction
                        .execute(
                            "UPDATE ssf_streams SET push_lease_until = ?2 WHERE id = ?1",
                            params![head.stream.id, ms(lease_until)],
                        )
                        .map_err(map_backend)?;
                }
                Ok(heads)
            })
            .await
    }

    async fn record_ssf_push_attempt(&self, attempt: SsfPushAttemptRecord) -> StoreResult<()> {
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                // Through a SELECT of the stream: the attempt of a stream deleted meanwhile vanishes.
                transaction
                    .execute(
                        "INSERT INTO ssf_push_attempts (id, tenant_id, stream_id, jti, attempted_at,
                             status_code, latency_ms, error, outcome, next_attempt_at)
                         SELECT ?1, tenant_id, id, ?3, ?4, ?5, ?6, ?7, ?8, ?9 FROM ssf_streams
                         WHERE id = ?2 AND tenant_id = ?10",
                        params![
                            attempt.id,
                            attempt.stream_id,
                            attempt.jti,
                            ms(attempt.attempted_at),
                            attempt.status_code.map(i64::from),
                            i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX),
                            attempt.error,
                            attempt.outcome.as_str(),
                            attempt.outcome.next_attempt_at().map(ms),
                            attempt.tenant_id,
                        ],
                    )
                    .map_err(map_backend)?;
                match attempt.outcome {
                    SsfPushOutcome::Retry { next_attempt_at } => transaction.execute(
                        "UPDATE ssf_poll_queue SET next_attempt_at = ?3, n_attempts = n_attempts + 1
                         WHERE stream_id = ?1 AND jti = ?2",
                        params![attempt.stream_id, attempt.jti, ms(next_attempt_at)],
                    ),
                    SsfPushOutcome::Accepted
                    | SsfPushOutcome::Rejected
                    | SsfPushOutcome::Exhausted => transaction.execute(
                        "DELETE FROM ssf_poll_queue WHERE stream_id = ?1 AND jti = ?2",
                        params![attempt.stream_id, attempt.jti],
                    ),
                }
                .map_err(map_backend)?;
                transaction
                    .execute(
                        "UPDATE ssf_streams SET push_lease_until = NULL WHERE id = ?1",
                        params![attempt.stream_id],
                    )
                    .map_err(map_backend)?;
                Ok(())
            })
            .await
    }

    async fn schedule_ssf_queue(
        &self,
        stream_id: &str,
        next_attempt_at: Option<OffsetDateTime>,
    ) -> StoreResult<()> {
        let stream_id = stream_id.to_owned();
        self.writer
            .write(Durability::OnDisk, move |transaction| {
                transaction
                    .execute(
                        "UPDATE ssf_poll_queue SET next_attempt_at = ?2 WHERE stream_id = ?1",
                        params![stream_id, next_attempt_at.map(ms)],
                    )
                    .map_err(map_backend)?;
                transaction
                    .execute(
                        "UPDATE ssf_streams SET push_lease_until = NULL WHERE id = ?1",
                        params![stream_id],
                    )
                    .map_err(map_backend)?;
                Ok(())
            })
            .await
    }

    async fn list_ssf_push_attempts(
        &self,
        tenant_id: &str,
        stream_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<SsfPushAttemptRecord>> {
        let (tenant_id, stream_id) = (tenant_id.to_owned(), stream_id.to_owned());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, tenant_id, stream_id, jti, attempted_at, status_code, latency_ms, error,
                         outcome, next_attempt_at
                     FROM ssf_push_attempts WHERE tenant_id = ?1 AND stream_id = ?2
                     ORDER BY attempted_at DESC, rowid DESC LIMIT ?3",
                )
                .map_err(map_backend)?;
            statement
                .query_map(params![tenant_id, stream_id, limit], read_attempt)
                .map_err(map_backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| match error {
                    rusqlite::Error::InvalidColumnType(_, name, _) => {
                        StoreError::Backend(format!("unknown push outcome {name:?}"))
                    }
                    other => map_backend(other),
                })
        })
        .await
    }

    async fn remove_expired_ssf_push_attempts(
        &self,
        cutoff: OffsetDateTime,
        batch: usize,
    ) -> StoreResult<u64> {
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.writer
            .write(Durability::Committed, move |transaction| {
                let n_removed = transaction
                    .execute(
                        "DELETE FROM ssf_push_attempts WHERE rowid IN (
                             SELECT rowid FROM ssf_push_attempts WHERE attempted_at < ?1 LIMIT ?2)",
                        params![ms(cutoff), batch],
                    )
                    .map_err(map_backend)?;
                Ok(n_removed as u64)
            })
            .await
    }
}

/// Push streams whose head SET is due and not leased, earliest due first. The head is the oldest
/// queued SET (the order `peek` reads in); only it is ever pushed, so a stream's SETs go out in
/// order.
fn due_push_heads(
    connection: &Connection,
    now: OffsetDateTime,
    limit: i64,
) -> StoreResult<Vec<SsfPushHead>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {STREAM_COLUMNS_OF_S}, q.jti, q.token, q.created_at, q.n_attempts
             FROM ssf_streams s
             JOIN ssf_poll_queue q ON q.rowid = (
                 SELECT rowid FROM ssf_poll_queue WHERE stream_id = s.id
                 ORDER BY created_at, rowid LIMIT 1)
             WHERE s.status = 'enabled'
               AND (s.push_lease_until IS NULL OR s.push_lease_until <= ?1)
               AND q.next_attempt_at IS NOT NULL AND q.next_attempt_at <= ?1
             ORDER BY q.next_attempt_at LIMIT ?2"
        ))
        .map_err(map_backend)?;
    statement
        .query_map(params![ms(now), limit], |row| {
            let stream = read_stream_at(row)?;
            Ok(SsfPushHead {
                set: SsfQueuedSet {
                    stream_id: stream.id.clone(),
                    jti: row.get(8)?,
                    token: row.get(9)?,
                    created_at: from_ms(row.get(10)?),
                },
                n_attempts: u32::try_from(row.get::<_, i64>(11)?).unwrap_or(u32::MAX),
                stream,
            })
        })
        .map_err(map_backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_backend)
}
