-- One schema for SQLite and PostgreSQL: only TEXT and BIGINT columns, so the same SQL and the
-- same row decoding work on both backends. Identifiers are UUID text; times are unix seconds (UTC);
-- booleans are 0/1.

CREATE TABLE accounts (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE clusters (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    name         TEXT NOT NULL,
    slug         TEXT NOT NULL UNIQUE,
    region       TEXT NOT NULL,
    multizone    BIGINT NOT NULL,
    plan         TEXT NOT NULL,
    state        TEXT NOT NULL,
    tcp_endpoint TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT
);
CREATE INDEX clusters_account ON clusters (account_id);

CREATE TABLE topics (
    id               TEXT PRIMARY KEY,
    cluster_id       TEXT NOT NULL REFERENCES clusters (id),
    name             TEXT NOT NULL,
    partitions       BIGINT NOT NULL,
    retention_time   BIGINT NOT NULL,
    retention_size   BIGINT NOT NULL,
    max_message_size BIGINT NOT NULL,
    cleanup_policy   TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX topics_cluster_name ON topics (cluster_id, name);

CREATE TABLE credentials (
    id                 TEXT PRIMARY KEY,
    cluster_id         TEXT NOT NULL REFERENCES clusters (id),
    name               TEXT NOT NULL,
    is_default         BIGINT NOT NULL,
    topic              TEXT NOT NULL,
    permissions        TEXT NOT NULL,
    username           TEXT NOT NULL UNIQUE,
    password_encrypted TEXT NOT NULL,
    password_hash      TEXT NOT NULL,
    created_at         BIGINT NOT NULL
);
CREATE INDEX credentials_cluster ON credentials (cluster_id);
