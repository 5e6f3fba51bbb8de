//! Claiming due deliveries when several nodes share the database: endpoint by endpoint.
//!
//! A claim is one transaction, and it costs what it claims however large the backlog is: every
//! index it reads starts with the endpoint (migration 0005), and the queue of a paused or
//! disabled endpoint is never looked at.
//!
//! 1. **Endpoints with due work.** The endpoints that have unfinished deliveries are found by
//!    skipping through a partial index one endpoint at a time (idle endpoints cost nothing); each
//!    of them that is active (enabled, not paused) is probed for its earliest waiting delivery (`deliveries_waiting (endpoint_id, state, next_attempt_at)`, one
//!    entry per waiting state) and its earliest lease expiry (`deliveries_leased`): a lease that
//!    ran out is a dead node's work. The endpoints due by now are sorted by claim lock key; the
//!    first one in turn rotates from one claim to the next, and each gets a fair share of the
//!    batch, so a busy endpoint cannot starve the others.
//! 2. **Serialise per endpoint.** Before an endpoint is worked on, its transaction-scoped advisory
//!    lock is taken, and held until commit. Locks are *waited for* only in ascending key order:
//!    from the endpoint in turn to the end of the sorted list. The endpoints before it, visited
//!    after the rotation wrapped around, are only *tried* (`pg_try_advisory_xact_lock`) and
//!    skipped when another transaction holds them, which means another claim is taking their
//!    work right now. So a claim only ever waits for a key larger than every key it holds, and a
//!    cycle of claims waiting for each other would need keys that grow all the way round: there
//!    is none, so claims cannot deadlock. Nothing else in a claim waits for another claim: rows
//!    are locked with `SKIP LOCKED`, the updates touch only rows the claim locked itself, and a
//!    rate bucket row is written only under its endpoint's lock.
//! 3. **Count** the endpoint's unexpired leases, in a statement of its own after the lock. Under
//!    `READ COMMITTED` it sees every claim committed by the previous holder of the lock, so no two
//!    nodes can both fill the same free slots of `max_concurrency`.
//! 4. **Read only what fits**, locked with `FOR UPDATE SKIP LOCKED`: per waiting state the earliest
//!    due (`ORDER BY next_attempt_at LIMIT n`), and in-flight rows whose lease ran out, merged by
//!    due time. A row another transaction holds is skipped, not waited for, and can never be
//!    claimed twice: the second node either skips the locked row or, once the first committed,
//!    re-checks it and finds it leased. An ordered endpoint offers only the head of each queue:
//!    for `strict`, its unfinished delivery with the smallest seq, if it is due and nothing is in
//!    flight; for `subject`, deliveries with no earlier *unfinished* delivery of their subject
//!    (one probe of `deliveries_unfinished_by_subject` each). `in_flight` counts as unfinished, so
//!    while one node works on a head the next row is not a head for anybody. Heads are judged
//!    without `SKIP LOCKED`, so a head another transaction holds still hides what is behind it.
//!    The price of exact subject heads: a claim reads past the due deliveries that wait behind an
//!    earlier one of their subject, rather than letting them block the other subjects.
//! 5. **Rate limit** with the endpoint's token bucket row, read and written under its lock, so the
//!    limit holds across nodes; a delivery held back is made due when the next token is there.
//! 6. **Lease** what was chosen, read each event once and the tenants' issuers, and announce the
//!    leases, in statements sent together.
//!
//! The rules of steps 1, 4 (which queue heads to offer) and 5 are `herald_store::planner`'s,
//! shared with SQLite; this file holds the queries and the locking.
//!
//! Statements that do not need each other's answers (the lock and the count after it; step 6)
//! are pipelined on the connection: the server still runs them one after the other, in the order
//! sent, so each sees what the ones before it did.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use futures_util::future::{try_join, try_join4};
use herald_core::ids::DeliveryId;
use herald_store::StoreResult;
use herald_store::models::{ClaimedDelivery, EndpointRecord};
use herald_store::planner::{self, Offer};
use time::{Duration, OffsetDateTime};

use crate::rows::{
    ENDPOINT_COLUMNS, EVENT_COLUMNS, TENANT_COLUMNS, from_ms, get, get_id, map_backend, ms,
    read_endpoint, read_event, read_tenant, to_i64,
};
use crate::{UNFINISHED, execute, prepare, query, query_one, query_opt, wakeups};

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

/// When the endpoint `e` next has work: its earliest waiting delivery (one probe of
/// `deliveries_waiting` per waiting state) or the earliest expiry of its leases (one probe of
/// `deliveries_leased`). NULL when it has nothing unfinished.
const EARLIEST_DUE: &str = "(SELECT MIN(due.at) FROM (
        (SELECT d.next_attempt_at AS at FROM deliveries d
         WHERE d.endpoint_id = e.id AND d.state = 'pending' ORDER BY d.next_attempt_at LIMIT 1)
        UNION ALL
        (SELECT d.next_attempt_at FROM deliveries d
         WHERE d.endpoint_id = e.id AND d.state = 'scheduled' ORDER BY d.next_attempt_at LIMIT 1)
        UNION ALL
        (SELECT MIN(d.lease_until) FROM deliveries d
         WHERE d.endpoint_id = e.id AND d.state = 'in_flight')) AS due)";

/// `with_work`: the endpoints that have an unfinished delivery, found by skipping through
/// `deliveries_unfinished_by_subject` (a partial index of unfinished deliveries that starts with
/// the endpoint) one endpoint at a time: a probe per endpoint with work, so the many endpoints
/// with nothing to do cost a claim nothing, and neither does the length of any queue.
/// `d.state IN {UNFINISHED}` must imply the index's condition for PostgreSQL to use it.
fn with_work_cte() -> String {
    format!(
        "WITH RECURSIVE with_work(endpoint_id) AS (
             (SELECT d.endpoint_id FROM deliveries d WHERE d.state IN {UNFINISHED}
              ORDER BY d.endpoint_id LIMIT 1)
             UNION ALL
             SELECT (SELECT d.endpoint_id FROM deliveries d
                     WHERE d.state IN {UNFINISHED} AND d.endpoint_id > w.endpoint_id
                     ORDER BY d.endpoint_id LIMIT 1)
             FROM with_work w WHERE w.endpoint_id IS NOT NULL)"
    )
}

/// A due delivery, as much of it as claiming needs.
struct Candidate {
    delivery_id: DeliveryId,
    tenant_id: String,
    event_seq: i64,
    n_attempts: u32,
    created_at: i64,
}

/// The columns [`read_candidate`] reads; a query may add the due time it orders by after them.
const CANDIDATE_COLUMNS: &str = "d.id, d.tenant_id, d.event_seq, d.n_attempts, d.created_at";

fn read_candidate(row: &tokio_postgres::Row) -> StoreResult<Candidate> {
    let n_attempts: i64 = get(row, 3)?;
    Ok(Candidate {
        delivery_id: get_id(row, 0)?,
        tenant_id: get(row, 1)?,
        event_seq: get(row, 2)?,
        n_attempts: u32::try_from(n_attempts).unwrap_or(u32::MAX),
        created_at: get(row, 4)?,
    })
}

/// Active endpoints with work due by `now`, sorted by claim lock key (ties by id).
async fn endpoints_with_due_work(
    transaction: &Transaction<'_>,
    now_ms: i64,
) -> StoreResult<Vec<(i32, EndpointRecord)>> {
    let rows = query(
        transaction,
        &format!(
            "{with_work} SELECT {ENDPOINT_COLUMNS} FROM endpoints e
             WHERE e.id IN (SELECT endpoint_id FROM with_work)
               AND e.enabled AND NOT e.paused AND {EARLIEST_DUE} <= $1",
            with_work = with_work_cte()
        ),
        &[&now_ms],
    )
    .await?;
    let mut endpoints = Vec::with_capacity(rows.len());
    for row in &rows {
        let endpoint = read_endpoint(row)?;
        endpoints.push((endpoint_lock_key(endpoint.id.as_str()), endpoint));
    }
    endpoints.sort_by(|(key_a, a), (key_b, b)| key_a.cmp(key_b).then_with(|| a.id.cmp(&b.id)));
    Ok(endpoints)
}

/// Takes an endpoint's claim lock until commit, then counts its attempts running now (leases
/// not yet run out). With `wait`, queues for the lock; without, gives up at once if another
/// transaction holds it, and returns `None`.
///
/// The two statements are sent together, and the count runs after the lock was granted, as a
/// statement of its own: so its snapshot holds every claim the previous holder committed.
async fn lock_and_count_busy(
    transaction: &Transaction<'_>,
    key: i32,
    wait: bool,
    endpoint_id: &str,
    now_ms: i64,
) -> StoreResult<Option<u32>> {
    let lock = prepare(
        transaction,
        if wait {
            "SELECT TRUE FROM pg_advisory_xact_lock($1::int4, $2::int4)"
        } else {
            "SELECT pg_try_advisory_xact_lock($1::int4, $2::int4)"
        },
    )
    .await?;
    let busy = prepare(
        transaction,
        "SELECT COUNT(*) FROM deliveries
         WHERE endpoint_id = $1 AND state = 'in_flight' AND lease_until > $2",
    )
    .await?;
    let (locked, counted) = try_join(
        transaction.query_one(&lock, &[&ENDPOINT_LOCK_CLASS, &key]),
        transaction.query_one(&busy, &[&endpoint_id, &now_ms]),
    )
    .await
    .map_err(map_backend)?;
    let got_lock: bool = get(&locked, 0)?;
    if !got_lock {
        return Ok(None);
    }
    let count: i64 = get(&counted, 0)?;
    Ok(Some(u32::try_from(count).unwrap_or(u32::MAX)))
}

/// Up to `limit` due deliveries of an endpoint, earliest due first, locked: waiting ones, and
/// in-flight ones whose attempt was lost (the lease ran out). With `by_subject`, only those with
/// no earlier unfinished delivery of their subject.
async fn due_deliveries(
    transaction: &Transaction<'_>,
    endpoint_id: &str,
    now_ms: i64,
    limit: usize,
    by_subject: bool,
) -> StoreResult<Vec<Candidate>> {
    let head_of_subject = if by_subject {
        format!(
            "AND (d.subject IS NULL OR NOT EXISTS (
                 SELECT 1 FROM deliveries p WHERE p.endpoint_id = d.endpoint_id
                   AND p.subject = d.subject AND p.state IN {UNFINISHED}
                   AND p.event_seq < d.event_seq))"
        )
    } else {
        String::new()
    };
    // Each branch walks one index range in due order and stops after `limit` rows it could lock.
    let rows = query(
        transaction,
        &format!(
            "WITH pending AS (
                 SELECT {CANDIDATE_COLUMNS}, d.next_attempt_at AS due_at FROM deliveries d
                 WHERE d.endpoint_id = $1 AND d.state = 'pending' AND d.next_attempt_at <= $2
                   {head_of_subject}
                 ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             scheduled AS (
                 SELECT {CANDIDATE_COLUMNS}, d.next_attempt_at AS due_at FROM deliveries d
                 WHERE d.endpoint_id = $1 AND d.state = 'scheduled' AND d.next_attempt_at <= $2
                   {head_of_subject}
                 ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED),
             lost AS (
                 SELECT {CANDIDATE_COLUMNS}, d.lease_until AS due_at FROM deliveries d
                 WHERE d.endpoint_id = $1 AND d.state = 'in_flight' AND d.lease_until <= $2
                   {head_of_subject}
                 ORDER BY d.lease_until LIMIT $3 FOR UPDATE SKIP LOCKED)
             SELECT * FROM pending UNION ALL SELECT * FROM scheduled UNION ALL SELECT * FROM lost
             ORDER BY due_at LIMIT $3"
        ),
        &[&endpoint_id, &now_ms, &to_i64(limit)],
    )
    .await?;
    rows.iter().map(read_candidate).collect()
}

/// The head of a strictly ordered endpoint's queue (its unfinished delivery with the smallest
/// seq), locked, if it is due and no other transaction holds it.
async fn due_head(
    transaction: &Transaction<'_>,
    endpoint_id: &str,
    now_ms: i64,
) -> StoreResult<Option<Candidate>> {
    // The head is found without `SKIP LOCKED` (one probe of `deliveries_by_endpoint` per
    // unfinished state), so a head held by another transaction is not passed over; only then is
    // it locked, and skipped if held.
    let row = query_opt(
        transaction,
        &format!(
            "SELECT {CANDIDATE_COLUMNS} FROM deliveries d
             WHERE d.id = (
                 SELECT head.id FROM (
                     (SELECT id, event_seq FROM deliveries
                      WHERE endpoint_id = $1 AND state = 'pending' ORDER BY event_seq LIMIT 1)
                     UNION ALL
                     (SELECT id, event_seq FROM deliveries
                      WHERE endpoint_id = $1 AND state = 'scheduled' ORDER BY event_seq LIMIT 1)
                     UNION ALL
                     (SELECT id, event_seq FROM deliveries
                      WHERE endpoint_id = $1 AND state = 'in_flight' ORDER BY event_seq LIMIT 1)
                 ) AS head
                 ORDER BY head.event_seq LIMIT 1)
               AND ((d.state IN ('pending','scheduled') AND d.next_attempt_at <= $2)
                    OR (d.state = 'in_flight' AND d.lease_until <= $2))
             FOR UPDATE SKIP LOCKED"
        ),
        &[&endpoint_id, &now_ms],
    )
    .await?;
    row.as_ref().map(read_candidate).transpose()
}

/// Picks due deliveries that their endpoint's ordering, concurrency and rate limit allow, and
/// leases them until `now + lease`. Endpoints share `limit` in turns that rotate with `turn`.
pub(crate) async fn claim_due(
    transaction: &Transaction<'_>,
    now: OffsetDateTime,
    limit: usize,
    lease: Duration,
    turn: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let now_ms = ms(now);
    if limit == 0 {
        return Ok(Vec::new());
    }
    let endpoints = endpoints_with_due_work(transaction, now_ms).await?;
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    let fair_share = planner::fair_share(limit, endpoints.len());

    // (index into `endpoints`, delivery) in claim order.
    let mut chosen: Vec<(usize, Candidate)> = Vec::new();
    let mut postponed_ids: Vec<String> = Vec::new();
    let mut postponed_until: Vec<i64> = Vec::new();
    // From the endpoint in turn to the end the keys ascend and locks are waited for; the ones
    // before it come after the wrap-around, below keys already held, and are only tried.
    for (endpoint_idx, wait) in planner::visiting_order(endpoints.len(), turn) {
        let room = limit - chosen.len();
        if room == 0 {
            break;
        }
        let (lock_key, endpoint) = &endpoints[endpoint_idx];
        let Some(busy) =
            lock_and_count_busy(transaction, *lock_key, wait, endpoint.id.as_str(), now_ms).await?
        else {
            continue;
        };
        let candidates = match planner::offer(endpoint, busy, fair_share, room) {
            Offer::Nothing => continue,
            Offer::Earliest(wanted) => {
                due_deliveries(transaction, endpoint.id.as_str(), now_ms, wanted, false).await?
            }
            Offer::SubjectHeads(wanted) => {
                due_deliveries(transaction, endpoint.id.as_str(), now_ms, wanted, true).await?
            }
            Offer::StrictHead => due_head(transaction, endpoint.id.as_str(), now_ms)
                .await?
                .into_iter()
                .collect(),
        };
        if candidates.is_empty() {
            continue;
        }
        let stored_bucket = match endpoint.rate_limit_per_s {
            Some(_) => crate::rate_buckets::read_bucket(transaction, endpoint.id.as_str()).await?,
            None => None,
        };
        let limited =
            planner::rate_limit(endpoint.rate_limit_per_s, stored_bucket, candidates, now);
        chosen.extend(
            limited
                .admitted
                .into_iter()
                .map(|candidate| (endpoint_idx, candidate)),
        );
        for (candidate, due_at) in limited.postponed {
            // Not due again before a token is there, so no node spins on it meanwhile.
            postponed_ids.push(candidate.delivery_id.into_string());
            postponed_until.push(ms(due_at));
        }
        if let Some(bucket) = &limited.bucket {
            crate::rate_buckets::write_bucket(transaction, endpoint.id.as_str(), bucket).await?;
        }
    }
    if !postponed_ids.is_empty() {
        execute(
            transaction,
            "UPDATE deliveries d SET next_attempt_at = held.due_at
             FROM unnest($1::text[], $2::int8[]) AS held(id, due_at)
             WHERE d.id = held.id AND d.state IN ('pending','scheduled')",
            &[&postponed_ids, &postponed_until],
        )
        .await?;
    }
    if chosen.is_empty() {
        return Ok(Vec::new());
    }

    let chosen_ids: Vec<&str> = chosen
        .iter()
        .map(|(_, candidate)| candidate.delivery_id.as_str())
        .collect();
    let mut event_keys: Vec<(&str, i64)> = chosen
        .iter()
        .map(|(_, candidate)| (candidate.tenant_id.as_str(), candidate.event_seq))
        .collect();
    event_keys.sort_unstable();
    event_keys.dedup();
    let (event_tenants, event_seqs): (Vec<&str>, Vec<i64>) = event_keys.into_iter().unzip();
    let mut tenant_ids = event_tenants.clone();
    tenant_ids.dedup();
    let lease_until = ms(now + lease);
    // The lease, the reads of what was leased, and the announcement that other nodes should
    // wake when the lease expires (should this node die) are sent together.
    let lease_chosen = prepare(
        transaction,
        "UPDATE deliveries SET state = 'in_flight', lease_until = $2, updated_at = $3
         WHERE id = ANY($1)",
    )
    .await?;
    let select_events = prepare(
        transaction,
        &format!(
            "SELECT {} FROM unnest($1::text[], $2::int8[]) AS wanted(tenant_id, seq)
             JOIN events ev ON ev.tenant_id = wanted.tenant_id AND ev.seq = wanted.seq",
            prefixed(EVENT_COLUMNS, "ev.")
        ),
    )
    .await?;
    let select_tenants = prepare(
        transaction,
        &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY($1)"),
    )
    .await?;
    let notify = prepare(transaction, wakeups::NOTIFY_STATEMENT).await?;
    let (_, event_rows, tenant_rows, _) = try_join4(
        transaction.execute(&lease_chosen, &[&chosen_ids, &lease_until, &now_ms]),
        transaction.query(&select_events, &[&event_tenants, &event_seqs]),
        transaction.query(&select_tenants, &[&tenant_ids]),
        transaction.execute(&notify, &[]),
    )
    .await
    .map_err(map_backend)?;
    // Each event read once, however many endpoints it goes to.
    let mut events = HashMap::with_capacity(event_rows.len());
    for row in &event_rows {
        let stored = read_event(row)?;
        events.insert((stored.tenant_id, stored.event.seq), stored.event);
    }
    let mut issuers = HashMap::with_capacity(tenant_rows.len());
    for row in &tenant_rows {
        let tenant = read_tenant(row)?;
        issuers.insert(tenant.id.clone(), tenant.issuer_or_default());
    }

    let mut claimed = Vec::with_capacity(chosen.len());
    for (endpoint_idx, candidate) in chosen {
        let key = (candidate.tenant_id.clone(), candidate.event_seq);
        let Some(event) = events.get(&key).cloned() else {
            // The foreign keys make this impossible; a delivery without its event is not sent.
            continue;
        };
        claimed.push(ClaimedDelivery {
            tenant_issuer: issuers
                .get(&candidate.tenant_id)
                .cloned()
                .unwrap_or_default(),
            delivery_id: candidate.delivery_id,
            n_attempts: candidate.n_attempts,
            endpoint: endpoints[endpoint_idx].1.clone(),
            event,
            created_at: from_ms(candidate.created_at),
        });
    }
    Ok(claimed)
}

/// When the earliest delivery an active endpoint could take falls due (a waiting delivery's due
/// time or a lease's expiry), if any waits. A few index probes per active endpoint with work.
pub(crate) async fn next_due_at<C: GenericClient>(
    client: &C,
) -> StoreResult<Option<OffsetDateTime>> {
    let row = query_one(
        client,
        &format!(
            "{with_work} SELECT MIN(active.due_at) FROM (
                 SELECT {EARLIEST_DUE} AS due_at FROM endpoints e
                 WHERE e.id IN (SELECT endpoint_id FROM with_work)
                   AND e.enabled AND NOT e.paused) AS active",
            with_work = with_work_cte()
        ),
        &[],
    )
    .await?;
    let earliest: Option<i64> = get(&row, 0)?;
    Ok(earliest.map(from_ms))
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
mod tests;
