//! `/v1/tenants/{tenant}/listen`: the stream `herald listen` holds open to receive a tenant's
//! deliveries on a developer's machine, the answers it reports back, and closing a session.
//!
//! A session is a temporary endpoint of the tenant whose URL is `listen:<endpoint id>` (the
//! session id is the endpoint id). Its deliveries go through the normal path (claims, retries,
//! attempts); only the last step differs: the dispatcher writes each one to this stream as a
//! Server-Sent Event and waits for `POST .../results`. A session whose stream has been gone for
//! [`STALE_SESSION_AFTER`] is removed with its deliveries.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream, StreamExt};
use herald_catalog::envelope::RenderFormat;
use herald_core::ids::EndpointId;
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use herald_delivery::listen::{
    ListenAnswer, ListenConnection, ListenDelivery, ListenHub, is_listen_url, listen_url,
};
use herald_store::Store;
use herald_store::models::{EndpointFilter, EndpointRecord, Ordering};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::{JsonIn, QueryIn};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(open_stream))
        .routes(routes!(close))
        .routes(routes!(report_result))
}

/// A session whose stream has been gone this long is removed, with its deliveries.
pub const STALE_SESSION_AFTER: time::Duration = time::Duration::hours(24);

/// How often a connected stream notes in the store that it is alive, so that another node's
/// sweep never takes it for stale.
const ALIVE_NOTE_EVERY: Duration = Duration::from_secs(3600);

/// Retries come sooner than an ordinary endpoint's (5 s, then 5 min): a developer restarting a
/// local server wants the delivery again within seconds.
const LISTEN_RETRY_SCHEDULE_S: [u64; 7] = [1, 5, 15, 60, 300, 900, 3600];

fn listen_retry_schedule() -> RetrySchedule {
    // Well within the limits a schedule may have, so the fallback is never taken.
    RetrySchedule::from_seconds(&LISTEN_RETRY_SCHEDULE_S).unwrap_or_default()
}

/// A local receiver on a laptop answers fast or not at all.
const LISTEN_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListenQuery {
    /// Comma-separated filters (`user.*,session.created`); `*` when absent. On a reconnect they
    /// replace the session's filters.
    pub filters: Option<String>,
    /// The session to reconnect to (its endpoint id, `ep_...`); a new session when absent.
    pub session: Option<String>,
}

/// The first event of every stream (`event: session`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ListenSessionOut {
    pub session_id: String,
    pub endpoint_id: String,
    /// The session's signing secret: the developer's receiver verifies signatures with it.
    pub secret: String,
    pub filters: Vec<String>,
}

/// One delivery (`event: delivery`): exactly what Herald would have sent over HTTP.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListenDeliveryOut {
    pub delivery_id: String,
    pub event_type: String,
    pub attempt_number: u32,
    pub method: String,
    /// Every header, in order, as `[name, value]` pairs: signatures included.
    pub headers: Vec<(String, String)>,
    /// The exact body (JSON text, UTF-8).
    pub body: String,
}

/// The local receiver's answer to one delivery.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenResultIn {
    pub delivery_id: String,
    /// Absent when the local receiver could not be reached; `error` says why.
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

fn parse_filters(filters: Option<&str>) -> ApiResult<Vec<EndpointFilter>> {
    let Some(filters) = filters else {
        return Ok(vec![EndpointFilter::everything()]);
    };
    let filters: Vec<String> = filters
        .split(',')
        .map(str::trim)
        .filter(|filter| !filter.is_empty())
        .map(str::to_owned)
        .collect();
    if filters.is_empty() || filters.len() > 100 {
        return Err(ApiError::invalid(
            "/filters",
            "between 1 and 100 comma-separated filters",
        ));
    }
    EndpointFilter::parse_all(&filters)
        .map_err(|(index, error)| ApiError::invalid(format!("/filters/{index}"), error.to_string()))
}

/// The tenant's listen session `session_id`, or a 404 (also for an ordinary endpoint's id).
async fn find_session(
    state: &AppState,
    tenant_id: &str,
    session_id: &str,
) -> ApiResult<EndpointRecord> {
    state
        .store
        .get_endpoint(tenant_id, session_id)
        .await?
        .filter(|endpoint| is_listen_url(&endpoint.url))
        .ok_or_else(|| ApiError::NotFound(format!("listen session {session_id:?}")))
}

fn new_session(
    tenant_id: String,
    filters: Vec<EndpointFilter>,
    now: OffsetDateTime,
) -> EndpointRecord {
    let id = EndpointId::new();
    EndpointRecord {
        url: listen_url(id.as_str()),
        id,
        tenant_id,
        description: "herald listen session".to_owned(),
        filters,
        format: RenderFormat::Native,
        secret: SigningSecret::generate(),
        previous_secret: None,
        previous_secret_expires_at: None,
        ordering: Ordering::None,
        retry_schedule: listen_retry_schedule(),
        timeout_ms: LISTEN_TIMEOUT_MS,
        max_concurrency: 16,
        rate_limit_per_s: None,
        headers: Default::default(),
        enabled: true,
        paused: false,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
        signature_scheme: SignatureScheme::V1,
    }
}

/// Open a listen stream (`Accept: text/event-stream`): a new session, or `session=ep_...` to
/// reconnect. The first event (`session`) carries the signing secret; each `delivery` event must
/// be answered with `POST .../listen/{session_id}/results` within 10 s, or it is retried.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/listen", tag = "listen", params(ListenQuery),
    responses((status = 200, description = "A stream of Server-Sent Events: `session`, then `delivery` events", content_type = "text/event-stream", body = ListenSessionOut),
        (status = 404), (status = 422)))]
pub async fn open_stream(
    State(state): State<AppState>,
    scope: TenantScope,
    QueryIn(query): QueryIn<ListenQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let now = state.clock.now();
    let endpoint = match query.session.as_deref() {
        Some(session_id) => {
            let mut endpoint = find_session(&state, &scope.tenant_id, session_id).await?;
            if query.filters.is_some() {
                endpoint.filters = parse_filters(query.filters.as_deref())?;
            }
            // The developer is back: a session disabled meanwhile (its receiver answered 410,
            // or it failed for days) takes deliveries again.
            endpoint.enabled = true;
            endpoint.disabled_reason = None;
            endpoint.updated_at = now;
            state.store.update_endpoint(endpoint).await?
        }
        None => {
            let filters = parse_filters(query.filters.as_deref())?;
            state
                .store
                .create_endpoint(new_session(scope.tenant_id.clone(), filters, now))
                .await?
        }
    };
    let connection = state
        .listen
        .connect(&scope.tenant_id, endpoint.id.as_str())
        .ok_or_else(|| ApiError::Unavailable("the server is stopping".to_owned()))?;
    let session = ListenSessionOut {
        session_id: endpoint.id.to_string(),
        endpoint_id: endpoint.id.to_string(),
        secret: endpoint.secret.expose_text().to_owned(),
        filters: EndpointFilter::texts(&endpoint.filters),
    };
    let first = Event::default()
        .event("session")
        .json_data(&session)
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let open = OpenStream {
        connection,
        hub: Arc::clone(&state.listen),
        store: Arc::clone(&state.store),
        clock: Arc::clone(&state.clock),
        tenant_id: scope.tenant_id,
        alive_notes: tokio::time::interval_at(
            tokio::time::Instant::now() + ALIVE_NOTE_EVERY,
            ALIVE_NOTE_EVERY,
        ),
    };
    let deliveries = stream::unfold(open, |mut open| async move {
        loop {
            tokio::select! {
                delivery = open.connection.deliveries.recv() => {
                    let delivery = delivery?;
                    return Some((Ok(delivery_event(delivery)), open));
                }
                _ = open.alive_notes.tick() => open.note_alive().await,
            }
        }
    });
    Ok(
        Sse::new(stream::once(async { Ok(first) }).chain(deliveries))
            .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))),
    )
}

fn delivery_event(delivery: ListenDelivery) -> Event {
    let out = ListenDeliveryOut {
        delivery_id: delivery.delivery_id,
        event_type: delivery.event_type,
        attempt_number: delivery.attempt_number,
        method: "POST".to_owned(),
        headers: delivery.headers,
        body: String::from_utf8_lossy(&delivery.body).into_owned(),
    };
    Event::default()
        .event("delivery")
        .json_data(&out)
        .unwrap_or_else(|_| Event::default().comment("a delivery could not be encoded"))
}

/// One open stream; its session leaves the hub when the stream is dropped (the client went
/// away, or the server is stopping).
struct OpenStream {
    connection: ListenConnection,
    hub: Arc<ListenHub>,
    store: Arc<dyn Store>,
    clock: Arc<dyn herald_core::clock::Clock>,
    tenant_id: String,
    alive_notes: tokio::time::Interval,
}

impl OpenStream {
    async fn note_alive(&self) {
        let session_id = &self.connection.session_id;
        match self.store.get_endpoint(&self.tenant_id, session_id).await {
            Ok(Some(mut endpoint)) => {
                endpoint.updated_at = self.clock.now();
                if let Err(error) = self.store.update_endpoint(endpoint).await {
                    tracing::warn!(%error, %session_id, "could not note a listen session alive");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, %session_id, "could not read a listen session"),
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.hub
            .disconnect(&self.connection.session_id, self.connection.connection_id);
    }
}

/// Report the local receiver's answer to one delivery of the stream; it becomes the attempt's
/// result. 404 when the delivery is not waiting on this node (answered already, or too late:
/// it is then retried).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/listen/{session_id}/results", tag = "listen", request_body = ListenResultIn,
    responses((status = 204), (status = 404), (status = 422)))]
pub async fn report_result(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
    JsonIn(input): JsonIn<ListenResultIn>,
) -> ApiResult<StatusCode> {
    let session_id = path_ids.1;
    if input
        .status
        .is_some_and(|status| !(100..=599).contains(&status))
    {
        return Err(ApiError::invalid("/status", "an HTTP status, 100 to 599"));
    }
    if input.status.is_none() && input.error.is_none() {
        return Err(ApiError::invalid(
            "/error",
            "without a status, say why the local receiver gave none",
        ));
    }
    let answer = ListenAnswer {
        status: input.status,
        latency: Duration::from_millis(input.latency_ms),
        response_excerpt: input.response_excerpt.unwrap_or_default(),
        error: input.error,
    };
    state
        .listen
        .report(&scope.tenant_id, &session_id, &input.delivery_id, answer)
        .map_err(|_| ApiError::NotFound(format!("delivery {:?} waiting", input.delivery_id)))?;
    Ok(StatusCode::NO_CONTENT)
}

/// End a session: its temporary endpoint is deleted with its deliveries and attempts.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/listen/{session_id}", tag = "listen",
    responses((status = 204), (status = 404)))]
pub async fn close(
    State(state): State<AppState>,
    scope: TenantScope,
    Path(path_ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let session_id = path_ids.1;
    find_session(&state, &scope.tenant_id, &session_id).await?;
    state
        .store
        .delete_endpoint(&scope.tenant_id, &session_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes listen sessions whose stream has been gone for [`STALE_SESSION_AFTER`] (no stream on
/// this node, and no node noted it alive since). Returns how many were removed.
pub async fn remove_stale_sessions(
    store: &dyn Store,
    hub: &ListenHub,
    now: OffsetDateTime,
) -> Result<u64, herald_store::StoreError> {
    let mut n_removed = 0;
    for tenant in store.list_tenants().await? {
        for endpoint in store.list_endpoints(&tenant.id).await? {
            if is_listen_url(&endpoint.url)
                && !hub.is_connected(endpoint.id.as_str())
                && endpoint.updated_at + STALE_SESSION_AFTER < now
                && store
                    .delete_endpoint(&tenant.id, endpoint.id.as_str())
                    .await?
            {
                n_removed += 1;
            }
        }
    }
    Ok(n_removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store::models::Tenant;
    use herald_store::prelude::*;
    use herald_store_sqlite::SqliteStore;

    #[test]
    fn the_listen_schedule_is_a_valid_schedule() {
        assert_eq!(
            listen_retry_schedule().to_seconds(),
            LISTEN_RETRY_SCHEDULE_S
        );
    }

    /// Only sessions that are not connected here and were last noted alive over 24 h ago go;
    /// ordinary endpoints are never touched, however old.
    #[tokio::test]
    async fn stale_sessions_are_removed_and_nothing_else() {
        let directory = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&directory.path().join("herald.db")).expect("store");
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(30);
        store
            .create_tenant(Tenant {
                id: "acme".to_owned(),
                name: "Acme".to_owned(),
                issuer: None,
                created_at: OffsetDateTime::UNIX_EPOCH,
            })
            .await
            .expect("tenant");
        let session = |age: time::Duration| {
            new_session(
                "acme".to_owned(),
                vec![EndpointFilter::everything()],
                now - age,
            )
        };
        let stale = store
            .create_endpoint(session(time::Duration::hours(25)))
            .await
            .expect("stale");
        let fresh = store
            .create_endpoint(session(time::Duration::hours(23)))
            .await
            .expect("fresh");
        let connected = store
            .create_endpoint(session(time::Duration::hours(48)))
            .await
            .expect("connected");
        let mut ordinary = session(time::Duration::days(20));
        ordinary.url = "https://hooks.example.com/old".to_owned();
        let ordinary = store.create_endpoint(ordinary).await.expect("ordinary");
        let hub = ListenHub::new();
        let _stream = hub.connect("acme", connected.id.as_str()).expect("open");

        assert_eq!(
            remove_stale_sessions(&store, &hub, now)
                .await
                .expect("swept"),
            1
        );
        let left: Vec<EndpointId> = store
            .list_endpoints("acme")
            .await
            .expect("list")
            .into_iter()
            .map(|endpoint| endpoint.id)
            .collect();
        assert!(!left.contains(&stale.id));
        for kept in [&fresh.id, &connected.id, &ordinary.id] {
            assert!(left.contains(kept), "{kept} kept");
        }
    }
}
