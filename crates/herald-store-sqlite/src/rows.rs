//! Conversions between SQLite rows and the store's models.

use std::str::FromStr;

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
use rusqlite::types::Type;
use rusqlite::{Row, Transaction, params};
use serde_json::{Map, Value};

pub(crate) fn map_backend(error: rusqlite::Error) -> StoreError {
    // A column that did not convert into a model's type may carry the store's own error (see
    // [`id_column`]): that is what the caller gets, not rusqlite's wrapping of it.
    if let rusqlite::Error::FromSqlConversionFailure(_, _, source) = &error
        && let Some(store_error) = source.downcast_ref::<StoreError>()
    {
        return store_error.clone();
    }
    StoreError::Backend(error.to_string())
}

pub(crate) use herald_store::encoding::{from_ms, json_text, ms};

fn conversion_error(column: usize, detail: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, detail.into())
}

/// A stored id of the kind `Id`; one that does not parse is corrupt, a store error naming the
/// column (carried out of the row by [`map_backend`]).
pub(crate) fn id_column<Id: FromStr<Err = IdError>>(
    row: &Row<'_>,
    column: usize,
) -> rusqlite::Result<Id> {
    let text: String = row.get(column)?;
    let name = row.as_ref().column_name(column).unwrap_or("?");
    parse_stored_id(name, &text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(column, Type::Text, error.into())
    })
}

fn json_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text).map_err(|error| conversion_error(column, error.to_string()))
}

fn object_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Map<String, Value>> {
    match json_column(row, column)? {
        Value::Object(object) => Ok(object),
        _ => Ok(Map::new()),
    }
}

/// A stored signing secret, which parsed when it was given: one that no longer does is corrupt.
fn secret_column(row: &Row<'_>, column: usize) -> rusqlite::Result<SigningSecret> {
    let text: String = row.get(column)?;
    SigningSecret::parse(&text).map_err(|error| conversion_error(column, error.to_string()))
}

fn optional_secret_column(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<SigningSecret>> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| {
        SigningSecret::parse(&text).map_err(|error| conversion_error(column, error.to_string()))
    })
    .transpose()
}

fn parsed_column<T: FromStr>(row: &Row<'_>, column: usize) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    let text: String = row.get(column)?;
    text.parse()
        .map_err(|error: T::Err| conversion_error(column, error.to_string()))
}

pub(crate) fn parse_taxonomy(name: &str) -> StoreResult<Taxonomy> {
    name.parse()
        .map_err(|error| StoreError::Backend(format!("stored taxonomy: {error}")))
}

pub(crate) fn read_tenant(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: row.get(0)?,
        name: row.get(1)?,
        issuer: row.get(2)?,
        created_at: from_ms(row.get(3)?),
    })
}

pub(crate) fn read_custom_type(row: &Row<'_>) -> rusqlite::Result<CustomTypeRecord> {
    let example: Option<String> = row.get(6)?;
    Ok(CustomTypeRecord {
        tenant_id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        module: row.get(3)?,
        subject_pointer: row.get(4)?,
        schema: json_column(row, 5)?,
        example: example.and_then(|text| serde_json::from_str(&text).ok()),
        created_at: from_ms(row.get(7)?),
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, filters, format, secret, \
     previous_secret, previous_secret_expires_at, ordering, retry_schedule_s, timeout_ms, \
     max_concurrency, rate_limit_per_s, headers, enabled, disabled_reason, failing_since, \
     created_at, updated_at, paused, signature_scheme";

pub(crate) fn read_endpoint(row: &Row<'_>) -> rusqlite::Result<EndpointRecord> {
    let filter_texts: Vec<String> = serde_json::from_value(json_column(row, 4)?)
        .map_err(|error| conversion_error(4, error.to_string()))?;
    let filters = EndpointFilter::parse_all(&filter_texts)
        .map_err(|(_, error)| conversion_error(4, error.to_string()))?;
    let format_name: String = row.get(5)?;
    let format = RenderFormat::parse(&format_name)
        .ok_or_else(|| conversion_error(5, format!("unknown format {format_name:?}")))?;
    let retry_schedule_s: Vec<u64> = serde_json::from_value(json_column(row, 10)?)
        .map_err(|error| conversion_error(10, error.to_string()))?;
    let retry_schedule = RetrySchedule::from_seconds(&retry_schedule_s)
        .map_err(|error| conversion_error(10, error.to_string()))?;
    let disabled_reason = row
        .get::<_, Option<String>>(16)?
        .map(|text| text.parse::<DisableReason>())
        .transpose()
        .map_err(|error| conversion_error(16, error.to_string()))?;
    let headers = serde_json::from_value(json_column(row, 14)?)
        .map_err(|error| conversion_error(14, error.to_string()))?;
    let ordering: Ordering = parsed_column(row, 9)?;
    let scheme_name: String = row.get(21)?;
    let signature_scheme = SignatureScheme::parse(&scheme_name)
        .ok_or_else(|| conversion_error(21, format!("unknown signature scheme {scheme_name:?}")))?;
    Ok(EndpointRecord {
        id: id_column(row, 0)?,
        tenant_id: row.get(1)?,
        url: row.get(2)?,
        description: row.get(3)?,
        filters,
        format,
        secret: secret_column(row, 6)?,
        previous_secret: optional_secret_column(row, 7)?,
        previous_secret_expires_at: row.get::<_, Option<i64>>(8)?.map(from_ms),
        ordering,
        retry_schedule,
        timeout_ms: row.get::<_, i64>(11)?.try_into().unwrap_or(0),
        max_concurrency: row.get(12)?,
        rate_limit_per_s: row.get(13)?,
        headers,
        enabled: row.get(15)?,
        paused: row.get(20)?,
        disabled_reason,
        failing_since: row.get::<_, Option<i64>>(17)?.map(from_ms),
        created_at: from_ms(row.get(18)?),
        updated_at: from_ms(row.get(19)?),
        signature_scheme,
    })
}

pub(crate) fn write_endpoint(
    transaction: &Transaction<'_>,
    endpoint: &EndpointRecord,
    insert: bool,
) -> StoreResult<()> {
    let sql = if insert {
        format!(
            "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
              ?21, ?22)"
        )
    } else {
        "UPDATE endpoints SET url = ?3, description = ?4, filters = ?5, format = ?6, secret = ?7,
             previous_secret = ?8, previous_secret_expires_at = ?9, ordering = ?10,
             retry_schedule_s = ?11, timeout_ms = ?12, max_concurrency = ?13, rate_limit_per_s = ?14,
             headers = ?15, enabled = ?16, disabled_reason = ?17, failing_since = ?18,
             created_at = ?19, updated_at = ?20, paused = ?21, signature_scheme = ?22
         WHERE id = ?1 AND tenant_id = ?2"
            .to_owned()
    };
    let to_json = |value: serde_json::Result<Value>| {
        value
            .map(|value| value.to_string())
            .map_err(|error| StoreError::Backend(error.to_string()))
    };
    transaction
        .execute(
            &sql,
            params![
                endpoint.id.as_str(),
                endpoint.tenant_id,
                endpoint.url,
                endpoint.description,
                to_json(serde_json::to_value(EndpointFilter::texts(
                    &endpoint.filters
                )))?,
                endpoint.format.as_str(),
                endpoint.secret.expose_text(),
                endpoint
                    .previous_secret
                    .as_ref()
                    .map(SigningSecret::expose_text),
                endpoint.previous_secret_expires_at.map(ms),
                endpoint.ordering.as_str(),
                to_json(serde_json::to_value(endpoint.retry_schedule.to_seconds()))?,
                i64::try_from(endpoint.timeout_ms).unwrap_or(i64::MAX),
                endpoint.max_concurrency,
                endpoint.rate_limit_per_s,
                to_json(serde_json::to_value(&endpoint.headers))?,
                endpoint.enabled,
                endpoint.disabled_reason.map(DisableReason::as_str),
                endpoint.failing_since.map(ms),
                ms(endpoint.created_at),
                ms(endpoint.updated_at),
                endpoint.paused,
                endpoint.signature_scheme.as_str(),
            ],
        )
        .map_err(map_backend)?;
    Ok(())
}

pub(crate) const EVENT_COLUMNS: &str = "tenant_id, seq, id, taxonomy, event_type, subject, \
     occurred_at, received_at, payload, context, producer, erased";

pub(crate) fn read_event(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    let taxonomy: Taxonomy = parsed_column(row, 3)?;
    Ok(StoredEvent {
        tenant_id: row.get(0)?,
        event: Event {
            id: row.get(2)?,
            seq: row.get(1)?,
            taxonomy,
            event_type: row.get(4)?,
            subject: row.get(5)?,
            occurred_at: from_ms(row.get(6)?),
            payload: json_column(row, 8)?,
            context: object_column(row, 9)?,
            producer: object_column(row, 10)?,
        },
        received_at: from_ms(row.get(7)?),
        erased: row.get(11)?,
    })
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, tenant_id, endpoint_id, event_id, event_seq, \
     event_type, state, n_attempts, next_attempt_at, last_status, last_error, created_at, updated_at";

pub(crate) fn read_delivery(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    read_delivery_at(row, 0)
}

/// A delivery whose [`DELIVERY_COLUMNS`] start at column `first`.
pub(crate) fn read_delivery_at(row: &Row<'_>, first: usize) -> rusqlite::Result<DeliveryRecord> {
    let state: DeliveryState = parsed_column(row, first + 6)?;
    Ok(DeliveryRecord {
        id: id_column(row, first)?,
        tenant_id: row.get(first + 1)?,
        endpoint_id: id_column(row, first + 2)?,
        event_id: row.get(first + 3)?,
        event_seq: row.get(first + 4)?,
        event_type: row.get(first + 5)?,
        state,
        n_attempts: row.get(first + 7)?,
        next_attempt_at: row.get::<_, Option<i64>>(first + 8)?.map(from_ms),
        last_status: row.get(first + 9)?,
        last_error: row.get(first + 10)?,
        created_at: from_ms(row.get(first + 11)?),
        updated_at: from_ms(row.get(first + 12)?),
    })
}

pub(crate) fn read_attempt(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        delivery_id: id_column(row, 0)?,
        attempt_number: row.get(1)?,
        started_at: from_ms(row.get(2)?),
        status: row.get(3)?,
        latency_ms: row.get::<_, i64>(4)?.try_into().unwrap_or(0),
        response_excerpt: row.get(5)?,
        error: row.get(6)?,
    })
}

pub(crate) const HOOK_COLUMNS: &str = "id, tenant_id, event_type, url, position, timeout_ms, \
     failure_policy, secret, enabled, created_at, updated_at";

pub(crate) fn read_hook(row: &Row<'_>) -> rusqlite::Result<HookRecord> {
    Ok(HookRecord {
        id: id_column(row, 0)?,
        tenant_id: row.get(1)?,
        event_type: row.get(2)?,
        url: row.get(3)?,
        position: row.get(4)?,
        timeout_ms: row.get::<_, i64>(5)?.try_into().unwrap_or(0),
        failure_policy: parsed_column(row, 6)?,
        secret: secret_column(row, 7)?,
        enabled: row.get(8)?,
        created_at: from_ms(row.get(9)?),
        updated_at: from_ms(row.get(10)?),
    })
}

pub(crate) fn write_hook(
    transaction: &Transaction<'_>,
    hook: &HookRecord,
    insert: bool,
) -> StoreResult<()> {
    let sql = if insert {
        format!(
            "INSERT INTO hooks ({HOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        )
    } else {
        "UPDATE hooks SET event_type = ?3, url = ?4, position = ?5, timeout_ms = ?6, failure_policy = ?7,
             secret = ?8, enabled = ?9, created_at = ?10, updated_at = ?11
         WHERE id = ?1 AND tenant_id = ?2"
            .to_owned()
    };
    transaction
        .execute(
            &sql,
            params![
                hook.id.as_str(),
                hook.tenant_id,
                hook.event_type,
                hook.url,
                hook.position,
                i64::try_from(hook.timeout_ms).unwrap_or(i64::MAX),
                hook.failure_policy.as_str(),
                hook.secret.expose_text(),
                hook.enabled,
                ms(hook.created_at),
                ms(hook.updated_at),
            ],
        )
        .map_err(map_backend)?;
    Ok(())
}

pub(crate) const DECISION_COLUMNS: &str = "id, tenant_id, event_type, event_id, is_allowed, reasons, \
     trace, latency_us, created_at";

pub(crate) fn read_decision(row: &Row<'_>) -> rusqlite::Result<DecisionRecord> {
    Ok(DecisionRecord {
        id: id_column(row, 0)?,
        tenant_id: row.get(1)?,
        event_type: row.get(2)?,
        event_id: row.get(3)?,
        is_allowed: row.get(4)?,
        reasons: json_column(row, 5)?,
        trace: json_column(row, 6)?,
        latency_us: row.get::<_, i64>(7)?.try_into().unwrap_or(0),
        created_at: from_ms(row.get(8)?),
    })
}

pub(crate) fn read_bucket(
    connection: &rusqlite::Connection,
    endpoint_id: &str,
) -> StoreResult<Option<herald_core::rate::TokenBucket>> {
    use rusqlite::OptionalExtension;
    connection
        .prepare_cached(
            "SELECT tokens, refilled_at FROM endpoint_rate_buckets WHERE endpoint_id = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![endpoint_id], |row| {
                    Ok(herald_core::rate::TokenBucket {
                        tokens: row.get(0)?,
                        refilled_at: from_ms(row.get(1)?),
                    })
                })
                .optional()
        })
        .map_err(map_backend)
}

pub(crate) fn write_bucket(
    transaction: &Transaction<'_>,
    endpoint_id: &str,
    bucket: &herald_core::rate::TokenBucket,
) -> StoreResult<()> {
    transaction
        .prepare_cached(
            "INSERT INTO endpoint_rate_buckets (endpoint_id, tokens, refilled_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (endpoint_id) DO UPDATE SET tokens = ?2, refilled_at = ?3",
        )
        .and_then(|mut statement| statement.execute(params![endpoint_id, bucket.tokens, ms(bucket.refilled_at)]))
        .map_err(map_backend)?;
    Ok(())
}
