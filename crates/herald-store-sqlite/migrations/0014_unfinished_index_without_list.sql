-- The same partial index as migration 0011, its condition written as comparisons joined by OR.
-- SQLite evaluates a partial index's condition on every insert and update of a row, and compiles
-- an IN list of three or more constants into a temporary table built for each statement run: two
-- of them for every update of a delivery (its old and new row), about a tenth of a delivery's
-- instructions. Comparisons cost nothing of the kind.
DROP INDEX deliveries_unfinished_by_subject;
CREATE INDEX deliveries_unfinished_by_subject ON deliveries (endpoint_id, subject, event_seq)
    WHERE state = 'pending' OR state = 'scheduled' OR state = 'in_flight';
