-- Placement (Kafka gateway): a `shared` cluster is a virtual cluster on a shared broker pool,
-- its topics, groups and transactional ids under an immutable prefix that clients never see;
-- a `dedicated` cluster has brokers of its own (every cluster made before this migration).
ALTER TABLE clusters ADD COLUMN placement TEXT NOT NULL DEFAULT 'dedicated';
ALTER TABLE clusters ADD COLUMN pool TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX clusters_prefix ON clusters (prefix) WHERE prefix <> '';
