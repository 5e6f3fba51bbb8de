-- Herald's first schema. Times are Unix milliseconds (INTEGER); JSON is TEXT.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    issuer      TEXT,
    next_seq    INTEGER NOT NULL DEFAULT 1,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE custom_types (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    module           TEXT,
    subject_pointer  TEXT,
    schema           TEXT NOT NULL,
    example          TEXT,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
) STRICT;

CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url                         TEXT NOT NULL,
    description                 TEXT NOT NULL,
    filters                     TEXT NOT NULL,
    format                      TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  INTEGER,
    ordering                    TEXT NOT NULL,
    retry_schedule_s            TEXT NOT NULL,
    timeout_ms                  INTEGER NOT NULL,
    max_concurrency             INTEGER NOT NULL,
    rate_limit_per_s            INTEGER,
    headers                     TEXT NOT NULL,
    enabled                     INTEGER NOT NULL,
    disabled_reason             TEXT,
    failing_since               INTEGER,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
) STRICT;
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id);

CREATE TABLE events (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL,
    taxonomy     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    subject      TEXT,
    occurred_at  INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    context      TEXT NOT NULL,
    producer     TEXT NOT NULL,
    erased       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, seq)
) STRICT;
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, id);
CREATE INDEX events_by_subject ON events (tenant_id, subject, seq);
CREATE INDEX events_by_received ON events (received_at);

CREATE TABLE deliveries (
    rowid_       INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_seq    INTEGER NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    subject      TEXT,
    state        TEXT NOT NULL,
    n_attempts   INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until  INTEGER,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    FOREIGN KEY (tenant_id, event_seq) REFERENCES events (tenant_id, seq) ON DELETE CASCADE
) STRICT;
-- Due work: waiting deliveries by time; in-flight ones by lease expiry.
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_in_flight ON deliveries (state, lease_until);
-- Ordering checks look for an earlier unfinished delivery of the same endpoint (and subject).
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, state, event_seq);
CREATE INDEX deliveries_by_endpoint_subject ON deliveries (endpoint_id, subject, event_seq);
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, event_seq);

CREATE TABLE attempts (
    delivery_id       TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt_number    INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    status            INTEGER,
    latency_ms        INTEGER NOT NULL,
    response_excerpt  TEXT,
    error             TEXT,
    PRIMARY KEY (delivery_id, attempt_number)
) STRICT;
