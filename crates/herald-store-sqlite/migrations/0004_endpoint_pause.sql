-- A paused endpoint keeps receiving deliveries on publish, but none is claimed until it is resumed.

ALTER TABLE endpoints ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
