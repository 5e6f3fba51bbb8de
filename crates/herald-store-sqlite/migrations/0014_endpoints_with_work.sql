-- The endpoints that have unfinished work (a delivery pending, scheduled or in flight), so a claim
-- visits those rather than every enabled endpoint: a deployment's endpoints are mostly idle, and
-- a claim that walks all of them costs O(endpoints) whatever it claims.
--
-- Triggers add an endpoint whenever one of its deliveries is created unfinished or becomes
-- unfinished again (release, replay); a claim that finds an endpoint with nothing unfinished takes
-- it out. One connection writes the file, so a claim's removal and a publish's addition never
-- interleave.
CREATE TABLE endpoints_with_work (
    endpoint_id TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

INSERT INTO endpoints_with_work (endpoint_id)
    SELECT DISTINCT endpoint_id FROM deliveries WHERE state IN ('pending', 'scheduled', 'in_flight');

CREATE TRIGGER deliveries_created_with_work AFTER INSERT ON deliveries
    WHEN NEW.state IN ('pending', 'scheduled', 'in_flight')
BEGIN
    INSERT OR IGNORE INTO endpoints_with_work (endpoint_id) VALUES (NEW.endpoint_id);
END;

CREATE TRIGGER deliveries_reopened AFTER UPDATE OF state ON deliveries
    WHEN NEW.state IN ('pending', 'scheduled', 'in_flight')
     AND OLD.state NOT IN ('pending', 'scheduled', 'in_flight')
BEGIN
    INSERT OR IGNORE INTO endpoints_with_work (endpoint_id) VALUES (NEW.endpoint_id);
END;
