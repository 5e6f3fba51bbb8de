-- Herald's first schema, in PostgreSQL's dialect: the same tables as the SQLite backend's
-- 0001_initial.sql. Times are Unix milliseconds (BIGINT), as there, so both backends round the
-- same way. JSON is TEXT, not JSONB: JSONB reorders an object's members, and a stored payload must
-- come back byte for byte so that every delivery of it renders the same body.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    issuer      TEXT,
    -- The next event's seq. Publishers update it in their transaction, which also serialises them
    -- per tenant until commit (see "Seq across nodes" in docs/ARCHITECTURE.md).
    next_seq    BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE custom_types (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    module           TEXT,
    subject_pointer  TEXT,
    schema           TEXT NOT NULL,
    example          TEXT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url                         TEXT NOT NULL,
    description                 TEXT NOT NULL,
    filters                     TEXT NOT NULL,
    format                      TEXT NOT NULL,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  BIGINT,
    ordering                    TEXT NOT NULL,
    retry_schedule_s            TEXT NOT NULL,
    timeout_ms                  BIGINT NOT NULL,
    max_concurrency             BIGINT NOT NULL,
    rate_limit_per_s            BIGINT,
    headers                     TEXT NOT NULL,
    enabled                     BOOLEAN NOT NULL,
    disabled_reason             TEXT,
    failing_since               BIGINT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);
CREATE INDEX endpoints_by_tenant ON endpoints (tenant_id);

CREATE TABLE events (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    id           TEXT NOT NULL,
    taxonomy     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    subject      TEXT,
    occurred_at  BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    payload      TEXT NOT NULL,
    context      TEXT NOT NULL,
    producer     TEXT NOT NULL,
    erased       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant_id, seq)
);
CREATE UNIQUE INDEX events_by_id ON events (tenant_id, id);
CREATE INDEX events_by_subject ON events (tenant_id, subject, seq);
CREATE INDEX events_by_received ON events (received_at);

CREATE TABLE deliveries (
    -- Creation order, for listing by cursor (SQLite's rowid_).
    rowid_       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_seq    BIGINT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    subject      TEXT,
    state        TEXT NOT NULL,
    n_attempts   BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_until  BIGINT,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, event_seq) REFERENCES events (tenant_id, seq) ON DELETE CASCADE
);
-- Due work: waiting deliveries by time; in-flight ones by lease expiry.
CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
CREATE INDEX deliveries_in_flight ON deliveries (state, lease_until);
-- Ordering checks look for an earlier unfinished delivery of the same endpoint (and subject).
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, state, event_seq);
CREATE INDEX deliveries_by_endpoint_subject ON deliveries (endpoint_id, subject, event_seq);
CREATE INDEX deliveries_by_event ON deliveries (tenant_id, event_seq);
CREATE INDEX deliveries_by_tenant ON deliveries (tenant_id, rowid_);

CREATE TABLE attempts (
    delivery_id       TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt_number    BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    status            INTEGER,
    latency_ms        BIGINT NOT NULL,
    response_excerpt  TEXT,
    error             TEXT,
    PRIMARY KEY (delivery_id, attempt_number)
);
