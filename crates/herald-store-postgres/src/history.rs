//! A benchmark fixture: fills a database with delivered history (events, deliveries, attempts), as
//! months of traffic would leave it, so `herald bench --history N` can show whether delivery
//! slows down as the database grows. Rows are written in bulk SQL, not through the hot path.

use herald_store::{StoreError, StoreResult};
use time::OffsetDateTime;
use tokio_postgres::NoTls;

use crate::rows::map_backend;

/// Events written per transaction.
const CHUNK: i64 = 100_000;

/// Appends `n_deliveries` delivered deliveries to the tenant's log, one event each, spread round
/// robin over `endpoint_ids` (which must belong to the tenant), each with one successful attempt,
/// then refreshes the planner's statistics as autovacuum would after such a load.
pub async fn fill_delivered_history(
    database_url: &str,
    tenant_id: &str,
    endpoint_ids: &[String],
    n_deliveries: usize,
    now: OffsetDateTime,
) -> StoreResult<()> {
    if endpoint_ids.is_empty() {
        return Err(StoreError::Backend(
            "history needs at least one endpoint".to_owned(),
        ));
    }
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .map_err(map_backend)?;
    let driver = tokio::spawn(connection);
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let n_endpoints = endpoint_ids.len() as i64;
    let mut written = 0_i64;
    let total = i64::try_from(n_deliveries).unwrap_or(i64::MAX);
    while written < total {
        let n = CHUNK.min(total - written);
        let transaction = client.transaction().await.map_err(map_backend)?;
        let first_seq: i64 = transaction
            .query_one(
                "SELECT next_seq FROM tenants WHERE id = $1 FOR UPDATE",
                &[&tenant_id],
            )
            .await
            .map_err(map_backend)?
            .get(0);
        transaction
            .execute(
                "INSERT INTO events (tenant_id, seq, id, taxonomy, event_type, subject, occurred_at,
                     received_at, payload, context, producer)
                 SELECT $1, $2 + i, 'evt_history_' || ($2 + i), 'custom', 'bench.ping',
                     'user-' || (i % 1000), $4, $4,
                     '{\"n\":0,\"pad\":\"identity-event-benchmark-payload\"}', '{}', '{}'
                 FROM generate_series(0::bigint, $3::bigint - 1) AS i",
                &[&tenant_id, &first_seq, &n, &now_ms],
            )
            .await
            .map_err(map_backend)?;
        for (index, endpoint_id) in endpoint_ids.iter().enumerate() {
            transaction
                .execute(
                    "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id,
                         event_type, subject, state, n_attempts, last_status, created_at, updated_at)
                     SELECT 'dl_history_' || seq, tenant_id, $2, seq, id, event_type, subject,
                         'delivered', 1, 200, $6, $6
                     FROM events
                     WHERE tenant_id = $1 AND seq >= $3 AND seq < $3 + $4 AND (seq - $3) % $5 = $7",
                    &[
                        &tenant_id,
                        endpoint_id,
                        &first_seq,
                        &n,
                        &n_endpoints,
                        &now_ms,
                        &(index as i64),
                    ],
                )
                .await
                .map_err(map_backend)?;
        }
        transaction
            .execute(
                "INSERT INTO attempts (delivery_id, attempt_number, started_at, status, latency_ms,
                     response_excerpt, error)
                 SELECT id, 1, $4, 200, 1, 'ok', NULL FROM deliveries
                 WHERE tenant_id = $1 AND event_seq >= $2 AND event_seq < $2 + $3",
                &[&tenant_id, &first_seq, &n, &now_ms],
            )
            .await
            .map_err(map_backend)?;
        transaction
            .execute(
                "UPDATE tenants SET next_seq = next_seq + $2 WHERE id = $1",
                &[&tenant_id, &n],
            )
            .await
            .map_err(map_backend)?;
        transaction.commit().await.map_err(map_backend)?;
        written += n;
    }
    // One command each: several in one simple query run as one transaction block, which VACUUM
    // refuses.
    for table in ["events", "deliveries", "attempts"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .map_err(map_backend)?;
    }
    drop(client);
    let _ = driver.await;
    Ok(())
}
