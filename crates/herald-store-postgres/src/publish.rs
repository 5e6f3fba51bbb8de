//! Publishing, written a group at a time (see `group_commit.rs`).
//!
//! A publish locks its tenant's row until it commits, which keeps `seq` in commit order across
//! nodes; a group takes that lock once for all its publishes of the tenant, inserts their events
//! and deliveries with one statement each, and commits once. Each caller gets what it would have
//! got alone, in queue order: an event id seen earlier in the group is a duplicate of that
//! earlier event.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::Pool;
use herald_store::models::{EndpointRecord, NewEvent, Published};
use herald_store::planner;
use herald_store::{StoreError, StoreResult};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use crate::deliveries::{DeliveryColumns, INSERT_DELIVERIES, NewDelivery};
use crate::group_commit::GroupWork;
use crate::rows::{ENDPOINT_COLUMNS, get, json_text, map_pool, ms, read_endpoint};
use crate::statements::{PipelinedTransaction, Sql};
use crate::{prepare, wakeups};

/// One caller's publish.
pub(crate) struct Request {
    pub(crate) tenant_id: String,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) now: OffsetDateTime,
}

/// Publishes, grouped.
pub(crate) struct Publishes;

impl GroupWork for Publishes {
    type Request = Request;
    type Answer = Vec<Published>;

    /// Bounds the statements' array parameters and how long the tenants' locks are held.
    const MAX_GROUP_SIZE: usize = 2000;

    fn size(request: &Request) -> usize {
        request.events.len()
    }

    async fn commit(
        pool: &Pool,
        requests: &[Request],
    ) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
        publish_in_one_transaction(pool, requests).await
    }
}

/// Locks the group's tenants and reads their counters. Tenant rows are locked in id order, in one
/// statement, by every group on every node, so two groups never wait for each other's locks in a
/// cycle. Each lock is held to the commit: see "Seq across nodes" in docs/ARCHITECTURE.md.
/// `NO KEY UPDATE` leaves other tables' foreign key checks on the tenant unblocked.
const LOCK_TENANTS: &str =
    "SELECT id, next_seq FROM tenants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

/// The events get deliveries for. `FOR KEY SHARE` keeps these endpoints from being deleted before
/// the deliveries that refer to them are inserted; it does not block updates of their settings.
/// Paused endpoints are included: their deliveries queue up until they are resumed.
fn select_routes() -> String {
    format!(
        "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ANY($1) AND enabled
         ORDER BY created_at, id COLLATE \"C\" FOR KEY SHARE"
    )
}

/// Which of the group's event ids are already in their tenant's log. It runs after the tenants
/// are locked, so no other publish can add one of them before this group commits.
pub(crate) const SELECT_KNOWN: &str = "SELECT e.tenant_id, e.id, e.seq
     FROM unnest($1::text[], $2::text[]) AS wanted(tenant_id, id)
     JOIN events e ON e.tenant_id = wanted.tenant_id AND e.id = wanted.id";

const INSERT_EVENTS: &str = "INSERT INTO events (tenant_id, seq, id, taxonomy, event_type,
         subject, occurred_at, received_at, payload, context, producer)
     SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
         $6::text[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[])";

const ADVANCE_COUNTERS: &str = "UPDATE tenants SET next_seq = advanced.next_seq
     FROM unnest($1::text[], $2::int8[]) AS advanced(id, next_seq)
     WHERE tenants.id = advanced.id";

/// The statements a publish group sends with its commit, whose plans are cached
/// (`statements::KEYED_PLANS`), for the plan test (`statements/tests.rs`).
#[cfg(test)]
pub(crate) const WRITES: [&str; 3] = [INSERT_EVENTS, ADVANCE_COUNTERS, INSERT_DELIVERIES];

/// Publishes every request in one transaction. The outer error fails them all (nothing was
/// committed); an inner error (the tenant does not exist) fails only its request.
///
/// A group costs two round trips (`statements.rs`, [`PipelinedTransaction`]): begin, lock, routes
/// and known ids; then the writes and the commit.
async fn publish_in_one_transaction(
    pool: &Pool,
    requests: &[Request],
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    let connection = pool.get().await.map_err(map_pool)?;
    let mut transaction = PipelinedTransaction::new(connection);
    publish_and_commit(&mut transaction, &[], requests).await
}

/// Opens `transaction`, runs `before` in it, publishes every request and commits. The tenants'
/// rows stay locked until that commit. `before` is another group's writes when a group of
/// attempt outcomes publishes their operational events (`attempts.rs`); the server runs it
/// before the publish's reads, which see what it wrote.
pub(crate) async fn publish_and_commit(
    transaction: &mut PipelinedTransaction,
    before: &[Sql<'_>],
    requests: &[Request],
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    // Prepared (or found in the connection's cache) before anything is sent.
    let client = transaction.client()?;
    let lock_tenants = prepare(client, LOCK_TENANTS).await?;
    let select_routes = prepare(client, &select_routes()).await?;
    let select_known = prepare(client, SELECT_KNOWN).await?;
    let insert_events = prepare(client, INSERT_EVENTS).await?;
    let insert_deliveries = prepare(client, INSERT_DELIVERIES).await?;
    let advance_counters = prepare(client, ADVANCE_COUNTERS).await?;
    let notify = prepare(client, wakeups::NOTIFY_STATEMENT).await?;

    let mut tenant_ids: Vec<&str> = requests
        .iter()
        .map(|request| request.tenant_id.as_str())
        .collect();
    tenant_ids.sort_unstable();
    tenant_ids.dedup();
    let (wanted_tenants, wanted_ids): (Vec<&str>, Vec<&str>) = requests
        .iter()
        .flat_map(|request| {
            request
                .events
                .iter()
                .map(|event| (request.tenant_id.as_str(), event.id.as_str()))
        })
        .unzip();
    let mut first: Vec<Sql<'_>> = before.to_vec();
    first.push((&lock_tenants, vec![&tenant_ids]));
    first.push((&select_routes, vec![&tenant_ids]));
    first.push((&select_known, vec![&wanted_tenants, &wanted_ids]));
    let mut answers = transaction.round_trip(true, &first, false).await?;
    let mut reads = answers.split_off(before.len()).into_iter();
    let (Some(tenant_rows), Some(route_rows), Some(known_rows)) =
        (reads.next(), reads.next(), reads.next())
    else {
        transaction.roll_back().await;
        return Err(StoreError::Backend("a publish read went unanswered".into()));
    };

    let mut next_seqs: BTreeMap<String, i64> = BTreeMap::new();
    for row in &tenant_rows {
        next_seqs.insert(get(row, 0)?, get(row, 1)?);
    }
    let mut routes: HashMap<String, Vec<EndpointRecord>> = HashMap::new();
    for row in &route_rows {
        let endpoint = read_endpoint(row)?;
        routes
            .entry(endpoint.tenant_id.clone())
            .or_default()
            .push(endpoint);
    }
    let mut known: HashMap<(String, String), i64> = HashMap::new();
    for row in &known_rows {
        known.insert((get(row, 0)?, get(row, 1)?), get(row, 2)?);
    }
    let plan = plan_group(requests, &mut next_seqs, &routes, known);

    let events = EventColumns::of(&plan.fresh)?;
    let deliveries = DeliveryColumns::of(&plan.deliveries);
    let (counter_ids, counters): (Vec<&str>, Vec<i64>) = next_seqs
        .iter()
        .map(|(tenant_id, next_seq)| (tenant_id.as_str(), *next_seq))
        .unzip();
    let mut writes: Vec<Sql<'_>> = Vec::new();
    if !plan.fresh.is_empty() {
        writes.push((&insert_events, events.params().to_vec()));
        writes.push((&advance_counters, vec![&counter_ids, &counters]));
    }
    if !plan.deliveries.is_empty() {
        writes.push((&insert_deliveries, deliveries.params().to_vec()));
        writes.push((&notify, Vec::new()));
    }
    transaction.round_trip(false, &writes, true).await?;
    Ok(plan.answers)
}

/// What a group writes, and what each of its callers is told.
struct GroupPlan<'a> {
    answers: Vec<StoreResult<Vec<Published>>>,
    fresh: Vec<FreshEvent<'a>>,
    deliveries: Vec<NewDelivery<'a>>,
}

/// Numbers the group's new events from each tenant's `next_seq` on (advancing it), in queue
/// order, and routes them. An id already in the log (`known`), or earlier in the group, is a
/// duplicate of that event. A request whose tenant has no counter is answered "not found".
fn plan_group<'a>(
    requests: &'a [Request],
    next_seqs: &mut BTreeMap<String, i64>,
    routes: &'a HashMap<String, Vec<EndpointRecord>>,
    mut known: HashMap<(String, String), i64>,
) -> GroupPlan<'a> {
    let mut plan = GroupPlan {
        answers: Vec::with_capacity(requests.len()),
        fresh: Vec::new(),
        deliveries: Vec::new(),
    };
    for request in requests {
        let tenant_id = request.tenant_id.as_str();
        let Some(next_seq) = next_seqs.get_mut(tenant_id) else {
            plan.answers
                .push(Err(StoreError::NotFound(format!("tenant {tenant_id:?}"))));
            continue;
        };
        let tenant_routes = routes.get(tenant_id).map(Vec::as_slice).unwrap_or(&[]);
        let mut published = Vec::with_capacity(request.events.len());
        for event in &request.events {
            let key = (tenant_id.to_owned(), event.id.clone());
            if let Some(seq) = known.get(&key) {
                published.push(Published {
                    id: event.id.clone(),
                    seq: *seq,
                    duplicate: true,
                    n_deliveries: 0,
                });
                continue;
            }
            let seq = *next_seq;
            *next_seq += 1;
            known.insert(key, seq);
            plan.fresh.push(FreshEvent {
                tenant_id,
                seq,
                event,
                received_at: request.now,
            });
            let n_before = plan.deliveries.len();
            plan.deliveries.extend(
                tenant_routes
                    .iter()
                    .filter(|endpoint| {
                        planner::routes_to(&endpoint.filters, &event.event_type, event.taxonomy)
                    })
                    .map(|endpoint| NewDelivery {
                        tenant_id,
                        endpoint_id: endpoint.id.as_str(),
                        event_seq: seq,
                        event_id: &event.id,
                        event_type: &event.event_type,
                        subject: event.subject.as_deref(),
                        created_at: request.now,
                    }),
            );
            published.push(Published {
                id: event.id.clone(),
                seq,
                duplicate: false,
                n_deliveries: plan.deliveries.len() - n_before,
            });
        }
        plan.answers.push(Ok(published));
    }
    plan
}

/// An event not yet in the log, with the seq it gets.
struct FreshEvent<'a> {
    tenant_id: &'a str,
    seq: i64,
    event: &'a NewEvent,
    /// When the request that brought it came in.
    received_at: OffsetDateTime,
}

/// The parameters of [`INSERT_EVENTS`], column by column.
struct EventColumns<'a> {
    tenant_ids: Vec<&'a str>,
    seqs: Vec<i64>,
    ids: Vec<&'a str>,
    taxonomies: Vec<&'a str>,
    types: Vec<&'a str>,
    subjects: Vec<Option<&'a str>>,
    occurred_at: Vec<i64>,
    received_at: Vec<i64>,
    payloads: Vec<String>,
    contexts: Vec<String>,
    producers: Vec<String>,
}

impl<'a> EventColumns<'a> {
    fn of(fresh: &[FreshEvent<'a>]) -> StoreResult<Self> {
        Ok(EventColumns {
            tenant_ids: fresh.iter().map(|f| f.tenant_id).collect(),
            seqs: fresh.iter().map(|f| f.seq).collect(),
            ids: fresh.iter().map(|f| f.event.id.as_str()).collect(),
            taxonomies: fresh.iter().map(|f| f.event.taxonomy.as_str()).collect(),
            types: fresh.iter().map(|f| f.event.event_type.as_str()).collect(),
            subjects: fresh.iter().map(|f| f.event.subject.as_deref()).collect(),
            occurred_at: fresh.iter().map(|f| ms(f.event.occurred_at)).collect(),
            received_at: fresh.iter().map(|f| ms(f.received_at)).collect(),
            payloads: fresh.iter().map(|f| json_text(&f.event.payload)).collect(),
            contexts: fresh
                .iter()
                .map(|f| object_text(&f.event.context))
                .collect::<StoreResult<_>>()?,
            producers: fresh
                .iter()
                .map(|f| object_text(&f.event.producer))
                .collect::<StoreResult<_>>()?,
        })
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.tenant_ids,
            &self.seqs,
            &self.ids,
            &self.taxonomies,
            &self.types,
            &self.subjects,
            &self.occurred_at,
            &self.received_at,
            &self.payloads,
            &self.contexts,
            &self.producers,
        ]
    }
}

fn object_text(object: &serde_json::Map<String, serde_json::Value>) -> StoreResult<String> {
    serde_json::to_string(object).map_err(|error| StoreError::Backend(error.to_string()))
}
