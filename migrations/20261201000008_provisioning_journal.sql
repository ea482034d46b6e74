-- The provisioning journal: a change that touches brokers (or Kubernetes objects) and the store
-- is written here before it starts, and crossed out in the transaction that records its end.
-- An entry left behind is a change a crash interrupted; the next start (or the periodic check)
-- finishes it or rolls it back. The cluster's placement is kept so the rollback needs no row.
CREATE TABLE provisioning_journal (
    id         TEXT PRIMARY KEY,
    intent     TEXT NOT NULL,
    cluster_id TEXT NOT NULL,
    multizone  BIGINT NOT NULL,
    pool       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX provisioning_journal_started ON provisioning_journal (started_at);
