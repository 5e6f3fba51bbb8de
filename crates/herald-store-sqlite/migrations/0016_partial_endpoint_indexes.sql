-- The two indexes claims read an endpoint's queue through hold only the rows they are read for:
-- waiting deliveries (and, for a replay of failed ones, exhausted deliveries). A delivered row
-- leaves them instead of moving to a new entry, so finished history neither costs a write per
-- delivery nor deepens them. Conditions are comparisons joined by OR (see migration 0014), and
-- each query through them names one of the states, a term of the condition, which is what
-- SQLite needs to use a partial index.
DROP INDEX deliveries_waiting;
CREATE INDEX deliveries_waiting ON deliveries (endpoint_id, state, next_attempt_at)
    WHERE state = 'pending' OR state = 'scheduled';
DROP INDEX deliveries_by_endpoint;
CREATE INDEX deliveries_by_endpoint ON deliveries (endpoint_id, state, event_seq)
    WHERE state = 'pending' OR state = 'scheduled' OR state = 'exhausted';
