-- The schema registry of each cluster (Confluent Schema Registry's model). Ids are global per
-- cluster: one row per distinct schema (type, text and references); a subject's versions point
-- at those ids. Soft-deleted versions keep their row with `deleted = 1` until a permanent
-- delete. Times are UTC unix seconds.
CREATE TABLE registry_schemas (
    cluster_id  TEXT NOT NULL REFERENCES clusters (id),
    id          BIGINT NOT NULL,
    schema_type TEXT NOT NULL,
    schema_text TEXT NOT NULL,
    -- SHA-256 of the type, the text as stored and the references: the same schema registered
    -- twice (in any subject) gets the same id.
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, id)
);
CREATE UNIQUE INDEX registry_schemas_fingerprint ON registry_schemas (cluster_id, fingerprint);

-- The schemas a schema refers to by name, each a subject's version.
CREATE TABLE registry_references (
    cluster_id TEXT NOT NULL,
    schema_id  BIGINT NOT NULL,
    position   BIGINT NOT NULL,
    name       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, schema_id, position)
);
CREATE INDEX registry_references_target ON registry_references (cluster_id, subject, version);

CREATE TABLE registry_versions (
    cluster_id TEXT NOT NULL REFERENCES clusters (id),
    subject    TEXT NOT NULL,
    version    BIGINT NOT NULL,
    schema_id  BIGINT NOT NULL,
    deleted    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, subject, version)
);
CREATE INDEX registry_versions_schema ON registry_versions (cluster_id, schema_id);

-- Compatibility level and mode, for the whole registry (subject '') or one subject; NULL where
-- not set (the subject follows the registry, the registry the defaults BACKWARD and READWRITE).
CREATE TABLE registry_settings (
    cluster_id    TEXT NOT NULL REFERENCES clusters (id),
    subject       TEXT NOT NULL,
    compatibility TEXT,
    mode          TEXT,
    PRIMARY KEY (cluster_id, subject)
);
