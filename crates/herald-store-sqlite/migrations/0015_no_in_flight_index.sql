-- Leases are held in memory since this version (`leases.rs`): no row is `in_flight` while a
-- process owns the file, and `lease_until` is never set, so the index of in-flight deliveries by
-- lease expiry only cost every insert and state change of a delivery an index write. Rows an
-- older version left in flight are found at open through `deliveries_unfinished_by_subject`,
-- whose condition has `state = 'in_flight'` as one of its terms.
DROP INDEX deliveries_in_flight;
