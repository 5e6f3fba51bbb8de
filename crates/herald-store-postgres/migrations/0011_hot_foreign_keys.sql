-- The hot tables keep no foreign keys. Each delivery row checked and key-share-locked its event
-- and its endpoint, and each attempt row its delivery: about a tenth of PostgreSQL's CPU at
-- saturation. The store keeps those relations itself (docs/ARCHITECTURE.md, "Relations the store
-- keeps"): a delivery is written in its event's transaction for an endpoint the publish holds
-- `FOR KEY SHARE`; deleting an endpoint, or an event by retention, deletes their deliveries and
-- attempts in the same transaction; an attempt is written only for a delivery its group updated.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_endpoint_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_id_event_seq_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;
