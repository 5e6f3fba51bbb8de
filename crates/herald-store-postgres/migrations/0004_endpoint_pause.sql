-- A paused endpoint keeps receiving deliveries on publish, but none is claimed until it is resumed.

ALTER TABLE endpoints ADD COLUMN paused BOOLEAN NOT NULL DEFAULT FALSE;
