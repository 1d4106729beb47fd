-- live_outbox: quotes stored but not yet published to the live stream (a
-- transactional outbox). A batch's new quotes are written here in the same
-- transaction as their rows in quotes; the replica that stored them
-- publishes them and deletes them. Rows left by a replica that died in
-- between are claimed and published by the live-outbox job.
CREATE TABLE IF NOT EXISTS live_outbox (
    id        TEXT PRIMARY KEY,
    symbol    TEXT NOT NULL,
    price     REAL NOT NULL,
    ts_us     INTEGER NOT NULL,
    owner     TEXT NOT NULL,   -- the replica that staged (or last claimed) the row
    staged_us INTEGER NOT NULL  -- when, microseconds since the Unix epoch
);
CREATE INDEX IF NOT EXISTS live_outbox_staged ON live_outbox (staged_us);
