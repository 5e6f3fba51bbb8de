//! Claiming due deliveries when several nodes share the database.
//!
//! One transaction, in four steps:
//!
//! 1. **Candidates**, locked with `FOR UPDATE OF d SKIP LOCKED`: waiting deliveries that are due,
//!    and in-flight ones whose lease expired (their node died), of enabled endpoints that are not
//!    paused. A row another node is claiming right now is skipped, not waited for, and can never
//!    be claimed twice: the second node either skips the locked row or, once the first committed,
//!    re-checks it and finds it leased. An ordered endpoint offers only the head of each queue: no
//!    earlier *unfinished* delivery of the endpoint (`strict`) or of the endpoint and subject
//!    (`subject`). `in_flight` counts as unfinished, so while one node works on a head the next
//!    row is not a head for anybody; and a head locked by a node still claiming it is `pending`,
//!    which is unfinished too.
//! 2. **Serialise per endpoint**: a transaction-scoped advisory lock for each candidate endpoint,
//!    taken in one global order (so two claimers cannot deadlock), held until commit.
//! 3. **Count** unexpired leases per endpoint in a fresh statement. Under `READ COMMITTED` it sees
//!    every claim committed by the previous holder of the endpoint's lock, so no two nodes can both
//!    fill the same free slots of `max_concurrency`.
//! 4. **Lease** what fits, then read the events, endpoints and issuers the workers need.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use herald_core::rate::TokenBucket;
use herald_store::StoreResult;
use herald_store::models::{ClaimedDelivery, EndpointRecord};
use time::{Duration, OffsetDateTime};

use crate::rows::{
    ENDPOINT_COLUMNS, EVENT_COLUMNS, TENANT_COLUMNS, from_ms, get, ms, read_endpoint,
    read_event_at, read_tenant, to_i64,
};
use crate::{UNFINISHED, execute, query};

/// The first half of the two-`int4` advisory lock key for per-endpoint claim locks ("HRLD").
const ENDPOINT_LOCK_CLASS: i32 = 0x4852_4c44;

/// The second half of an endpoint's claim lock key: 32-bit FNV-1a of its id. It must be the same
/// on every node and in every version, which a hand-written hash guarantees. Two endpoints that
/// share a key only serialise each other's claims a little more.
fn endpoint_lock_key(endpoint_id: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in endpoint_id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    i32::from_ne_bytes(hash.to_ne_bytes())
}

/// A candidate row: what the claim needs before it knows whether the delivery fits.
struct Candidate {
    delivery_id: String,
    endpoint_id: String,
    tenant_id: String,
    n_attempts: u32,
    created_at: i64,
}

pub(crate) async fn claim_due(
    transaction: &Transaction<'_>,
    now: OffsetDateTime,
    limit: usize,
    lease: Duration,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let now_ms = ms(now);
    let rows = query(
        transaction,
        &format!(
            "SELECT d.id, d.endpoint_id, d.tenant_id, d.n_attempts, d.created_at
             FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id
             WHERE e.enabled AND NOT e.paused
               AND ((d.state IN ('pending','scheduled') AND d.next_attempt_at <= $1)
                    OR (d.state = 'in_flight' AND d.lease_until <= $1))
               AND (e.ordering = 'none'
                    OR (e.ordering = 'strict' AND NOT EXISTS (
                        SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id
                          AND p.state IN {UNFINISHED} AND p.event_seq < d.event_seq))
                    OR (e.ordering = 'subject' AND (d.subject IS NULL OR NOT EXISTS (
                        SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id
                          AND p.subject = d.subject AND p.state IN {UNFINISHED}
                          AND p.event_seq < d.event_seq))))
             ORDER BY d.next_attempt_at, d.rowid_
             LIMIT $2
             FOR UPDATE OF d SKIP LOCKED"
        ),
        &[&now_ms, &to_i64(limit.saturating_mul(4))],
    )
    .await?;
    let mut candidates = Vec::with_capacity(rows.len());
    for row in &rows {
        let n_attempts: i64 = get(row, 3)?;
        candidates.push(Candidate {
            delivery_id: get(row, 0)?,
            endpoint_id: get(row, 1)?,
            tenant_id: get(row, 2)?,
            n_attempts: u32::try_from(n_attempts).unwrap_or(u32::MAX),
            created_at: get(row, 4)?,
        });
    }
    if candidates.is_empty() {
        return Ok(Vec::new());
    }

    let mut endpoint_ids: Vec<String> = candidates
        .iter()
        .map(|candidate| candidate.endpoint_id.clone())
        .collect();
    endpoint_ids.sort();
    endpoint_ids.dedup();
    let mut lock_keys: Vec<i32> = endpoint_ids
        .iter()
        .map(|endpoint_id| endpoint_lock_key(endpoint_id))
        .collect();
    lock_keys.sort_unstable();
    lock_keys.dedup();
    // `unnest` yields the keys in array order and nothing here sorts or parallelises, so the locks
    // are taken in ascending key order on every node.
    execute(
        transaction,
        "SELECT pg_advisory_xact_lock($1::int4, key) FROM unnest($2::int4[]) AS key",
        &[&ENDPOINT_LOCK_CLASS, &lock_keys],
    )
    .await?;

    let mut in_flight: HashMap<String, u32> = HashMap::new();
    for row in query(
        transaction,
        "SELECT endpoint_id, COUNT(*) FROM deliveries
         WHERE state = 'in_flight' AND lease_until > $1 AND endpoint_id = ANY($2)
         GROUP BY endpoint_id",
        &[&now_ms, &endpoint_ids],
    )
    .await?
    {
        let count: i64 = get(&row, 1)?;
        in_flight.insert(get(&row, 0)?, u32::try_from(count).unwrap_or(u32::MAX));
    }
    let mut endpoints: HashMap<String, EndpointRecord> = HashMap::new();
    for row in query(
        transaction,
        &format!("SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ANY($1)"),
        &[&endpoint_ids],
    )
    .await?
    {
        let endpoint = read_endpoint(&row)?;
        endpoints.insert(endpoint.id.clone(), endpoint);
    }

    // Rate buckets of the candidate endpoints, read under the same locks, so nodes take turns.
    let mut buckets: HashMap<String, TokenBucket> = HashMap::new();
    for row in query(
        transaction,
        "SELECT endpoint_id, tokens, refilled_at FROM endpoint_rate_buckets WHERE endpoint_id = ANY($1)",
        &[&endpoint_ids],
    )
    .await?
    {
        let refilled_at: i64 = get(&row, 2)?;
        buckets.insert(get(&row, 0)?, TokenBucket { tokens: get(&row, 1)?, refilled_at: from_ms(refilled_at) });
    }
    let mut touched_buckets: Vec<String> = Vec::new();
    let mut rate_limited: Vec<(String, i64)> = Vec::new();

    let mut chosen = Vec::new();
    for candidate in candidates {
        if chosen.len() >= limit {
            break;
        }
        let Some(endpoint) = endpoints.get(&candidate.endpoint_id) else {
            continue;
        };
        if endpoint.tenant_id != candidate.tenant_id {
            continue;
        }
        let busy = in_flight.entry(candidate.endpoint_id.clone()).or_insert(0);
        if *busy >= endpoint.max_concurrency.max(1) {
            continue;
        }
        if let Some(rate) = endpoint.rate_limit_per_s {
            let bucket = buckets
                .entry(candidate.endpoint_id.clone())
                .or_insert_with(|| TokenBucket::full(rate, now));
            if !touched_buckets.contains(&candidate.endpoint_id) {
                touched_buckets.push(candidate.endpoint_id.clone());
            }
            if let Err(wait) = bucket.take(rate, now) {
                // Not due again before a token is there, so no node spins on it meanwhile.
                rate_limited.push((candidate.delivery_id.clone(), ms(now + wait)));
                continue;
            }
        }
        *busy += 1;
        chosen.push(candidate);
    }
    for endpoint_id in &touched_buckets {
        if let Some(bucket) = buckets.get(endpoint_id) {
            execute(
                transaction,
                "INSERT INTO endpoint_rate_buckets (endpoint_id, tokens, refilled_at) VALUES ($1, $2, $3)
                 ON CONFLICT (endpoint_id) DO UPDATE SET tokens = $2, refilled_at = $3",
                &[endpoint_id, &bucket.tokens, &ms(bucket.refilled_at)],
            )
            .await?;
        }
    }
    for (delivery_id, due_at_ms) in &rate_limited {
        execute(
            transaction,
            "UPDATE deliveries SET next_attempt_at = $2 WHERE id = $1 AND state IN ('pending','scheduled')",
            &[delivery_id, due_at_ms],
        )
        .await?;
    }
    if chosen.is_empty() {
        return Ok(Vec::new());
    }

    let chosen_ids: Vec<&str> = chosen
        .iter()
        .map(|candidate| candidate.delivery_id.as_str())
        .collect();
    execute(
        transaction,
        "UPDATE deliveries SET state = 'in_flight', lease_until = $2, updated_at = $3
         WHERE id = ANY($1)",
        &[&chosen_ids, &ms(now + lease), &now_ms],
    )
    .await?;
    let mut events = HashMap::new();
    for row in query(
        transaction,
        &format!(
            "SELECT d.id, {} FROM deliveries d
             JOIN events ev ON ev.tenant_id = d.tenant_id AND ev.seq = d.event_seq
             WHERE d.id = ANY($1)",
            prefixed(EVENT_COLUMNS, "ev.")
        ),
        &[&chosen_ids],
    )
    .await?
    {
        let delivery_id: String = get(&row, 0)?;
        events.insert(delivery_id, read_event_at(&row, 1)?);
    }
    let mut tenant_ids: Vec<&str> = chosen
        .iter()
        .map(|candidate| candidate.tenant_id.as_str())
        .collect();
    tenant_ids.sort_unstable();
    tenant_ids.dedup();
    let mut issuers = HashMap::new();
    for row in query(
        transaction,
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY($1)"),
        &[&tenant_ids],
    )
    .await?
    {
        let tenant = read_tenant(&row)?;
        issuers.insert(tenant.id.clone(), tenant.issuer_or_default());
    }

    let mut claimed = Vec::with_capacity(chosen.len());
    for candidate in chosen {
        let (Some(endpoint), Some(event)) = (
            endpoints.get(&candidate.endpoint_id),
            events.remove(&candidate.delivery_id),
        ) else {
            // The foreign keys make this impossible; a delivery without its rows is not sent.
            continue;
        };
        claimed.push(ClaimedDelivery {
            delivery_id: candidate.delivery_id,
            n_attempts: candidate.n_attempts,
            endpoint: endpoint.clone(),
            event: event.event,
            tenant_issuer: issuers
                .get(&candidate.tenant_id)
                .cloned()
                .unwrap_or_default(),
            created_at: from_ms(candidate.created_at),
        });
    }
    Ok(claimed)
}

/// `"a, b"` with `"t."` becomes `"t.a, t.b"`.
fn prefixed(columns: &str, prefix: &str) -> String {
    columns
        .split(',')
        .map(|column| format!("{prefix}{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_fnv_1a() {
        // Published FNV-1a test vectors: the key must never change between versions.
        assert_eq!(
            endpoint_lock_key(""),
            i32::from_ne_bytes(0x811c_9dc5u32.to_ne_bytes())
        );
        assert_eq!(
            endpoint_lock_key("a"),
            i32::from_ne_bytes(0xe40c_292cu32.to_ne_bytes())
        );
    }

    #[test]
    fn columns_are_prefixed() {
        assert_eq!(prefixed("a, b,c", "t."), "t.a, t.b, t.c");
    }
}
