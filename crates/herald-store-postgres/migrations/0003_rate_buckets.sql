-- Per-endpoint token buckets for `rate_limit_per_s`, kept in the database so the limit holds
-- across nodes: they are read and written under the claim's per-endpoint advisory lock.

CREATE TABLE endpoint_rate_buckets (
    endpoint_id  TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    tokens       DOUBLE PRECISION NOT NULL,
    refilled_at  BIGINT NOT NULL
);
