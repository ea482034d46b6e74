-- Every budget a cluster was given, and when (UTC unix seconds): an invoice can be audited
-- against the budget in force.
CREATE TABLE budget_changes (
    cluster_id     TEXT NOT NULL,
    budget_dollars BIGINT NOT NULL,
    changed_at     BIGINT NOT NULL
);
CREATE INDEX budget_changes_cluster ON budget_changes (cluster_id, changed_at);
