//! Claiming due deliveries when several nodes share the database: endpoint by endpoint, inside
//! PostgreSQL.
//!
//! A claim is one statement, `herald_claim` (migration 0012), in its own implicit transaction; a
//! second round trip reads what it leased. It costs what it claims however large the backlog is:
//! every index it reads starts with the endpoint (migration 0005), and the queue of a paused or
//! disabled endpoint is never looked at.
//!
//! 1. **Endpoints with due work.** The endpoints that have unfinished deliveries are found by
//!    skipping through a partial index one endpoint at a time (idle endpoints cost nothing); each
//!    of them that is active (enabled, not paused) is probed for its earliest waiting delivery
//!    and its earliest lease expiry: a lease that ran out is a dead node's work. The endpoints due
//!    by now are sorted by claim lock key; the first one in turn rotates from one claim to the
//!    next, and each gets a fair share of the batch, so a busy endpoint cannot starve the others.
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
//! 3. **Count** the endpoint's unexpired leases, in a statement of its own after the lock. The
//!    function is volatile, so under `READ COMMITTED` each of its statements takes a new
//!    snapshot: the count sees every claim committed by the previous holder of the lock, and no
//!    two nodes can both fill the same free slots of `max_concurrency`.
//! 4. **Read only what fits**, locked with `FOR UPDATE SKIP LOCKED`: per waiting state the earliest
//!    due, and in-flight rows whose lease ran out, merged by due time. A row another transaction
//!    holds is skipped, not waited for, and can never be claimed twice: the second node either
//!    skips the locked row or, once the first committed, re-checks it and finds it leased. An
//!    ordered endpoint offers only the head of each queue: for `strict`, its unfinished delivery
//!    with the smallest seq, if it is due and nothing is in flight; for `subject`, deliveries with
//!    no earlier *unfinished* delivery of their subject. `in_flight` counts as unfinished, so
//!    while one node works on a head the next row is not a head for anybody.
//! 5. **Rate limit** with the endpoint's token bucket row, read and written under its lock, so the
//!    limit holds across nodes; a delivery held back is made due when the next token is there.
//! 6. **Lease** what was chosen and announce it (`pg_notify`), then commit without waiting for
//!    the WAL to reach the disk (the function says why that is safe).
//!
//! The rules of steps 1 to 5 are `herald_store::planner`'s (and `herald_core::rate`'s token
//! bucket), which the SQLite backend applies in Rust; PostgreSQL applies them in the function, so
//! that a claim is one round trip instead of seven. The shared conformance suite
//! (`herald_store::conformance::claims`) holds both to the same behaviour.
//!
//! What a claim leased is read after it committed: an event never changes, and an endpoint
//! deleted meanwhile took its deliveries with it, so a delivery whose event or endpoint is gone
//! is not sent (its row is gone too).

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use futures_util::future::try_join3;
use herald_core::ids::DeliveryId;
use herald_store::StoreResult;
use herald_store::models::ClaimedDelivery;
use time::{Duration, OffsetDateTime};

use crate::rows::{
    ENDPOINT_COLUMNS, EVENT_COLUMNS, TENANT_COLUMNS, from_ms, get, get_id, map_backend, ms,
    read_endpoint, read_event, read_tenant, to_i64,
};
use crate::{query, query_one};

/// A delivery the claim leased, as `herald_claim` returns it.
struct Leased {
    delivery_id: DeliveryId,
    endpoint_id: String,
    tenant_id: String,
    event_seq: i64,
    n_attempts: u32,
    created_at: i64,
}

fn read_leased(row: &tokio_postgres::Row) -> StoreResult<Leased> {
    let n_attempts: i64 = get(row, 4)?;
    Ok(Leased {
        delivery_id: get_id(row, 0)?,
        endpoint_id: get(row, 1)?,
        tenant_id: get(row, 2)?,
        event_seq: get(row, 3)?,
        n_attempts: u32::try_from(n_attempts).unwrap_or(u32::MAX),
        created_at: get(row, 5)?,
    })
}

/// Picks due deliveries that their endpoint's ordering, concurrency and rate limit allow, and
/// leases them until `now + lease`. Endpoints share `limit` in turns that rotate with `turn`.
/// `client` must not be inside a transaction: the claim commits on its own.
pub(crate) async fn claim_due<C: GenericClient>(
    client: &C,
    now: OffsetDateTime,
    limit: usize,
    lease: Duration,
    turn: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let rows = query(
        client,
        "SELECT * FROM herald_claim($1, $2, $3, $4)",
        &[&ms(now), &to_i64(limit), &ms(now + lease), &to_i64(turn)],
    )
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let leased = rows
        .iter()
        .map(read_leased)
        .collect::<StoreResult<Vec<_>>>()?;

    let mut endpoint_ids: Vec<&str> = leased.iter().map(|l| l.endpoint_id.as_str()).collect();
    endpoint_ids.sort_unstable();
    endpoint_ids.dedup();
    let mut event_keys: Vec<(&str, i64)> = leased
        .iter()
        .map(|l| (l.tenant_id.as_str(), l.event_seq))
        .collect();
    event_keys.sort_unstable();
    event_keys.dedup();
    let (event_tenants, event_seqs): (Vec<&str>, Vec<i64>) = event_keys.into_iter().unzip();
    let mut tenant_ids = event_tenants.clone();
    tenant_ids.dedup();
    // The three reads are sent together.
    let select_endpoints = client
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ANY($1)"
        ))
        .await
        .map_err(map_backend)?;
    let select_events = client
        .prepare_cached(&format!(
            "SELECT {} FROM unnest($1::text[], $2::int8[]) AS wanted(tenant_id, seq)
             JOIN events ev ON ev.tenant_id = wanted.tenant_id AND ev.seq = wanted.seq",
            prefixed(EVENT_COLUMNS, "ev.")
        ))
        .await
        .map_err(map_backend)?;
    let select_tenants = client
        .prepare_cached(&format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ANY($1)"
        ))
        .await
        .map_err(map_backend)?;
    let (endpoint_rows, event_rows, tenant_rows) = try_join3(
        client.query(&select_endpoints, &[&endpoint_ids]),
        client.query(&select_events, &[&event_tenants, &event_seqs]),
        client.query(&select_tenants, &[&tenant_ids]),
    )
    .await
    .map_err(map_backend)?;
    let mut endpoints = HashMap::with_capacity(endpoint_rows.len());
    for row in &endpoint_rows {
        let endpoint = read_endpoint(row)?;
        endpoints.insert(endpoint.id.as_str().to_owned(), endpoint);
    }
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

    let mut claimed = Vec::with_capacity(leased.len());
    for delivery in leased {
        let event = events.get(&(delivery.tenant_id.clone(), delivery.event_seq));
        let endpoint = endpoints.get(&delivery.endpoint_id);
        let (Some(event), Some(endpoint)) = (event, endpoint) else {
            // Deleted since the claim committed, and the delivery with it.
            continue;
        };
        claimed.push(ClaimedDelivery {
            tenant_issuer: issuers
                .get(&delivery.tenant_id)
                .cloned()
                .unwrap_or_default(),
            delivery_id: delivery.delivery_id,
            n_attempts: delivery.n_attempts,
            endpoint: endpoint.clone(),
            event: event.clone(),
            created_at: from_ms(delivery.created_at),
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
        "SELECT MIN(due_at) FROM herald_endpoints_with_work()",
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
