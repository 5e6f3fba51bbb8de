-- Shared Signals durable delivery (issue 14): each stream's cursor on its tenant's event log (the
-- SSF worker turns the events after it into SETs and moves it in the same transaction), a push
-- lease per stream (so two nodes never push one stream at once), each queued SET's push
-- schedule, and every push attempt.
ALTER TABLE ssf_streams ADD COLUMN cursor_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ssf_streams ADD COLUMN push_lease_until BIGINT;
-- Streams made before this had their SETs queued at publish: they start at the log's end.
UPDATE ssf_streams SET cursor_seq = tenants.next_seq - 1 FROM tenants WHERE tenants.id = ssf_streams.tenant_id;
-- NULL: not to be pushed (a poll stream's SET waits for the receiver's poll).
ALTER TABLE ssf_poll_queue ADD COLUMN next_attempt_at BIGINT;
ALTER TABLE ssf_poll_queue ADD COLUMN n_attempts BIGINT NOT NULL DEFAULT 0;
UPDATE ssf_poll_queue SET next_attempt_at = created_at;
CREATE TABLE ssf_push_attempts (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    stream_id        TEXT NOT NULL REFERENCES ssf_streams(id) ON DELETE CASCADE,
    jti              TEXT NOT NULL,
    attempted_at     BIGINT NOT NULL,
    status_code      BIGINT,
    latency_ms       BIGINT NOT NULL,
    error            TEXT,
    outcome          TEXT NOT NULL,
    next_attempt_at  BIGINT
);
CREATE INDEX ssf_push_attempts_by_stream ON ssf_push_attempts (stream_id, attempted_at);
-- Retention removes attempts by age across streams.
CREATE INDEX ssf_push_attempts_by_time ON ssf_push_attempts (attempted_at);
