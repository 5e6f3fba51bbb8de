//! Publishing, written a group at a time (see `group_commit.rs`).
//!
//! A publish locks its tenant's row until it commits, which keeps `seq` in commit order across
//! nodes; a group takes that lock once for all its publishes of the tenant, inserts their events
//! and deliveries with one statement each, and commits once. Each caller gets what it would have
//! got alone, in queue order: an event id seen earlier in the group is a duplicate of that
//! earlier event.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{Pool, Transaction};
use herald_catalog::filter::matches_any;
use herald_store::models::{EndpointRecord, NewEvent, Published};
use herald_store::{StoreError, StoreResult};
use time::OffsetDateTime;

use crate::group_commit::GroupWork;
use crate::rows::{ENDPOINT_COLUMNS, get, json_text, map_backend, map_pool, ms, read_endpoint};
use crate::{NewDelivery, execute, insert_deliveries, notify, query};

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

/// Publishes every request in one transaction. The outer error fails them all (nothing was
/// committed); an inner error (the tenant does not exist) fails only its request.
async fn publish_in_one_transaction(
    pool: &Pool,
    requests: &[Request],
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    let mut client = pool.get().await.map_err(map_pool)?;
    let transaction = client.transaction().await.map_err(map_backend)?;
    // Tenant rows are locked in id order, in one statement, by every group on every node, so two
    // groups never wait for each other's locks in a cycle. Each lock is held to the commit: see
    // "Seq across nodes" in docs/ARCHITECTURE.md. `NO KEY UPDATE` leaves other tables' foreign
    // key checks on the tenant unblocked.
    let mut tenant_ids: Vec<&str> = requests
        .iter()
        .map(|request| request.tenant_id.as_str())
        .collect();
    tenant_ids.sort_unstable();
    tenant_ids.dedup();
    let tenant_rows = query(
        &transaction,
        "SELECT id, next_seq FROM tenants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
        &[&tenant_ids],
    )
    .await?;
    let mut next_seqs: BTreeMap<String, i64> = BTreeMap::new();
    for row in &tenant_rows {
        next_seqs.insert(get(row, 0)?, get(row, 1)?);
    }
    // `FOR KEY SHARE` keeps these endpoints from being deleted before the deliveries that refer
    // to them are inserted; it does not block updates of their settings. Paused endpoints are
    // included: their deliveries queue up until they are resumed.
    let endpoint_rows = query(
        &transaction,
        &format!(
            "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ANY($1) AND enabled
             ORDER BY created_at, id COLLATE \"C\" FOR KEY SHARE"
        ),
        &[&tenant_ids],
    )
    .await?;
    let mut endpoints: HashMap<String, Vec<EndpointRecord>> = HashMap::new();
    for row in &endpoint_rows {
        let endpoint = read_endpoint(row)?;
        endpoints
            .entry(endpoint.tenant_id.clone())
            .or_default()
            .push(endpoint);
    }

    // A request whose tenant has no row keeps this answer.
    let mut answers: Vec<StoreResult<Vec<Published>>> = requests
        .iter()
        .map(|request| {
            Err(StoreError::NotFound(format!(
                "tenant {:?}",
                request.tenant_id
            )))
        })
        .collect();
    let mut any_deliveries = false;
    for (tenant_id, next_seq) in &mut next_seqs {
        let mine: Vec<(usize, &Request)> = requests
            .iter()
            .enumerate()
            .filter(|(_, request)| request.tenant_id == *tenant_id)
            .collect();
        let routes = endpoints.get(tenant_id).map(Vec::as_slice).unwrap_or(&[]);
        for (index, published) in
            append_events(&transaction, tenant_id, &mine, routes, next_seq).await?
        {
            any_deliveries |= published.iter().any(|event| event.n_deliveries > 0);
            answers[index] = Ok(published);
        }
    }

    let (ids, seqs): (Vec<&str>, Vec<i64>) = next_seqs
        .iter()
        .map(|(tenant_id, next_seq)| (tenant_id.as_str(), *next_seq))
        .unzip();
    if !ids.is_empty() {
        execute(
            &transaction,
            "UPDATE tenants SET next_seq = advanced.next_seq
         FROM unnest($1::text[], $2::int8[]) AS advanced(id, next_seq)
         WHERE tenants.id = advanced.id",
            &[&ids, &seqs],
        )
        .await?;
    }
    if any_deliveries {
        notify(&transaction).await?;
    }
    transaction.commit().await.map_err(map_backend)?;
    Ok(answers)
}

/// Appends one tenant's requests (`(index in the group, request)`, in queue order) to its log,
/// numbering new events from `next_seq` on, and creates their deliveries. Returns each request's
/// answer by its index.
async fn append_events(
    transaction: &Transaction<'_>,
    tenant_id: &str,
    requests: &[(usize, &Request)],
    routes: &[EndpointRecord],
    next_seq: &mut i64,
) -> StoreResult<Vec<(usize, Vec<Published>)>> {
    let all_ids: Vec<&str> = requests
        .iter()
        .flat_map(|(_, request)| request.events.iter().map(|event| event.id.as_str()))
        .collect();
    // The tenant's lock is held, so no other publish can add one of these ids before the commit.
    let mut seq_of: HashMap<String, i64> = HashMap::new();
    for row in query(
        transaction,
        "SELECT id, seq FROM events WHERE tenant_id = $1 AND id = ANY($2)",
        &[&tenant_id, &all_ids],
    )
    .await?
    {
        seq_of.insert(get(&row, 0)?, get(&row, 1)?);
    }

    let mut fresh: Vec<FreshEvent<'_>> = Vec::new();
    let mut deliveries = Vec::new();
    let mut answers = Vec::with_capacity(requests.len());
    for (index, request) in requests {
        let mut published = Vec::with_capacity(request.events.len());
        for event in &request.events {
            if let Some(seq) = seq_of.get(&event.id) {
                // Already in the log, from an earlier publish or earlier in this group.
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
            seq_of.insert(event.id.clone(), seq);
            fresh.push(FreshEvent {
                seq,
                event,
                received_at: request.now,
            });
            let n_before = deliveries.len();
            deliveries.extend(
                routes
                    .iter()
                    .filter(|endpoint| {
                        matches_any(&endpoint.filters, &event.event_type, event.taxonomy)
                    })
                    .map(|endpoint| NewDelivery {
                        endpoint_id: &endpoint.id,
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
                n_deliveries: deliveries.len() - n_before,
            });
        }
        answers.push((*index, published));
    }
    insert_events(transaction, tenant_id, &fresh).await?;
    insert_deliveries(transaction, tenant_id, &deliveries).await?;
    Ok(answers)
}

/// An event not yet in the log, with the seq it gets.
struct FreshEvent<'a> {
    seq: i64,
    event: &'a NewEvent,
    /// When the request that brought it came in.
    received_at: OffsetDateTime,
}

/// Inserts the new events in one statement.
async fn insert_events(
    transaction: &Transaction<'_>,
    tenant_id: &str,
    fresh: &[FreshEvent<'_>],
) -> StoreResult<()> {
    if fresh.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = fresh.iter().map(|f| f.seq).collect();
    let ids: Vec<&str> = fresh.iter().map(|f| f.event.id.as_str()).collect();
    let taxonomies: Vec<&str> = fresh.iter().map(|f| f.event.taxonomy.as_str()).collect();
    let types: Vec<&str> = fresh.iter().map(|f| f.event.event_type.as_str()).collect();
    let subjects: Vec<Option<&str>> = fresh.iter().map(|f| f.event.subject.as_deref()).collect();
    let occurred: Vec<i64> = fresh.iter().map(|f| ms(f.event.occurred_at)).collect();
    let received_at: Vec<i64> = fresh.iter().map(|f| ms(f.received_at)).collect();
    let payloads: Vec<String> = fresh.iter().map(|f| json_text(&f.event.payload)).collect();
    let contexts = fresh
        .iter()
        .map(|f| object_text(&f.event.context))
        .collect::<StoreResult<Vec<String>>>()?;
    let producers = fresh
        .iter()
        .map(|f| object_text(&f.event.producer))
        .collect::<StoreResult<Vec<String>>>()?;
    execute(
        transaction,
        "INSERT INTO events (tenant_id, seq, id, taxonomy, event_type, subject,
             occurred_at, received_at, payload, context, producer)
         SELECT $1, e.seq, e.id, e.taxonomy, e.event_type, e.subject, e.occurred_at,
             e.received_at, e.payload, e.context, e.producer
         FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[],
             $8::int8[], $9::text[], $10::text[], $11::text[])
             AS e(seq, id, taxonomy, event_type, subject, occurred_at, received_at, payload,
                  context, producer)",
        &[
            &tenant_id,
            &seqs,
            &ids,
            &taxonomies,
            &types,
            &subjects,
            &occurred,
            &received_at,
            &payloads,
            &contexts,
            &producers,
        ],
    )
    .await?;
    Ok(())
}

fn object_text(object: &serde_json::Map<String, serde_json::Value>) -> StoreResult<String> {
    serde_json::to_string(object).map_err(|error| StoreError::Backend(error.to_string()))
}
