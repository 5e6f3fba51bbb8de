-- Claims read each active endpoint's waiting deliveries, earliest due first, through this index
-- alone; the global due index it replaces made every claim sort the whole backlog.
CREATE INDEX deliveries_waiting ON deliveries (endpoint_id, state, next_attempt_at);
DROP INDEX deliveries_due;
