-- Claims work endpoint by endpoint (see claims.rs), so every index they use starts with the
-- endpoint and reads only what one endpoint may take.

-- Waiting deliveries, earliest due first. The global due index it replaces made every claim read
-- and sort the whole backlog of every endpoint; no other query used it.
CREATE INDEX deliveries_waiting ON deliveries (endpoint_id, state, next_attempt_at);
DROP INDEX deliveries_due;

-- An endpoint's leases, earliest expiry first: counting its running attempts and finding lost ones
-- reads only its own in-flight rows. (deliveries_in_flight stays: it counts unfinished work by
-- state for count_pending.)
CREATE INDEX deliveries_leased ON deliveries (endpoint_id, lease_until) WHERE state = 'in_flight';

-- Whether a delivery of a subject-ordered endpoint waits behind an earlier one of its subject is
-- one probe of this index. The full index it replaces also held every finished delivery, so the
-- probe walked the subject's whole history; nothing else used it.
CREATE INDEX deliveries_unfinished_by_subject ON deliveries (endpoint_id, subject, event_seq)
    WHERE state IN ('pending', 'scheduled', 'in_flight');
DROP INDEX deliveries_by_endpoint_subject;
