-- Blocking hooks and the audit trail of their decisions (the SQLite backend's 0002_hooks.sql).

CREATE TABLE hooks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    url             TEXT NOT NULL,
    position        INTEGER NOT NULL,
    timeout_ms      BIGINT NOT NULL,
    failure_policy  TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX hooks_by_tenant ON hooks (tenant_id, event_type, position);

CREATE TABLE decisions (
    -- Insertion order, for listing by cursor (SQLite's rowid_).
    rowid_      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    event_id    TEXT,
    is_allowed  BOOLEAN NOT NULL,
    reasons     TEXT NOT NULL,
    trace       TEXT NOT NULL,
    latency_us  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX decisions_by_tenant ON decisions (tenant_id, rowid_);
CREATE INDEX decisions_by_time ON decisions (created_at);
