-- The SQLite backend's 0007_sources.sql, in PostgreSQL's types.
-- Sources: a tenant's inbound connection for one vendor, at /v1/ingest/{id}, with the counters
-- and latest errors its operator reads to see a misconfigured vendor at once.
CREATE TABLE sources (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind              TEXT NOT NULL,
    name              TEXT,
    secret            TEXT NOT NULL,
    header_name       TEXT,
    username          TEXT,
    accepted_topics   TEXT NOT NULL,
    lease_expires_at  BIGINT,
    n_accepted        BIGINT NOT NULL DEFAULT 0,
    n_duplicates      BIGINT NOT NULL DEFAULT 0,
    n_refused         BIGINT NOT NULL DEFAULT 0,
    last_success_at   BIGINT,
    last_error_at     BIGINT,
    -- Newest first, at most SOURCE_ERRORS_KEPT: [{"at": unix ms, "status", "detail"}].
    last_errors       TEXT NOT NULL DEFAULT '[]',
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX sources_by_tenant ON sources (tenant_id, created_at);
