-- Shared Signals (issue 14): tenants' SET signing keys, SSF receivers and their hashed tokens,
-- streams, their subjects, and the queue poll streams read until the receiver acknowledges.
CREATE TABLE ssf_signing_keys (
    kid          TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    algorithm    TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER
) STRICT;
CREATE INDEX ssf_signing_keys_by_tenant ON ssf_signing_keys (tenant_id, created_at);
CREATE TABLE ssf_receivers (
    id                        TEXT PRIMARY KEY,
    tenant_id                 TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                      TEXT,
    token_hash                TEXT NOT NULL UNIQUE,
    may_receive_all_subjects  INTEGER NOT NULL,
    created_at                INTEGER NOT NULL
) STRICT;
CREATE INDEX ssf_receivers_by_tenant ON ssf_receivers (tenant_id, created_at);
CREATE TABLE ssf_streams (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    receiver_id    TEXT NOT NULL REFERENCES ssf_receivers(id) ON DELETE CASCADE,
    -- Versioned JSON owned by the API layer: {"v": 1, "delivery": ..., "events_requested": ...}.
    config         TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_reason  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX ssf_streams_by_tenant ON ssf_streams (tenant_id, created_at);
CREATE TABLE ssf_stream_subjects (
    stream_id    TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
    -- herald_ssf::subject::SubjectIdentifier::canonical_key.
    subject_key  TEXT NOT NULL,
    PRIMARY KEY (stream_id, subject_key)
) STRICT;
CREATE TABLE ssf_poll_queue (
    stream_id   TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
    jti         TEXT NOT NULL,
    token       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (stream_id, jti)
) STRICT;
CREATE INDEX ssf_poll_queue_by_age ON ssf_poll_queue (stream_id, created_at);
