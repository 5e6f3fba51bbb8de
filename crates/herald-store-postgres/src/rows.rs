//! Conversions between PostgreSQL rows and the store's models, and the one mapping from driver
//! and pool errors to [`StoreError`].
//!
//! The column lists and the encodings (Unix milliseconds, JSON as text) are the SQLite backend's,
//! so the two backends hand back identical models for identical writes.

use std::error::Error as _;
use std::str::FromStr;

use deadpool_postgres::PoolError;
use herald_catalog::envelope::{Event, RenderFormat};
use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::{DeliveryState, DisableReason};
use herald_core::ids::IdError;
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use herald_store::encoding::parse_stored_id;
use herald_store::models::{
    AttemptRecord, CustomTypeRecord, DecisionRecord, DeliveryRecord, EndpointFilter,
    EndpointRecord, HookRecord, Ordering, StoredEvent, Tenant,
};
use herald_store::{StoreError, StoreResult};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;

/// Maps a driver error to the store's kinds: a lost or refused connection is `Unavailable` (the
/// caller may retry), a unique key taken is `Conflict`, everything else is `Backend`.
pub(crate) fn map_backend(error: tokio_postgres::Error) -> StoreError {
    let detail = describe(&error);
    if error.is_closed() {
        return StoreError::Unavailable(detail);
    }
    match error.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(detail),
        Some(code) if is_unavailable(code) => StoreError::Unavailable(detail),
        Some(_) => StoreError::Backend(detail),
        // No server answer at all: the socket failed or the server could not be reached.
        None if error
            .source()
            .is_some_and(|source| source.is::<std::io::Error>()) =>
        {
            StoreError::Unavailable(detail)
        }
        None => StoreError::Backend(detail),
    }
}

/// Connection exceptions (class 08) and the server shutting down or starting up.
fn is_unavailable(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::TOO_MANY_CONNECTIONS
}

/// The driver's own message is terse ("db error"); the server's message is in the source.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(database_error) => format!("{}: {}", database_error.code().code(), database_error),
        None => match error.source() {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// A pool that cannot hand out a connection in time is as good as an unreachable database.
pub(crate) fn map_pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => map_backend(error),
        PoolError::Timeout(kind) => StoreError::Unavailable(format!(
            "no database connection became free in time ({kind:?})"
        )),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Backend(format!("connection pool: {other}")),
    }
}

pub(crate) use herald_store::encoding::{from_ms, json_text, ms};

/// Counts and limits are unsigned in the models and BIGINT in the tables.
pub(crate) fn to_i64<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

fn column_name(row: &Row, column: usize) -> &str {
    row.columns()
        .get(column)
        .map_or("?", |column| column.name())
}

fn column_error(row: &Row, column: usize, detail: impl std::fmt::Display) -> StoreError {
    let name = column_name(row, column);
    StoreError::Backend(format!("stored column {name}: {detail}"))
}

pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, column: usize) -> StoreResult<T> {
    row.try_get(column)
        .map_err(|error| column_error(row, column, describe(&error)))
}

/// A stored id of the kind `Id`; one that does not parse is corrupt, a store error naming the
/// column.
pub(crate) fn get_id<Id: FromStr<Err = IdError>>(row: &Row, column: usize) -> StoreResult<Id> {
    let text: &str = get(row, column)?;
    parse_stored_id(column_name(row, column), text)
}

fn get_time(row: &Row, column: usize) -> StoreResult<OffsetDateTime> {
    get::<i64>(row, column).map(from_ms)
}

fn get_optional_time(row: &Row, column: usize) -> StoreResult<Option<OffsetDateTime>> {
    Ok(get::<Option<i64>>(row, column)?.map(from_ms))
}

fn get_unsigned<T: TryFrom<i64>>(row: &Row, column: usize) -> StoreResult<T> {
    let value: i64 = get(row, column)?;
    T::try_from(value).map_err(|_| column_error(row, column, format!("{value} is out of range")))
}

fn get_optional_unsigned<T: TryFrom<i64>>(row: &Row, column: usize) -> StoreResult<Option<T>> {
    match get::<Option<i64>>(row, column)? {
        None => Ok(None),
        Some(value) => T::try_from(value)
            .map(Some)
            .map_err(|_| column_error(row, column, format!("{value} is out of range"))),
    }
}

fn get_status(row: &Row, column: usize) -> StoreResult<Option<u16>> {
    match get::<Option<i32>>(row, column)? {
        None => Ok(None),
        Some(status) => u16::try_from(status)
            .map(Some)
            .map_err(|_| column_error(row, column, format!("status {status} is out of range"))),
    }
}

fn get_json(row: &Row, column: usize) -> StoreResult<Value> {
    let text: &str = get(row, column)?;
    serde_json::from_str(text).map_err(|error| column_error(row, column, error))
}

fn get_object(row: &Row, column: usize) -> StoreResult<Map<String, Value>> {
    match get_json(row, column)? {
        Value::Object(object) => Ok(object),
        _ => Ok(Map::new()),
    }
}

fn get_parsed<T: FromStr>(row: &Row, column: usize) -> StoreResult<T>
where
    T::Err: std::fmt::Display,
{
    let text: &str = get(row, column)?;
    text.parse()
        .map_err(|error: T::Err| column_error(row, column, error))
}

/// A stored signing secret, which parsed when it was given: one that no longer does is corrupt.
fn get_secret(row: &Row, column: usize) -> StoreResult<SigningSecret> {
    let text: &str = get(row, column)?;
    SigningSecret::parse(text).map_err(|error| column_error(row, column, error))
}

fn get_optional_secret(row: &Row, column: usize) -> StoreResult<Option<SigningSecret>> {
    let text: Option<&str> = get(row, column)?;
    text.map(|text| SigningSecret::parse(text).map_err(|error| column_error(row, column, error)))
        .transpose()
}

fn get_json_as<T: serde::de::DeserializeOwned>(row: &Row, column: usize) -> StoreResult<T> {
    serde_json::from_value(get_json(row, column)?).map_err(|error| column_error(row, column, error))
}

pub(crate) fn parse_taxonomy(name: &str) -> StoreResult<Taxonomy> {
    name.parse()
        .map_err(|error| StoreError::Backend(format!("stored taxonomy: {error}")))
}

pub(crate) const TENANT_COLUMNS: &str = "id, name, issuer, created_at";

pub(crate) fn read_tenant(row: &Row) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: get(row, 0)?,
        name: get(row, 1)?,
        issuer: get(row, 2)?,
        created_at: get_time(row, 3)?,
    })
}

pub(crate) const CUSTOM_TYPE_COLUMNS: &str =
    "tenant_id, name, description, module, subject_pointer, schema, example, created_at";

pub(crate) fn read_custom_type(row: &Row) -> StoreResult<CustomTypeRecord> {
    let example: Option<&str> = get(row, 6)?;
    Ok(CustomTypeRecord {
        tenant_id: get(row, 0)?,
        name: get(row, 1)?,
        description: get(row, 2)?,
        module: get(row, 3)?,
        subject_pointer: get(row, 4)?,
        schema: get_json(row, 5)?,
        example: example.and_then(|text| serde_json::from_str(text).ok()),
        created_at: get_time(row, 7)?,
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, filters, format, secret, \
     previous_secret, previous_secret_expires_at, ordering, retry_schedule_s, timeout_ms, \
     max_concurrency, rate_limit_per_s, headers, enabled, disabled_reason, failing_since, \
     created_at, updated_at, paused, signature_scheme";

pub(crate) fn read_endpoint(row: &Row) -> StoreResult<EndpointRecord> {
    let format_name: &str = get(row, 5)?;
    let format = RenderFormat::parse(format_name)
        .ok_or_else(|| column_error(row, 5, format!("unknown format {format_name:?}")))?;
    let ordering: Ordering = get_parsed(row, 9)?;
    let scheme_name: &str = get(row, 21)?;
    let signature_scheme = SignatureScheme::parse(scheme_name).ok_or_else(|| {
        column_error(row, 21, format!("unknown signature scheme {scheme_name:?}"))
    })?;
    let filter_texts: Vec<String> = get_json_as(row, 4)?;
    let filters = EndpointFilter::parse_all(&filter_texts)
        .map_err(|(_, error)| column_error(row, 4, error))?;
    let retry_schedule_s: Vec<u64> = get_json_as(row, 10)?;
    let retry_schedule = RetrySchedule::from_seconds(&retry_schedule_s)
        .map_err(|error| column_error(row, 10, error))?;
    let disabled_reason = get::<Option<&str>>(row, 16)?
        .map(str::parse::<DisableReason>)
        .transpose()
        .map_err(|error| column_error(row, 16, error))?;
    Ok(EndpointRecord {
        id: get_id(row, 0)?,
        tenant_id: get(row, 1)?,
        url: get(row, 2)?,
        description: get(row, 3)?,
        filters,
        format,
        secret: get_secret(row, 6)?,
        previous_secret: get_optional_secret(row, 7)?,
        previous_secret_expires_at: get_optional_time(row, 8)?,
        ordering,
        retry_schedule,
        timeout_ms: get_unsigned(row, 11)?,
        max_concurrency: get_unsigned(row, 12)?,
        rate_limit_per_s: get_optional_unsigned(row, 13)?,
        headers: get_json_as(row, 14)?,
        enabled: get(row, 15)?,
        paused: get(row, 20)?,
        disabled_reason,
        failing_since: get_optional_time(row, 17)?,
        created_at: get_time(row, 18)?,
        updated_at: get_time(row, 19)?,
        signature_scheme,
    })
}

/// The endpoint's columns in [`ENDPOINT_COLUMNS`] order, as SQL parameters.
pub(crate) struct EndpointParams<'a> {
    id: &'a str,
    filters: String,
    format: &'static str,
    secret: &'a str,
    previous_secret: Option<&'a str>,
    disabled_reason: Option<&'static str>,
    ordering: &'static str,
    previous_secret_expires_at: Option<i64>,
    retry_schedule_s: String,
    timeout_ms: i64,
    max_concurrency: i64,
    rate_limit_per_s: Option<i64>,
    headers: String,
    failing_since: Option<i64>,
    created_at: i64,
    updated_at: i64,
    signature_scheme: &'static str,
}

impl<'a> EndpointParams<'a> {
    pub(crate) fn new(endpoint: &'a EndpointRecord) -> StoreResult<Self> {
        let to_json = |value: serde_json::Result<Value>| {
            value
                .map(|value| value.to_string())
                .map_err(|error| StoreError::Backend(error.to_string()))
        };
        Ok(EndpointParams {
            id: endpoint.id.as_str(),
            filters: to_json(serde_json::to_value(EndpointFilter::texts(
                &endpoint.filters,
            )))?,
            format: endpoint.format.as_str(),
            secret: endpoint.secret.expose_text(),
            previous_secret: endpoint
                .previous_secret
                .as_ref()
                .map(SigningSecret::expose_text),
            disabled_reason: endpoint.disabled_reason.map(DisableReason::as_str),
            ordering: endpoint.ordering.as_str(),
            previous_secret_expires_at: endpoint.previous_secret_expires_at.map(ms),
            retry_schedule_s: to_json(serde_json::to_value(endpoint.retry_schedule.to_seconds()))?,
            timeout_ms: to_i64(endpoint.timeout_ms),
            max_concurrency: i64::from(endpoint.max_concurrency),
            rate_limit_per_s: endpoint.rate_limit_per_s.map(i64::from),
            headers: to_json(serde_json::to_value(&endpoint.headers))?,
            failing_since: endpoint.failing_since.map(ms),
            created_at: ms(endpoint.created_at),
            updated_at: ms(endpoint.updated_at),
            signature_scheme: endpoint.signature_scheme.as_str(),
        })
    }

    pub(crate) fn values<'b>(
        &'b self,
        endpoint: &'b EndpointRecord,
    ) -> [&'b (dyn tokio_postgres::types::ToSql + Sync); 22] {
        [
            &self.id,
            &endpoint.tenant_id,
            &endpoint.url,
            &endpoint.description,
            &self.filters,
            &self.format,
            &self.secret,
            &self.previous_secret,
            &self.previous_secret_expires_at,
            &self.ordering,
            &self.retry_schedule_s,
            &self.timeout_ms,
            &self.max_concurrency,
            &self.rate_limit_per_s,
            &self.headers,
            &endpoint.enabled,
            &self.disabled_reason,
            &self.failing_since,
            &self.created_at,
            &self.updated_at,
            &endpoint.paused,
            &self.signature_scheme,
        ]
    }
}

pub(crate) const EVENT_COLUMNS: &str = "tenant_id, seq, id, taxonomy, event_type, subject, \
     occurred_at, received_at, payload, context, producer, erased";

pub(crate) fn read_event(row: &Row) -> StoreResult<StoredEvent> {
    read_event_at(row, 0)
}

/// Reads [`EVENT_COLUMNS`] starting at column `first` (after columns a join put in front).
pub(crate) fn read_event_at(row: &Row, first: usize) -> StoreResult<StoredEvent> {
    let taxonomy: Taxonomy = get_parsed(row, first + 3)?;
    Ok(StoredEvent {
        tenant_id: get(row, first)?,
        event: Event {
            id: get(row, first + 2)?,
            seq: get(row, first + 1)?,
            taxonomy,
            event_type: get(row, first + 4)?,
            subject: get(row, first + 5)?,
            occurred_at: get_time(row, first + 6)?,
            payload: get_json(row, first + 8)?,
            context: get_object(row, first + 9)?,
            producer: get_object(row, first + 10)?,
        },
        received_at: get_time(row, first + 7)?,
        erased: get(row, first + 11)?,
    })
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, tenant_id, endpoint_id, event_id, event_seq, \
     event_type, state, n_attempts, next_attempt_at, last_status, last_error, created_at, updated_at";

pub(crate) fn read_delivery(row: &Row) -> StoreResult<DeliveryRecord> {
    let state: DeliveryState = get_parsed(row, 6)?;
    Ok(DeliveryRecord {
        id: get_id(row, 0)?,
        tenant_id: get(row, 1)?,
        endpoint_id: get_id(row, 2)?,
        event_id: get(row, 3)?,
        event_seq: get(row, 4)?,
        event_type: get(row, 5)?,
        state,
        n_attempts: get_unsigned(row, 7)?,
        next_attempt_at: get_optional_time(row, 8)?,
        last_status: get_status(row, 9)?,
        last_error: get(row, 10)?,
        created_at: get_time(row, 11)?,
        updated_at: get_time(row, 12)?,
    })
}

pub(crate) const ATTEMPT_COLUMNS: &str = "a.delivery_id, a.attempt_number, a.started_at, a.status, \
     a.latency_ms, a.response_excerpt, a.error";

pub(crate) fn read_attempt(row: &Row) -> StoreResult<AttemptRecord> {
    Ok(AttemptRecord {
        delivery_id: get_id(row, 0)?,
        attempt_number: get_unsigned(row, 1)?,
        started_at: get_time(row, 2)?,
        status: get_status(row, 3)?,
        latency_ms: get_unsigned(row, 4)?,
        response_excerpt: get(row, 5)?,
        error: get(row, 6)?,
    })
}

pub(crate) const HOOK_COLUMNS: &str = "id, tenant_id, event_type, url, position, timeout_ms, \
     failure_policy, secret, enabled, created_at, updated_at";

pub(crate) fn read_hook(row: &Row) -> StoreResult<HookRecord> {
    Ok(HookRecord {
        id: get_id(row, 0)?,
        tenant_id: get(row, 1)?,
        event_type: get(row, 2)?,
        url: get(row, 3)?,
        position: get(row, 4)?,
        timeout_ms: get_unsigned(row, 5)?,
        failure_policy: get_parsed(row, 6)?,
        secret: get_secret(row, 7)?,
        enabled: get(row, 8)?,
        created_at: get_time(row, 9)?,
        updated_at: get_time(row, 10)?,
    })
}

pub(crate) const DECISION_COLUMNS: &str = "id, tenant_id, event_type, event_id, is_allowed, reasons, \
     trace, latency_us, created_at";

pub(crate) fn read_decision(row: &Row) -> StoreResult<DecisionRecord> {
    Ok(DecisionRecord {
        id: get_id(row, 0)?,
        tenant_id: get(row, 1)?,
        event_type: get(row, 2)?,
        event_id: get(row, 3)?,
        is_allowed: get(row, 4)?,
        reasons: get_json(row, 5)?,
        trace: get_json(row, 6)?,
        latency_us: get_unsigned(row, 7)?,
        created_at: get_time(row, 8)?,
    })
}

/// Reads every row with `read`, stopping at the first that does not convert.
pub(crate) fn read_all<T>(rows: &[Row], read: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(read).collect()
}
