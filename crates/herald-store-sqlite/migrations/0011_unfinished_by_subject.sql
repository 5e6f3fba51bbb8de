-- Whether a delivery of a subject-ordered endpoint waits behind an earlier one of its subject is
-- one probe of this index, as on PostgreSQL (its migration 0005). The full index it replaces also
-- held every finished delivery, so each probe walked the subject's whole history: a claim's cost
-- grew with how many events a user ever had. Nothing else used it.
CREATE INDEX deliveries_unfinished_by_subject ON deliveries (endpoint_id, subject, event_seq)
    WHERE state IN ('pending', 'scheduled', 'in_flight');
DROP INDEX deliveries_by_endpoint_subject;
