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
    lease_expires_at  INTEGER,
    n_accepted        INTEGER NOT NULL DEFAULT 0,
    n_duplicates      INTEGER NOT NULL DEFAULT 0,
    n_refused         INTEGER NOT NULL DEFAULT 0,
    last_success_at   INTEGER,
    last_error_at     INTEGER,
    -- Newest first, at most SOURCE_ERRORS_KEPT: [{"at": unix ms, "status", "detail"}].
    last_errors       TEXT NOT NULL DEFAULT '[]',
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX sources_by_tenant ON sources (tenant_id, created_at);
