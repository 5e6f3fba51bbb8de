-- Blocking hooks and the audit trail of their decisions.

CREATE TABLE hooks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    url             TEXT NOT NULL,
    position        INTEGER NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    failure_policy  TEXT NOT NULL,
    secret          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX hooks_by_tenant ON hooks (tenant_id, event_type, position);

CREATE TABLE decisions (
    rowid_      INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type  TEXT NOT NULL,
    event_id    TEXT,
    is_allowed  INTEGER NOT NULL,
    reasons     TEXT NOT NULL,
    trace       TEXT NOT NULL,
    latency_us  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX decisions_by_tenant ON decisions (tenant_id, rowid_);
CREATE INDEX decisions_by_time ON decisions (created_at);
