//! Publishing: appending events to a tenant's log with one delivery per matching endpoint, in
//! the writer's transaction (see `writer.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_core::ids::{DeliveryId, EndpointId};
use herald_store::models::{EndpointFilter, NewEvent, Published};
use herald_store::planner;
use herald_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::endpoints::load_endpoints;
use crate::rows::{json_text, map_backend, ms};

/// Where a tenant's events go: its enabled endpoints (paused ones included) and their filters.
/// Read once and kept, since every publish needs it and it rarely changes. Only the writer
/// thread reads or changes it, inside write transactions, and every change to an endpoint clears
/// it in the same transaction, so publish never sees a stale list.
#[derive(Clone, Default)]
pub(crate) struct Routes(Arc<Mutex<HashMap<String, Arc<Vec<Route>>>>>);

struct Route {
    endpoint_id: EndpointId,
    filters: Vec<EndpointFilter>,
}

impl Routes {
    fn of(&self, connection: &Connection, tenant_id: &str) -> StoreResult<Arc<Vec<Route>>> {
        if let Ok(cache) = self.0.lock()
            && let Some(routes) = cache.get(tenant_id)
        {
            return Ok(Arc::clone(routes));
        }
        let routes: Vec<Route> = load_endpoints(connection, tenant_id)?
            .into_iter()
            .filter(|endpoint| endpoint.enabled)
            .map(|endpoint| Route {
                endpoint_id: endpoint.id,
                filters: endpoint.filters,
            })
            .collect();
        let routes = Arc::new(routes);
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(tenant_id.to_owned(), Arc::clone(&routes));
        }
        Ok(routes)
    }

    pub(crate) fn forget(&self) {
        if let Ok(mut cache) = self.0.lock() {
            cache.clear();
        }
    }
}

/// Appends `events` to the tenant's log, numbered from its counter, with a pending delivery for
/// each enabled endpoint whose filters match; an id already in the log is answered as a duplicate.
pub(crate) fn publish_in(
    transaction: &Transaction<'_>,
    routes: &Routes,
    tenant_id: &str,
    events: Vec<NewEvent>,
    now: OffsetDateTime,
) -> StoreResult<Vec<Published>> {
    let next_seq: Option<i64> = transaction
        .prepare_cached("SELECT next_seq FROM tenants WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row(params![tenant_id], |row| row.get(0))
                .optional()
        })
        .map_err(map_backend)?;
    let Some(mut next_seq) = next_seq else {
        return Err(StoreError::NotFound(format!("tenant {tenant_id:?}")));
    };
    // Paused endpoints included: their deliveries queue up until they are resumed.
    let routes = routes.of(transaction, tenant_id)?;
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        let existing: Option<i64> = transaction
            .prepare_cached("SELECT seq FROM events WHERE tenant_id = ?1 AND id = ?2")
            .and_then(|mut statement| {
                statement
                    .query_row(params![tenant_id, event.id], |row| row.get(0))
                    .optional()
            })
            .map_err(map_backend)?;
        if let Some(seq) = existing {
            published.push(Published {
                id: event.id,
                seq,
                duplicate: true,
                n_deliveries: 0,
            });
            continue;
        }
        let seq = next_seq;
        next_seq += 1;
        transaction
            .prepare_cached(
                "INSERT INTO events (tenant_id, seq, id, taxonomy, event_type, subject,
                     occurred_at, received_at, payload, context, producer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    tenant_id,
                    seq,
                    event.id,
                    event.taxonomy.as_str(),
                    event.event_type,
                    event.subject,
                    ms(event.occurred_at),
                    ms(now),
                    json_text(&event.payload),
                    json_text(&serde_json::Value::Object(event.context.clone())),
                    json_text(&serde_json::Value::Object(event.producer.clone())),
                ])
            })
            .map_err(map_backend)?;
        let mut n_deliveries = 0;
        for route in routes.iter() {
            if planner::routes_to(&route.filters, &event.event_type, event.taxonomy) {
                insert_delivery(
                    transaction,
                    tenant_id,
                    route.endpoint_id.as_str(),
                    (seq, &event.id, &event.event_type, event.subject.as_deref()),
                    now,
                )?;
                n_deliveries += 1;
            }
        }
        published.push(Published {
            id: event.id,
            seq,
            duplicate: false,
            n_deliveries,
        });
    }
    transaction
        .prepare_cached("UPDATE tenants SET next_seq = ?1 WHERE id = ?2")
        .and_then(|mut statement| statement.execute(params![next_seq, tenant_id]))
        .map_err(map_backend)?;
    Ok(published)
}

pub(crate) fn insert_delivery(
    transaction: &Transaction<'_>,
    tenant_id: &str,
    endpoint_id: &str,
    event: (i64, &str, &str, Option<&str>),
    now: OffsetDateTime,
) -> StoreResult<()> {
    let (seq, event_id, event_type, subject) = event;
    let delivery_id = DeliveryId::new();
    let mut statement = transaction
        .prepare_cached(
            "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id, event_type,
                 subject, state, n_attempts, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?8, ?8)",
        )
        .map_err(map_backend)?;
    statement
        .execute(params![
            delivery_id.as_str(),
            tenant_id,
            endpoint_id,
            seq,
            event_id,
            event_type,
            subject,
            ms(now),
        ])
        .map_err(map_backend)?;
    Ok(())
}
