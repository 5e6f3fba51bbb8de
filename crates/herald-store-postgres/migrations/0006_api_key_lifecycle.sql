-- API keys can be listed and revoked: keep what a list shows (never the key), when each was last
-- used, and which admin key `herald serve` generated at first start (a configured admin key
-- replaces it). Until now that was the only way an admin key came to be stored.
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN name TEXT;
ALTER TABLE api_keys ADD COLUMN generated_at_start BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
UPDATE api_keys SET generated_at_start = TRUE WHERE tenant_id IS NULL;
CREATE INDEX api_keys_by_owner ON api_keys (tenant_id, created_at);
