-- Which Standard Webhooks signatures an endpoint's deliveries carry: `v1` (HMAC with its secret,
-- the default), `v1a` (Ed25519 with the tenant's key) or `v1a+v1` (both, during a migration).

ALTER TABLE endpoints ADD COLUMN signature_scheme TEXT NOT NULL DEFAULT 'v1';
