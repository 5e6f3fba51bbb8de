-- Per-endpoint token buckets for `rate_limit_per_s`, kept in the database so the limit holds
-- for whoever claims (one process for SQLite, every node for PostgreSQL).

CREATE TABLE endpoint_rate_buckets (
    endpoint_id  TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    tokens       REAL NOT NULL,
    refilled_at  INTEGER NOT NULL
) STRICT;
