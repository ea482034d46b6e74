-- How far each cluster has been metered: the time of its last stored sweep. The next sweep's
-- counts cover the time since (spread over the hours it covers), and a month is closed only
-- once every live cluster was metered past its end.
CREATE TABLE meter_progress (
    cluster_id      TEXT PRIMARY KEY,
    metered_through BIGINT NOT NULL
);

-- The end of the last closed month: usage is never written before it (what arrives late for
-- a closed month counts in the first hour after it), so invoices, the usage API and usage.csv
-- agree forever. One row; every usage writer reads it in its own transaction (on PostgreSQL
-- with a share lock, which the close's update waits for).
CREATE TABLE metering_close (
    id             BIGINT PRIMARY KEY,
    closed_through BIGINT NOT NULL
);
INSERT INTO metering_close (id, closed_through) VALUES (1, 0);
