//! Claiming due deliveries, endpoint by endpoint.
//!
//! Each active endpoint's waiting deliveries are read through their own index range
//! (`deliveries_waiting`: endpoint, state, due time), oldest due first, and only as many as the
//! endpoint may take right now. A claim therefore costs what it claims, however large the backlog
//! is, and deliveries of a paused or disabled endpoint are never even looked at.

use std::collections::HashMap;

use herald_catalog::envelope::Event;
use herald_core::rate::TokenBucket;
use herald_store::StoreResult;
use herald_store::models::{ClaimedDelivery, EndpointRecord, Ordering};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::rows::{self, ENDPOINT_COLUMNS, EVENT_COLUMNS, from_ms, map_backend, ms, read_event};

/// A waiting delivery, as much of it as claiming needs.
struct Candidate {
    id: String,
    tenant_id: String,
    event_seq: i64,
    n_attempts: u32,
    created_at: i64,
    /// When it is due: `next_attempt_at`, or the lease expiry of a lost attempt.
    due_at: i64,
}

const CANDIDATE_COLUMNS: &str = "id, tenant_id, event_seq, n_attempts, created_at";

fn read_candidate(row: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        event_seq: row.get(2)?,
        n_attempts: row.get(3)?,
        created_at: row.get(4)?,
        due_at: row.get(5)?,
    })
}

/// Endpoints that may be sent to (enabled and not paused) and have unfinished work. Idle
/// endpoints are not in `endpoints_with_work` (migration 0014), so they cost a claim nothing.
fn active_endpoints(connection: &Connection) -> StoreResult<Vec<EndpointRecord>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints
             WHERE id IN (SELECT endpoint_id FROM endpoints_with_work)
               AND enabled = 1 AND paused = 0
             ORDER BY rowid"
        ))
        .map_err(map_backend)?;
    let endpoints = statement
        .query_map([], rows::read_endpoint)
        .map_err(map_backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_backend)?;
    Ok(endpoints)
}

/// Takes the endpoint out of `endpoints_with_work` if nothing of it is unfinished any more; a
/// delivery created or reopened later puts it back (the triggers of migration 0014).
fn forget_if_idle(connection: &Connection, endpoint_id: &str) -> StoreResult<()> {
    connection
        .prepare_cached(
            "DELETE FROM endpoints_with_work WHERE endpoint_id = ?1 AND NOT EXISTS (
                 SELECT 1 FROM deliveries
                 WHERE endpoint_id = ?1 AND state IN ('pending', 'scheduled', 'in_flight'))",
        )
        .and_then(|mut statement| statement.execute(params![endpoint_id]))
        .map_err(map_backend)?;
    Ok(())
}

/// Attempts of this endpoint running now (leases not yet run out). The `+` keeps the planner on
/// the per-endpoint index rather than scanning every endpoint's in-flight work.
fn busy(connection: &Connection, endpoint_id: &str, now_ms: i64) -> StoreResult<u32> {
    connection
        .prepare_cached(
            "SELECT COUNT(*) FROM deliveries
             WHERE endpoint_id = ?1 AND state = 'in_flight' AND +lease_until > ?2",
        )
        .and_then(|mut statement| {
            statement.query_row(params![endpoint_id, now_ms], |row| row.get(0))
        })
        .map_err(map_backend)
}

/// Up to `limit` due deliveries of one endpoint in one state, earliest due first.
fn due_in_state(
    connection: &Connection,
    endpoint_id: &str,
    state: &str,
    now_ms: i64,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let due_column = if state == "in_flight" {
        "lease_until"
    } else {
        "next_attempt_at"
    };
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS}, {due_column} FROM deliveries
             WHERE endpoint_id = ?1 AND state = ?2 AND {due_column} <= ?3
             ORDER BY {due_column} LIMIT ?4"
        ))
        .map_err(map_backend)?;
    let candidates = statement
        .query_map(
            params![
                endpoint_id,
                state,
                now_ms,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            read_candidate,
        )
        .map_err(map_backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_backend)?;
    Ok(candidates)
}

/// Up to `limit` due deliveries of an unordered endpoint, earliest due first: waiting ones, and
/// in-flight ones whose attempt was lost (its lease ran out).
fn due_deliveries(
    connection: &Connection,
    endpoint_id: &str,
    now_ms: i64,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for state in ["pending", "scheduled", "in_flight"] {
        candidates.extend(due_in_state(connection, endpoint_id, state, now_ms, limit)?);
    }
    candidates.sort_by_key(|candidate| candidate.due_at);
    candidates.truncate(limit);
    Ok(candidates)
}

/// The head of a strictly ordered endpoint's queue (its unfinished delivery with the smallest
/// `seq`), if it is due.
fn due_head(
    connection: &Connection,
    endpoint_id: &str,
    now_ms: i64,
) -> StoreResult<Option<Candidate>> {
    let mut head: Option<(Candidate, bool)> = None;
    for state in ["pending", "scheduled", "in_flight"] {
        let due_column = if state == "in_flight" {
            "lease_until"
        } else {
            "next_attempt_at"
        };
        let first = connection
            .prepare_cached(&format!(
                "SELECT {CANDIDATE_COLUMNS}, {due_column} FROM deliveries
                 WHERE endpoint_id = ?1 AND state = ?2 ORDER BY event_seq LIMIT 1"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row(params![endpoint_id, state], read_candidate)
                    .optional()
            })
            .map_err(map_backend)?;
        if let Some(first) = first
            && head
                .as_ref()
                .is_none_or(|(current, _)| first.event_seq < current.event_seq)
        {
            let due = first.due_at <= now_ms;
            head = Some((first, due));
        }
    }
    Ok(head.and_then(|(candidate, due)| due.then_some(candidate)))
}

/// Whether an earlier delivery for the same subject is still unfinished on this endpoint.
/// One probe of `deliveries_unfinished_by_subject` (a partial index of unfinished deliveries), so
/// its cost does not grow with the subject's history; `p.state IN (...)` must stay spelled as the
/// index's condition for SQLite to use it.
const SUBJECT_BLOCKED: &str = "SELECT EXISTS (SELECT 1 FROM deliveries d JOIN deliveries p
     ON p.endpoint_id = d.endpoint_id AND p.subject = d.subject AND p.event_seq < d.event_seq
     WHERE d.id = ?2 AND d.endpoint_id = ?1 AND d.subject IS NOT NULL
       AND p.state IN ('pending', 'scheduled', 'in_flight'))";

fn subject_blocked(
    connection: &Connection,
    endpoint_id: &str,
    delivery_id: &str,
) -> StoreResult<bool> {
    connection
        .prepare_cached(SUBJECT_BLOCKED)
        .and_then(|mut statement| {
            statement.query_row(params![endpoint_id, delivery_id], |row| row.get(0))
        })
        .map_err(map_backend)
}

/// Picks due deliveries that their endpoint's ordering, concurrency and rate limit allow, and
/// leases them until `now + lease`. Endpoints share `limit` in turns that rotate from one claim
/// to the next, so a busy endpoint cannot starve the others.
pub(crate) fn claim_due(
    transaction: &Transaction<'_>,
    now: OffsetDateTime,
    limit: usize,
    lease: Duration,
    turn: usize,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let now_ms = ms(now);
    let lease_until = ms(now + lease);
    let mut endpoints = active_endpoints(transaction)?;
    if endpoints.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let start = turn % endpoints.len();
    endpoints.rotate_left(start);
    let fair_share = limit.div_ceil(endpoints.len()).max(1);
    let mut issuers: HashMap<String, String> = HashMap::new();
    let mut events: HashMap<(String, i64), Event> = HashMap::new();
    let mut claimed = Vec::new();
    for endpoint in &endpoints {
        let room = limit - claimed.len();
        if room == 0 {
            break;
        }
        let busy = busy(transaction, &endpoint.id, now_ms)?;
        let free = endpoint.max_concurrency.max(1).saturating_sub(busy) as usize;
        let wanted = free.min(fair_share).min(room);
        if wanted == 0 {
            continue;
        }
        let mut candidates = match endpoint.ordering {
            Ordering::None => due_deliveries(transaction, &endpoint.id, now_ms, wanted)?,
            Ordering::Strict if busy == 0 => due_head(transaction, &endpoint.id, now_ms)?
                .into_iter()
                .collect(),
            Ordering::Strict => Vec::new(),
            Ordering::Subject => {
                // Some may wait behind an earlier delivery of their subject: look further ahead.
                let mut allowed = Vec::new();
                for candidate in
                    due_deliveries(transaction, &endpoint.id, now_ms, wanted.saturating_mul(4))?
                {
                    if allowed.len() < wanted
                        && !subject_blocked(transaction, &endpoint.id, &candidate.id)?
                    {
                        allowed.push(candidate);
                    }
                }
                allowed
            }
        };
        if candidates.is_empty() && busy == 0 {
            forget_if_idle(transaction, &endpoint.id)?;
            continue;
        }
        let mut bucket = match endpoint.rate_limit_per_s {
            Some(rate) => Some(
                rows::read_bucket(transaction, &endpoint.id)?
                    .unwrap_or_else(|| TokenBucket::full(rate, now)),
            ),
            None => None,
        };
        for candidate in candidates.drain(..) {
            if let (Some(rate), Some(bucket)) = (endpoint.rate_limit_per_s, bucket.as_mut())
                && let Err(wait) = bucket.take(rate, now)
            {
                // Not due again before a token is there, so nobody spins on it meanwhile.
                postpone(transaction, &candidate.id, now + wait)?;
                continue;
            }
            let key = (candidate.tenant_id.clone(), candidate.event_seq);
            let event = match events.get(&key) {
                Some(event) => event.clone(),
                None => {
                    let event = load_event(transaction, &candidate.tenant_id, candidate.event_seq)?;
                    events.insert(key, event.clone());
                    event
                }
            };
            if !issuers.contains_key(&candidate.tenant_id) {
                let tenant = transaction
                    .prepare_cached(
                        "SELECT id, name, issuer, created_at FROM tenants WHERE id = ?1",
                    )
                    .and_then(|mut statement| {
                        statement.query_row(params![candidate.tenant_id], rows::read_tenant)
                    })
                    .map_err(map_backend)?;
                issuers.insert(candidate.tenant_id.clone(), tenant.issuer_or_default());
            }
            transaction
                .prepare_cached(
                    "UPDATE deliveries SET state = 'in_flight', lease_until = ?2, updated_at = ?3
                     WHERE id = ?1",
                )
                .and_then(|mut statement| {
                    statement.execute(params![candidate.id, lease_until, now_ms])
                })
                .map_err(map_backend)?;
            claimed.push(ClaimedDelivery {
                tenant_issuer: issuers
                    .get(&candidate.tenant_id)
                    .cloned()
                    .unwrap_or_default(),
                delivery_id: candidate.id,
                n_attempts: candidate.n_attempts,
                endpoint: endpoint.clone(),
                event,
                created_at: from_ms(candidate.created_at),
            });
        }
        if let Some(bucket) = &bucket {
            rows::write_bucket(transaction, &endpoint.id, bucket)?;
        }
    }
    Ok(claimed)
}

fn load_event(connection: &Connection, tenant_id: &str, seq: i64) -> StoreResult<Event> {
    connection
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND seq = ?2"
        ))
        .and_then(|mut statement| statement.query_row(params![tenant_id, seq], read_event))
        .map(|stored| stored.event)
        .map_err(map_backend)
}

fn postpone(connection: &Connection, delivery_id: &str, due_at: OffsetDateTime) -> StoreResult<()> {
    connection
        .prepare_cached(
            "UPDATE deliveries SET next_attempt_at = ?2
             WHERE id = ?1 AND state IN ('pending','scheduled')",
        )
        .and_then(|mut statement| statement.execute(params![delivery_id, ms(due_at)]))
        .map_err(map_backend)?;
    Ok(())
}

/// When the earliest delivery an active endpoint could take falls due, if any waits.
pub(crate) fn next_due_at(connection: &Connection) -> StoreResult<Option<OffsetDateTime>> {
    let mut earliest: Option<i64> = None;
    for endpoint in active_endpoints(connection)? {
        for state in ["pending", "scheduled", "in_flight"] {
            let due_column = if state == "in_flight" {
                "lease_until"
            } else {
                "next_attempt_at"
            };
            let due: Option<Option<i64>> = connection
                .prepare_cached(&format!(
                    "SELECT {due_column} FROM deliveries WHERE endpoint_id = ?1 AND state = ?2
                     ORDER BY {due_column} LIMIT 1"
                ))
                .and_then(|mut statement| {
                    statement
                        .query_row(params![endpoint.id, state], |row| row.get(0))
                        .optional()
                })
                .map_err(map_backend)?;
            earliest = match (earliest, due.flatten()) {
                (Some(current), Some(due)) => Some(current.min(due)),
                (current, due) => current.or(due),
            };
        }
    }
    Ok(earliest.map(from_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan, as SQLite's `EXPLAIN QUERY PLAN` details, of `sql` on a migrated file.
    fn plan(sql: &str) -> Vec<String> {
        let directory = tempfile::tempdir().expect("tempdir");
        let connection = Connection::open(directory.path().join("plan.db")).expect("opened");
        crate::schema::configure(&connection).expect("configured");
        crate::schema::migrate(&connection).expect("migrated");
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explained");
        statement
            .query_map(params!["ep_1", "dl_1"], |row| row.get::<_, String>(3))
            .expect("planned")
            .collect::<Result<_, _>>()
            .expect("plan rows")
    }

    #[test]
    fn a_subject_probe_reads_only_unfinished_deliveries() {
        let plan = plan(SUBJECT_BLOCKED);
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX deliveries_unfinished_by_subject")),
            "{plan:?}"
        );
    }
}
