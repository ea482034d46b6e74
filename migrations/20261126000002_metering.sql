-- Metering (owned by the billing crate). Counts are exact because each cursor is written in the
-- same transaction as the usage it accounts for.

-- The last position counted, per partition (group_id = '') and per group-partition.
CREATE TABLE meter_cursors (
    cluster_id   TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition_id BIGINT NOT NULL,
    group_id     TEXT NOT NULL,
    topic_id     TEXT NOT NULL,
    position     BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, topic, partition_id, group_id)
);

-- Usage per cluster, topic and UTC hour (hour = unix seconds at the start of the hour).
-- Stored bytes are kept as a sum of samples and their count, so the hourly average is exact.
CREATE TABLE usage_hourly (
    cluster_id      TEXT NOT NULL,
    topic           TEXT NOT NULL,
    hour            BIGINT NOT NULL,
    produced        BIGINT NOT NULL,
    consumed        BIGINT NOT NULL,
    storage_sum     BIGINT NOT NULL,
    storage_samples BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, topic, hour)
);
CREATE INDEX usage_hourly_hour ON usage_hourly (hour);
