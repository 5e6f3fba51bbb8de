//! Claiming due deliveries, endpoint by endpoint.
//!
//! Each active endpoint's waiting deliveries are read through their own index range
//! (`deliveries_waiting`: endpoint, state, due time), oldest due first, and only as many as the
//! endpoint may take right now. A claim therefore costs what it claims, however large the backlog
//! is, and deliveries of a paused or disabled endpoint are never even looked at.
//!
//! What an endpoint may take (rotation, fair share, free slots, ordering, subject look-ahead,
//! token bucket) is decided by `herald_store::planner`, as on PostgreSQL; this file holds the
//! queries it needs.
//!
//! A claim only reads: its leases are held in memory (`leases.rs`), and the few writes it may
//! need (a rate-limited endpoint's bucket, deliveries postponed by it) are handed back for the
//! writer. A delivery whose attempt runs is still `pending` or `scheduled` in its row, so every
//! read here skips the ones leased in the copy of the leases it is given.

use std::collections::HashMap;

use herald_catalog::envelope::Event;
use herald_core::ids::{DeliveryId, EndpointId};
use herald_core::rate::TokenBucket;
use herald_store::StoreResult;
use herald_store::models::{ClaimedDelivery, EndpointRecord};
use herald_store::planner::{self, Offer, SubjectLookAhead};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use crate::deliveries::UNFINISHED;
use crate::leases::{Lease, LeaseView};
use crate::rows::{self, ENDPOINT_COLUMNS, EVENT_COLUMNS, from_ms, map_backend, ms, read_event};

/// A waiting delivery, as much of it as claiming needs.
struct Candidate {
    rowid: i64,
    id: DeliveryId,
    tenant_id: String,
    event_seq: i64,
    n_attempts: u32,
    created_at: i64,
    /// When it is due: `next_attempt_at`, or the lease expiry of a lost attempt.
    due_at: i64,
}

const CANDIDATE_COLUMNS: &str = "rowid_, id, tenant_id, event_seq, n_attempts, created_at";

fn read_candidate(row: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok(Candidate {
        rowid: row.get(0)?,
        id: rows::id_column(row, 1)?,
        tenant_id: row.get(2)?,
        event_seq: row.get(3)?,
        n_attempts: row.get(4)?,
        created_at: row.get(5)?,
        due_at: row.get(6)?,
    })
}

/// Endpoints that may be sent to (enabled, not paused) and have unfinished deliveries.
///
/// The endpoints with work are found by a skip scan of the partial index
/// `deliveries_unfinished_by_subject` (its leading column is the endpoint): one probe per
/// endpoint with work, so endpoints with nothing to do, however many, cost a claim nothing, and
/// neither do finished deliveries. SQLite uses a partial index only when the query's condition
/// implies the index's own ([`UNFINISHED`], as migration 0014 writes it); `INDEXED BY`
/// makes a mismatch a prepare error instead of a silent scan, and keeps the planner off
/// the state indexes it prefers while the tables have no statistics.
/// The order is the endpoints' creation order (`rowid`), which the claim's rotation turns over.
fn active_endpoints(connection: &Connection) -> StoreResult<Vec<EndpointRecord>> {
    let mut statement = connection
        .prepare_cached(&active_endpoints_sql(ENDPOINT_COLUMNS))
        .map_err(map_backend)?;
    let endpoints = statement
        .query_map([], rows::read_endpoint)
        .map_err(map_backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_backend)?;
    Ok(endpoints)
}

/// The ids alone of [`active_endpoints`], for `next_due_at`: it runs after most claims, and
/// reading whole endpoint records (filters, headers, secrets) cost it more than its queries.
fn active_endpoint_ids(connection: &Connection) -> StoreResult<Vec<EndpointId>> {
    let mut statement = connection
        .prepare_cached(&active_endpoints_sql("id"))
        .map_err(map_backend)?;
    let ids = statement
        .query_map([], |row| rows::id_column(row, 0))
        .map_err(map_backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_backend)?;
    Ok(ids)
}

fn active_endpoints_sql(columns: &str) -> String {
    format!(
        "WITH RECURSIVE with_work(endpoint_id) AS (
             SELECT (SELECT endpoint_id FROM deliveries INDEXED BY deliveries_unfinished_by_subject
                     WHERE {UNFINISHED}
                     ORDER BY endpoint_id LIMIT 1)
             UNION ALL
             SELECT (SELECT endpoint_id FROM deliveries INDEXED BY deliveries_unfinished_by_subject
                     WHERE {UNFINISHED} AND endpoint_id > w.endpoint_id
                     ORDER BY endpoint_id LIMIT 1)
             FROM with_work w WHERE w.endpoint_id IS NOT NULL)
         SELECT {columns} FROM endpoints
         WHERE id IN (SELECT endpoint_id FROM with_work)
           AND enabled = 1 AND paused = 0
         ORDER BY rowid"
    )
}

/// The states a delivery waits in, each with the column that says when it falls due. (Rows are
/// never `in_flight` while this process owns the file: leases are in memory, and the file is
/// opened with every lease of a dead process released.) Each state has its own cached
/// statements.
const WAITING_STATES: [(&str, &str); 2] = [
    ("pending", "next_attempt_at"),
    ("scheduled", "next_attempt_at"),
];

/// Up to `limit` due deliveries of one endpoint in one of [`WAITING_STATES`] whose attempt is
/// not running, earliest due first. Leased ones are due too (they were when claimed), so the
/// read looks past as many rows as the endpoint has leases: in the index alone
/// (`deliveries_waiting` holds the due time and the rowid), and only the rows kept are read.
fn due_in_state(
    connection: &Connection,
    endpoint_id: &EndpointId,
    leases: &LeaseView,
    (state, due_column): (&str, &str),
    now_ms: i64,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let read = limit.saturating_add(leases.n_leased(endpoint_id));
    let mut due = connection
        .prepare_cached(&due_in_state_sql(state, due_column))
        .map_err(map_backend)?;
    let rowids = due
        .query_map(
            params![
                endpoint_id.as_str(),
                now_ms,
                i64::try_from(read).unwrap_or(i64::MAX)
            ],
            |row| row.get::<_, i64>(0),
        )
        .map_err(map_backend)?;
    let mut free = Vec::with_capacity(limit);
    for rowid in rowids {
        let rowid = rowid.map_err(map_backend)?;
        if !leases.running(rowid, now_ms) {
            free.push(rowid);
            if free.len() == limit {
                break;
            }
        }
    }
    let mut by_rowid = connection
        .prepare_cached(&format!(
            "SELECT {CANDIDATE_COLUMNS}, {due_column} FROM deliveries WHERE rowid_ = ?1"
        ))
        .map_err(map_backend)?;
    free.into_iter()
        .map(|rowid| {
            by_rowid
                .query_row(params![rowid], read_candidate)
                .map_err(map_backend)
        })
        .collect()
}

fn due_in_state_sql(state: &str, due_column: &str) -> String {
    format!(
        "SELECT rowid_ FROM deliveries
         WHERE endpoint_id = ?1 AND state = '{state}' AND {due_column} <= ?2
         ORDER BY {due_column} LIMIT ?3"
    )
}

/// Up to `limit` due deliveries of an unordered endpoint, earliest due first: waiting ones, and
/// leased ones whose attempt was lost (its lease ran out).
fn due_deliveries(
    connection: &Connection,
    endpoint_id: &EndpointId,
    leases: &LeaseView,
    now_ms: i64,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let mut candidates = Vec::new();
    for state in WAITING_STATES {
        candidates.extend(due_in_state(
            connection,
            endpoint_id,
            leases,
            state,
            now_ms,
            limit,
        )?);
    }
    Ok(planner::earliest_due(
        candidates,
        |candidate| candidate.due_at,
        limit,
    ))
}

/// The head of a strictly ordered endpoint's queue (its unfinished delivery with the smallest
/// `seq`), if it is due and its attempt is not running.
fn due_head(
    connection: &Connection,
    endpoint_id: &str,
    leases: &LeaseView,
    now_ms: i64,
) -> StoreResult<Option<Candidate>> {
    let mut firsts = Vec::with_capacity(WAITING_STATES.len());
    for (state, due_column) in WAITING_STATES {
        let first = connection
            .prepare_cached(&due_head_sql(state, due_column))
            .and_then(|mut statement| {
                statement
                    .query_row(params![endpoint_id], read_candidate)
                    .optional()
            })
            .map_err(map_backend)?;
        firsts.extend(first);
    }
    Ok(planner::strict_head(
        firsts,
        |first| first.event_seq,
        |first| first.due_at <= now_ms && !leases.running(first.rowid, now_ms),
    ))
}

fn due_head_sql(state: &str, due_column: &str) -> String {
    format!(
        "SELECT {CANDIDATE_COLUMNS}, {due_column} FROM deliveries
         WHERE endpoint_id = ?1 AND state = '{state}' ORDER BY event_seq LIMIT 1"
    )
}

/// Whether an earlier delivery for the same subject is still unfinished on this endpoint.
/// One probe of `deliveries_unfinished_by_subject` (a partial index of unfinished deliveries), so
/// its cost does not grow with the subject's history; the condition on `p.state` must stay spelled
/// as the index's (migration 0014) for SQLite to use it.
const SUBJECT_BLOCKED: &str = "SELECT EXISTS (SELECT 1 FROM deliveries d JOIN deliveries p
     ON p.endpoint_id = d.endpoint_id AND p.subject = d.subject AND p.event_seq < d.event_seq
     WHERE d.id = ?2 AND d.endpoint_id = ?1 AND d.subject IS NOT NULL
       AND (p.state = 'pending' OR p.state = 'scheduled' OR p.state = 'in_flight'))";

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

/// What a claim decided: the deliveries it hands out with their leases, and the writes it needs
/// (see the module comment).
#[derive(Default)]
pub(crate) struct Claim {
    pub(crate) claimed: Vec<ClaimedDelivery>,
    pub(crate) leases: Vec<(DeliveryId, Lease)>,
    pub(crate) writes: ClaimWrites,
}

/// What a claim leaves for the writer: only rate-limited endpoints have any.
#[derive(Default)]
pub(crate) struct ClaimWrites {
    /// Rate-limited deliveries, each not due before the time given.
    postponed: Vec<(DeliveryId, OffsetDateTime)>,
    /// The buckets of rate-limited endpoints, to store back.
    buckets: Vec<(EndpointId, TokenBucket)>,
}

impl ClaimWrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.postponed.is_empty() && self.buckets.is_empty()
    }

    /// Stores the buckets and postponements (one writer job, after the claim's reads).
    pub(crate) fn write(&self, transaction: &Transaction<'_>) -> StoreResult<()> {
        for (delivery_id, due_at) in &self.postponed {
            postpone(transaction, delivery_id.as_str(), *due_at)?;
        }
        for (endpoint_id, bucket) in &self.buckets {
            rows::write_bucket(transaction, endpoint_id.as_str(), bucket)?;
        }
        Ok(())
    }
}

/// Picks due deliveries that their endpoint's ordering, concurrency and rate limit allow, and
/// leases them until `now + lease`. Endpoints share `limit` in turns that rotate from one claim
/// to the next, so a busy endpoint cannot starve the others. `leases` must have been copied
/// before `connection`'s first read (see `leases.rs`).
pub(crate) fn claim_due(
    connection: &Connection,
    leases: &LeaseView,
    now: OffsetDateTime,
    limit: usize,
    lease: Duration,
    turn: usize,
) -> StoreResult<Claim> {
    let now_ms = ms(now);
    let until_ms = ms(now + lease);
    let endpoints = active_endpoints(connection)?;
    let mut claim = Claim::default();
    if endpoints.is_empty() || limit == 0 {
        return Ok(claim);
    }
    let fair_share = planner::fair_share(limit, endpoints.len());
    let mut issuers: HashMap<String, String> = HashMap::new();
    let mut events: HashMap<(String, i64), Event> = HashMap::new();
    // One claim at a time (the store's claim gate): no locks to wait for, so the flag of the
    // visiting order is moot.
    for (endpoint_idx, _) in planner::visiting_order(endpoints.len(), turn) {
        let endpoint = &endpoints[endpoint_idx];
        let room = limit - claim.claimed.len();
        if room == 0 {
            break;
        }
        let busy = leases.busy(&endpoint.id, now_ms);
        let candidates = match planner::offer(endpoint, busy, fair_share, room) {
            Offer::Nothing => continue,
            Offer::Earliest(wanted) => {
                due_deliveries(connection, &endpoint.id, leases, now_ms, wanted)?
            }
            Offer::StrictHead => due_head(connection, endpoint.id.as_str(), leases, now_ms)?
                .into_iter()
                .collect(),
            Offer::SubjectHeads(wanted) => {
                subject_heads(connection, &endpoint.id, leases, now_ms, wanted)?
            }
        };
        if candidates.is_empty() {
            continue;
        }
        let stored_bucket = match endpoint.rate_limit_per_s {
            Some(_) => rows::read_bucket(connection, endpoint.id.as_str())?,
            None => None,
        };
        let limited =
            planner::rate_limit(endpoint.rate_limit_per_s, stored_bucket, candidates, now);
        claim.writes.postponed.extend(
            limited
                .postponed
                .into_iter()
                .map(|(candidate, due_at)| (candidate.id, due_at)),
        );
        for candidate in limited.admitted {
            let key = (candidate.tenant_id.clone(), candidate.event_seq);
            let event = match events.get(&key) {
                Some(event) => event.clone(),
                None => {
                    let event = load_event(connection, &candidate.tenant_id, candidate.event_seq)?;
                    events.insert(key, event.clone());
                    event
                }
            };
            if !issuers.contains_key(&candidate.tenant_id) {
                let tenant = connection
                    .prepare_cached(
                        "SELECT id, name, issuer, created_at FROM tenants WHERE id = ?1",
                    )
                    .and_then(|mut statement| {
                        statement.query_row(params![candidate.tenant_id], rows::read_tenant)
                    })
                    .map_err(map_backend)?;
                issuers.insert(candidate.tenant_id.clone(), tenant.issuer_or_default());
            }
            claim.leases.push((
                candidate.id.clone(),
                Lease {
                    rowid: candidate.rowid,
                    endpoint_id: endpoint.id.clone(),
                    until_ms,
                },
            ));
            claim.claimed.push(ClaimedDelivery {
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
        if let Some(bucket) = limited.bucket {
            claim.writes.buckets.push((endpoint.id.clone(), bucket));
        }
    }
    Ok(claim)
}

/// Up to `wanted` due deliveries of a subject-ordered endpoint that head their subject, earliest
/// due first, reading past every one that waits behind an earlier delivery of its subject (see
/// [`SubjectLookAhead`]); each is judged once, with one probe.
fn subject_heads(
    connection: &Connection,
    endpoint_id: &EndpointId,
    leases: &LeaseView,
    now_ms: i64,
    wanted: usize,
) -> StoreResult<Vec<Candidate>> {
    let mut look_ahead = SubjectLookAhead::new(wanted);
    let mut judged: HashMap<DeliveryId, bool> = HashMap::new();
    loop {
        let due = due_deliveries(connection, endpoint_id, leases, now_ms, look_ahead.window())?;
        let n_read = due.len();
        let mut heads = Vec::new();
        for candidate in due {
            if heads.len() == wanted {
                break;
            }
            let is_head = match judged.get(&candidate.id) {
                Some(is_head) => *is_head,
                None => {
                    let is_head =
                        !subject_blocked(connection, endpoint_id.as_str(), candidate.id.as_str())?;
                    judged.insert(candidate.id.clone(), is_head);
                    is_head
                }
            };
            if is_head {
                heads.push(candidate);
            }
        }
        if !look_ahead.read_more(n_read, heads.len()) {
            return Ok(heads);
        }
    }
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

/// When the earliest delivery an active endpoint could take falls due, if any waits: the first
/// waiting one that is not leased, or the earliest lease to run out (its delivery is due again
/// then, if its attempt is lost). `leases` is copied before the reads, as for a claim.
pub(crate) fn next_due_at(
    connection: &Connection,
    leases: &LeaseView,
) -> StoreResult<Option<OffsetDateTime>> {
    let mut earliest: Option<i64> = None;
    for endpoint_id in active_endpoint_ids(connection)? {
        earliest = earliest_of(earliest, leases.earliest_expiry(&endpoint_id));
        let look_past = i64::try_from(leases.n_leased(&endpoint_id)).unwrap_or(i64::MAX);
        for (state, due_column) in WAITING_STATES {
            // In the index alone, as for a claim.
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT rowid_, {due_column} FROM deliveries
                     WHERE endpoint_id = ?1 AND state = '{state}'
                     ORDER BY {due_column} LIMIT ?2 + 1"
                ))
                .map_err(map_backend)?;
            let mut rows = statement
                .query(params![endpoint_id.as_str(), look_past])
                .map_err(map_backend)?;
            while let Some(row) = rows.next().map_err(map_backend)? {
                if leases.holds(row.get(0).map_err(map_backend)?) {
                    continue;
                }
                earliest = earliest_of(earliest, row.get(1).map_err(map_backend)?);
                break;
            }
        }
    }
    Ok(earliest.map(from_ms))
}

fn earliest_of(current: Option<i64>, other: Option<i64>) -> Option<i64> {
    match (current, other) {
        (Some(current), Some(other)) => Some(current.min(other)),
        (current, other) => current.or(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan, as SQLite's `EXPLAIN QUERY PLAN` details, of `sql` on a migrated file.
    fn plan(sql: &str) -> Vec<String> {
        plan_with(sql, &["ep_1", "dl_1"])
    }

    fn plan_with(sql: &str, arguments: &[&str]) -> Vec<String> {
        let directory = tempfile::tempdir().expect("tempdir");
        let connection = Connection::open(directory.path().join("plan.db")).expect("opened");
        crate::schema::configure(&connection).expect("configured");
        crate::schema::migrate(&connection).expect("migrated");
        let mut statement = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("explained");
        statement
            .query_map(rusqlite::params_from_iter(arguments), |row| {
                row.get::<_, String>(3)
            })
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

    /// Asserts that each waiting state's statement made by `sql` is planned through `index_step`
    /// (a step of `EXPLAIN QUERY PLAN`) and without a sort.
    fn assert_planned_through(sql: fn(&str, &str) -> String, arguments: &[&str], index_step: &str) {
        for (state, due_column) in WAITING_STATES {
            let plan = plan_with(&sql(state, due_column), arguments);
            assert!(
                plan.iter().any(|step| step.contains(index_step)),
                "{state}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{state}: {plan:?}"
            );
        }
    }

    /// A claim walks past the leased deliveries at the front of an endpoint's queue in the index
    /// alone, never reading their rows.
    #[test]
    fn the_due_rows_are_found_in_the_index_alone() {
        assert_planned_through(
            due_in_state_sql,
            &["ep_1", "1", "10"],
            "USING COVERING INDEX deliveries_waiting",
        );
    }

    /// A strict queue's head is read through the partial index of waiting and exhausted
    /// deliveries, in `seq` order, without sorting.
    #[test]
    fn a_strict_head_is_read_in_seq_order_from_the_index() {
        assert_planned_through(
            due_head_sql,
            &["ep_1"],
            "USING INDEX deliveries_by_endpoint",
        );
    }

    /// A claim's statements are planned once: reading every state for several endpoints again
    /// and again must not make SQLite prepare any of them anew. Without the query planner
    /// stability guarantee (`schema::configure`) it did, at every change of the endpoint bound.
    #[test]
    fn claim_statements_are_not_prepared_again_per_state() {
        let directory = tempfile::tempdir().expect("tempdir");
        let connection = Connection::open(directory.path().join("claims.db")).expect("opened");
        crate::schema::configure(&connection).expect("configured");
        crate::schema::migrate(&connection).expect("migrated");
        let leases = crate::leases::Leases::default().copy();
        for _ in 0..3 {
            for endpoint_id in ["ep_1", "ep_2"] {
                let endpoint_id = EndpointId::parse(endpoint_id).expect("endpoint id");
                due_deliveries(&connection, &endpoint_id, &leases, 1_000, 10).expect("read");
            }
        }
        for (state, due_column) in WAITING_STATES {
            let statement = connection
                .prepare_cached(&due_in_state_sql(state, due_column))
                .expect("cached");
            assert_eq!(
                statement.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{state}"
            );
        }
    }

    /// Idle endpoints must cost a claim nothing: the endpoints with work come from the partial
    /// index (the first step reads its first entry, each next one seeks past the last endpoint),
    /// never from a scan of the endpoints or of the deliveries table.
    #[test]
    fn endpoints_with_work_are_found_in_the_unfinished_index() {
        let plan = plan_with(&active_endpoints_sql(ENDPOINT_COLUMNS), &[]);
        let seeks = plan
            .iter()
            .filter(|step| {
                step.starts_with("SEARCH deliveries USING INDEX deliveries_unfinished_by_subject")
                    || step
                        .starts_with("SCAN deliveries USING INDEX deliveries_unfinished_by_subject")
            })
            .count();
        assert_eq!(seeks, 2, "{plan:?}");
        assert!(
            !plan
                .iter()
                .any(|step| step == "SCAN deliveries" || step.starts_with("SCAN endpoints")),
            "{plan:?}"
        );
    }
}
