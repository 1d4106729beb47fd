-- quotes: one row per quote from the feed; id is the feed's unique quote ID,
-- so a redelivered quote (the queue is at-least-once) is stored once.
CREATE TABLE IF NOT EXISTS quotes (
    id     TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    price  REAL NOT NULL,
    ts_us  INTEGER NOT NULL -- quote time, microseconds since the Unix epoch (UTC)
);
-- Latest quote per symbol and range scans for the roll-up.
CREATE INDEX IF NOT EXISTS quotes_symbol_ts ON quotes (symbol, ts_us DESC);
-- Roll-up and purge scan by time across symbols.
CREATE INDEX IF NOT EXISTS quotes_ts ON quotes (ts_us);

-- bars: 1-minute OHLC bars rolled up from quotes by the scheduler.
CREATE TABLE IF NOT EXISTS bars (
    symbol    TEXT NOT NULL,
    minute_us INTEGER NOT NULL, -- start of the minute, microseconds since the epoch
    open      REAL NOT NULL,
    high      REAL NOT NULL,
    low       REAL NOT NULL,
    close     REAL NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (symbol, minute_us)
);
